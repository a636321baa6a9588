"""The store's write API. Every write runs under the writer lock (seal.store.lock) and re-reads the latest
version inside it; annotation columns are written whole, with the run that made them recorded."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal import schema
from seal.errors import StoreError, first_line
from seal.store.base import (
    INGEST_OWNED,
    PAIRS,
    QUARANTINE,
    RUNS,
    WORK_PREFIX,
    RunRecord,
    align,
    last_per_key,
    writes,
)
from seal.store.merge import PreparedMerge, commit_merge, prepare_merge
from seal.store.reads import Reads


class Writes(Reads):
    """Write methods of `Store` (pairs, quarantine, runs and annotation columns)."""

    @writes
    def add_pairs(self, rows: pa.Table) -> int:
        """Append new pair rows, aligned to the table's current (possibly evolved) schema.

        Returns the `pairs` version after the write. Callers filter out ids already present.
        """
        table = self._open_or_create(PAIRS)
        table.add(align(rows, table.schema))
        return int(table.version)

    @writes
    def ensure_columns(self, fields: Iterable[pa.Field]) -> None:
        """Add top-level columns that `pairs` lacks (all null): ingest's optional columns, before a write."""
        table = self._open_or_create(PAIRS)
        missing = [f for f in fields if f.name not in table.schema.names]
        if missing:
            table.add_columns(missing)

    @writes
    def replace_pairs(self, rows: pa.Table, delete_ids: Iterable[str] = ()) -> int:
        """Write whole pair rows in one commit: rows whose pair_id exists replace it (every column, so
        the caller passes the annotation values to keep), the others are added. Then delete `delete_ids`
        (a second commit when any). Returns the `pairs` version after the writes."""
        self.require()
        table = self._table(PAIRS)
        if rows.num_rows:
            table.merge_insert("pair_id").when_matched_update_all().when_not_matched_insert_all().execute(
                align(rows, table.schema)
            )
        doomed = pa.array(sorted(set(delete_ids)), pa.string())
        if len(doomed):
            self._dataset(PAIRS).delete(pc.field("pair_id").isin(doomed))
        return self.version(PAIRS)

    @writes
    def add_quarantine(self, rows: pa.Table) -> None:
        if rows.num_rows:
            self._open_or_create(QUARANTINE).add(align(rows, schema.QUARANTINE))

    @writes
    def record_run(self, record: RunRecord) -> None:
        """Record a write in `runs`; a finished stage then compacts the store (see `optimize`)."""
        runs = self._open_or_create(RUNS)
        runs.add(pa.Table.from_pylist([record.to_row()], schema=schema.RUNS))
        if record.status == "done":
            self.tidy()

    def tidy(self) -> None:
        """`optimize()` with the default retention; a failure is reported, never fatal (the data is
        written, only the housekeeping is left for `seal optimize`)."""
        try:
            self.optimize()  # type: ignore[attr-defined]
        except Exception as err:  # housekeeping must not undo a finished stage
            print(
                f"seal: warning: compacting the store failed ({first_line(err)}); run `seal optimize`", file=sys.stderr
            )

    @writes
    def materialize_column(self, column: str, values: pa.Table) -> int:
        """Write `column` of `pairs` from a table of (pair_id, column): a column-level write
        (per-fragment merge on pair_id, one Merge commit; see seal.store.merge) that leaves the other
        columns' files untouched. Pairs absent from `values` get null. An existing column of that name is
        replaced. Returns the new version. The merge is made against the latest version, under the writer
        lock, and redone if another writer committed first, so a concurrent writer's column is never dropped."""
        if values.column_names != ["pair_id", column]:
            raise StoreError(f"materialize_column needs columns [pair_id, {column}], got {values.column_names}")
        if column in INGEST_OWNED:
            raise StoreError(f"`{column}` belongs to ingest and cannot be overwritten")
        self.require()
        return self.commit_column(self.prepare_column(column, values))

    @writes
    def prepare_column(self, column: str, values: pa.Table) -> PreparedMerge:
        """Write the data files of `column` (from (pair_id, column) values) against the latest version of
        `pairs`, dropping an existing column of that name first; commit it with `commit_column`."""
        if values.column_names != ["pair_id", column]:
            raise StoreError(f"prepare_column needs columns [pair_id, {column}], got {values.column_names}")
        if column in INGEST_OWNED:
            raise StoreError(f"`{column}` belongs to ingest and cannot be overwritten")
        values = last_per_key(values, "pair_id")
        ds = self._dataset(PAIRS)
        if column in ds.schema.names:
            self._table(PAIRS).drop_columns([column])
            ds = self._dataset(PAIRS)
        if not ds.get_fragments():  # no rows at all: an all-null column, committed here
            self._table(PAIRS).add_columns(pa.field(column, values.schema.field(column).type))
            ds = self._dataset(PAIRS)
            return PreparedMerge(column, values, int(ds.version), None, tuple(ds.schema.names))
        return prepare_merge(ds, column, values)

    @writes
    def commit_column(self, prepared: PreparedMerge) -> int:
        """Commit a prepared column merge; when `pairs` moved on since it was prepared (another writer), the
        merge is redone against the latest version, never retried blindly (see seal.store.merge)."""
        return commit_merge(
            prepared,
            uri=self._uri(PAIRS),
            open_latest=lambda: self._dataset(PAIRS),
            storage_options=self._options(),
            redact=self.redact,
        )

    @writes
    def write_column(
        self,
        column: str,
        values: pa.Table,
        run: RunRecord | None = None,
    ) -> int:
        """Write annotation `column` (see `materialize_column`) and record `run` (its `pairs_version` set
        to the version the write made) in one locked step. Returns the new `pairs` version."""
        version = self.materialize_column(column, values)
        if run is not None:
            self.record_run(_with_version(run, version))
        return version

    @writes
    def forget_work_rows(self, ids: Iterable[str]) -> int:
        """Delete these pairs from every stage checkpoint (`work__*` table), so that an interrupted stage
        recomputes them instead of resuming values made from content that has since changed."""
        doomed = pa.array(sorted(set(ids)), pa.string())
        removed = 0
        for name in self.table_names():
            if name.startswith(WORK_PREFIX) and len(doomed):
                ds = self._dataset(name)
                if "pair_id" in ds.schema.names:
                    before = ds.count_rows()
                    ds.delete(pc.field("pair_id").isin(doomed))
                    removed += before - ds.count_rows()
        return removed


def _with_version(run: RunRecord, version: int) -> RunRecord:
    fields: Mapping[str, Any] = {**run.__dict__, "pairs_version": version}
    return RunRecord(**fields)
