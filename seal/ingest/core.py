"""Ingest: read a source, adapt each record to canonical pairs, and add new pairs to the store.

Everything is read and parsed before anything is written, so a source that fails as a whole (a
truncated gzip, an unknown format, a bad --map) leaves the store exactly as it was.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal import schema
from seal.errors import SourceError
from seal.ingest.adapt import adapt_all
from seal.ingest.builder import AGREEMENT, content_hash, pair_id_for
from seal.ingest.mapping import FORMATS, ColumnMap, build_column_map
from seal.ingest.readers import MAX_ROW_BYTES, RawRow, Source, open_source, suffix_of
from seal.ingest.update import ON_CHANGE, apply_update, without_present
from seal.progress import progress_bar
from seal.recipe import Recipe
from seal.store import RunRecord, Store, new_run_id, now_utc

__all__ = ["IngestResult", "content_hash", "ingest", "ingest_recipe", "pair_id_for"]

UNUSED_SHOWN = 8  # unused columns named in the warning line (all of them are in the JSON)


@dataclass
class IngestResult:
    """What one ingest did; `to_json()` is the `seal ingest --json` output."""

    dataset: str
    format: str
    format_reason: str
    read: int
    ingested: int
    already_present: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    flags: dict[str, int]
    run_id: str | None
    pairs_version: int | None
    seconds: float
    recipe: dict[str, Any] = field(default_factory=dict)
    skipped_pairs: dict[str, int] = field(default_factory=dict)
    unused_columns: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    update: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def default_dataset_name(source: Source, split: str | None, subset: str | None, data_dir: str | None) -> str:
    """A readable dataset name: the file stem (with its folder when the stem is a split name) or the Hub id."""
    if source.kind == "datasets":
        parts = [source.location] + [p for p in (subset, data_dir) if p]
        return "/".join(parts) + (f":{split}" if split else "")
    if source.kind == "folder":
        return Path(source.location).resolve().name
    path = source.files[0]
    suffix, gz = suffix_of(path)
    stem = path.name[: len(path.name) - len(suffix) - (3 if gz else 0)] or path.name
    if stem in {"train", "test", "validation", "valid", "dev", "eval", "data", "pairs"}:
        return f"{path.resolve().parent.name}/{stem}"
    return stem


def _limited(rows: Iterator[RawRow], limit: int | None) -> Iterator[RawRow]:
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            return
        yield row


def _sampled(rows: Iterable[RawRow], n: int, seed: int) -> tuple[list[RawRow], int]:
    """A seeded sample of n rows that depends only on the row keys, not on reading order; and how
    many rows there were to sample from."""
    heap: list[tuple[int, int, RawRow]] = []
    total = 0
    for row in rows:
        total += 1
        rank = int.from_bytes(hashlib.blake2b(f"{seed}\x1f{row.key}".encode(), digest_size=8).digest(), "big")
        item = (-rank, row.index, row)
        if len(heap) < n:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)
    return sorted((item[2] for item in heap), key=lambda r: r.index), total


def ingest_recipe(
    source: str | os.PathLike[str],
    dataset: str | None = None,
    loader: str = "auto",
    fmt: str = "auto",
    column_map: Sequence[str] = (),
    label_map: Sequence[str] = (),
    split: str | None = None,
    subset: str | None = None,
    data_dir: str | None = None,
    revision: str | None = None,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    label_from: str | Sequence[str] | None = None,
    label_agg: str = "majority",
    pairs: str | None = None,
    max_row_bytes: int = MAX_ROW_BYTES,
) -> Recipe:
    """The recipe an ingest with these options would record (validates the options)."""
    recipe, _, _ = _prepare(
        source,
        dataset,
        loader,
        fmt,
        build_column_map(column_map, label_map, label_from, label_agg, pairs, seed),
        {"split": split, "subset": subset, "data_dir": data_dir, "revision": revision},
        limit,
        sample,
        max_row_bytes,
    )
    return recipe


def _prepare(
    source: str | os.PathLike[str],
    dataset: str | None,
    loader: str,
    fmt: str,
    mapping: ColumnMap,
    hub: dict[str, str | None],
    limit: int | None,
    sample: int | None,
    max_row_bytes: int,
) -> tuple[Recipe, Source, ColumnMap]:
    if fmt != "auto" and fmt not in FORMATS:
        raise SourceError(f"unknown format `{fmt}`", hint=f"use auto or one of {', '.join(FORMATS)}")
    if loader not in ("auto", "files", "datasets"):
        raise SourceError(f"unknown loader `{loader}`", hint="use auto, files or datasets")
    for value, flag in ((limit, "--limit"), (sample, "--sample"), (max_row_bytes, "--max-row-bytes")):
        if value is not None and value <= 0:
            raise SourceError(f"{flag} must be a positive number")
    if mapping.labels and fmt not in ("auto", "pairwise"):
        raise SourceError("--label-map only applies to --format pairwise")
    source = os.fspath(source)
    src = open_source(source, loader, max_row_bytes=max_row_bytes, **hub)
    hub_only = [f"--{k.replace('_', '-')}" for k, value in hub.items() if value is not None]
    if src.kind != "datasets" and hub_only:
        raise SourceError(
            f"{', '.join(hub_only)} only apply to the datasets loader, and {source} is read as local files",
            hint="pass --loader datasets to load a local dataset folder through datasets.load_dataset",
        )
    local = Path(source).expanduser()
    location = str(local.resolve()) if src.kind != "datasets" or local.exists() else source
    given = {**mapping.columns, **{k: t.source for k, t in mapping.templates.items()}}
    params: dict[str, Any] = {
        "source": location,
        "loader": src.kind,
        "format": fmt,
        "map": dict(sorted(given.items())),
        "label_map": dict(sorted(mapping.labels.items())),
        **hub,
        "limit": limit,
        "sample": sample,
        "seed": mapping.seed if (sample or mapping.pairs == "best-random") else None,
    }
    # Options added later are recorded only when used, so earlier ingests keep their fingerprints.
    if mapping.label_from:
        params["label_from"] = list(mapping.label_from)
        params["label_agg"] = mapping.label_agg
    if mapping.pairs is not None:
        params["pairs"] = mapping.pairs
    if max_row_bytes != MAX_ROW_BYTES:
        params["max_row_bytes"] = max_row_bytes
    recipe = Recipe(
        "ingest", dataset or default_dataset_name(src, hub["split"], hub["subset"], hub["data_dir"]), params
    )
    return recipe, src, mapping


def ingest(
    store: Store,
    source: str | os.PathLike[str],
    *,
    name: str | None = None,
    fmt: str = "auto",
    split: str | None = None,
    subset: str | None = None,
    data_dir: str | None = None,
    revision: str | None = None,
    loader: str = "auto",
    column_map: Sequence[str] = (),
    label_map: Sequence[str] = (),
    label_from: str | Sequence[str] | None = None,
    label_agg: str = "majority",
    pairs: str | None = None,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    max_row_bytes: int = MAX_ROW_BYTES,
    on_change: str = "refuse",
    prune: bool = False,
    show_progress: bool = False,
) -> IngestResult:
    """Ingest a preference dataset into the store; see `seal ingest --help` for the options."""
    started, t0 = now_utc(), time.perf_counter()
    source = os.fspath(source)
    if on_change not in ON_CHANGE:
        raise SourceError(f"unknown --on-change `{on_change}`", hint=f"use {' or '.join(ON_CHANGE)}")
    if prune and on_change != "update":
        raise SourceError("--prune only applies with --on-change update", hint="add --on-change update")
    mapping = build_column_map(column_map, label_map, label_from, label_agg, pairs, seed)
    hub = {"split": split, "subset": subset, "data_dir": data_dir, "revision": revision}
    recipe, src, mapping = _prepare(source, name, loader, fmt, mapping, hub, limit, sample, max_row_bytes)
    if prune and (limit or sample):
        raise SourceError("--prune needs the whole source", hint="drop --limit / --sample, or drop --prune")
    dataset = recipe.name
    run_id = new_run_id()
    warnings: list[str] = []

    raw_rows: Iterable[RawRow] = _limited(src.rows(defer_json=True), limit)  # decoded where adapted
    with progress_bar(show_progress, desc=f"Reading {dataset}", unit="rows") as bar, _datasets_bars(show_progress):
        raw_rows = bar.wrap(raw_rows)
        if sample is not None:
            raw_rows, total = _sampled(raw_rows, sample, seed)
            if total <= sample:
                warnings.append(f"sampled all {total:,} rows (--sample {sample:,} is not fewer than the source holds)")
        adapted = adapt_all(raw_rows, dataset, recipe.params["source"], fmt, mapping, run_id, shown=source)
    builder = adapted.builder
    pairs_table = builder.pairs()
    unused = [{"column": c, "rows": n} for c, n in sorted(adapted.unused.items(), key=lambda kv: (-kv[1], kv[0]))]
    if unused:
        warnings.append(_unused_warning(unused))
    quarantine = _new_quarantine(store, builder.quarantine)
    extra = [AGREEMENT] if AGREEMENT.name in pairs_table.column_names else []

    update = None
    if on_change == "update":
        if extra:
            store.ensure_columns(extra)
        report, version = apply_update(
            store, dataset, recipe.params["source"], pairs_table, run_id, not (limit or sample), prune
        )
        update = report.to_json()
        if report.note:
            warnings.append(report.note)
        written, present = report.new, pairs_table.num_rows - report.new
    else:
        new_pairs = without_present(store, dataset, pairs_table, shown=source)
        if extra and new_pairs.num_rows:
            store.ensure_columns(extra)
        version = store.add_pairs(new_pairs) if new_pairs.num_rows else None
        written, present = new_pairs.num_rows, pairs_table.num_rows - new_pairs.num_rows
    if quarantine:
        store.add_quarantine(pa.Table.from_pylist(quarantine, schema=schema.QUARANTINE))
    reasons = Counter(q["reason"] for q in builder.quarantine)
    result = IngestResult(
        dataset=dataset,
        format=adapted.fmt,
        format_reason=adapted.reason,
        read=adapted.read,
        ingested=written,
        already_present=present,
        quarantined=len(builder.quarantine),
        quarantine_reasons=dict(sorted(reasons.items())),
        flags=_flag_counts(pairs_table),
        run_id=run_id if (version is not None or quarantine) else None,
        pairs_version=version,
        seconds=round(time.perf_counter() - t0, 3),
        recipe=recipe.to_dict(),
        skipped_pairs=dict(sorted(builder.skipped.items())),
        unused_columns=unused,
        warnings=warnings,
        update=update,
    )
    if result.run_id is not None:
        _record(store, result, recipe, src, on_change, started)
    return result


def _flag_counts(pairs: pa.Table) -> dict[str, int]:
    """Pairs with each ingest flag set."""
    flags = pairs.column("flags").combine_chunks() if pairs.num_rows else None
    return {
        flag: (int(pc.sum(flags.field(flag)).as_py() or 0) if flags is not None else 0) for flag in schema.FLAG_NAMES
    }


def _unused_warning(unused: list[dict[str, Any]]) -> str:
    named = ", ".join(f"`{u['column']}` ({u['rows']:,} rows)" for u in unused[:UNUSED_SHOWN])
    more = f" and {len(unused) - UNUSED_SHOWN} more" if len(unused) > UNUSED_SHOWN else ""
    return (
        f"{len(unused)} non-empty source column{'s are' if len(unused) > 1 else ' is'} used by no mapping: "
        f"{named}{more} (map them with --map, e.g. --map key=COLUMN or a prompt template "
        "--map 'prompt={instruction}\\n\\n{input}')"
    )


def _record(store: Store, result: IngestResult, recipe: Recipe, src: Source, on_change: str, started: Any) -> None:
    """Record the ingest in `runs` (what an update did is provenance, not recipe)."""
    provenance: dict[str, Any] = {"files": [str(p) for p in src.files], "counts": _counts(result)}
    if result.update is not None:
        provenance["on_change"] = on_change
        provenance["update"] = result.update
    store.record_run(
        RunRecord.finished(
            "ingest",
            result.dataset,
            recipe,
            provenance,
            rows_written=result.ingested,
            pairs_version=result.pairs_version,
            started_at=started,
            run_id=result.run_id,
        )
    )


@contextmanager
def _datasets_bars(enabled: bool) -> Iterator[None]:
    """Silence the `datasets` library's own progress bars unless progress is wanted."""
    if enabled:
        yield
        return
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _counts(result: IngestResult) -> dict[str, Any]:
    keys = ("read", "ingested", "already_present", "quarantined", "quarantine_reasons", "format")
    return {k: getattr(result, k) for k in keys}


def _new_quarantine(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Quarantine rows not already recorded for the same (dataset, key, reason)."""
    if not rows:
        return rows
    dataset = rows[0]["dataset"]
    known = store.quarantine(pc.field("dataset") == dataset, columns=["source_key", "reason"])
    seen = set(zip(known.column("source_key").to_pylist(), known.column("reason").to_pylist(), strict=True))
    return [r for r in rows if (r["source_key"], r["reason"]) not in seen]
