"""Adapt every raw row of a source: detect the format on the first records, then make each row's pairs.

A row makes one pair (transcript, prompt-response, messages, pairwise), several or none (several
annotators with ``--label-agg each``, rated lists), or waits for its counterpart (unpaired rows, paired
by prompt once every row is read). Rows that make no pair are quarantined with a reason. The work on each
row runs in worker processes for large sources (seal.ingest.row_work); the result does not depend on it.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from seal.errors import SourceError
from seal.ingest.builder import Builder
from seal.ingest.detect import check_columns, check_mapped_columns, detect_format, resolve_columns, used_columns
from seal.ingest.mapping import CHECK_UNUSED, Canonical, ColumnMap
from seal.ingest.rated import DEFAULT_PAIRING
from seal.ingest.readers import RawRow, decode_row
from seal.ingest.row_work import RowContext, RowPipeline, apply_actions, pair_action, record_adapter, row_actions
from seal.ingest.unpaired import Keyed, pair_by_prompt

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


def _head(rows: Iterable[RawRow], shown: str) -> tuple[list[RawRow], list[dict[str, Any]], Iterable[RawRow]]:
    """The first rows, up to DETECT_ROWS decodable records, and the rest of the rows."""
    rest = iter(rows)
    head: list[RawRow] = []
    records: list[dict[str, Any]] = []
    for row in rest:
        row = decode_row(row)
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
    """Adapt every raw row; the format is detected (and --map checked) on the first decodable records. Rows
    may come with their JSON not decoded yet (`Source.rows(defer_json=True)`): it is decoded where the row is
    adapted, in a worker process for most rows of a large source.

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
    builder = Builder(dataset, source, fmt, run_id)
    key_column = mapping.columns.get("key")
    used = frozenset(used_columns(fmt, mapping) | {key_column})
    ctx = RowContext(dataset, source, run_id, fmt, mapping, key_column, used, fmt in CHECK_UNUSED)
    unused: Counter[str] = Counter()
    waiting: list[Keyed] = []
    read = 0
    rows_in_order = itertools.chain(head, rest)
    if fmt == "unpaired":  # rows wait for their counterparts: adapted one by one, in this process
        adapt = record_adapter(fmt, mapping)
        for row in rows_in_order:
            read += 1
            row = decode_row(row)
            apply_actions(builder, row, row_actions(row, ctx, adapt), unused, waiting)
    else:
        with RowPipeline(ctx) as pipeline:
            for rows_chunk, chunk in pipeline.run(rows_in_order):
                read += len(rows_chunk)
                builder.merge(rows_chunk, chunk)
                unused.update(chunk.unused)
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
    apply_actions(builder, row, [pair_action(builder.dataset, key, canonical, problem_key, index)], None, [])
