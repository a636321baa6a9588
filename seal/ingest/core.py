"""Ingest: read a source, adapt each record to a canonical pair, and add new pairs to the store.

Everything is read and parsed before anything is written, so a source that fails as a whole (a
truncated gzip, an unknown format, a bad --map) leaves the store exactly as it was.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
import re
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
from seal.ingest.formats import (
    ADAPTERS,
    FORMATS,
    ColumnMap,
    RowProblem,
    check_columns,
    check_mapped_columns,
    detect_format,
    parse_label_map,
    parse_map_options,
)
from seal.ingest.readers import SNIPPET_CHARS, RawRow, Source, open_source, suffix_of
from seal.progress import progress_bar
from seal.recipe import Recipe
from seal.store import RunRecord, Store, new_run_id, now_utc

CHUNK_ROWS = 20_000
DETECT_ROWS = 100  # records read to detect the format and check the columns


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


def pair_id_for(dataset: str, key: str) -> str:
    """Stable id of a pair: the dataset name and the row's key in its source."""
    return hashlib.sha256(f"{dataset}\x1f{key}".encode("utf-8", "surrogatepass")).hexdigest()[:24]


def content_hash(context: list[dict[str, str]], chosen: str, rejected: str) -> str:
    payload = json.dumps([context, chosen, rejected], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _limited(rows: Iterator[RawRow], limit: int | None) -> Iterator[RawRow]:
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            return
        yield row


def _sampled(rows: Iterable[RawRow], n: int, seed: int) -> list[RawRow]:
    """A seeded sample of n rows that depends only on the row keys, not on reading order."""
    heap: list[tuple[int, int, RawRow]] = []
    for row in rows:
        rank = int.from_bytes(hashlib.blake2b(f"{seed}\x1f{row.key}".encode(), digest_size=8).digest(), "big")
        item = (-rank, row.index, row)
        if len(heap) < n:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)
    return sorted((item[2] for item in heap), key=lambda r: r.index)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text_problem(canonical: Any) -> tuple[str, str] | None:
    """A reason to quarantine a pair whose texts cannot be stored or used as text."""
    texts = [canonical.chosen, canonical.rejected, canonical.chosen_raw, canonical.rejected_raw]
    texts += [m["content"] for m in canonical.context]
    if any("\x00" in t for t in texts):
        return "nul_byte", "the text holds NUL (\\x00) characters"
    if any(_SURROGATE.search(t) for t in texts):
        return "invalid_unicode", "the text holds a lone surrogate (e.g. \\ud800), which is not valid Unicode"
    return None


