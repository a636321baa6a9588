"""What a re-ingest does to the pairs a dataset already holds: ``--on-change refuse`` (the default) or ``update``.

Stored and incoming pairs are matched in this order (keys are the source row keys, e.g. ``file:line``):

1. same key and same content: unchanged;
2. same content under another key (rows inserted or deleted above it, or reordered): *moved*; the pair
   keeps its id and its annotations, its key and position are updated;
3. same key, other content: *changed*; the pair keeps its id, its content is replaced and every
   annotation column (scores, features, embeddings, variants, ...) is set to null for it, so the next
   run of each stage finds exactly these pairs missing and recomputes them;
4. any other incoming pair is *new* (its id is the hash of its key, or of key and content when a moved
   pair already holds that id: ids are never reused);
5. any other stored pair (of the same source) is *removed*: kept, with ``flags.removed_from_source``,
   or deleted with ``--prune``.

``refuse`` adds new pairs and refuses a source whose stored keys now hold other content (a changed file,
or another source with the same file or split names). ``update`` tags the version before it writes
(``before-update-<dataset>-<run id>``), writes in one commit (a second one when pruning), and drops the
changed pairs from interrupted stages' checkpoints.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal import schema
from seal.errors import SourceError
from seal.ingest.builder import EXTRA_COLUMNS, pair_id_for
from seal.store import Store

ON_CHANGE = ("refuse", "update")
REMOVED_FLAG = "removed_from_source"
OWNED = frozenset(schema.INGEST_COLUMNS) | {f.name for f in EXTRA_COLUMNS}
# Ingest columns compared to decide whether a matched pair's stored row must be rewritten.
_COMPARED = ("source", "source_index", "source_key", "format", "chosen_raw", "rejected_raw", "flags")
KEYS_SHOWN = 100


@dataclass
class UpdateReport:
    """What `--on-change update` did (the `update` object of `seal ingest --json`)."""

    new: int = 0
    changed: int = 0
    moved: int = 0
    refreshed: int = 0
    unchanged: int = 0
    removed: int = 0
    removed_keys: list[str] = field(default_factory=list)
    pruned: int = 0
    annotations_cleared: list[str] = field(default_factory=list)
    checkpoint_rows_dropped: int = 0
    tag: str | None = None
    removals_checked: bool = True
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _pair_keys(table: pa.Table) -> pa.Array:
    """``source_key \\x1f content_hash`` per row (the identity of an unchanged pair)."""
    return pc.binary_join_element_wise(
        table.column("source_key").combine_chunks(), table.column("content_hash").combine_chunks(), "\x1f"
    )


def without_present(store: Store, dataset: str, pairs: pa.Table, shown: str) -> pa.Table:
    """`refuse`: the pairs not yet in the store. A pair id already present with other content means two
    sources share row keys under one dataset name, or the file changed: refuse rather than skip silently."""
    existing = store.read_pairs(dataset, ["pair_id", "source_key", "content_hash"]) if store.exists() else None
    if existing is None or not existing.num_rows or not pairs.num_rows:
        return pairs
    same = pc.is_in(_pair_keys(pairs), value_set=_pair_keys(existing))  # unchanged, even after an update
    rest = pairs.filter(pc.invert(same))
    ids = rest.select(["pair_id", "content_hash"])
    both = ids.join(
        existing.select(["pair_id", "content_hash"]), keys="pair_id", join_type="inner", right_suffix="_stored"
    )
    clash = both.filter(pc.not_equal(both.column("content_hash"), both.column("content_hash_stored")))
    if clash.num_rows:
        example = clash.column("pair_id")[0].as_py()
        raise SourceError(
            f"{shown}: {clash.num_rows:,} rows have the same keys as different pairs already in dataset "
            f"`{dataset}` (e.g. pair {example}): another source with the same file or split names, or a changed file",
            hint="for a changed file pass --on-change update; for another source ingest it under another --name",
        )
    fresh = pc.invert(pc.is_in(rest.column("pair_id"), value_set=existing.column("pair_id").combine_chunks()))
    return rest.filter(fresh)


@dataclass
class _Match:
    """Per incoming pair: the stored row it matches (or None) and how."""

    stored: list[int | None]
    kind: list[str]  # unchanged, moved, changed, new


def match(stored_keys: list[str], stored_hashes: list[str], keys: list[str], hashes: list[str]) -> _Match:
    """Match incoming pairs to stored ones: same key and content, then same content, then same key."""
    by_key = {k: i for i, k in enumerate(stored_keys)}
    stored: list[int | None] = [None] * len(keys)
    kind = ["new"] * len(keys)
    taken: set[int] = set()
    for j, (k, h) in enumerate(zip(keys, hashes, strict=True)):
        i = by_key.get(k)
        if i is not None and stored_hashes[i] == h:
            stored[j], kind[j] = i, "unchanged"
            taken.add(i)
    by_content: dict[str, deque[int]] = defaultdict(deque)
    for i, h in enumerate(stored_hashes):
        if i not in taken:
            by_content[h].append(i)
    for j, h in enumerate(hashes):
        if stored[j] is None and by_content.get(h):
            i = by_content[h].popleft()
            stored[j], kind[j] = i, "moved"
            taken.add(i)
    for j, k in enumerate(keys):
        i = by_key.get(k)
        if stored[j] is None and i is not None and i not in taken:
            stored[j], kind[j] = i, "changed"
            taken.add(i)
    return _Match(stored, kind)


def _tag_name(dataset: str, run_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset).strip("._") or "dataset"
    return f"before-update-{slug}-{run_id}"


def _scope(
    store: Store, dataset: str, location: str, columns: list[str], keys: pa.Array
) -> tuple[pa.Table, str | None]:
    """The stored pairs an update of this source may match and remove: the dataset's pairs from this
    source. When it has none, the dataset holds one other source and their row keys overlap, the file
    moved: that source's pairs (a second source with other file names is only added to)."""
    stored = store.read_pairs(dataset, columns)
    if not stored.num_rows:
        return stored, None
    mine = stored.filter(pc.equal(stored.column("source"), location))
    sources = pc.unique(stored.column("source").combine_chunks()).to_pylist()
    if not mine.num_rows and len(sources) == 1 and pc.any(pc.is_in(stored.column("source_key"), keys)).as_py():
        return stored, f"the source moved from {sources[0]}: its pairs are matched to this one"
    return mine, None


