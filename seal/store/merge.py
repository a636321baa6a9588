"""Column merges that seal commits itself: per-fragment `merge_columns` against one version of `pairs`, then
one `Merge` commit with that version as `read_version`.

Why seal owns this commit: a Merge commit replaces the dataset's whole fragment list. A merge prepared from
version v and committed after another writer made v+1 would carry v's fragments, and so drop the other
writer's column, if it were simply retried with a newer `read_version` (what lance-ray 0.5's commit retry
does). seal instead redoes the per-fragment merge against the version that is now the latest, and commits
that; every store write also holds the writer lock (seal.store.lock), so on one machine the race does not
arise at all. After a commit, seal checks that every column of the version it replaced is still there.

Two prepared merges from one version therefore both land (`commit_merge` redoes the second one), which
tests/test_s3_store.py checks, on a folder and on S3, next to lance-ray's own retry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal.errors import StoreError

MAX_REDO = 5  # redo a merge this many times at most when other writers keep committing first
MERGE_BATCH_ROWS = 65_536


@dataclass
class PreparedMerge:
    """A column merge prepared against `read_version`: new data files written, not committed yet."""

    column: str
    values: pa.Table  # (pair_id, column), the values merged
    read_version: int
    operation: Any  # LanceOperation.Merge (None: nothing left to commit)
    columns_before: tuple[str, ...]  # top-level columns of `read_version`
    redone: int = 0  # how many times the merge was redone against a newer version


def prepare_merge(ds: Any, column: str, values: pa.Table, key: str = "pair_id") -> PreparedMerge:
    """Write `column` for every fragment of `ds` (a LanceDataset at some version): each row gets the value of
    its `key` in `values`, null where `values` has none. Nothing is committed. `ds` must not have `column`."""
    from lance import LanceOperation

    if column in ds.schema.names:
        raise StoreError(f"`{column}` already exists at version {ds.version}: drop it before merging")
    ids = values.column(key).combine_chunks()
    data = values.column(column).combine_chunks()
    field = pa.field(column, data.type)

    def lookup(batch: pa.RecordBatch) -> pa.RecordBatch:
        index = pc.index_in(batch.column(key), value_set=ids)
        return pa.RecordBatch.from_arrays([data.take(index)], schema=pa.schema([field]))

    fragments, schema = [], None
    for fragment in ds.get_fragments():
        meta, schema = fragment.merge_columns(lookup, columns=[key], batch_size=MERGE_BATCH_ROWS)
        fragments.append(meta)
    if schema is None:
        raise StoreError("cannot merge a column into a table without rows")
    operation = LanceOperation.Merge(fragments, schema)
    return PreparedMerge(column, values, int(ds.version), operation, tuple(ds.schema.names))


def commit_merge(
    prepared: PreparedMerge,
    *,
    uri: str,
    open_latest: Callable[[], Any],
    storage_options: dict[str, str] | None = None,
    redact: Callable[[str], str] = str,
) -> int:
    """Commit `prepared`; when another writer committed since it was prepared, redo the per-fragment merge
    against the latest version (dropping a `column` that writer made) and commit that. Returns the version."""
    from lance import LanceDataset

    if prepared.operation is None:  # nothing to merge (committed when prepared)
        return prepared.read_version
    current = prepared
    for attempt in range(MAX_REDO + 1):
        try:
            ds = LanceDataset.commit(
                uri, current.operation, read_version=current.read_version, storage_options=storage_options
            )
        except Exception as err:
            latest = open_latest()
            if int(latest.version) == current.read_version:
                raise  # not a race (a refused write, a full disk): the caller translates it
            if attempt == MAX_REDO:
                raise StoreError(redact(f"cannot commit column `{current.column}`: {_first_line(err)}")) from None
            current = _redo(latest, current, attempt + 1)
            continue
        _check_kept(ds, current)
        prepared.redone = current.redone
        return int(ds.version)
    raise AssertionError("unreachable")  # pragma: no cover


def _redo(latest: Any, prepared: PreparedMerge, redone: int) -> PreparedMerge:
    if prepared.column in latest.schema.names:  # another writer wrote the same column meanwhile: ours wins
        latest.drop_columns([prepared.column])
        latest = latest.checkout_version(latest.latest_version)
    fresh = prepare_merge(latest, prepared.column, prepared.values)
    fresh.redone = redone
    return fresh


def _check_kept(ds: Any, prepared: PreparedMerge) -> None:
    """Every column of the version before the commit is still there (a Merge commit against a version it did
    not read would drop the columns committed since, on a Lance that accepted it)."""
    before = set(prepared.columns_before)
    if int(ds.version) - 1 != prepared.read_version:
        before |= set(ds.checkout_version(int(ds.version) - 1).schema.names)
    lost = sorted(c for c in before if c not in ds.schema.names)
    if lost:
        raise StoreError(
            f"the merge of `{prepared.column}` dropped column(s) {', '.join(lost)} (version {ds.version})",
            hint=f"restore them with `seal versions` and a checkout of version {prepared.read_version}",
        )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
