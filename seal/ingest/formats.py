"""Format adapters: one source record -> one canonical pair, or a RowProblem with a reason code.

Canonical pair: ``context`` (list of ``{role, content}``), ``chosen``/``rejected`` (final responses),
``chosen_raw``/``rejected_raw`` (the source's own texts) and the ``context_mismatch`` flag.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from seal.errors import SourceError
from seal.ingest.transcript import TranscriptError, has_markers, parse_turns, split_final_response

FORMATS = ("transcript", "prompt-response", "messages", "pairwise")
MAP_KEYS = ("prompt", "chosen", "rejected", "a", "b", "label", "system", "key")
LABELS = ("a", "b", "tie")
DEFAULT_LABELS = {"a": "a", "b": "b", "tie": "tie"}
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


# The --map keys each format reads (`key` names a column holding a stable row id).
FORMAT_KEYS = {
    "transcript": ("chosen", "rejected", "key"),
    "prompt-response": ("prompt", "chosen", "rejected", "system", "key"),
    "messages": ("prompt", "chosen", "rejected", "system", "key"),
    "pairwise": ("prompt", "a", "b", "label", "system", "key"),
}
REQUIRED_KEYS = {
    "transcript": ("chosen", "rejected"),
    "prompt-response": ("prompt", "chosen", "rejected"),
    "messages": ("chosen", "rejected"),
    "pairwise": ("a", "b", "label"),
}


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
        if key in out and out[key] != column:
            raise SourceError(
                f"bad --map `{item}`: `{key}` is already mapped to `{out[key]}`", hint="map each key once"
            )
        out[key] = column
    return out


def parse_label_map(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``VALUE=a|b|tie`` options (values compared as text, see `label_text`)."""
    out: dict[str, str] = {}
    for item in items:
        value, sep, label = item.rpartition("=")
        label = label.strip().lower()
        if not sep or label not in LABELS:
            raise SourceError(f"bad --label-map `{item}`", hint="use VALUE=a, VALUE=b or VALUE=tie, e.g. 1=a")
        value = value.strip()
        if value in out and out[value] != label:
            raise SourceError(
                f"bad --label-map `{item}`: `{value}` is already mapped to `{out[value]}`",
                hint="map each label value once",
            )
        out[value] = label
    return out


