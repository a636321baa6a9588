"""Reads of `pairs` as a Ray Dataset (lance-ray), for the stages that run their engine on Ray.

The store hands out a `ray.data.Dataset` of the planned rows and never a Lance object: the workers read
the fragments straight from the store (a folder on a shared file system, or an object store with the
store's storage options), pinned to the version the stage planned. Only fragments that hold planned rows
are read, so a resumed run does not re-read, nor recompute, the fragments an interrupted run finished.
Requires the `ray` extra (`pip install 'seal-audit[ray]'`); `ray.init` must have run (seal.distributed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.store.base import PAIRS
from seal.store.reads import Reads

EXCLUDE_LIMIT = 100_000  # above this many rows to skip inside the chosen fragments, read them and drop later


@dataclass(frozen=True)
class FragmentSelection:
    """Which fragments of `pairs` (at `version`) hold the wanted rows, and the rows of those to leave out."""

    version: int
    fragment_ids: list[int]
    rows: int  # wanted rows
    exclude: list[str]  # pair ids inside the chosen fragments that are not wanted


class RayReads(Reads):
    """`ray_dataset`: planned rows of `pairs` as a Ray Dataset read by the Ray workers."""

    def select_fragments(self, ids: pa.Array | pa.ChunkedArray | None, version: int | None = None) -> FragmentSelection:
        """The fragments of `pairs` holding the pairs `ids` (all pairs when None)."""
        ds = self._dataset(PAIRS, version)
        table = ds.to_table(columns=["pair_id"], with_row_address=True)
        fragment = np.asarray(table.column("_rowaddr").to_numpy()) >> 32
        if ids is None:
            wanted = np.ones(table.num_rows, dtype=bool)
        else:
            mask = pc.is_in(table.column("pair_id"), value_set=pa.chunked_array([ids]).combine_chunks())
            wanted = np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)
        chosen = np.unique(fragment[wanted])
        in_chosen = np.isin(fragment, chosen)
        skip = in_chosen & ~wanted
        exclude = table.column("pair_id").filter(pa.array(skip)).to_pylist() if skip.any() else []
        return FragmentSelection(int(ds.version), [int(f) for f in chosen], int(wanted.sum()), exclude)

    def ray_dataset(
        self,
        columns: Sequence[str],
        ids: pa.Array | pa.ChunkedArray | None = None,
        *,
        version: int | None = None,
    ) -> tuple[Any, int]:
        """(a Ray Dataset of `columns` of the pairs `ids`, its row count). Empty selection: (None, 0)."""
        import lance_ray

        selection = self.select_fragments(ids, version)
        if not selection.fragment_ids:
            return None, 0
        row_filter = None
        if selection.exclude and len(selection.exclude) <= EXCLUDE_LIMIT:
            quoted = ", ".join("'" + pid.replace("'", "''") + "'" for pid in selection.exclude)
            row_filter = f"pair_id NOT IN ({quoted})"
        dataset = lance_ray.read_lance(
            self._uri(PAIRS),
            columns=list(dict.fromkeys(["pair_id", *columns])),
            filter=row_filter,
            storage_options=self._options(),
            dataset_options={"version": selection.version},
            fragment_ids=selection.fragment_ids,
        )
        if selection.exclude and row_filter is None:  # too many to name in SQL: drop them after the read
            keep = pa.array(sorted(set(pa.chunked_array([ids]).to_pylist())), pa.string()) if ids is not None else None
            dataset = dataset.map_batches(_keep, fn_kwargs={"keep": keep}, batch_format="pyarrow", batch_size=None)
        return dataset, selection.rows


def _keep(batch: pa.Table, keep: pa.Array | None) -> pa.Table:
    if keep is None:
        return batch
    return batch.filter(pc.is_in(batch.column("pair_id"), value_set=keep))
