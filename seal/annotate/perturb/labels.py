"""Labels of variant texts: `variant_texts` (what a labeler sees), `write_variant_labels` into
``vfeatures_<name>__<set>`` (stage ``vlabel``), `label_variants` with any label function and
`label_variants_heuristics` with the heuristics labeler."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from seal.annotate.perturb.reading import messages, read_pairs
from seal.catalog.perturbations import (
    FAILED,
    UNCHANGED,
    UP_TO_DATE,
    _latest_run,
    variants_column,
    variants_key,
    vfeatures_column,
)
from seal.errors import SealError, StoreError
from seal.recipe import Recipe
from seal.store import RunRecord, Store, now_utc


@dataclass(frozen=True)
class VariantText:
    """A variant as a labeler sees it: the conversation before the final response, and that response."""

    pair_id: str
    side: str
    context: tuple[dict[str, str], ...]
    response: str
    similarity: float | None
    below_min_similarity: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.pair_id, self.side)


def variant_texts(store: Store, name: str, include_unchanged: bool = True) -> list[VariantText]:
    """The texts of perturbation `name` to label: one per usable variant (failed ones left out), with the
    context the RM saw (the rewritten one for target conversation, else the pair's original context)."""
    vcol = variants_column(name)
    if vcol not in store.columns():
        raise StoreError(f"no variants `{name}`", hint="run `seal perturb` first")
    out = []
    for row in read_pairs(store, ["pair_id", "context", vcol]).to_pylist():
        for v in row[vcol] or []:
            if v["status"] == FAILED or (v["status"] == UNCHANGED and not include_unchanged):
                continue
            context = v["context"] if v["context"] is not None else row["context"]
            out.append(
                VariantText(
                    row["pair_id"],
                    v["side"],
                    messages(context),
                    v["text"],
                    v["similarity"],
                    bool(v["below_min_similarity"]),
                )
            )
    return out


def vlabel_recipe(store: Store, name: str, feature_set: Any, labeler: Mapping[str, Any] | None = None) -> Recipe:
    """What determines the labels of the variants: the variants (recipe and content), the feature set, the labeler."""
    vrun = _latest_run(store, "perturb", name)
    if vrun is None:
        raise StoreError(f"no variants `{name}`", hint="run `seal perturb` first")
    return Recipe(
        stage="vlabel",
        name=f"{name}__{feature_set.name}",
        params={
            "perturbation": name,
            "variants": variants_key(vrun),
            "feature_set": feature_set.to_dict(),
            "labeler": dict(labeler or {}),
        },
    )


def write_variant_labels(
    store: Store,
    name: str,
    feature_set: Any,
    labels: Mapping[tuple[str, str], Mapping[str, Any]],
    *,
    recipe_params: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Store labels of variant texts in ``vfeatures_<name>__<set>`` (the type of ``features_<set>``).

    `labels` maps (pair_id, side) to that variant's {feature: value}; values are checked by the feature set
    (`FeatureSet.check`). Labels already in the column for other variants are kept (same recipe), so a labeler
    can write in batches. The write is recorded in `runs` (stage ``vlabel``, name ``<name>__<set>``).
    """
    started = now_utc()
    column = vfeatures_column(name, feature_set.name)
    recipe = vlabel_recipe(store, name, feature_set, recipe_params)
    fp = recipe.fingerprint()
    merged: dict[str, dict[str, dict[str, Any]]] = {}
    last = _latest_run(store, "vlabel", recipe.name)
    if last is not None and last["fingerprint"] == fp and column in store.columns():
        tab = read_pairs(store, ["pair_id", column])
        for pid, value in zip(tab.column("pair_id").to_pylist(), tab.column(column).to_pylist(), strict=True):
            if value is not None:
                merged[pid] = value
    known = {(t.pair_id, t.side) for t in variant_texts(store, name)}
    unknown = [k for k in labels if tuple(k) not in known]
    if unknown:
        raise SealError(f"{len(unknown)} label key(s) are not variants of `{name}`, e.g. {unknown[0]}")
    from seal.catalog.featuresets import InvalidLabel

    names = set(feature_set.names())
    for (pid, side), values in labels.items():
        unknown = sorted(set(values) - names)
        if unknown:
            raise SealError(f"labels for the {side} variant of pair {pid} have unknown keys: {', '.join(unknown)}")
        checked = {}
        for f in feature_set.features:
            value = values.get(f.name)
            try:  # a missing value (None) stays null: the analysis drops that pair
                checked[f.name] = None if value is None else f.check(value)
            except InvalidLabel as err:
                raise SealError(f"invalid labels for the {side} variant of pair {pid}: {err}") from None
        row = merged.setdefault(pid, {f: {"chosen": None, "rejected": None} for f in feature_set.names()})
        for feature, value in checked.items():
            row[feature] = dict(row.get(feature) or {"chosen": None, "rejected": None})
            row[feature][side] = value
    ids = sorted(merged)
    values = pa.table(
        {
            "pair_id": pa.array(ids, pa.string()),
            column: pa.array([merged[i] for i in ids], feature_set.arrow_type()),
        }
    )
    record = RunRecord.finished("vlabel", recipe.name, recipe, provenance, rows_written=len(ids), started_at=started)
    version = store.write_column(column, values, record)
    return {
        "column": column,
        "pairs": len(ids),
        "labels": len(labels),
        "run_id": record.run_id,
        "pairs_version": version,
    }


def label_variants(
    store: Store,
    name: str,
    feature_set: Any,
    label_fn: Callable[[Sequence[VariantText]], Sequence[Mapping[str, Any]]],
    *,
    recipe_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Label every variant of `name` with `label_fn` (texts -> one {feature: value} per text) and store them."""
    texts = variant_texts(store, name)
    labels = label_fn(texts)
    if len(labels) != len(texts):
        raise SealError(f"the labeler returned {len(labels)} label sets for {len(texts)} texts")
    return write_variant_labels(
        store,
        name,
        feature_set,
        {t.key: lab for t, lab in zip(texts, labels, strict=True)},
        recipe_params=recipe_params,
    )


# -- the heuristics labeler -----------------------------------------------------------------------------
def _heuristic_set(feature_set: str | Any) -> tuple[Any, dict[str, Any]]:
    """(FeatureSet, the vlabel recipe params of the heuristics labeler for it)."""
    from seal.annotate.features.heuristics import heuristic_recipe
    from seal.catalog.featuresets import FeatureSet, load_feature_set

    fs = feature_set if isinstance(feature_set, FeatureSet) else load_feature_set(str(feature_set))
    return fs, {"labeler": "heuristics", "heuristics": heuristic_recipe(fs)}


def heuristic_labels_status(store: Store, name: str, feature_set: str | Any) -> dict[str, Any] | None:
    """The report of the heuristic labels of the variants of `name` when they are current (same variants, same
    feature set and heuristics), else None."""
    fs, params = _heuristic_set(feature_set)
    if _latest_run(store, "perturb", name) is None:
        return None
    recipe = vlabel_recipe(store, name, fs, params)
    last = _latest_run(store, "vlabel", recipe.name)
    column = vfeatures_column(name, fs.name)
    if last is not None and last["fingerprint"] == recipe.fingerprint() and column in store.columns():
        return {"column": column, "status": UP_TO_DATE, "pairs": last["rows_written"], "run_id": last["run_id"]}
    return None


def label_variants_heuristics(store: Store, name: str, feature_set: str | Any) -> dict[str, Any]:
    """Label the variants of `name` with the heuristics labeler (a feature set whose features are heuristics,
    e.g. the shipped `heuristics` set), into ``vfeatures_<name>__<set>``."""
    from seal.annotate.features.heuristics import HeuristicLabeler

    fs, params = _heuristic_set(feature_set)

    def label(texts: Sequence[VariantText]) -> list[dict[str, Any]]:
        with HeuristicLabeler(fs) as labeler:
            scope = None
            if labeler.needs_context:
                scope = [_scope_text(t.context, t.response) for t in texts]
                scope = pa.array(scope, pa.large_string())
            values = labeler.label_texts([t.response for t in texts], scope)
        out = []
        for i in range(len(texts)):
            row: dict[str, Any] = {}
            for f in fs.features:
                v = values[f.name][i]
                if f.type == "number":
                    row[f.name] = float(v) if np.isfinite(v) else None
                else:
                    row[f.name] = bool(v)
            out.append(row)
        return out

    current = heuristic_labels_status(store, name, fs)
    if current is not None:
        return current
    return {**label_variants(store, name, fs, label, recipe_params=params), "status": "done"}


def _scope_text(context: Sequence[Mapping[str, str]], response: str) -> str:
    """The whole conversation as the heuristics labeler reads it for conversation-scope features."""
    parts = [f"{m['role']}: {m['content']}" for m in context]
    return "\n\n".join(parts) + ("\n\nassistant: " if parts else "") + response