def _rows(table: pa.Table) -> list[str]:
    """One canonical JSON text per row (to compare stored and incoming ingest columns)."""
    return [json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist()]


def _cast_like(table: pa.Table, target: pa.Schema) -> pa.Table:
    """`table`'s columns cast to the stored types (an older store's flags have fewer fields)."""
    columns = [
        table.column(n).cast(target.field(n).type) if n in target.names else table.column(n) for n in table.column_names
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def apply_update(
    store: Store,
    dataset: str,
    location: str,
    incoming: pa.Table,
    run_id: str,
    check_removed: bool,
    prune: bool,
) -> tuple[UpdateReport, int | None]:
    """Bring the dataset's stored pairs from `location` in line with `incoming`; returns the report and
    the `pairs` version written (None when nothing changed)."""
    report = UpdateReport(removals_checked=check_removed)
    if not store.exists():
        report.new = incoming.num_rows
        return report, (store.add_pairs(incoming) if incoming.num_rows else None)
    target = store.schema()
    incoming = _cast_like(incoming, target)
    compared = [c for c in _COMPARED if c in target.names] + [c.name for c in EXTRA_COLUMNS if c.name in target.names]
    keys = incoming.column("source_key").combine_chunks()
    stored, report.note = _scope(store, dataset, location, ["pair_id", "content_hash", *compared], keys)
    new_keys = incoming.column("source_key").to_pylist()
    new_hashes = incoming.column("content_hash").to_pylist()
    found = match(
        stored.column("source_key").to_pylist(), stored.column("content_hash").to_pylist(), new_keys, new_hashes
    )
    stored_ids = stored.column("pair_id").to_pylist()
    taken_ids = set(store.read_pairs(dataset, ["pair_id"]).column("pair_id").to_pylist())
    ids = incoming.column("pair_id").to_pylist()
    for j, i in enumerate(found.stored):
        if i is not None:
            ids[j] = stored_ids[i]
        elif ids[j] in taken_ids:  # the key's id belongs to a moved pair: never reuse it
            ids[j] = pair_id_for(dataset, f"{new_keys[j]}\x1f{new_hashes[j]}")
        taken_ids.add(ids[j])
    incoming = incoming.set_column(incoming.schema.get_field_index("pair_id"), "pair_id", pa.array(ids, pa.string()))
    # Which matched pairs' stored ingest columns differ (moved keys, flags, raw texts): rewrite those.
    matched = [j for j, i in enumerate(found.stored) if i is not None]
    have = [c for c in compared if c in incoming.column_names]
    fresh = _rows(incoming.take(matched).select(have)) if matched else []
    old = _rows(stored.take([found.stored[j] for j in matched]).select(have)) if matched else []  # type: ignore[misc]
    dirty = {j for j, a, b in zip(matched, fresh, old, strict=True) if a != b}
    kinds = found.kind
    report.new = kinds.count("new")
    report.changed = kinds.count("changed")
    report.moved = kinds.count("moved")
    report.refreshed = sum(1 for j in dirty if kinds[j] == "unchanged")
    report.unchanged = kinds.count("unchanged") - report.refreshed
    removed = sorted(set(range(stored.num_rows)) - {i for i in found.stored if i is not None}) if check_removed else []
    removed_ids = [stored_ids[i] for i in removed]
    keys = stored.column("source_key").to_pylist()
    report.removed = len(removed)
    report.removed_keys = [keys[i] for i in removed][:KEYS_SHOWN]
    flags_type = target.field("flags").type
    can_flag = flags_type.get_field_index(REMOVED_FLAG) >= 0
    flagged = pc.struct_field(stored.column("flags").combine_chunks(), REMOVED_FLAG) if can_flag else None
    to_flag = [] if prune or not can_flag else [stored_ids[i] for i in removed if not flagged[i].as_py()]  # type: ignore[index]
    if removed and not can_flag and not prune:
        report.note = "this store's flags predate removed_from_source: removed pairs are reported, not flagged"
    write = [j for j in range(incoming.num_rows) if kinds[j] in ("new", "changed") or j in dirty]
    if not write and not to_flag and not (prune and removed_ids):
        return report, None
    report.tag = _tag_name(dataset, run_id)
    store.tag(report.tag)
    rows = _assemble(store, dataset, incoming, write, kinds, to_flag, target)
    version = store.replace_pairs(rows, delete_ids=removed_ids if prune else ())
    report.pruned = len(removed_ids) if prune else 0
    changed_ids = [ids[j] for j in write if kinds[j] == "changed"]
    if changed_ids:
        report.annotations_cleared = [n for n in target.names if n not in OWNED]
        report.checkpoint_rows_dropped = store.forget_work_rows(changed_ids)
    return report, version


def _assemble(
    store: Store,
    dataset: str,
    incoming: pa.Table,
    write: list[int],
    kinds: list[str],
    to_flag: list[str],
    target: pa.Schema,
) -> pa.Table:
    """Whole rows to write: incoming ingest columns, with the stored annotations of moved or refreshed
    pairs kept and those of changed pairs nulled; removed pairs as stored, flagged."""
    annotations = [n for n in target.names if n not in OWNED]
    parts = []
    rows = incoming.take(write) if write else incoming.slice(0, 0)
    keep = pa.array([kinds[j] in ("moved", "unchanged") for j in write], pa.bool_())
    kept_ids = rows.filter(keep).column("pair_id").to_pylist()
    current = store.read_pairs(dataset, ["pair_id", *annotations], ids=kept_ids + to_flag)
    positions = pc.index_in(rows.column("pair_id"), value_set=current.column("pair_id").combine_chunks())
    positions = pc.if_else(keep, positions, pa.scalar(None, pa.int32()))
    columns = {n: rows.column(n) for n in rows.column_names}
    for name in annotations:  # null where `positions` is null: new and changed pairs
        columns[name] = current.column(name).take(positions)
    parts.append(_like(columns, rows.num_rows, target))
    if to_flag:
        flagged = store.read_pairs(dataset, None, ids=to_flag)
        flags = flagged.column("flags").combine_chunks()
        fields = {f.name: flags.field(f.name) for f in flags.type}
        fields[REMOVED_FLAG] = pa.array([True] * len(flags), pa.bool_())
        struct = pa.StructArray.from_arrays(list(fields.values()), fields=list(flags.type))
        flagged = flagged.set_column(flagged.schema.get_field_index("flags"), "flags", struct)
        parts.append(_like({n: flagged.column(n) for n in flagged.column_names}, flagged.num_rows, target))
    return pa.concat_tables(parts)


def _like(columns: dict[str, Any], n: int, target: pa.Schema) -> pa.Table:
    """A table with exactly the target schema: given columns cast, the rest null."""
    arrays = [columns[f.name].cast(f.type) if f.name in columns else pa.nulls(n, type=f.type) for f in target]
    return pa.Table.from_arrays(arrays, schema=target)
