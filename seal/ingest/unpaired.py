"""Unpaired data (KTO): one completion per row with a true/false label (desirable or not).

Prompt and completion are text, or (TRL's conversational form) message lists whose completion ends in
the assistant's message.

Such rows are not preference pairs, so ingest refuses them unless ``--pairs by-prompt``: then every
desirable completion is paired (as chosen) with every undesirable completion of the same prompt (the
same context, system message included). A row whose prompt has no completion of the other kind is
quarantined as ``no_counterpart``. A pair's key is ``<desirable row key>+<undesirable row key>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from seal.errors import SourceError
from seal.ingest.mapping import Canonical, ColumnMap, RowProblem, label_text
from seal.ingest.texts import (
    field_text,
    messages,
    prompt_context,
    raw_text,
    response_text,
    split_messages,
    system_context,
)


@dataclass(frozen=True)
class Completion:
    """One unpaired row: the context, the completion (clean and raw) and whether it is desirable."""

    context: list[dict[str, str]]
    text: str
    raw: str
    desirable: bool


@dataclass(frozen=True)
class Keyed:
    """An adapted unpaired row with its key, its position in the source and the raw row it came from."""

    key: str
    index: int
    completion: Completion
    row: Any = None


def desirable(value: Any) -> bool | None:
    """A KTO label as a bool: true/false (also as text); anything else is None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def is_unpaired(records: Sequence[Mapping[str, Any]], mapping: ColumnMap) -> bool:
    """True when the first records are KTO-style: a completion column and true/false labels."""
    completion, label = mapping.col("completion"), mapping.col("label")
    labels = [r[label] for r in records if r.get(label) is not None]
    has_completion = any(completion in r for r in records)
    return has_completion and bool(labels) and all(desirable(v) is not None for v in labels)


def check_unpaired(mapping: ColumnMap) -> None:
    """Unpaired rows become pairs only with --pairs by-prompt; otherwise say what the data is."""
    if mapping.pairs == "by-prompt":
        return
    what = (
        f"unpaired data (KTO-style: one `{mapping.col('completion')}` per row with a true/false "
        f"`{mapping.col('label')}`), not preference pairs"
    )
    if mapping.pairs is not None:
        what += f"; --pairs {mapping.pairs} applies to rated lists"
    raise SourceError(
        what, hint="pass --pairs by-prompt to pair desirable with undesirable completions of the same prompt"
    )


def adapt_unpaired(record: Mapping[str, Any], mapping: ColumnMap) -> Completion:
    if not mapping.has(record, "prompt"):
        raise RowProblem("missing_column", f"no `{mapping.col('prompt')}` column in this row")
    context = system_context(record, mapping) + prompt_context(mapping.value(record, "prompt"), mapping.shown("prompt"))
    column = mapping.col("completion")
    value = record.get(column)
    if isinstance(value, list | dict):  # conversational (TRL): the completion is the final assistant message
        before, text = split_messages(messages(value, column), column)
        context, raw = context + before, raw_text(value)
    else:
        raw = field_text(record, column, "the completion")
        text = response_text(raw)
    label_col = mapping.col("label")
    if label_col not in record:
        raise RowProblem("missing_column", f"no `{label_col}` column in this row")
    if record[label_col] is None:
        raise RowProblem("missing_value", f"the label (`{label_col}`) is null")
    good = desirable(record[label_col])
    if good is None:
        raise RowProblem("wrong_type", f"the label `{label_text(record[label_col])}` is not true or false")
    return Completion(context, text, raw, good)


def pair_by_prompt(items: Sequence[Keyed]) -> tuple[list[tuple[Keyed, Keyed, Canonical]], list[tuple[Keyed, str]]]:
    """Pairs (desirable row, undesirable row, pair) of the completions of each prompt, in source order;
    and the rows left without a counterpart, with the reason's detail."""
    groups: dict[str, tuple[list[Keyed], list[Keyed]]] = {}
    for item in items:
        prompt = json.dumps(item.completion.context, ensure_ascii=False, sort_keys=True)
        good, bad = groups.setdefault(prompt, ([], []))
        (good if item.completion.desirable else bad).append(item)
    pairs: list[tuple[Keyed, Keyed, Canonical]] = []
    alone: list[tuple[Keyed, str]] = []
    for good, bad in groups.values():
        if not good or not bad:
            other = "undesirable" if good else "desirable"
            alone += [(item, f"no {other} completion of the same prompt to pair with") for item in good + bad]
            continue
        for g in good:
            for b in bad:
                c, r = g.completion, b.completion
                pair = Canonical(c.context, c.text, r.text, c.raw, r.raw)
                pairs.append((g, b, pair))
    pairs.sort(key=lambda p: (min(p[0].index, p[1].index), p[0].index, p[1].index))
    return pairs, alone
