"""What ``--map``, ``--label-map``, ``--label-from`` and ``--pairs`` say, parsed and checked, and the types
every adapter shares: a canonical pair, what one record made, and a row's problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seal.errors import SourceError
from seal.ingest.template import Template, TemplateValueError, looks_like_template, parse_template

FORMATS = ("transcript", "prompt-response", "messages", "pairwise", "rated", "unpaired")
MAP_KEYS = (
    "prompt",
    "chosen",
    "rejected",
    "a",
    "b",
    "label",
    "system",
    "key",
    "completions",
    "response",
    "rating",
    "completion",
)
TEMPLATE_KEYS = ("prompt", "system")  # keys whose --map may be a {column} template
LABELS = ("a", "b", "tie")
DEFAULT_LABELS = {"a": "a", "b": "b", "tie": "tie"}
# Pairwise sources whose two responses are numbered (PKU-SafeRLHF: response_0, response_1 and
# better_response_id / safer_response_id holding 0 or 1): the columns and what each id means.
NUMBERED_RESPONSES = (("response_0", "response_1", {"0": "a", "1": "b"}),)
LABEL_AGGREGATIONS = ("majority", "unanimous", "each")
PAIRINGS = ("best-worst", "best-random", "all", "by-prompt")
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
    agreement: tuple[float, int] | None = None  # (share of annotators agreeing, annotators) for voted labels


@dataclass
class Made:
    """What one record gave: pairs keyed by a suffix of the row's key ("" = the row's own key), and the
    candidate pairs it did not give, by reason (e.g. two responses with equal ratings)."""

    pairs: list[tuple[str, Canonical]]
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ColumnMap:
    """Resolved column names for each canonical key, the label map for pairwise data, ``{column}``
    templates (prompt, system), several label columns (``--label-from``) and how rated or unpaired
    data becomes pairs (``--pairs``, seeded by ``seed``)."""

    columns: Mapping[str, str]
    labels: Mapping[str, str]
    templates: Mapping[str, Template] = field(default_factory=dict)
    label_from: tuple[str, ...] = ()
    label_agg: str = "majority"
    pairs: str | None = None
    seed: int = 0

    def col(self, key: str) -> str:
        return self.columns.get(key, DEFAULT_COLUMNS.get(key, key))

    def mapped(self, key: str) -> bool:
        """True when --map names a column or a template for this key."""
        return key in self.columns or key in self.templates

    def source_columns(self, key: str) -> tuple[str, ...]:
        """The columns a key reads: a template's fields, else its one column."""
        template = self.templates.get(key)
        return template.columns if template is not None else (self.col(key),)

    def has(self, record: Mapping[str, Any], key: str) -> bool:
        """True when the record can give a value for the key (a template always can: its fields are optional)."""
        return key in self.templates or self.col(key) in record

    def value(self, record: Mapping[str, Any], key: str) -> Any:
        """The key's value in a record: a rendered template, or its column's value (None when absent)."""
        template = self.templates.get(key)
        if template is None:
            return record.get(self.col(key))
        try:
            return template.render(record)
        except TemplateValueError as err:
            raise RowProblem("wrong_type", f"the {key} template's field {err}") from None

    def shown(self, key: str) -> str:
        """How errors name the key's source: `column` or the template as written."""
        template = self.templates.get(key)
        return f"{key} template" if template is not None else self.col(key)


def build_column_map(
    column_map: Sequence[str],
    label_map: Sequence[str],
    label_from: str | Sequence[str] | None = None,
    label_agg: str = "majority",
    pairs: str | None = None,
    seed: int = 0,
) -> ColumnMap:
    """A ColumnMap from the options as given on the command line (checked, one-line errors)."""
    columns = parse_map_options(column_map)
    templates: dict[str, Template] = {}
    for key, value in list(columns.items()):
        if looks_like_template(value):
            if key not in TEMPLATE_KEYS:
                raise SourceError(
                    f"bad --map {key}={value}: only {' and '.join(TEMPLATE_KEYS)} take a {{column}} template",
                    hint=f"map {key} to one column, e.g. --map {key}=COLUMN",
                )
            templates[key] = parse_template(key, value)
            del columns[key]
    sources = parse_label_from(label_from)
    if label_agg not in LABEL_AGGREGATIONS:
        raise SourceError(f"unknown --label-agg `{label_agg}`", hint=f"use {', '.join(LABEL_AGGREGATIONS)}")
    if sources and "label" in columns:
        raise SourceError("--label-from and --map label=... both name the label", hint="keep one of them")
    if pairs is not None and pairs not in PAIRINGS:
        raise SourceError(f"unknown --pairs `{pairs}`", hint=f"use {', '.join(PAIRINGS)}")
    return ColumnMap(columns, parse_label_map(label_map), templates, sources, label_agg, pairs, seed)


def parse_label_from(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``COL1,COL2,COL3`` (or a list of names) as a tuple of distinct column names."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [c for v in value for c in str(v).split(",")]
    names = tuple(c.strip() for c in items if c.strip())
    if not names:
        raise SourceError("--label-from names no column", hint="e.g. --label-from annotator1,annotator2,annotator3")
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise SourceError(f"--label-from names {', '.join(repeated)} more than once", hint="name each column once")
    return names


# The --map keys each format reads (`key` names a column holding a stable row id).
FORMAT_KEYS = {
    "transcript": ("chosen", "rejected", "key"),
    "prompt-response": ("prompt", "chosen", "rejected", "system", "key"),
    "messages": ("prompt", "chosen", "rejected", "system", "key"),
    "pairwise": ("prompt", "a", "b", "label", "system", "key"),
    "rated": ("prompt", "completions", "response", "rating", "system", "key"),
    "unpaired": ("prompt", "completion", "label", "system", "key"),
}
REQUIRED_KEYS = {
    "transcript": ("chosen", "rejected"),
    "prompt-response": ("prompt", "chosen", "rejected"),
    "messages": ("chosen", "rejected"),
    "pairwise": ("a", "b", "label"),
    "rated": (),  # checked by seal.ingest.rated (a `completions` column or its flattened fields)
    "unpaired": ("prompt", "completion", "label"),
}
# Formats whose source columns should all be used: a non-empty column no mapping reads is reported.
CHECK_UNUSED = ("prompt-response", "pairwise")
ITEM_KEYS = ("response", "rating")  # --map keys naming a field of each rated response, not a column


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


def label_values(value: Any) -> list[Any]:
    """The label values in one cell: a scalar, or the votes of a list / {annotator: vote} object."""
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    if isinstance(value, dict):
        return [v for v in value.values() if v is not None]
    return [value]


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
