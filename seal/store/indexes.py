"""Indexes on `pairs` and the queries that use them: vector (nearest neighbours by dot product) and
full-text search. What to index and with which parameters is the embedding stage's policy; how, here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from seal.errors import QueryError
from seal.store.base import PAIRS, writes
from seal.store.maintenance import Maintenance

_CACHE_LIMIT = 16


class Indexes(Maintenance):
    """Index and search methods of `Store`."""

    # -- the cached dataset of the latest version (repeated queries reuse its index caches) ------------
    def _search_dataset(self) -> Any:
        self.require()
        cache = self.__dict__.setdefault("_search_cache", {})
        ds = self._dataset(PAIRS)
        version = int(ds.version)
        cached = cache.get(version)
        if cached is not None:
            return cached
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[version] = ds
        return ds

    def index_info(self) -> dict[str, dict[str, str]]:
        """{column: {name, type}} of the indexes on `pairs` (first column of each index)."""
        self.require()
        out = {}
        for idx in self._search_dataset().list_indices():
            fields = list(idx.get("fields") or [])
            if fields:
                out[fields[0]] = {"name": idx["name"], "type": str(idx["type"])}
        return out

    def unindexed_rows(self, column: str) -> int:
        """Rows of `pairs` the index on `column` does not cover yet (every row when it has none)."""
        info = self.index_info().get(column)
        if info is None:
            return self.count()
        try:
            stats = self._table(PAIRS).index_stats(info["name"])
        except Exception:
            return 1
        return int(getattr(stats, "num_unindexed_rows", 0) or 0) if stats else 1

    @writes
    def build_vector_index(
        self,
        column: str,
        *,
        num_partitions: int,
        num_sub_vectors: int,
        max_iterations: int = 50,
        sample_rate: int = 256,
    ) -> None:
        """(Re)build an IVF-PQ index on vector column `column` for dot-product search."""
        from lancedb.index import IvfPq

        config = IvfPq(
            distance_type="dot",
            max_iterations=max_iterations,
            sample_rate=sample_rate,
            num_partitions=num_partitions,
            num_sub_vectors=num_sub_vectors,
        )
        self._table(PAIRS).create_index(column, config=config, replace=True)

    @writes
    def build_text_index(self, column: str) -> None:
        """(Re)build the full-text index on text column `column`."""
        from lancedb.index import FTS

        self._table(PAIRS).create_index(column, config=FTS(), replace=True)

    @writes
    def build_scalar_index(self, column: str) -> None:
        """(Re)build a B-tree index on `column` (e.g. pair_id, for point lookups)."""
        from lancedb.index import BTree

        self._table(PAIRS).create_index(column, config=BTree(), replace=True)

    @writes
    def drop_index(self, column: str) -> None:
        """Drop the index on `column`, if any."""
        info = self.index_info().get(column)
        if info is not None:
            self._table(PAIRS).drop_index(info["name"])

    # -- queries ---------------------------------------------------------------------------------------
    def nearest(
        self,
        column: str,
        vector: np.ndarray,
        k: int,
        *,
        where: str | None = None,
        columns: Sequence[str] = ("pair_id",),
        nprobes: int | None = None,
        refine_factor: int | None = None,
    ) -> pa.Table:
        """The `k` rows nearest to `vector` by dot product on `column` (cosine on unit vectors), with a
        `_distance` column: exact without an index; with one, IVF-PQ probing `nprobes` partitions and
        re-ranking `refine_factor` × k candidates exactly."""
        query: dict[str, Any] = {"column": column, "q": np.asarray(vector, np.float32), "k": k, "metric": "dot"}
        if nprobes is not None:
            query["nprobes"] = nprobes
        if refine_factor is not None:
            query["refine_factor"] = refine_factor
        try:
            return self._search_dataset().to_table(
                columns=[*columns, "_distance"],
                nearest=query,
                filter=where,
                prefilter=bool(where),
                disable_scoring_autoprojection=True,
            )
        except Exception as err:
            raise QueryError(f"search failed: {err}", hint="check the --where filter (LanceDB SQL)") from None

    def text_search(
        self, column: str, text: str, k: int, *, where: str | None = None, columns: Sequence[str] = ("pair_id",)
    ) -> pa.Table:
        """The `k` rows whose `column` best matches `text` by BM25, with a `_score` column."""
        query = self._table(PAIRS).search(text, query_type="fts", fts_columns=column).limit(k)
        if where:
            query = query.where(where, prefilter=True)
        try:
            return query.select([*columns, "_score"]).to_arrow()
        except Exception as err:
            raise QueryError(f"full-text search failed: {err}", hint="check the --where filter") from None

    def select(
        self, where: str | None = None, columns: Sequence[str] | None = None, limit: int | None = None
    ) -> pa.Table:
        """`seal query`: rows of `pairs` matching one SQL expression, with (possibly nested, back-quoted)
        column expressions; a parse error becomes a one-line QueryError. Reads the Lance dataset directly
        (no LanceDB import: `seal query` starts in a fraction of the time)."""
        self.require()
        projection = _selection(columns) if columns else None
        try:
            return self._dataset(PAIRS).to_table(columns=projection, filter=where or None, limit=limit)
        except Exception as err:  # lance raises ValueError/RuntimeError with the parser's message
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise QueryError(f"query failed: {message}", hint="check --where (SQL) and --select column names") from None


def _selection(select: Sequence[str]) -> dict[str, str]:
    # Lance SQL addresses struct fields with dots; quote each part so odd names work.
    return {name: name if "." not in name else ".".join(f"`{p}`" for p in name.split(".")) for name in select}
