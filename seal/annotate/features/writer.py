"""Write a feature set's labels: the one path by which every labeler fills ``features_<set>``.

Labelers (heuristics, import, llm) compute labels however they like, build a table of
``pair_id`` + ``features_<set>`` (struct{<feature>: struct{chosen, rejected}}, see
`FeatureSet.arrow_type`) and hand it to `write_labels`, which checks it, materialises the column with a
column-level write, and records the run (stage ``label``, name = the set's name) in `runs`.

Helpers to build that table:

- `labels_from_records(feature_set, records)`: from per-pair dicts
  ``{"pair_id": ..., "chosen": {feature: value}, "rejected": {...}}``, each side validated with
  `FeatureSet.check`; every problem is collected and raised at once as `InvalidLabels`.
- `labels_from_arrays(feature_set, pair_ids, chosen, rejected)`: from per-feature arrays of each side
  (vectorised labelers; values are cast, not checked).

Reading back: `stored_feature_sets(store)` (the sets with a column and a recorded run, with their
roles as recorded), `latest_label_run(store, name)`, `read_labels(store, name)`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal.catalog.features import LABEL_STAGE, label_column
from seal.catalog.featuresets import FeatureSet, InvalidLabel
from seal.errors import SealError, StoreError
from seal.recipe import Recipe
from seal.store import RunRecord, Store, now_utc

MAX_LISTED_PROBLEMS = 10


class InvalidLabels(SealError):
    """Labels that do not fit their feature set; `problems` lists every one (nothing was written)."""

    def __init__(self, message: str, problems: Sequence[str], hint: str | None = None):
        listed = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        if more > 0:
            listed += f"; … and {more} more"
        super().__init__(f"{message}: {listed}" if listed else message, hint)
        self.problems = list(problems)


@dataclass(frozen=True)
class LabelWrite:
    """What `write_labels` did."""

    run_id: str
    fingerprint: str
    pairs_version: int
    rows_written: int  # labels given to this write
    labelled_pairs: int  # pairs with labels in the column afterwards (kept + written)
    kept: int  # labels of earlier runs with the same recipe that were kept
    merged: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- building label tables -------------------------------------------------------------------------
def labels_from_arrays(
    feature_set: FeatureSet,
    pair_ids: Sequence[str] | pa.Array,
    chosen: Mapping[str, Any],
    rejected: Mapping[str, Any],
) -> pa.Table:
    """(pair_id, features_<set>) from {feature: values} for each side (arrays, lists or numpy arrays)."""
    fields = []
    for f in feature_set.features:
        sides = []
        for side, values in (("chosen", chosen), ("rejected", rejected)):
            if f.name not in values:
                raise SealError(f"labels for `{f.name}` ({side}) are missing")
            sides.append(pa.array(values[f.name], type=f.arrow_type, from_pandas=True))
        fields.append(pa.StructArray.from_arrays(sides, names=["chosen", "rejected"]))
    struct = pa.StructArray.from_arrays(fields, fields=list(feature_set.arrow_type()))
    return pa.table({"pair_id": pa.array(pair_ids, pa.string()), feature_set.column: struct})


def labels_from_records(feature_set: FeatureSet, records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """(pair_id, features_<set>) from ``{"pair_id", "chosen": {...}, "rejected": {...}}`` dicts.

    Each side is validated with `FeatureSet.check` (types, allowed values, missing and unknown keys);
    a record whose value is None for ``chosen`` and ``rejected`` alike is a pair left unlabelled (null).
    Raises `InvalidLabels` listing every bad record."""
    ids: list[str] = []
    rows: list[dict[str, Any] | None] = []
    problems: list[str] = []
    for i, record in enumerate(records):
        pair_id = record.get("pair_id")
        where = f"record {i + 1} (pair_id {pair_id})"
        if not isinstance(pair_id, str) or not pair_id:
            problems.append(f"{where}: pair_id missing")
            continue
        chosen, rejected = record.get("chosen"), record.get("rejected")
        if chosen is None and rejected is None:
            ids.append(pair_id)
            rows.append(None)
            continue
        sides = {}
        for side, labels in (("chosen", chosen), ("rejected", rejected)):
            if not isinstance(labels, Mapping):
                problems.append(f"{where} {side}: expected an object of labels, got {labels!r}")
                continue
            try:
                sides[side] = feature_set.check(dict(labels))
            except InvalidLabel as err:
                problems.append(f"{where} {side}: {err}")
        if len(sides) == 2:
            ids.append(pair_id)
            rows.append(
                {
                    f.name: {"chosen": sides["chosen"][f.name], "rejected": sides["rejected"][f.name]}
                    for f in feature_set.features
                }
            )
    if problems:
        raise InvalidLabels(f"{len(problems)} invalid label record(s) for `{feature_set.name}`", problems)
    struct = pa.array(rows, type=feature_set.arrow_type())
    return pa.table({"pair_id": pa.array(ids, pa.string()), feature_set.column: struct})


# -- writing ----------------------------------------------------------------------------------------
def latest_label_run(store: Store, name: str) -> dict[str, Any] | None:
    """The most recent `label` run of feature set `name`, or None."""
    runs = [r for r in store.runs(LABEL_STAGE) if r["name"] == name]
    return runs[-1] if runs else None


def current_fingerprint(store: Store, name: str) -> str | None:
    """The recipe fingerprint of the labels now in ``features_<name>`` (None: no column or no run)."""
    if not store.exists() or label_column(name) not in store.columns():
        return None
    run = latest_label_run(store, name)
    return run["fingerprint"] if run else None


def read_labels(store: Store, name: str, non_null: bool = False) -> pa.Table:
    """(pair_id, features_<name>) for every pair (only labelled ones with `non_null`)."""
    column = label_column(name)
    if column not in store.columns():
        raise StoreError(
            f"the store has no labels for feature set `{name}`", hint="run `seal label` or `seal import-features`"
        )
    out = store.read(["pair_id", column])
    if non_null:
        out = out.filter(pc.is_valid(out.column(column)))
    return out


def write_labels(
    store: Store,
    feature_set: FeatureSet,
    labels: pa.Table,
    recipe: Recipe,
    provenance: Mapping[str, Any] | None = None,
    *,
    merge: bool | None = None,
    started_at: datetime | None = None,
) -> LabelWrite:
    """Materialise ``features_<set>`` from `labels` (pair_id + that column) and record the run.

    - `recipe` must be a ``label`` recipe named after the set: its fingerprint is what makes labels stale.
    - `merge`: keep the labels already in the column for pairs absent from `labels`. The default
      (None) merges exactly when the column's labels were recorded with the same fingerprint, so a
      resumed or extended run (more pairs, a larger sample) adds to them and a changed recipe replaces
      them. Pairs in neither get null.
    - Null label structs in `labels` mean "not labelled" (e.g. a failed LLM call): they do not overwrite
      kept labels.
    - The set's definition (types, roles, signs) goes into the run's provenance as ``feature_set``:
      analyses read roles from there.

    Raises `StoreError` for pair ids the store does not hold or a column of the wrong type; writes
    nothing then.
    """
    t0 = time.perf_counter()
    started_at = started_at or now_utc()
    column = feature_set.column
    if recipe.stage != LABEL_STAGE or recipe.name != feature_set.name:
        raise SealError(f"a label write needs a `label` recipe named `{feature_set.name}`, got {recipe.label()}")
    if labels.column_names != ["pair_id", column]:
        raise StoreError(f"labels must have columns [pair_id, {column}], got {labels.column_names}")
    try:
        labels = labels.cast(pa.schema([("pair_id", pa.string()), (column, feature_set.arrow_type())]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as err:
        raise StoreError(f"labels for `{feature_set.name}` do not have the set's types: {err}") from None
    store.require()
    known = store.pair_ids()
    unknown_mask = pc.invert(pc.is_in(labels.column("pair_id"), value_set=known))
    unknown = labels.filter(unknown_mask).column("pair_id")
    if len(unknown):
        shown = ", ".join(unknown.slice(0, 5).to_pylist())
        raise StoreError(f"{len(unknown)} label row(s) name pairs the store does not hold: {shown}")
    labels = labels.filter(pc.is_valid(labels.column(column)))
    fingerprint = recipe.fingerprint()
    if merge is None:
        merge = current_fingerprint(store, feature_set.name) == fingerprint
    kept = 0
    if merge and column in store.columns():
        existing = read_labels(store, feature_set.name, non_null=True)
        existing = existing.filter(pc.invert(pc.is_in(existing.column("pair_id"), value_set=labels.column("pair_id"))))
        try:
            existing = existing.cast(labels.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            existing = None  # the set's types changed: the new labels replace the old ones
        if existing is not None:
            kept = existing.num_rows
            labels = pa.concat_tables([existing, labels])
    record = RunRecord.finished(
        LABEL_STAGE,
        feature_set.name,
        recipe,
        {
            **dict(provenance or {}),
            "feature_set": feature_set.to_dict(),
            "labelled_pairs": labels.num_rows,
            "kept_pairs": kept,
            "prepare_seconds": round(time.perf_counter() - t0, 3),  # checking and merging, before the write
        },
        rows_written=labels.num_rows - kept,
        started_at=started_at,
    )
    version = store.write_column(column, labels, record)
    return LabelWrite(record.run_id, fingerprint, version, labels.num_rows - kept, labels.num_rows, kept, bool(merge))


def summarize_labels(feature_set: FeatureSet, labels: pa.Table) -> dict[str, dict[str, Any]]:
    """Per feature and side: labelled pairs and the mean of the numeric encoding (bool share, category
    code, number; list: mean length) — the figures METHOD.md quotes for the SEAL labels."""
    column = labels.column(feature_set.column)
    column = pa.concat_arrays(column.chunks) if isinstance(column, pa.ChunkedArray) else column
    out: dict[str, dict[str, Any]] = {}
    for f in feature_set.features:
        entry: dict[str, Any] = {"type": f.type, "role": f.role}
        for side in ("chosen", "rejected"):
            values = pc.struct_field(pc.struct_field(column, f.name), side)
            if f.type == "list":
                values = pc.list_value_length(values)
            elif f.type == "category":
                codes = pa.array([float(f.values[k]) for k in f.values])
                values = pc.take(codes, pc.index_in(values, value_set=pa.array(list(f.values))))
            values = pc.cast(values, pa.float64())
            n = len(values) - values.null_count
            mean = pc.mean(values).as_py() if n else None
            entry[side] = {"n": n, "mean": None if mean is None else round(float(mean), 6)}
        out[f.name] = entry
    return out
