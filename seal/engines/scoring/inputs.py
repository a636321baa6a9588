"""What a reward model reads: (context messages, response) items rendered in one of two formats and
tokenised in one batched call, then truncated on tokens.

- ``pair``: ``tokenizer(context_text, response)``, the sentence-pair input the OpenAssistant RMs were
  trained on; the context is rendered as an hh-rlhf transcript (``\\n\\nHuman: …\\n\\nAssistant: …``).
- ``chat``: ``apply_chat_template(context + [assistant response])``, for RMs that ship a chat template
  (Skywork-, ArmoRM-style and most decoder RMs).

Truncation never drops special tokens: ``left`` drops tokens from the start (the context first, so the whole
response and the end of the context are kept), ``right`` from the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seal.engines.scoring.checkpoint import ModelError
from seal.errors import first_line

INPUT_FORMATS = ("auto", "pair", "chat")
TRUNCATION_SIDES = ("left", "right")
TRANSCRIPT_RENDERER = "hh-transcript-v1"  # recorded in the recipe: a change of rendering is a new recipe

Message = Mapping[str, Any]
Item = tuple[Sequence[Message], str]  # (context messages, response)
Progress = Callable[[int], None]

_SPEAKER = {"user": "Human", "human": "Human", "assistant": "Assistant", "system": "System"}


def render_transcript(messages: Sequence[Message]) -> str:
    """Messages as an hh-rlhf transcript: ``\\n\\nHuman: …\\n\\nAssistant: …`` (empty for no messages)."""
    parts = []
    for m in messages:
        role = str(m["role"])
        speaker = _SPEAKER.get(role.lower(), role.capitalize())
        parts.append(f"\n\n{speaker}: {m['content']}")
    return "".join(parts)


def chat_messages(context: Sequence[Message], response: str) -> list[dict[str, str]]:
    """The conversation a chat-template RM scores: the context plus the response as the assistant's turn."""
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in context] + [
        {"role": "assistant", "content": response}
    ]


@dataclass
class Encoded:
    """Token ids of each text after truncation (not padded), and which texts were truncated."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    truncated: np.ndarray  # bool per text
    lengths_before: np.ndarray  # token count before truncation

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))


@dataclass(frozen=True)
class Encoding:
    """How a model's texts are tokenised: format, limit, truncation side and whether it takes token types."""

    input_format: str  # pair | chat
    max_length: int
    truncation: str  # left | right
    use_token_type_ids: bool
    model_id: str  # for error messages


def encode(tokenizer: Any, items: Sequence[Item], encoding: Encoding) -> Encoded:
    """Tokenise (context, response) items in one batched call each, then truncate to max_length."""
    n = len(items)
    protected: list[np.ndarray | None]
    if encoding.input_format == "pair":
        contexts = [render_transcript(ctx) for ctx, _ in items]
        responses = [str(resp) for _, resp in items]
        enc = tokenizer(
            contexts,
            responses,
            add_special_tokens=True,
            truncation=False,
            return_special_tokens_mask=True,
            return_token_type_ids=encoding.use_token_type_ids,
            return_attention_mask=False,
        )
        ids = enc["input_ids"]
        protected = [np.asarray(m, dtype=bool) for m in enc["special_tokens_mask"]]
    else:
        texts = []
        for i, (ctx, resp) in enumerate(items):
            try:
                texts.append(tokenizer.apply_chat_template(chat_messages(ctx, str(resp)), tokenize=False))
            except Exception as err:
                raise ModelError(
                    f"the chat template of `{encoding.model_id}` failed on text {i}: {first_line(err)}",
                    hint="try --input-format pair",
                ) from None
        enc = tokenizer(
            texts,
            add_special_tokens=False,
            truncation=False,
            return_token_type_ids=encoding.use_token_type_ids,
            return_attention_mask=False,
        )
        ids = enc["input_ids"]
        bos = getattr(tokenizer, "bos_token_id", None)
        protected = [None] * n
        if bos is not None:
            for i, seq in enumerate(ids):
                if seq and seq[0] == bos:
                    mask = np.zeros(len(seq), dtype=bool)
                    mask[0] = True
                    protected[i] = mask
    types = enc.get("token_type_ids") if encoding.use_token_type_ids else None
    out_ids: list[np.ndarray] = []
    out_types: list[np.ndarray] | None = [] if types is not None else None
    truncated = np.zeros(n, dtype=bool)
    before = np.zeros(n, dtype=np.int64)
    limit = encoding.max_length
    for i in range(n):
        seq = np.asarray(ids[i], dtype=np.int64)
        tt = np.asarray(types[i], dtype=np.int64) if types is not None else None
        before[i] = len(seq)
        if len(seq) > limit:
            keep = keep_mask(len(seq), limit, protected[i], encoding.truncation)
            seq = seq[keep]
            tt = tt[keep] if tt is not None else None
            truncated[i] = True
        out_ids.append(seq)
        if out_types is not None and tt is not None:
            out_types.append(tt)
    return Encoded(out_ids, out_types, truncated, before)


def keep_mask(length: int, limit: int, protected: np.ndarray | None, side: str) -> np.ndarray:
    """Which tokens of a too-long sequence to keep: drop `length - limit` unprotected tokens from the
    left (start) or the right (end); protected (special) tokens always stay."""
    excess = length - limit
    droppable = np.flatnonzero(~protected) if protected is not None else np.arange(length)
    keep = np.zeros(length, dtype=bool) if excess > len(droppable) else np.ones(length, dtype=bool)
    if excess > len(droppable):  # cannot happen with sane limits: keep a plain window of `limit` tokens
        if side == "left":
            keep[length - limit :] = True
        else:
            keep[:limit] = True
        return keep
    drop = droppable[:excess] if side == "left" else droppable[len(droppable) - excess :]
    keep[drop] = False
    return keep
