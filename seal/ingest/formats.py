"""Format adapters: one source record -> one canonical pair, or a RowProblem with a reason code.

Canonical pair: ``context`` (list of ``{role, content}``), ``chosen``/``rejected`` (final responses),
``chosen_raw``/``rejected_raw`` (the source's own texts) and the ``context_mismatch`` flag.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from seal.errors import SourceError
from seal.ingest.transcript import TranscriptError, has_markers, parse_turns, split_final_response

FORMATS = ("transcript", "prompt-response", "messages", "pairwise")
MAP_KEYS = ("prompt", "chosen", "rejected", "a", "b", "label", "system", "key")
LABELS = ("a", "b", "tie")
DEFAULT_COLUMNS = {
    "prompt": "prompt",
    "chosen": "chosen",
    "rejected": "rejected",
    "a": "a",
    "b": "b",
    "label": "label",
    "system": "system",
}
SHAREGPT_PROMPT = "conversations"

_ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
}


class RowProblem(ValueError):
    """A record that cannot become a pair. ``reason`` is a short code stored in quarantine."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Canonical:
    context: list[dict[str, str]]
    chosen: str
    rejected: str
    chosen_raw: str
    rejected_raw: str
    context_mismatch: bool = False


@dataclass(frozen=True)
class ColumnMap:
    """Resolved column names for each canonical key, plus the label map for pairwise data."""

    columns: Mapping[str, str]
    labels: Mapping[str, str]

    def col(self, key: str) -> str:
        return self.columns.get(key, DEFAULT_COLUMNS.get(key, key))


