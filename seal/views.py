"""Read-only views of the store: stats, one pair, filtered queries, quarantine."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal import schema
from seal.errors import StoreError
from seal.sql_guard import check_select, check_where
from seal.store import QUARANTINE, Store


def stats(store: Store) -> dict[str, Any]:
    """Pairs per dataset, flag counts, column coverage and quarantine counts."""
    version = store.version()
    meta = store.read(["dataset", "flags"], version=version)
    total = meta.num_rows
    datasets: dict[str, dict[str, Any]] = {}
    if total:
        names = meta.column("dataset").combine_chunks()
        flags = meta.column("flags").combine_chunks()
        for name in sorted(pc.unique(names).to_pylist()):
            mask = pc.equal(names, name)
            sub = flags.filter(mask)
            datasets[name] = {
                "pairs": len(sub),
                "flags": {f: int(pc.sum(sub.field(f)).as_py() or 0) for f in schema.FLAG_NAMES},
            }
    flag_totals = {f: sum(d["flags"][f] for d in datasets.values()) for f in schema.FLAG_NAMES}
    coverage = []
    for field in store.schema():
        filled = total if field.name in ("pair_id", "dataset") else store.count(f"`{field.name}` IS NOT NULL")
        coverage.append(
            {
                "column": field.name,
                "type": str(field.type),
                "non_null": int(filled),
                "coverage": round(filled / total, 6) if total else 0.0,
            }
        )
    return {
        "store": str(store.path),
        "pairs": total,
        "version": version,
        "datasets": datasets,
        "flags": flag_totals,
        "columns": coverage,
        "quarantine": quarantine_counts(store),
    }


def quarantine_counts(store: Store) -> dict[str, dict[str, int]]:
    """Quarantined rows per dataset and reason."""
    rows = store.quarantine(columns=["dataset", "reason"]).to_pylist()
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        per = out.setdefault(r["dataset"], {})
        per[r["reason"]] = per.get(r["reason"], 0) + 1
    return {d: dict(sorted(v.items())) for d, v in sorted(out.items())}


def show(store: Store, pair_id: str) -> dict[str, Any]:
    """One pair with every column, as plain Python values."""
    found = store.read(where=pc.field("pair_id") == pair_id)
    if found.num_rows == 0:
        raise StoreError(f"no pair with id `{pair_id}`", hint="list ids with `seal query --select pair_id`")
    return found.slice(0, 1).to_pylist()[0]


def query(store: Store, where: str | None = None, select: list[str] | None = None, limit: int | None = 20) -> pa.Table:
    """Rows of `pairs` matching a LanceDB SQL filter, restricted to the selected (possibly nested) columns.
    `where` must be one SQL expression and `select` existing columns (seal.sql_guard)."""
    where = check_where(where)
    select = check_select(select, store.schema())
    return store.select(where, select or None, limit)


def quarantined(
    store: Store, dataset: str | None = None, reason: str | None = None, limit: int | None = 50
) -> list[dict[str, Any]]:
    """Quarantined rows, optionally of one dataset or reason."""
    if QUARANTINE not in store.table_names():
        store.require()  # no store at all is an error; a store without quarantined rows is not
        return []
    flt = None
    for column, value in (("dataset", dataset), ("reason", reason)):
        if value is not None:
            cond = pc.field(column) == value
            flt = cond if flt is None else (flt & cond)
    rows = store.quarantine(flt)
    if limit is not None:
        rows = rows.slice(0, limit)
    return rows.to_pylist()
