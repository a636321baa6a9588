"""The store's read API: Arrow tables and plain values out, never a LanceDB or Lance object.

`where` is a LanceDB SQL expression (``"flags.identical_responses"``, ``"dataset = 'hh'"``) or a pyarrow
compute expression; `columns` may name nested fields with a dot (``"score_post.chosen"``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal.errors import QueryError
from seal.store.base import PAIRS, QUARANTINE, RUNS, Where
from seal.store.tables import Tables


class Reads(Tables):
    """Read methods of `Store`."""

    def read(
        self,
        columns: Sequence[str] | None = None,
        where: Where = None,
        *,
        table: str = PAIRS,
        limit: int | None = None,
        version: int | str | None = None,
    ) -> pa.Table:
        """Rows of `table` (default `pairs`) matching `where`, with `columns` (default all)."""
        if table == PAIRS:
            self.require()
        ds = self._dataset(table, version)
        try:
            return ds.to_table(columns=None if columns is None else list(columns), filter=where, limit=limit)
        except (ValueError, OSError) as err:
            if isinstance(where, str):
                raise QueryError(
                    f"cannot read `{table}`: {_first(err)}", hint="check the filter (LanceDB SQL)"
                ) from None
            raise

    def scan(
        self,
        columns: Sequence[str] | None = None,
        where: Where = None,
        *,
        table: str = PAIRS,
        batch_size: int = 8192,
    ) -> Iterator[pa.RecordBatch]:
        """The same rows as `read`, batch by batch (for tables too large to hold at once)."""
        if table == PAIRS:
            self.require()
        ds = self._dataset(table)
        yield from ds.to_batches(
            columns=None if columns is None else list(columns), filter=where, batch_size=batch_size
        )

    def count(self, where: Where = None, *, table: str = PAIRS) -> int:
        """Rows of `table` matching `where` (0 when the table does not exist)."""
        if self._missing(table):
            return 0
        return int(self._dataset(table).count_rows(filter=where))

    def schema(self, table: str = PAIRS) -> pa.Schema:
        """The Arrow schema of `table` at its latest version."""
        if table == PAIRS:
            self.require()
        return self._dataset(table).schema

    def version(self, table: str = PAIRS) -> int:
        """The latest version number of `table`."""
        if table == PAIRS:
            self.require()
        return int(self._dataset(table).version)

    def fragment_count(self, table: str = PAIRS) -> int:
        """Data fragments of `table` (compaction merges small ones)."""
        return len(self._dataset(table).get_fragments())

    def columns(self) -> list[str]:
        """Top-level columns of `pairs`."""
        return list(self.schema(PAIRS).names)

    def pair_ids(self, dataset: str | None = None) -> pa.ChunkedArray:
        """All pair ids (optionally of one dataset), read from the pair_id column only."""
        if self._missing(PAIRS):
            return pa.chunked_array([], type=pa.string())
        flt = None if dataset is None else pc.field("dataset") == dataset
        return self._dataset(PAIRS).to_table(columns=["pair_id"], filter=flt).column("pair_id")

    def pair_contents(self, dataset: str) -> pa.Table:
        """pair_id and content_hash of one dataset's pairs (empty when there are none)."""
        if self._missing(PAIRS):
            return pa.table({"pair_id": pa.array([], pa.string()), "content_hash": pa.array([], pa.string())})
        return self._dataset(PAIRS).to_table(columns=["pair_id", "content_hash"], filter=pc.field("dataset") == dataset)

    def read_pairs(self, dataset: str, columns: list[str] | None = None, ids: Iterable[str] | None = None) -> pa.Table:
        """Rows of one dataset (optionally only `ids`), all columns or `columns`."""
        flt = pc.field("dataset") == dataset
        if ids is not None:
            flt = flt & pc.field("pair_id").isin(pa.array(list(ids), pa.string()))
        return self.read(columns, flt)

    def runs(self, stage: str | None = None) -> list[dict[str, Any]]:
        """Run records, oldest first, with recipe and provenance decoded."""
        if self._missing(RUNS):
            return []
        flt = None if stage is None else pc.field("stage") == stage
        rows = self._dataset(RUNS).to_table(filter=flt).to_pylist()
        for r in rows:
            r["recipe"] = json.loads(r["recipe"])
            r["provenance"] = json.loads(r["provenance"])
        rows.sort(key=lambda r: r["started_at"])
        return rows

    def quarantine(self, where: Where = None, columns: Sequence[str] | None = None) -> pa.Table:
        """Quarantined rows (an empty table when none were ever quarantined)."""
        if self._missing(QUARANTINE):
            from seal import schema

            empty = pa.Table.from_pylist([], schema=schema.QUARANTINE)
            return empty if columns is None else empty.select(list(columns))
        return self.read(columns, where, table=QUARANTINE)


def _first(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