def parse_map_options(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``KEY=COLUMN`` options; column names may contain spaces or '='."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, column = item.partition("=")
        key = key.strip()
        if not sep or not key or not column:
            raise SourceError(f"bad --map `{item}`", hint="use KEY=COLUMN, e.g. --map prompt=input")
        if key not in MAP_KEYS:
            raise SourceError(f"bad --map `{item}`: unknown key `{key}`", hint=f"keys are {', '.join(MAP_KEYS)}")
        out[key] = column
    return out


def parse_label_map(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``VALUE=a|b|tie`` options (values compared as strings)."""
    out: dict[str, str] = {}
    for item in items:
        value, sep, label = item.rpartition("=")
        if not sep or label not in LABELS:
            raise SourceError(f"bad --label-map `{item}`", hint="use VALUE=a, VALUE=b or VALUE=tie")
        out[value] = label
    return out


# -- detection ----------------------------------------------------------------------------------
def detect_format(record: Mapping[str, Any], mapping: ColumnMap) -> tuple[str, str]:
    """Choose a format from a sample record; return (format, why)."""
    columns = set(record)
    if {"a", "b", "label"} & set(mapping.columns):
        return "pairwise", "--map names a/b/label columns"
    chosen_col, rejected_col = mapping.col("chosen"), mapping.col("rejected")
    if chosen_col not in columns or rejected_col not in columns:
        raise SourceError(
            f"cannot detect the format: no `{chosen_col}`/`{rejected_col}` columns "
            f"(columns: {', '.join(sorted(columns))})",
            hint="map them with --map chosen=COL --map rejected=COL, or use --format pairwise",
        )
    sample = record[chosen_col]
    if isinstance(sample, list | dict):
        return "messages", f"`{chosen_col}` holds messages"
    if isinstance(sample, str):
        if mapping.col("prompt") in columns:
            return "prompt-response", f"string responses and a `{mapping.col('prompt')}` column"
        if has_markers(sample):
            return "transcript", f"`{chosen_col}` holds Human:/Assistant: transcripts"
        raise SourceError(
            "cannot detect the format: string responses with no prompt column and no Human:/Assistant: markers",
            hint="name the prompt column with --map prompt=COL",
        )
    raise SourceError(f"cannot detect the format: `{chosen_col}` holds {type(sample).__name__} values")


def required_columns(fmt: str, mapping: ColumnMap, sample: Mapping[str, Any]) -> list[str]:
    """Columns that every record of this format must have (checked once on the sample)."""
    if fmt == "transcript":
        keys = ["chosen", "rejected"]
    elif fmt == "prompt-response":
        keys = ["prompt", "chosen", "rejected"]
    elif fmt == "messages":
        keys = ["chosen", "rejected"]
    else:
        keys = ["a", "b", "label"]
    return [mapping.col(k) for k in keys]


# -- helpers ------------------------------------------------------------------------------------
def _text(record: Mapping[str, Any], column: str, what: str) -> str:
    if column not in record:
        raise RowProblem("missing_column", f"no `{column}` column in this row")
    value = record[column]
    if value is None:
        raise RowProblem("missing_value", f"{what} (`{column}`) is null")
    if not isinstance(value, str):
        raise RowProblem("wrong_type", f"{what} (`{column}`) is {type(value).__name__}, not text")
    return value


def _message(item: Any) -> dict[str, str]:
    if not isinstance(item, dict):
        raise RowProblem("bad_message", f"a message is {type(item).__name__}, not an object")
    role = item.get("role", item.get("from"))
    content = item.get("content", item.get("value"))
    if not isinstance(role, str):
        raise RowProblem("bad_message", "a message has no role/from")
    normalised = _ROLES.get(role.strip().lower())
    if normalised is None:
        raise RowProblem("unknown_role", f"unknown message role `{role}`")
    if isinstance(content, list):  # OpenAI-style content parts
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) != len(content) or not all(isinstance(p, str) for p in parts):
            raise RowProblem("unsupported_content", "a message has non-text content parts")
        content = "\n".join(parts)
    if content is None:
        raise RowProblem("missing_value", f"a `{role}` message has no content")
    if not isinstance(content, str):
        raise RowProblem("wrong_type", f"a `{role}` message content is {type(content).__name__}")
    return {"role": normalised, "content": content.strip()}


def _messages(value: Any, column: str) -> list[dict[str, str]]:
    if value is None:
        raise RowProblem("missing_value", f"`{column}` is null")
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowProblem("wrong_type", f"`{column}` is {type(value).__name__}, not a message list")
    return [_message(m) for m in value]


def _prompt_context(value: Any, column: str) -> list[dict[str, str]]:
    """A prompt given as text (possibly an embedded Human/Assistant dialogue) or as messages."""
    if value is None:
        raise RowProblem("missing_value", f"the prompt (`{column}`) is null")
    if isinstance(value, str):
        if has_markers(value):
            turns = parse_turns(value)
            if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
                turns.pop()  # a prompt ending in an empty "Assistant:" cue
            return turns
        return [{"role": "user", "content": value.strip()}] if value.strip() else []
    if isinstance(value, list | dict):
        return _messages(value, column)
    raise RowProblem("wrong_type", f"the prompt (`{column}`) is {type(value).__name__}")


def _response(value: str) -> str:
    stripped = value.strip()
    return stripped[len("Assistant:") :].strip() if stripped.startswith("Assistant:") else stripped


def _system(record: Mapping[str, Any], mapping: ColumnMap) -> list[dict[str, str]]:
    value = record.get(mapping.col("system"))
    if isinstance(value, str) and value.strip():
        return [{"role": "system", "content": value.strip()}]
    return []


def _raw(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# -- adapters -----------------------------------------------------------------------------------
def adapt_transcript(record: Mapping[str, Any], mapping: ColumnMap) -> Canonical:
    chosen_raw = _text(record, mapping.col("chosen"), "chosen")
    rejected_raw = _text(record, mapping.col("rejected"), "rejected")
    try:
        chosen = split_final_response(chosen_raw)
        rejected = split_final_response(rejected_raw)
    except TranscriptError as err:
        raise RowProblem(err.reason, str(err)) from None
    return Canonical(
        context=chosen.context,
        chosen=chosen.response,
        rejected=rejected.response,
        chosen_raw=chosen_raw,
        rejected_raw=rejected_raw,
        context_mismatch=chosen.prefix != rejected.prefix,
    )


def adapt_prompt_response(record: Mapping[str, Any], mapping: ColumnMap) -> Canonical:
    prompt_col = mapping.col("prompt")
    if prompt_col not in record:
        raise RowProblem("missing_column", f"no `{prompt_col}` column in this row")
    context = _system(record, mapping) + _prompt_context(record[prompt_col], prompt_col)
    chosen_raw = _text(record, mapping.col("chosen"), "chosen")
    rejected_raw = _text(record, mapping.col("rejected"), "rejected")
    return Canonical(context, _response(chosen_raw), _response(rejected_raw), chosen_raw, rejected_raw)


def _split_messages(msgs: list[dict[str, str]], column: str) -> tuple[list[dict[str, str]], str]:
    if not msgs:
        raise RowProblem("empty_messages", f"`{column}` has no messages")
    if msgs[-1]["role"] != "assistant":
        raise RowProblem("final_turn_not_assistant", f"the last message of `{column}` is not the assistant's")
    return msgs[:-1], msgs[-1]["content"]


def adapt_messages(record: Mapping[str, Any], mapping: ColumnMap) -> Canonical:
    chosen_col, rejected_col = mapping.col("chosen"), mapping.col("rejected")
    for col in (chosen_col, rejected_col):
        if col not in record:
            raise RowProblem("missing_column", f"no `{col}` column in this row")
    chosen_msgs = _messages(record[chosen_col], chosen_col)
    rejected_msgs = _messages(record[rejected_col], rejected_col)
    chosen_prefix, chosen = _split_messages(chosen_msgs, chosen_col)
    rejected_prefix, rejected = _split_messages(rejected_msgs, rejected_col)
    prompt_col = mapping.columns.get("prompt")
    if prompt_col is None:
        prompt_col = next((c for c in ("prompt", SHAREGPT_PROMPT) if c in record), None)
    context = _system(record, mapping)
    if prompt_col is not None:
        if prompt_col not in record:
            raise RowProblem("missing_column", f"no `{prompt_col}` column in this row")
        context += _prompt_context(record[prompt_col], prompt_col)
    return Canonical(
        context=context + chosen_prefix,
        chosen=chosen,
        rejected=rejected,
        chosen_raw=_raw(record[chosen_col]),
        rejected_raw=_raw(record[rejected_col]),
        context_mismatch=chosen_prefix != rejected_prefix,
    )


def adapt_pairwise(record: Mapping[str, Any], mapping: ColumnMap) -> Canonical:
    label_col = mapping.col("label")
    if label_col not in record:
        raise RowProblem("missing_column", f"no `{label_col}` column in this row")
    raw_label = record[label_col]
    key = "" if raw_label is None else str(raw_label)
    labels = mapping.labels or {"a": "a", "b": "b", "tie": "tie"}
    label = labels.get(key)
    if label is None:
        raise RowProblem("label_not_mapped", f"label `{key}` is not in the label map")
    if label == "tie":
        raise RowProblem("tie", "the label says the two responses tie")
    a_raw = _text(record, mapping.col("a"), "response a")
    b_raw = _text(record, mapping.col("b"), "response b")
    prompt_col = mapping.col("prompt")
    prompt = record.get(prompt_col)
    context = _system(record, mapping) + (_prompt_context(prompt, prompt_col) if prompt is not None else [])
    chosen_raw, rejected_raw = (a_raw, b_raw) if label == "a" else (b_raw, a_raw)
    return Canonical(context, _response(chosen_raw), _response(rejected_raw), chosen_raw, rejected_raw)


ADAPTERS: dict[str, Callable[[Mapping[str, Any], ColumnMap], Canonical]] = {
    "transcript": adapt_transcript,
    "prompt-response": adapt_prompt_response,
    "messages": adapt_messages,
    "pairwise": adapt_pairwise,
}
