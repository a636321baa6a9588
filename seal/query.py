"""Read-only views of the store: stats, one pair, filtered queries, quarantine."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal import schema
from seal.errors import QueryError, StoreError
from seal.sql_guard import check_select, check_where
from seal.store import QUARANTINE, Store


def stats(store: Store) -> dict[str, Any]:
    """Pairs per dataset, flag counts, column coverage and quarantine counts."""
    table = store.pairs()
    ds = table.to_lance()
    meta = ds.to_table(columns=["dataset", "flags"])
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
    for field in table.schema:
        filled = total if field.name in ("pair_id", "dataset") else ds.count_rows(filter=f"`{field.name}` IS NOT NULL")
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
        "version": int(table.version),
        "datasets": datasets,
        "flags": flag_totals,
        "columns": coverage,
        "quarantine": quarantine_counts(store),
    }


def quarantine_counts(store: Store) -> dict[str, dict[str, int]]:
    """Quarantined rows per dataset and reason."""
    if QUARANTINE not in store.table_names():
        return {}
    rows = store.table(QUARANTINE).to_lance().to_table(columns=["dataset", "reason"]).to_pylist()
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        per = out.setdefault(r["dataset"], {})
        per[r["reason"]] = per.get(r["reason"], 0) + 1
    return {d: dict(sorted(v.items())) for d, v in sorted(out.items())}


def show(store: Store, pair_id: str) -> dict[str, Any]:
    """One pair with every column, as plain Python values."""
    table = store.pairs()
    found = table.to_lance().to_table(filter=pc.field("pair_id") == pair_id)
    if found.num_rows == 0:
        raise StoreError(f"no pair with id `{pair_id}`", hint="list ids with `seal query --select pair_id`")
    return found.slice(0, 1).to_pylist()[0]


def _selection(select: list[str] | None) -> dict[str, str] | None:
    if not select:
        return None
    return {name: name if "." not in name else _nested(name) for name in select}


def _nested(path: str) -> str:
    # Lance SQL addresses struct fields with dots; quote each part so odd names work.
    return ".".join(f"`{part}`" for part in path.split("."))


def query(store: Store, where: str | None = None, select: list[str] | None = None, limit: int | None = 20) -> pa.Table:
    """Rows of `pairs` matching a LanceDB SQL filter, restricted to the selected (possibly nested) columns.
    `where` must be one SQL expression and `select` existing columns (seal.sql_guard)."""
    table = store.pairs()
    where = check_where(where)
    select = check_select(select, table.schema)
    builder = table.search()
    if where:
        builder = builder.where(where)
    selection = _selection(select)
    if selection:
        builder = builder.select(selection)
    builder = builder.limit(limit if limit is not None else table.count_rows())
    try:
        return builder.to_arrow()
    except Exception as err:  # lance raises ValueError/RuntimeError with the parser's message
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise QueryError(f"query failed: {message}", hint="check --where (SQL) and --select column names") from None


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
    rows = store.table(QUARANTINE).to_lance().to_table(filter=flt)
    if limit is not None:
        rows = rows.slice(0, limit)
    return rows.to_pylist()
