"""Adapt every raw row of a source: detect the format on the first records, then make each row's pairs.

A row makes one pair (transcript, prompt-response, messages, pairwise), several or none (several
annotators with ``--label-agg each``, rated lists), or waits for its counterpart (unpaired rows, paired
by prompt once every row is read). Rows that make no pair are quarantined with a reason.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from seal.errors import SourceError
from seal.ingest.annotators import adapt_votes
from seal.ingest.builder import Builder, text_problem
from seal.ingest.detect import check_columns, check_mapped_columns, detect_format, resolve_columns, used_columns
from seal.ingest.formats import ADAPTERS
from seal.ingest.mapping import CHECK_UNUSED, Canonical, ColumnMap, RowProblem
from seal.ingest.rated import DEFAULT_PAIRING, adapt_rated
from seal.ingest.readers import RawRow
from seal.ingest.unpaired import Keyed, adapt_unpaired, pair_by_prompt

DETECT_ROWS = 100  # records read to detect the format and check the columns


@dataclass
class Adapted:
    """What adapting a source gave: the builder with pairs and quarantined rows, the rows read, the
    format and why, and the non-empty source columns that no mapping reads (column -> rows)."""

    builder: Builder
    read: int
    fmt: str
    reason: str
    unused: dict[str, int] = field(default_factory=dict)


def _producer(fmt: str, mapping: ColumnMap) -> Callable[[Mapping[str, Any]], Any] | None:
    """The adapter of formats that make any number of pairs per row (None: one pair per row)."""
    if fmt == "pairwise" and mapping.label_from:
        return lambda record: adapt_votes(record, mapping)
    if fmt == "rated":
        return lambda record: adapt_rated(record, mapping)
    return None


def _non_empty(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | dict):
        return bool(value)
    return True


def _head(rows: Iterable[RawRow], shown: str) -> tuple[list[RawRow], list[dict[str, Any]], Iterable[RawRow]]:
    """The first rows, up to DETECT_ROWS decodable records, and the rest of the rows."""
    rest = iter(rows)
    head: list[RawRow] = []
    records: list[dict[str, Any]] = []
    for row in rest:
        head.append(row)
        if row.record is not None:
            records.append(row.record)
            if len(records) >= DETECT_ROWS:
                break
    if not records:
        if not head:
            raise SourceError(f"{shown}: no rows to ingest", hint="the source is empty")
        first = head[0]
        raise SourceError(
            f"{shown}: none of the {len(head)} rows could be decoded "
            f"(first problem at {first.key}: {first.problem[0]}, {first.problem[1]})",  # type: ignore[index]
            hint="check that the file type matches its content",
        )
    return head, records, rest


def adapt_all(
    rows: Iterable[RawRow],
    dataset: str,
    source: str,
    fmt: str,
    mapping: ColumnMap,
    run_id: str,
    shown: str | None = None,
) -> Adapted:
    """Adapt every raw row; the format is detected (and --map checked) on the first decodable records.

    `source` is recorded with quarantined rows; `shown` (the source as the user wrote it) names it in errors.
    """
    shown = shown or source
    head, records, rest = _head(rows, shown)
    reason = "given with --format"
    try:
        check_mapped_columns(records, mapping)
        if fmt == "auto":
            fmt, reason = detect_format(records, mapping)
        mapping, note = resolve_columns(records, fmt, mapping)
        check_columns(records, fmt, mapping)
    except SourceError as err:
        raise SourceError(f"{shown}: {err.message}", hint=err.hint) from None
    if note:
        reason += f"; {note}"
    if fmt == "rated":
        reason += f"; pairs {mapping.pairs or DEFAULT_PAIRING}"
    adapter, produce = ADAPTERS.get(fmt), _producer(fmt, mapping)
    builder = Builder(dataset, source, fmt, run_id)
    key_column = mapping.columns.get("key")
    used = used_columns(fmt, mapping) | {key_column}
    unused: Counter[str] | None = Counter() if fmt in CHECK_UNUSED else None
    waiting: list[Keyed] = []
    read = 0
    for row in itertools.chain(head, rest):
        read += 1
        record = row.record
        if record is None:
            builder.add_problem(row, *row.problem)  # type: ignore[misc]
            continue
        if unused is not None:
            unused.update(name for name, value in record.items() if name not in used and _non_empty(value))
        try:
            if fmt == "unpaired":
                made: Any = adapt_unpaired(record, mapping)
            elif produce is not None:
                made = produce(record)
            else:
                made = adapter(record, mapping)  # type: ignore[misc]
        except RowProblem as problem:
            builder.add_problem(row, problem.reason, problem.detail)
            continue
        key = row.key
        if key_column is not None:
            value = record.get(key_column)
            if value is None or (isinstance(value, str) and not value.strip()):
                builder.add_problem(row, "missing_value", f"the key column `{key_column}` is empty")
                continue
            key = f"{key_column}={value}"
        if fmt == "unpaired":
            waiting.append(Keyed(key, row.index, made, row))
        elif isinstance(made, Canonical):
            _add(builder, row, key, made, row.key)
        else:
            builder.skipped.update(made.skipped)
            for suffix, canonical in made.pairs:
                _add(builder, row, key + suffix, canonical, row.key + suffix)
    if fmt == "unpaired":
        pairs, alone = pair_by_prompt(waiting)
        for item, detail in alone:
            builder.add_problem(item.row, "no_counterpart", detail, key=item.key)
        for good, bad, canonical in pairs:
            key = f"{good.key}+{bad.key}"
            _add(builder, good.row, key, canonical, key, index=min(good.index, bad.index))
    return Adapted(builder, read, fmt, reason, dict(sorted(unused.items())) if unused else {})


def _add(
    builder: Builder, row: RawRow, key: str, canonical: Canonical, problem_key: str, index: int | None = None
) -> None:
    """Add a pair, or quarantine it under `problem_key` when its texts cannot be stored."""
    problem = text_problem(canonical)
    if problem is not None:
        builder.add_problem(row, *problem, key=problem_key)
        return
    builder.add_pair(row, key, canonical, index=index)
