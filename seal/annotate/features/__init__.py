"""Feature sets and the labelers that fill them (LLM, heuristics, imported labels)."""

from seal.catalog.featuresets import Feature, FeatureSet, load_feature_set

__all__ = ["Feature", "FeatureSet", "load_feature_set"]
