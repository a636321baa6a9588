"""The findings stage: stores what the confusing-entries analysis (seal.analysis.confusing) finds.

`seal confusing` builds a `FindingsStage` and runs it through `seal.pipeline.run_stage` (plan, then run that
plan); `--no-store` calls the analysis alone. The stage writes, through the store's write API:

- the pairs column ``confusing`` (struct of per-pair flags and partner ids; the fields of kinds not computed
  this time keep their stored values) and the pairs column ``cluster`` (int32, null where a pair has no
  embeddings), each with its run record (stages ``confusing`` and ``cluster``);
- the ``findings`` side table: the rows of the kinds recomputed are replaced.

Contracts (names, Arrow types) are in seal.catalog.findings. Findings depend on every pair, score and label:
the plan is up to date only when the last findings were stored with these options and nothing was written to
the pairs table since (its version is the one that write made); otherwise it says which kinds are recomputed
over how many pairs, and whether stored findings are replaced. A spec's `findings:` section builds the stage
(`seal run`), after the perturbations (registered in seal.annotate.findings_spec, which imports this module only
when a spec has the section: the analysis it runs imports scipy).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.analysis.confusing import (
    ConfusingAnnotations,
    ConfusingOptions,
    ConfusingResult,
    check_kinds,
    find_confusing,
)
from seal.catalog.embeddings import TEXT_FIELDS, latest_runs
from seal.catalog.findings import (
    CLUSTER_COLUMN,
    CONFUSING_COLUMN,
    CONFUSING_TYPE,
    FINDING_KIND,
    FINDINGS,
    FINDINGS_SCHEMA,
)
from seal.errors import SealError
from seal.pipeline import PENDING, UP_TO_DATE, Plan
from seal.recipe import Recipe
from seal.store import RunRecord, Store, new_run_id, now_utc

STAGE = "findings"
STAGE_VERSION = 1  # of the `confusing` and `cluster` column recipes


class FindingsStage:
    """Find the confusing entries of the store and store them (see the module docstring). The options are
    those of `seal.analysis.confusing.find_confusing`; `limit` only bounds the findings listed in the result."""

    def __init__(self, kinds: Sequence[str] | str | None = None, *, limit: int | None = 50, **options: Any) -> None:
        self.kinds = check_kinds(kinds)
        self.options: dict[str, Any] = asdict(ConfusingOptions(**options))  # the recipe's params, defaults filled
        self.limit = limit
        self.recipe = Recipe(STAGE, FINDINGS, {"kinds": list(self.kinds), **self.options}, STAGE_VERSION)

    def plan(self, store: Store) -> Plan:
        """The kinds asked for, over every pair, replacing their stored findings; up to date when the last
        findings were stored with this recipe and the pairs table has not changed since."""
        fingerprint = self.recipe.fingerprint()
        column = CONFUSING_COLUMN if set(self.kinds) - {"clusters"} else CLUSTER_COLUMN
        if not store.exists():
            return Plan(STAGE, FINDINGS, fingerprint, PENDING, "no pairs in the store yet", column=column)
        pairs = store.count()
        kinds = ", ".join(self.kinds)
        stored = store.side_count(FINDINGS, _kinds_filter(self.kinds))
        last = _last_findings_run(store)
        if (
            last is not None
            and last["provenance"].get("findings_fingerprint") == fingerprint
            and last["pairs_version"] == store.version()
            and _findings_complete(store, last)
        ):
            reason = f"{stored:,} findings stored with these options; nothing written to the pairs since"
            return Plan(STAGE, FINDINGS, fingerprint, UP_TO_DATE, reason, rows_todo=0, column=column)
        if stored:
            reason = (
                f"recompute {kinds} over {pairs:,} pairs, replacing {stored:,} stored findings (findings depend on "
                "every pair, score and label)"
            )
        else:
            reason = f"find {kinds} over {pairs:,} pairs and store them"
        return Plan(STAGE, FINDINGS, fingerprint, PENDING, reason, rows_todo=pairs, column=column)

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> ConfusingResult:
        """Run the analysis and store its findings; the result says what was stored (`stored`)."""
        if plan.fingerprint != self.recipe.fingerprint():
            raise SealError("this plan was made for other findings options", hint="plan the stage again")
        result, found = find_confusing(store, self.kinds, limit=self.limit, **self.options)
        if found.kinds:
            t = time.perf_counter()
            result.stored = store_findings(store, found, self.recipe.fingerprint())
            spent = time.perf_counter() - t
            result.timings["store"] = round(spent, 3)
            result.seconds = round(result.seconds + spent, 3)
        return result


def _last_findings_run(store: Store) -> dict[str, Any] | None:
    """The run record of the last write of stored findings (the `confusing` or `cluster` column)."""
    runs = [r for r in store.runs() if r["stage"] in ("confusing", "cluster") and r["pairs_version"] is not None]
    return max(runs, key=lambda r: r["pairs_version"]) if runs else None


def _findings_complete(store: Store, run: dict[str, Any]) -> bool:
    """Whether the findings table holds every finding of `run` (a run killed after its columns were written but
    before its findings were stored does not)."""
    expected = run["provenance"].get("findings")
    run_id = str(run["run_id"]).replace("'", "''")
    return store.side_count(FINDINGS, f"run_id = '{run_id}'") == expected


def _kinds_filter(kinds: Sequence[str]) -> str:
    return "kind IN ({})".format(", ".join(f"'{FINDING_KIND[k]}'" for k in kinds))


def store_findings(store: Store, found: ConfusingAnnotations, stage_fingerprint: str | None = None) -> dict[str, Any]:
    """Write the `confusing` and `cluster` columns (with their run records) and replace the findings of the
    kinds computed; returns what was stored (ConfusingResult.stored). `stage_fingerprint`, the findings
    stage's recipe, is kept in the runs' provenance (the stage's plan compares it)."""
    started = now_utc()
    run_id = new_run_id()
    emb_fps = {f: r["fingerprint"] for f, r in latest_runs(store).items() if f in TEXT_FIELDS}
    columns: list[str] = []
    version = None
    struct = _confusing_struct(store, found)
    if struct is not None:
        recipe = Recipe(
            "confusing",
            CONFUSING_COLUMN,
            {
                "kinds": [k for k in found.kinds if k != "clusters"],
                "thresholds": found.thresholds,
                "embeddings": emb_fps,
            },
            STAGE_VERSION,
        )
        run = RunRecord.finished(
            "confusing",
            CONFUSING_COLUMN,
            recipe,
            {"findings": len(found.findings), "findings_fingerprint": stage_fingerprint},
            rows_written=len(found.pair_ids),
            started_at=started,
            run_id=run_id,
        )
        ids = pa.array(found.pair_ids, pa.string())
        version = store.write_column(CONFUSING_COLUMN, pa.table({"pair_id": ids, CONFUSING_COLUMN: struct}), run=run)
        columns.append(CONFUSING_COLUMN)
    labels = found.clusters
    if labels is not None:
        values = pa.array(np.where(labels >= -1, labels, 0), pa.int32(), mask=labels < -1)
        recipe = Recipe("cluster", CLUSTER_COLUMN, {**found.cluster_params, "embeddings": emb_fps}, STAGE_VERSION)
        run = RunRecord.finished(
            "cluster",
            CLUSTER_COLUMN,
            recipe,
            {
                "clusters": len(np.unique(labels[labels >= -1])),
                "findings": len(found.findings),
                "findings_fingerprint": stage_fingerprint,
            },
            rows_written=int((labels >= -1).sum()),
            started_at=started,
            run_id=run_id,
        )
        ids = pa.array(found.pair_ids, pa.string())
        version = store.write_column(CLUSTER_COLUMN, pa.table({"pair_id": ids, CLUSTER_COLUMN: values}), run=run)
        columns.append(CLUSTER_COLUMN)
    if version is None:
        version = store.version()
    rows = _finding_rows(found.findings, run_id, version)
    store.side_delete(FINDINGS, _kinds_filter(found.kinds))
    store.side_append(FINDINGS, rows, FINDINGS_SCHEMA)
    return {
        "findings_table": FINDINGS,
        "findings": rows.num_rows,
        "columns": columns,
        "pairs_version": version,
        "run_id": run_id,
    }


def _confusing_struct(store: Store, found: ConfusingAnnotations) -> pa.StructArray | None:
    """The `confusing` column: the fields computed this time, the stored values of the others (None when
    nothing of it was computed)."""
    n = len(found.pair_ids)
    kinds = found.kinds
    identical, near = found.identical, found.near_identical
    field_values: dict[str, pa.Array | None] = {
        "identical": pa.array(identical, pa.bool_()) if identical is not None and "identical" in kinds else None,
        "near_identical": pa.array(near, pa.bool_()) if near is not None else None,
        "response_cosine": (
            pa.array(found.response_cosine, pa.float32(), from_pandas=True)
            if found.response_cosine is not None
            else None
        ),
        "response_edit": pa.array(found.response_edit, pa.float32()) if found.response_edit is not None else None,
        "duplicates": _adjacency(n, found.duplicates, found.pair_ids),
        "contradicts": _adjacency(n, found.contradicts, found.pair_ids),
    }
    if "identical" not in kinds and identical is not None and near is not None:
        field_values["identical"] = pa.array(identical, pa.bool_())
    if all(v is None for v in field_values.values()):
        return None
    existing = _stored_confusing(store, found.pair_ids)
    arrays = []
    for f in CONFUSING_TYPE:
        value = field_values[f.name]
        if value is None:
            value = existing.field(f.name) if existing is not None else pa.nulls(n, f.type)
            if existing is not None and existing.null_count:
                value = pc.if_else(pc.is_valid(existing), value, pa.nulls(n, f.type))
        arrays.append(value.cast(f.type))
    return pa.StructArray.from_arrays(arrays, fields=list(CONFUSING_TYPE))


def _stored_confusing(store: Store, pair_ids: list[str]) -> pa.StructArray | None:
    """The stored `confusing` values in the order of `pair_ids` (None when the column does not exist)."""
    if CONFUSING_COLUMN not in store.columns():
        return None
    old = store.read(["pair_id", CONFUSING_COLUMN])
    pos = {pid: i for i, pid in enumerate(old.column("pair_id").to_pylist())}
    take = pa.array([pos.get(pid) for pid in pair_ids], pa.int64())
    return old.column(CONFUSING_COLUMN).combine_chunks().take(take)


def _adjacency(n: int, edges: list[tuple[int, int]] | None, ids: list[str]) -> pa.Array | None:
    """Per pair, the ids of its partners along `edges` (both directions), sorted by row."""
    if edges is None:
        return None
    if not edges:
        return pa.array([[] for _ in range(n)], pa.list_(pa.string()))
    e = np.asarray(edges, dtype=np.int64)
    src = np.r_[e[:, 0], e[:, 1]]
    dst = np.r_[e[:, 1], e[:, 0]]
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    offsets = np.r_[0, np.cumsum(np.bincount(src, minlength=n))].astype(np.int32)
    values = pa.array(ids).take(pa.array(dst))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _finding_rows(findings: list[dict[str, Any]], run_id: str, version: int) -> pa.Table:
    created = now_utc()
    rows = [
        {
            "finding_id": _finding_id(f["kind"], f.get("pair_id"), f.get("other_pair_id"), f.get("cluster")),
            "kind": f["kind"],
            "pair_id": f.get("pair_id"),
            "other_pair_id": f.get("other_pair_id"),
            "cluster": f.get("cluster"),
            "score": float(f.get("score") or 0.0),
            "detail": json.dumps(f.get("detail") or {}, sort_keys=True, default=_json_default),
            "run_id": run_id,
            "pairs_version": version,
            "created_at": created,
        }
        for f in findings
    ]
    return pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA)


def _finding_id(*parts: Any) -> str:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=12).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "to_json"):
        return value.to_json()
    return str(value)