def label_text(value: Any) -> str:
    """A label value as the text a --label-map names: 1, 1.0 and "1" are all "1"; True is "true"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def lookup_label(labels: Mapping[str, str], value: Any) -> str | None:
    text = label_text(value)
    if text in labels:
        return labels[text]
    folded = {k.lower(): v for k, v in labels.items()}
    return folded.get(text.lower())


# -- detection ----------------------------------------------------------------------------------
def detect_format(records: Sequence[Mapping[str, Any]], mapping: ColumnMap) -> tuple[str, str]:
    """Choose a format from the first records of a source (their columns and value types); return
    (format, why). Rows that are themselves broken (a null `chosen`) do not decide."""
    columns: set[str] = set().union(*(set(r) for r in records))
    chosen_col, rejected_col = mapping.col("chosen"), mapping.col("rejected")
    if {"a", "b", "label"} & set(mapping.columns):
        return "pairwise", "--map names a/b/label columns"
    if mapping.labels:
        return "pairwise", "--label-map is given"
    if {"a", "b", "label"} <= columns and not {chosen_col, rejected_col} & columns:
        return "pairwise", "columns `a`, `b` and `label`"
    missing = [c for c in (chosen_col, rejected_col) if c not in columns]
    if missing:
        raise SourceError(
            f"cannot detect the format: no {' or '.join(f'`{c}`' for c in missing)} column "
            f"(columns: {', '.join(f'`{c}`' for c in sorted(columns))})",
            hint="map them with --map chosen=COL --map rejected=COL, or use --format pairwise with --map a=COL "
            "--map b=COL --map label=COL",
        )
    values = [r[chosen_col] for r in records if r.get(chosen_col) is not None]
    if not values:
        raise SourceError(
            f"cannot detect the format: `{chosen_col}` is null in the first {len(records)} rows",
            hint=f"pass --format ({'|'.join(FORMATS)})",
        )
    kinds = Counter("messages" if isinstance(v, list | dict) else type(v).__name__ for v in values)
    kind = kinds.most_common(1)[0][0]
    if kind == "messages":
        return "messages", f"`{chosen_col}` holds messages"
    if kind == "str" and all(isinstance(json_messages(v), list | dict) for v in values):
        return "messages", f"`{chosen_col}` holds messages as JSON text"
    if kind == "str":
        if mapping.col("prompt") in columns:
            return "prompt-response", f"string responses and a `{mapping.col('prompt')}` column"
        if any(isinstance(v, str) and has_markers(v) for v in values):
            return "transcript", f"`{chosen_col}` holds Human:/Assistant: transcripts"
        raise SourceError(
            "cannot detect the format: string responses with no prompt column and no Human:/Assistant: markers",
            hint="name the prompt column with --map prompt=COL",
        )
    raise SourceError(
        f"cannot detect the format: `{chosen_col}` holds {kind} values, not text or messages",
        hint="map the response columns with --map chosen=COL --map rejected=COL",
    )


def required_columns(fmt: str, mapping: ColumnMap) -> list[str]:
    """Columns that a source of this format must have."""
    return [mapping.col(k) for k in REQUIRED_KEYS[fmt]]


def check_mapped_columns(records: Sequence[Mapping[str, Any]], mapping: ColumnMap) -> None:
    """Every --map names a column that the first records have (checked before detecting the format)."""
    columns = set().union(*(set(r) for r in records))
    for key, column in mapping.columns.items():
        if column not in columns:
            listed = ", ".join(f"`{c}`" for c in sorted(columns))
            raise SourceError(f"bad --map {key}={column}: there is no column `{column}`", hint=f"columns: {listed}")


def check_columns(records: Sequence[Mapping[str, Any]], fmt: str, mapping: ColumnMap) -> None:
    """File-level checks on the first records: every --map key applies to the format and names a column
    that exists, the format's columns exist, and (pairwise) the label map matches some labels.

    A column absent from some rows only is a row-level problem (`missing_column`)."""
    columns = set().union(*(set(r) for r in records))
    listed = ", ".join(f"`{c}`" for c in sorted(columns))
    check_mapped_columns(records, mapping)
    for key, column in mapping.columns.items():
        if key not in FORMAT_KEYS[fmt]:
            raise SourceError(
                f"bad --map {key}={column}: format {fmt} has no `{key}`",
                hint=f"format {fmt} maps {', '.join(FORMAT_KEYS[fmt])}",
            )
    missing = [c for c in required_columns(fmt, mapping) if c not in columns]
    if missing:
        keys = [k for k in REQUIRED_KEYS[fmt] if mapping.col(k) in missing]
        raise SourceError(
            f"format {fmt} needs column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(f'`{c}`' for c in missing)}, which the source lacks",
            hint=f"columns: {listed}; map others with " + " ".join(f"--map {k}=COLUMN" for k in keys),
        )
    if fmt == "pairwise":
        labels = mapping.labels or DEFAULT_LABELS
        seen = [r[mapping.col("label")] for r in records if r.get(mapping.col("label")) is not None]
        if seen and all(lookup_label(labels, v) is None for v in seen):
            values = sorted({label_text(v) for v in seen})
            shown = ", ".join(f"`{v}`" for v in values[:6]) + (", …" if len(values) > 6 else "")
            raise SourceError(
                f"no label in the first {len(records)} rows is in the label map (labels seen: {shown})",
                hint="map each label value with --label-map VALUE=a|b|tie, e.g. --label-map 1=a --label-map 2=b",
            )


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


def json_messages(value: Any) -> Any:
    """Messages saved as JSON text (a CSV cell holding ``[{"role": ..., "content": ...}]``), decoded;
    any other value (free text that merely starts with a brace, too) is returned as it is."""
    if isinstance(value, str) and value.lstrip().startswith(("[{", "{")):
        try:
            decoded = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
        items = [decoded] if isinstance(decoded, dict) else decoded
        if (
            isinstance(items, list)
            and items
            and all(isinstance(m, dict) and ("role" in m or "from" in m) for m in items)
        ):
            return decoded
    return value


def _messages(value: Any, column: str) -> list[dict[str, str]]:
    if value is None:
        raise RowProblem("missing_value", f"`{column}` is null")
    value = json_messages(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowProblem("wrong_type", f"`{column}` is {type(value).__name__}, not a message list")
    return [_message(m) for m in value]


def _prompt_context(value: Any, column: str) -> list[dict[str, str]]:
    """A prompt given as text (possibly an embedded Human/Assistant dialogue) or as messages."""
    if value is None:
        raise RowProblem("missing_value", f"the prompt (`{column}`) is null")
    value = json_messages(value)
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
    if raw_label is None:
        raise RowProblem("missing_value", f"the label (`{label_col}`) is null")
    label = lookup_label(mapping.labels or DEFAULT_LABELS, raw_label)
    if label is None:
        raise RowProblem("label_not_mapped", f"label `{label_text(raw_label)}` is not in the label map")
    if label == "tie":
        raise RowProblem("tie", "the label says the two responses tie")
    a_raw = _text(record, mapping.col("a"), "response a")
    b_raw = _text(record, mapping.col("b"), "response b")
    prompt_col = mapping.col("prompt")
    if "prompt" in mapping.columns and prompt_col not in record:
        raise RowProblem("missing_column", f"no `{prompt_col}` column in this row")
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
