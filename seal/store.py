"""The LanceDB store: one `pairs` row per preference pair, plus `quarantine` and `runs`.

All writes go through this module so that every write is recorded in `runs` with the recipe that
produced it and the `pairs` version it created.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import lancedb
import pyarrow as pa
import pyarrow.compute as pc

from seal import schema
from seal.errors import SealError, StoreError, first_line, store_write_error

DEFAULT_STORE = "./seal-store"
PAIRS, QUARANTINE, RUNS = "pairs", "quarantine", "runs"
WORK_PREFIX = "work__"
INGEST_OWNED = frozenset(schema.INGEST_COLUMNS)
_SCHEMAS = {PAIRS: schema.PAIRS, QUARANTINE: schema.QUARANTINE, RUNS: schema.RUNS}
# Versions newer than this survive the clean-up at the end of a stage, so a reader that opened an
# older version a moment ago keeps working; tagged versions are always kept. `$SEAL_KEEP_VERSIONS`.
DEFAULT_KEEP_VERSIONS = timedelta(hours=1)
# Lance operations that `optimize` commits (compaction reserves fragment ids in a bare BaseOperation first).
MAINTENANCE_OPERATIONS = frozenset({"Rewrite", "CreateIndex", "BaseOperation"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """`0`, `90s`, `30m`, `1h`, `7d` or `2w` as a timedelta (a bare number is seconds)."""
    match = _DURATION.match(str(text))
    if not match:
        raise SealError(f"cannot read `{text}` as a duration", hint="write e.g. 0, 30m, 1h, 7d or 2w")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"])


def default_keep_versions() -> timedelta:
    """How long old versions are kept by the clean-up at the end of a stage."""
    value = os.environ.get("SEAL_KEEP_VERSIONS")
    return parse_duration(value) if value else DEFAULT_KEEP_VERSIONS


_F = TypeVar("_F", bound=Callable[..., Any])


def writes(method: _F) -> _F:
    """Mark a Store method that writes: a write the file system refuses (read-only store, no permission,
    disk full) becomes one `StoreWriteError` line instead of Lance's RuntimeError with a Rust source path.
    Lance commits a version only after its files are written, so a refused write leaves the last version."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except SealError:
            raise
        except Exception as err:
            translated = store_write_error(err, self.path)
            if translated is None:
                raise
            raise translated from err

    return wrapper  # type: ignore[return-value]


def default_store_path() -> str:
    """The store path used when none is given: `$SEAL_STORE`, else `./seal-store`."""
    return os.environ.get("SEAL_STORE") or DEFAULT_STORE


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    return now_utc().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class RunRecord:
    """One row of the `runs` table: what a write did and what determined it."""

    run_id: str
    stage: str
    name: str
    fingerprint: str
    recipe: Mapping[str, Any]
    provenance: Mapping[str, Any]
    status: str
    rows_written: int
    pairs_version: int | None
    started_at: datetime
    finished_at: datetime

    def to_row(self) -> dict[str, Any]:
        row = dict(self.__dict__)
        row["recipe"] = json.dumps(self.recipe, sort_keys=True)
        row["provenance"] = json.dumps(self.provenance, sort_keys=True, default=str)
        return row


