"""Parse hh-rlhf style transcripts (``\\n\\nHuman: … \\n\\nAssistant: …``) into turns."""

from __future__ import annotations

import re
from dataclasses import dataclass

_MARKER = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")
_ROLE = {"Human": "user", "Assistant": "assistant"}
_FINAL_MARKER = "\n\nAssistant:"


def has_markers(text: str) -> bool:
    """True when the text holds a Human:/Assistant: dialogue."""
    return bool(_MARKER.search(text)) and ("Assistant:" in text or "Human:" in text)


def parse_turns(text: str, leading_role: str = "user") -> list[dict[str, str]]:
    """Split a transcript into ``{role, content}`` turns.

    Text before the first marker (if any) becomes a turn of ``leading_role``: prompts such as
    HHH's start with the human's words and only mark later turns.
    """
    turns: list[dict[str, str]] = []
    matches = list(_MARKER.finditer(text))
    head = text[: matches[0].start()] if matches else text
    if head.strip():
        turns.append({"role": leading_role, "content": head.strip()})
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        turns.append({"role": _ROLE[m.group(1)], "content": text[m.end() : end].strip()})
    return turns


@dataclass(frozen=True)
class SplitTranscript:
    """A transcript cut before its final Assistant turn."""

    prefix: str  # raw text before the final Assistant marker
    context: list[dict[str, str]]
    response: str


class TranscriptError(ValueError):
    """A transcript that cannot yield a final Assistant response; ``reason`` is a quarantine code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def split_final_response(text: str) -> SplitTranscript:
    """Cut a transcript into the context before the final Assistant turn and that turn's text."""
    if not text.strip():
        raise TranscriptError("empty_text", "the transcript is empty")
    cut = text.rfind(_FINAL_MARKER)
    if cut < 0:
        if text.startswith("Assistant:"):
            cut = 0
        else:
            raise TranscriptError("no_assistant_turn", "the transcript has no Assistant turn")
    prefix = text[:cut]
    tail = text[cut:]
    tail_turns = parse_turns(tail)
    if len(tail_turns) != 1 or tail_turns[0]["role"] != "assistant":
        raise TranscriptError("final_turn_not_assistant", "a Human turn follows the last Assistant turn")
    return SplitTranscript(prefix=prefix, context=parse_turns(prefix), response=tail_turns[0]["content"])
