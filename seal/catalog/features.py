"""Labelled feature sets: the ``features_<set>`` column names and the sets a store holds, as their label runs
defined them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seal.catalog.featuresets import FEATURES_PREFIX, Feature, FeatureSet
from seal.store import Store

LABEL_STAGE = "label"


def label_column(name: str) -> str:
    return FEATURES_PREFIX + name


# -- reading feature sets back -----------------------------------------------------------------------
def feature_set_from_dict(document: Mapping[str, Any]) -> FeatureSet:
    """The inverse of `FeatureSet.to_dict` (as stored in label runs)."""
    features = tuple(Feature.from_dict(f) for f in document["features"])
    return FeatureSet(name=document["name"], features=features, version=document.get("version", 1))


def stored_feature_sets(store: Store) -> dict[str, FeatureSet]:
    """Feature sets with a ``features_<set>`` column and a recorded label run, as that run defined them."""
    if not store.exists():
        return {}
    columns = set(store.columns())
    latest: dict[str, dict[str, Any]] = {}
    for run in store.runs(LABEL_STAGE):
        latest[run["name"]] = run
    out = {}
    for name, run in sorted(latest.items()):
        definition = run["provenance"].get("feature_set")
        if label_column(name) in columns and definition:
            out[name] = feature_set_from_dict(definition)
    return out
