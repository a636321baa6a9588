"""Writing the rows: parquet shards of bounded size per config (`hf`), one flat parquet file, JSON Lines.

Rows stream from `store.scan` batch by batch, so an export holds at most one shard in memory. Nested columns
(structs, lists, fixed-size vectors) stay nested in every format.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from seal.errors import SealError
from seal.store import Store

DEFAULT_MAX_SHARD_SIZE = "500MB"
SCAN_BATCH = 2048
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_size(text: str | int) -> int:
    """`500MB`, `1GB`, `64KB` or a number of bytes, as bytes (KiB/MiB read as powers of 1024)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise SealError(f"cannot read `{text}` as a size", hint="write e.g. 500MB, 1GB or 100000 (bytes)")
    unit = match.group(2).upper()
    binary = (match.group(3) or "").lower() == "ib"
    factor = 1024 ** ("KMGT".index(unit) + 1) if unit and binary else _UNITS[unit]
    return max(1, int(float(match.group(1)) * factor))


@dataclass
class Shard:
    """One written data file."""

    path: str  # relative to the export folder
    rows: int
    bytes: int
    memory_bytes: int  # Arrow size in memory (the `num_bytes` the card reports)


def sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def combine_where(where: str | None, datasets: Sequence[str] | None) -> str | None:
    """`where` AND `dataset IN (...)` as one LanceDB SQL filter."""
    parts = []
    if where:
        parts.append(f"({where})")
    if datasets is not None:
        parts.append(f"dataset IN ({', '.join(sql_quote(d) for d in datasets)})")
    return " AND ".join(parts) or None


def _batches(store: Store, columns: Sequence[str], where: str | None, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for batch in store.scan(list(columns), where, batch_size=SCAN_BATCH):
        if batch.num_rows:
            yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)


def export_schema(store: Store, columns: Sequence[str]) -> pa.Schema:
    """The store's schema restricted to `columns`, without table metadata."""
    full = store.schema()
    return pa.schema([full.field(c) for c in columns])


def write_shards(
    store: Store,
    columns: Sequence[str],
    where: str | None,
    folder: Path,
    relative_dir: str,
    split: str,
    max_shard_bytes: int,
) -> list[Shard]:
    """The rows matching `where` as `relative_dir/<split>-NNNNN-of-NNNNN.parquet` under `folder`, each shard
    at most about `max_shard_bytes` of Arrow data (one batch may overshoot; a shard holds at least one row)."""
    schema = export_schema(store, columns)
    target = folder / relative_dir
    target.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, int, int]] = []
    pending: list[pa.RecordBatch] = []
    pending_bytes = 0

    def flush() -> None:
        nonlocal pending, pending_bytes
        if not pending:
            return
        table = pa.Table.from_batches(pending, schema=schema)
        path = target / f".{split}-{len(written):05d}.parquet.tmp"
        pq.write_table(table, path)
        written.append((path, table.num_rows, table.nbytes))
        pending, pending_bytes = [], 0

    for batch in _batches(store, columns, where, schema):
        start = 0
        per_row = max(1, batch.nbytes // max(1, batch.num_rows))
        while start < batch.num_rows:
            room = max(1, math.ceil((max_shard_bytes - pending_bytes) / per_row))
            piece = batch.slice(start, room)
            pending.append(piece)
            pending_bytes += piece.nbytes
            start += piece.num_rows
            if pending_bytes >= max_shard_bytes:
                flush()
    flush()
    shards = []
    for i, (path, rows, memory) in enumerate(written):
        final = target / f"{split}-{i:05d}-of-{len(written):05d}.parquet"
        path.replace(final)
        shards.append(Shard(f"{relative_dir}/{final.name}", rows, final.stat().st_size, memory))
    return shards


def write_parquet(store: Store, columns: Sequence[str], where: str | None, path: Path) -> Shard:
    """Every matching row in one parquet file (written batch by batch)."""
    schema = export_schema(store, columns)
    rows = memory = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in _batches(store, columns, where, schema):
            writer.write_batch(batch)
            rows += batch.num_rows
            memory += batch.nbytes
    return Shard(path.name, rows, path.stat().st_size, memory)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_jsonl(store: Store, columns: Sequence[str], where: str | None, path: Path) -> Shard:
    """Every matching row as one JSON object per line (non-finite floats become null)."""
    schema = export_schema(store, columns)
    rows = memory = 0
    with path.open("w", encoding="utf-8") as out:
        for batch in _batches(store, columns, where, schema):
            for row in batch.to_pylist():
                try:
                    line = json.dumps(row, ensure_ascii=False, allow_nan=False)
                except ValueError:
                    line = json.dumps(_finite(row), ensure_ascii=False, allow_nan=False)
                out.write(line + "\n")
            rows += batch.num_rows
            memory += batch.nbytes
    return Shard(path.name, rows, path.stat().st_size, memory)