def _safe(text: str) -> str:
    """Text that can be stored: lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


class _Builder:
    """Collects canonical pairs and quarantined rows into Arrow chunks."""

    def __init__(self, dataset: str, source: str, fmt: str, run_id: str):
        self.dataset, self.source, self.fmt, self.run_id = dataset, source, fmt, run_id
        self.chunks: list[pa.Table] = []
        self.rows: dict[str, list[Any]] = {name: [] for name in schema.PAIRS.names}
        self.quarantine: list[dict[str, Any]] = []
        self.seen_hashes: set[str] = set()
        self.seen_ids: set[str] = set()

    def add_pair(self, row: RawRow, key: str, canonical: Any) -> None:
        pair_id = pair_id_for(self.dataset, key)
        if pair_id in self.seen_ids:
            self.add_problem(row, "duplicate_key", f"the key `{key}` appears more than once in the source")
            return
        self.seen_ids.add(pair_id)
        digest = content_hash(canonical.context, canonical.chosen, canonical.rejected)
        duplicate = digest in self.seen_hashes
        self.seen_hashes.add(digest)
        values = {
            "pair_id": pair_id,
            "dataset": self.dataset,
            "source": self.source,
            "source_index": row.index,
            "source_key": key,
            "format": self.fmt,
            "context": canonical.context,
            "chosen": canonical.chosen,
            "rejected": canonical.rejected,
            "chosen_raw": canonical.chosen_raw,
            "rejected_raw": canonical.rejected_raw,
            "content_hash": digest,
            "flags": {
                "identical_responses": canonical.chosen == canonical.rejected,
                "context_mismatch": canonical.context_mismatch,
                "duplicate_in_source": duplicate,
                "empty_response": not canonical.chosen or not canonical.rejected,
            },
            "ingest_run": self.run_id,
        }
        for name, value in values.items():
            self.rows[name].append(value)
        if len(self.rows["pair_id"]) >= CHUNK_ROWS:
            self.flush()

    def add_problem(self, row: RawRow, reason: str, detail: str, snippet: str | None = None) -> None:
        if snippet is None:
            snippet = row.snippet or (json.dumps(row.record, ensure_ascii=False, default=str) if row.record else "")
        self.quarantine.append(
            {
                "dataset": self.dataset,
                "source": self.source,
                "source_key": _safe(row.key),
                "reason": reason,
                "detail": _safe(detail),
                "snippet": _safe(snippet[:SNIPPET_CHARS]),
                "run_id": self.run_id,
            }
        )

    def flush(self) -> None:
        if self.rows["pair_id"]:
            self.chunks.append(pa.Table.from_pydict(self.rows, schema=schema.PAIRS))
            self.rows = {name: [] for name in schema.PAIRS.names}

    def pairs(self) -> pa.Table:
        self.flush()
        if not self.chunks:
            return schema.PAIRS.empty_table()
        return pa.concat_tables(self.chunks)


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
) -> Recipe:
    """The recipe an ingest with these options would record (validates the options)."""
    recipe, _, _ = _prepare(
        source, dataset, loader, fmt, column_map, label_map, split, subset, data_dir, revision, limit, sample, seed
    )
    return recipe


def _prepare(
    source: str | os.PathLike[str],
    dataset: str | None,
    loader: str,
    fmt: str,
    column_map: Sequence[str],
    label_map: Sequence[str],
    split: str | None,
    subset: str | None,
    data_dir: str | None,
    revision: str | None,
    limit: int | None,
    sample: int | None,
    seed: int,
) -> tuple[Recipe, Source, ColumnMap]:
    if fmt != "auto" and fmt not in FORMATS:
        raise SourceError(f"unknown format `{fmt}`", hint=f"use auto or one of {', '.join(FORMATS)}")
    if loader not in ("auto", "files", "datasets"):
        raise SourceError(f"unknown loader `{loader}`", hint="use auto, files or datasets")
    for value, flag in ((limit, "--limit"), (sample, "--sample")):
        if value is not None and value <= 0:
            raise SourceError(f"{flag} must be a positive number of rows")
    mapping = ColumnMap(parse_map_options(column_map), parse_label_map(label_map))
    if mapping.labels and fmt not in ("auto", "pairwise"):
        raise SourceError("--label-map only applies to --format pairwise")
    source = os.fspath(source)
    src = open_source(source, loader, split=split, subset=subset, data_dir=data_dir, revision=revision)
    hub_values = {"--split": split, "--subset": subset, "--data-dir": data_dir, "--revision": revision}
    hub_only = [flag for flag, value in hub_values.items() if value is not None]
    if src.kind != "datasets" and hub_only:
        raise SourceError(
            f"{', '.join(hub_only)} only apply to the datasets loader, and {source} is read as local files",
            hint="pass --loader datasets to load a local dataset folder through datasets.load_dataset",
        )
    local = Path(source).expanduser()
    location = str(local.resolve()) if src.kind != "datasets" or local.exists() else source
    recipe = Recipe(
        "ingest",
        dataset or default_dataset_name(src, split, subset, data_dir),
        {
            "source": location,
            "loader": src.kind,
            "format": fmt,
            "map": dict(sorted(mapping.columns.items())),
            "label_map": dict(sorted(mapping.labels.items())),
            "split": split,
            "subset": subset,
            "data_dir": data_dir,
            "revision": revision,
            "limit": limit,
            "sample": sample,
            "seed": seed if sample else None,
        },
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
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> IngestResult:
    """Ingest a preference dataset into the store; see `seal ingest --help` for the options."""
    started, t0 = now_utc(), time.perf_counter()
    source = os.fspath(source)
    recipe, src, mapping = _prepare(
        source, name, loader, fmt, column_map, label_map, split, subset, data_dir, revision, limit, sample, seed
    )
    dataset = recipe.name
    run_id = new_run_id()

    raw_rows: Iterable[RawRow] = _limited(src.rows(), limit)
    with progress_bar(show_progress, desc=f"Reading {dataset}", unit="rows") as bar, _datasets_bars(show_progress):
        raw_rows = bar.wrap(raw_rows)
        if sample is not None:
            raw_rows = _sampled(raw_rows, sample, seed)
        builder, read, chosen_fmt, reason = _adapt_all(
            raw_rows, dataset, recipe.params["source"], fmt, mapping, run_id, shown=source
        )
    pairs = builder.pairs()

    new_pairs = _without_present(store, dataset, pairs, shown=source)
    quarantine = _new_quarantine(store, builder.quarantine)

    version = None
    if new_pairs.num_rows:
        version = store.add_pairs(new_pairs)
    if quarantine:
        store.add_quarantine(pa.Table.from_pylist(quarantine, schema=schema.QUARANTINE))
    reasons = Counter(q["reason"] for q in builder.quarantine)
    flags_table = pairs.column("flags").combine_chunks() if pairs.num_rows else None
    flags = {
        flag: (int(pc.sum(flags_table.field(flag)).as_py() or 0) if flags_table is not None else 0)
        for flag in schema.FLAG_NAMES
    }
    result = IngestResult(
        dataset=dataset,
        format=chosen_fmt,
        format_reason=reason,
        read=read,
        ingested=new_pairs.num_rows,
        already_present=pairs.num_rows - new_pairs.num_rows,
        quarantined=len(builder.quarantine),
        quarantine_reasons=dict(sorted(reasons.items())),
        flags=flags,
        run_id=run_id if (version is not None or quarantine) else None,
        pairs_version=version,
        seconds=round(time.perf_counter() - t0, 3),
        recipe=recipe.to_dict(),
    )
    if result.run_id is not None:
        store.record_run(
            RunRecord(
                run_id=run_id,
                stage="ingest",
                name=dataset,
                fingerprint=recipe.fingerprint(),
                recipe=recipe.to_dict(),
                provenance={"files": [str(p) for p in src.files], "counts": _counts(result)},
                status="done",
                rows_written=new_pairs.num_rows,
                pairs_version=version,
                started_at=started,
                finished_at=now_utc(),
            )
        )
    return result


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


def _without_present(store: Store, dataset: str, pairs: pa.Table, shown: str) -> pa.Table:
    """The pairs not yet in the store. A pair id already present with other content means two sources
    share row keys under one dataset name (or the file changed): refuse rather than skip silently."""
    existing = store.pair_contents(dataset)
    if not existing.num_rows:
        return pairs
    ids = pairs.select(["pair_id", "content_hash"])
    both = ids.join(existing, keys="pair_id", join_type="inner", right_suffix="_stored")
    clash = both.filter(pc.not_equal(both.column("content_hash"), both.column("content_hash_stored")))
    if clash.num_rows:
        example = clash.column("pair_id")[0].as_py()
        raise SourceError(
            f"{shown}: {clash.num_rows:,} rows have the same keys as different pairs already in dataset "
            f"`{dataset}` (e.g. pair {example}): another source with the same file or split names, or a changed file",
            hint="ingest it under another --name",
        )
    fresh = pc.invert(pc.is_in(pairs.column("pair_id"), value_set=existing.column("pair_id").combine_chunks()))
    return pairs.filter(fresh)


def _counts(result: IngestResult) -> dict[str, Any]:
    keys = ("read", "ingested", "already_present", "quarantined", "quarantine_reasons", "format")
    return {k: getattr(result, k) for k in keys}


def _new_quarantine(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Quarantine rows not already recorded for the same (dataset, key, reason)."""
    if not rows or "quarantine" not in store.table_names():
        return rows
    dataset = rows[0]["dataset"]
    known = (
        store.table("quarantine")
        .to_lance()
        .to_table(columns=["source_key", "reason"], filter=pc.field("dataset") == dataset)
    )
    seen = set(zip(known.column("source_key").to_pylist(), known.column("reason").to_pylist(), strict=True))
    return [r for r in rows if (r["source_key"], r["reason"]) not in seen]