class Store:
    """A seal store at a folder path. Opening never creates anything; writes create tables on demand."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path or default_store_path())
        self._db: lancedb.DBConnection | None = None

    # -- connection and tables -------------------------------------------------------------------
    @property
    def db(self) -> lancedb.DBConnection:
        if self._db is None:
            self._db = lancedb.connect(str(self.path))
        return self._db

    def exists(self) -> bool:
        return self.path.is_dir() and PAIRS in self.table_names()

    def table_names(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return [name for name in self.db.list_tables().tables if not self._aborted(name)]

    def _aborted(self, name: str) -> bool:
        """A table folder without a committed version: a create that failed (disk full) or was killed."""
        versions = self.path / f"{name}.lance" / "_versions"
        return versions.is_dir() and not any(versions.glob("*.manifest"))

    def _create_table(self, name: str, schema: pa.Schema) -> lancedb.table.Table:
        """Create an empty table; a create that fails leaves no folder behind."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self._aborted(name):  # left by an earlier failed create
            shutil.rmtree(self.path / f"{name}.lance")
        try:
            return self.db.create_table(name, schema=schema)
        except Exception:
            if self._aborted(name):
                shutil.rmtree(self.path / f"{name}.lance", ignore_errors=True)
            raise

    def require(self) -> None:
        """Raise a helpful error when there is no store (or no pairs) at this path."""
        if not self.exists():
            raise StoreError(
                f"no seal store with pairs at {self.path}",
                hint="run `seal ingest SOURCE` first, or point --store / SEAL_STORE at an existing store",
            )

    @writes
    def table(self, name: str, create: bool = False) -> lancedb.table.Table:
        if name in self.table_names():
            return self.db.open_table(name)
        if not create:
            raise StoreError(f"the store at {self.path} has no `{name}` table")
        return self._create_table(name, _SCHEMAS[name])

    def pairs(self) -> lancedb.table.Table:
        self.require()
        return self.table(PAIRS)

    # -- reads -----------------------------------------------------------------------------------
    def pair_ids(self, dataset: str | None = None) -> pa.ChunkedArray:
        """All pair ids (optionally of one dataset), read from the pair_id column only."""
        if PAIRS not in self.table_names():
            return pa.chunked_array([], type=pa.string())
        ds = self.table(PAIRS).to_lance()
        flt = None if dataset is None else pc.field("dataset") == dataset
        return ds.to_table(columns=["pair_id"], filter=flt).column("pair_id")

    def pair_contents(self, dataset: str) -> pa.Table:
        """pair_id and content_hash of one dataset's pairs (empty when there are none)."""
        if PAIRS not in self.table_names():
            return pa.table({"pair_id": pa.array([], pa.string()), "content_hash": pa.array([], pa.string())})
        ds = self.table(PAIRS).to_lance()
        return ds.to_table(columns=["pair_id", "content_hash"], filter=pc.field("dataset") == dataset)

    # -- writes ----------------------------------------------------------------------------------
    @writes
    def add_pairs(self, rows: pa.Table) -> int:
        """Append new pair rows, aligned to the table's current (possibly evolved) schema.

        Returns the `pairs` version after the write. Callers filter out ids already present.
        """
        table = self.table(PAIRS, create=True)
        table.add(_align(rows, table.schema))
        return int(table.version)

    @writes
    def ensure_columns(self, fields: Iterable[pa.Field]) -> None:
        """Add top-level columns that `pairs` lacks (all null): ingest's optional columns, before a write."""
        table = self.table(PAIRS, create=True)
        missing = [f for f in fields if f.name not in table.schema.names]
        if missing:
            table.add_columns(missing)

    def read_pairs(self, dataset: str, columns: list[str] | None = None, ids: Iterable[str] | None = None) -> pa.Table:
        """Rows of one dataset (optionally only `ids`), all columns or `columns`."""
        flt = pc.field("dataset") == dataset
        if ids is not None:
            flt = flt & pc.field("pair_id").isin(pa.array(list(ids), pa.string()))
        return self.pairs().to_lance().to_table(columns=columns, filter=flt)

    @writes
    def replace_pairs(self, rows: pa.Table, delete_ids: Iterable[str] = ()) -> int:
        """Write whole pair rows in one commit: rows whose pair_id exists replace it (every column, so
        the caller passes the annotation values to keep), the others are added. Then delete `delete_ids`
        (a second commit when any). Returns the `pairs` version after the writes."""
        table = self.pairs()
        if rows.num_rows:
            table.merge_insert("pair_id").when_matched_update_all().when_not_matched_insert_all().execute(
                _align(rows, table.schema)
            )
        doomed = pa.array(sorted(set(delete_ids)), pa.string())
        if len(doomed):
            table.to_lance().delete(pc.field("pair_id").isin(doomed))
        return int(self.db.open_table(PAIRS).version)

    @writes
    def forget_work_rows(self, ids: Iterable[str]) -> int:
        """Delete these pairs from every stage checkpoint (`work__*` table), so that an interrupted stage
        recomputes them instead of resuming values made from content that has since changed."""
        doomed = pa.array(sorted(set(ids)), pa.string())
        removed = 0
        for name in self.table_names():
            if name.startswith(WORK_PREFIX) and len(doomed):
                ds = self.db.open_table(name).to_lance()
                if "pair_id" in ds.schema.names:
                    before = ds.count_rows()
                    ds.delete(pc.field("pair_id").isin(doomed))
                    removed += before - ds.count_rows()
        return removed

    @writes
    def add_quarantine(self, rows: pa.Table) -> None:
        if rows.num_rows:
            self.table(QUARANTINE, create=True).add(_align(rows, schema.QUARANTINE))

    @writes
    def record_run(self, record: RunRecord) -> None:
        """Record a write in `runs`; a finished stage then compacts the store (see `optimize`)."""
        runs = self.table(RUNS, create=True)
        runs.add(pa.Table.from_pylist([record.to_row()], schema=schema.RUNS))
        if record.status == "done":
            self.tidy()

    def tidy(self) -> None:
        """`optimize()` with the default retention; a failure is reported, never fatal (the data is
        written, only the housekeeping is left for `seal optimize`)."""
        try:
            self.optimize()
        except Exception as err:  # housekeeping must not undo a finished stage
            print(
                f"seal: warning: compacting the store failed ({first_line(err)}); run `seal optimize`", file=sys.stderr
            )

    @writes
    def optimize(self, keep: timedelta | None = None) -> dict[str, Any]:
        """Compact small data files, bring indexes up to date with new rows, and delete the files of
        versions older than `keep` (default `$SEAL_KEEP_VERSIONS`, else 1 hour). Tagged versions and
        the latest version are always kept. Returns, per table, what was done."""
        keep = default_keep_versions() if keep is None else keep
        report: dict[str, Any] = {}
        for name in self.table_names():
            if name.startswith(WORK_PREFIX):  # checkpoints of a running stage: not ours to rewrite
                continue
            t0 = time.perf_counter()
            ds = self.db.open_table(name).to_lance()
            fragments_before = len(ds.get_fragments())
            compaction = ds.optimize.compact_files()
            indexes = ds.list_indices()
            if indexes:
                ds.optimize.optimize_indices()
            cleanup = ds.cleanup_old_versions(older_than=keep, error_if_tagged_old_versions=False)
            report[name] = {
                "fragments_before": fragments_before,
                "fragments_after": len(ds.get_fragments()),
                "fragments_compacted": int(getattr(compaction, "fragments_removed", 0)),
                "indexes_updated": len(indexes),
                "versions_removed": int(getattr(cleanup, "old_versions", 0)),
                "bytes_removed": int(getattr(cleanup, "bytes_removed", 0)),
                "version": int(ds.version),
                "seconds": round(time.perf_counter() - t0, 3),
            }
        return report

    def runs(self, stage: str | None = None) -> list[dict[str, Any]]:
        """Run records, oldest first, with recipe and provenance decoded."""
        if RUNS not in self.table_names():
            return []
        rows = self.table(RUNS).to_arrow().to_pylist()
        rows = [r for r in rows if stage is None or r["stage"] == stage]
        for r in rows:
            r["recipe"] = json.loads(r["recipe"])
            r["provenance"] = json.loads(r["provenance"])
        rows.sort(key=lambda r: r["started_at"])
        return rows

    # -- annotation columns ------------------------------------------------------------------------
    def columns(self) -> list[str]:
        """Top-level columns of `pairs`."""
        return list(self.pairs().schema.names)

    @writes
    def work_table(self, column: str, row_schema: pa.Schema) -> lancedb.table.Table:
        """The checkpoint table of a stage that fills `column`: batches are appended here as they finish,
        so a killed run resumes from what was committed (created on first use)."""
        name = WORK_PREFIX + column
        if name in self.table_names():
            return self.db.open_table(name)
        return self._create_table(name, row_schema)

    @writes
    def side_table(self, name: str, schema: pa.Schema, create: bool = True) -> lancedb.table.Table | None:
        """A table kept beside `pairs` by a stage or an analysis (an LLM cache, stored findings),
        created empty with `schema` on first use; None when absent and `create` is false."""
        if name in (PAIRS, QUARANTINE, RUNS) or name.startswith(WORK_PREFIX):
            raise StoreError(f"`{name}` is one of the store's own tables")
        if name in self.table_names():
            return self.db.open_table(name)
        if not create:
            return None
        return self._create_table(name, schema)

    @writes
    def drop_work_table(self, column: str) -> None:
        name = WORK_PREFIX + column
        if name in self.table_names():
            self.db.drop_table(name)

    @writes
    def materialize_column(self, column: str, values: pa.Table) -> int:
        """Write `column` of `pairs` from a table of (pair_id, column): a column-level write
        (Lance merge on pair_id) that leaves the other columns' files untouched. Pairs absent from
        `values` get null. An existing column of that name is replaced. Returns the new version."""
        if values.column_names != ["pair_id", column]:
            raise StoreError(f"materialize_column needs columns [pair_id, {column}], got {values.column_names}")
        if column in INGEST_OWNED:
            raise StoreError(f"`{column}` belongs to ingest and cannot be overwritten")
        values = _last_per_key(values, "pair_id")
        table = self.pairs()
        if column in table.schema.names:
            table.drop_columns([column])
        if values.num_rows == 0:  # Lance's merge refuses an empty right side: add an all-null column
            table.add_columns(pa.field(column, values.schema.field(column).type))
        else:
            table.to_lance().merge(values, left_on="pair_id")
        return int(self.db.open_table(PAIRS).version)

    # -- versions and tags -------------------------------------------------------------------------
    def versions(self) -> list[dict[str, Any]]:
        """Every version of `pairs` with the Lance operation that made it, the seal run and tags."""
        table = self.pairs()
        ds = table.to_lance()
        versions = table.list_versions()
        # get_transactions returns the newest first, one per version after the first.
        transactions = ds.get_transactions(len(versions) + 1)
        operations: dict[int, str] = {}
        latest = int(table.version)
        for offset, tx in enumerate(transactions):
            if tx is not None:
                operations[latest - offset] = type(tx.operation).__name__
        by_version = {r["pairs_version"]: r for r in self.runs() if r["pairs_version"] is not None}
        tags: dict[int, list[str]] = {}
        for tag_name, info in table.tags.list().items():
            tags.setdefault(int(info["version"]), []).append(tag_name)
        out = []
        for v in versions:
            number = int(v["version"])
            run = by_version.get(number)
            operation = operations.get(number, "Unknown")
            stage = run["stage"] if run else ("optimize" if operation in MAINTENANCE_OPERATIONS else None)
            out.append(
                {
                    "version": number,
                    "timestamp": v["timestamp"].isoformat(),
                    "operation": operation,
                    "rows": int(v["metadata"].get("total_rows", 0)),
                    "run_id": run["run_id"] if run else None,
                    "stage": stage,
                    "name": run["name"] if run else None,
                    "tags": sorted(tags.get(number, [])),
                }
            )
        return out

    @writes
    def tag(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Tag a version of `pairs` (the current one by default)."""
        table = self.pairs()
        existing = table.tags.list()
        if name in existing:
            raise SealError(
                f"tag `{name}` already exists (version {existing[name]['version']})",
                hint="choose another name",
            )
        target = int(table.version) if version is None else int(version)
        known = {int(v["version"]) for v in table.list_versions()}
        if target not in known:
            raise StoreError(f"`pairs` has no version {target}", hint="see `seal versions`")
        table.tags.create(name, target)
        return {"tag": name, "version": target}


def _last_per_key(values: pa.Table, key: str) -> pa.Table:
    """Keep the last row of each key (a batch committed twice must not duplicate a pair)."""
    keys = values.column(key)
    if pc.count_distinct(keys).as_py() == values.num_rows:
        return values
    indexed = values.append_column("__row", pa.array(range(values.num_rows), pa.int64()))
    last = indexed.group_by(key).aggregate([("__row", "max")]).column("__row_max")
    return values.take(last)


def _align(rows: pa.Table, target: pa.Schema) -> pa.Table:
    """Give `rows` exactly the target schema: missing columns become nulls, extra ones are an error."""
    extra = set(rows.column_names) - set(target.names)
    if extra:
        raise StoreError(f"columns not in the table schema: {sorted(extra)}")
    columns = []
    for field in target:
        if field.name in rows.column_names:
            columns.append(rows.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(rows.num_rows, type=field.type))
    return pa.Table.from_arrays(columns, schema=target)


def iter_batches(table: pa.Table, size: int) -> Iterable[pa.Table]:
    for start in range(0, table.num_rows, size):
        yield table.slice(start, size)
