"""Parse hh-rlhf style transcripts (``\\n\\nHuman: … \\n\\nAssistant: …``) into turns."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A turn opens with a marker at the very start of the text or after a blank line. Two patterns rather than
# one `(?:^|\n\n)...`: a pattern that starts with a literal is searched by a fast prefix scan (4x faster).
_START_MARKER = re.compile(r"(Human|Assistant):[ \t]?")
_NEXT_MARKER = re.compile(r"\n\n(Human|Assistant):[ \t]?")
_ROLE = {"Human": "user", "Assistant": "assistant"}
_FINAL_MARKER = "\n\nAssistant:"


def _markers(text: str) -> list[re.Match[str]]:
    """The turn markers of `text` in order: the matches of ``(?:^|\n\n)(Human|Assistant):[ \t]?``."""
    first = _START_MARKER.match(text)
    if first is None:
        return list(_NEXT_MARKER.finditer(text))
    return [first, *_NEXT_MARKER.finditer(text, first.end())]


def has_markers(text: str) -> bool:
    """True when the text holds a Human:/Assistant: dialogue."""
    return bool(_START_MARKER.match(text) or _NEXT_MARKER.search(text))


def parse_turns(text: str, leading_role: str = "user") -> list[dict[str, str]]:
    """Split a transcript into ``{role, content}`` turns.

    Text before the first marker (if any) becomes a turn of ``leading_role``: prompts such as
    HHH's start with the human's words and only mark later turns.
    """
    turns: list[dict[str, str]] = []
    matches = _markers(text)
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


def split_final_response(text: str, with_context: bool = True) -> SplitTranscript:
    """Cut a transcript into the context before the final Assistant turn and that turn's text
    (`with_context` False: the context is left unparsed, [], when only the prefix and response are needed)."""
    if not text.strip():
        raise TranscriptError("empty_text", "the transcript is empty")
    cut = text.rfind(_FINAL_MARKER)
    if cut < 0:
        if text.startswith("Assistant:"):
            cut = 0
        else:
            raise TranscriptError("no_assistant_turn", "the transcript has no Assistant turn")
    prefix = text[:cut]
    # The tail opens with its Assistant marker; it is the final turn when no other marker follows
    # (what parse_turns(tail) == [one assistant turn] says, without building the turns).
    opening = _START_MARKER.match(text, cut) if cut == 0 else None
    opening = opening or _NEXT_MARKER.match(text, cut)
    if opening is None or _NEXT_MARKER.search(text, opening.end()) is not None:
        raise TranscriptError("final_turn_not_assistant", "a Human turn follows the last Assistant turn")
    context = parse_turns(prefix) if with_context else []
    return SplitTranscript(prefix=prefix, context=context, response=text[opening.end() :].strip())