def _adapt_all(
    rows: Iterable[RawRow],
    dataset: str,
    source: str,
    fmt: str,
    mapping: ColumnMap,
    run_id: str,
    shown: str | None = None,
) -> tuple[_Builder, int, str, str]:
    """Adapt every raw row; the format is detected (and --map checked) on the first decodable records.

    `source` is recorded with quarantined rows; `shown` (the source as the user wrote it) names it in errors.
    """
    shown = shown or source
    rows = iter(rows)
    head: list[RawRow] = []
    records: list[dict[str, Any]] = []
    for row in rows:
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
    reason = "given with --format"
    try:
        check_mapped_columns(records, mapping)
        if fmt == "auto":
            fmt, reason = detect_format(records, mapping)
        check_columns(records, fmt, mapping)
    except SourceError as err:
        raise SourceError(f"{shown}: {err.message}", hint=err.hint) from None
    adapter = ADAPTERS[fmt]
    builder = _Builder(dataset, source, fmt, run_id)
    key_column = mapping.columns.get("key")
    read = 0
    for row in itertools.chain(head, rows):
        read += 1
        if row.record is None:
            builder.add_problem(row, *row.problem)  # type: ignore[misc]
            continue
        try:
            canonical = adapter(row.record, mapping)
        except RowProblem as problem:
            builder.add_problem(row, problem.reason, problem.detail)
            continue
        problem = _text_problem(canonical)
        if problem is not None:
            builder.add_problem(row, *problem)
            continue
        key = row.key
        if key_column is not None:
            value = row.record.get(key_column)
            if value is None or (isinstance(value, str) and not value.strip()):
                builder.add_problem(row, "missing_value", f"the key column `{key_column}` is empty")
                continue
            key = f"{key_column}={value}"
        builder.add_pair(row, key, canonical)
    return builder, read, fmt, reason
