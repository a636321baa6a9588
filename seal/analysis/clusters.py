"""Clusters of pairs by embedding, labelled with distinguishing terms, with each RM's resistance per cluster.

- Clustering runs on the order-insensitive content embedding normalize(ê_context + ê_chosen + ê_rejected)
  (a topic: what the conversation and both answers are about, whatever the label). k-means (scikit-learn;
  MiniBatchKMeans above 20,000 pairs) with a fixed seed, or HDBSCAN (label -1 = noise; above 20,000 pairs
  it is fitted on a seeded sample of 20,000 and every other pair takes the label of its nearest sampled
  neighbour, since HDBSCAN's cost grows with the square of n).
- Terms: class-based TF-IDF (c-TF-IDF, as in BERTopic): the term counts of all pairs of a cluster form one
  document; tf = count / words in the cluster, idf = log(1 + average words per cluster / term frequency over
  all clusters). The top terms of a cluster are those it uses more than the others do.
- Resistance of an RM in a cluster: the share of its scored pairs whose chosen score is not above the
  rejected one (chosen ≤ rejected: disagreements, ties and identical responses), with a Wilson interval; the
  excess is that share minus the dataset's. Agreement (chosen > rejected) over decided pairs (no ties,
  not identical) is reported alongside, as in `seal resistance`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.analysis.stats import proportion
from seal.errors import SealError

METHODS = ("kmeans", "hdbscan")
MINIBATCH_ABOVE = 20_000
HDBSCAN_SAMPLE = 20_000  # HDBSCAN is fitted on at most this many rows (seeded); the rest join by nearest neighbour
TERMS_SAMPLE = 50_000  # pairs used for the term counts (a seeded sample above this)
TOP_TERMS = 6
EXTRA_STOP_WORDS = frozenset(
    [
        "human",
        "assistant",
        "user",
        "system",
        "don",
        "doesn",
        "didn",
        "isn",
        "aren",
        "wasn",
        "weren",
        "won",
        "wouldn",
        "shouldn",
        "couldn",
        "ve",
        "ll",
        "re",
        "im",
        "just",
        "like",
        "know",
        "think",
        "want",
        "really",
        "yes",
        "okay",
        "ok",
        "sure",
        "thanks",
        "thank",
        "good",
        "right",
        "way",
        "thing",
        "things",
        "lot",
        "make",
        "going",
        "sorry",
        "help",
        "mean",
        "said",
        "say",
        "tell",
        "does",
        "did",
    ]
)


def default_k(n: int) -> int:
    """About √(n/2) clusters, between 2 and 200."""
    return int(min(200, max(2, round(math.sqrt(n / 2))))) if n >= 4 else 1


def _hdbscan_labels(x: np.ndarray, seed: int, min_cluster_size: int | None, sample: int) -> np.ndarray:
    """HDBSCAN labels; above `sample` rows, fitted on a seeded sample and extended by nearest neighbour."""
    from sklearn.cluster import HDBSCAN

    n = len(x)
    size = min_cluster_size or max(5, min(n, sample) // 200)
    if n <= sample:
        return HDBSCAN(min_cluster_size=size, metric="euclidean", copy=True).fit_predict(x).astype(np.int32)
    from sklearn.neighbors import NearestNeighbors

    fitted = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
    labels = np.empty(n, dtype=np.int32)
    labels[fitted] = HDBSCAN(min_cluster_size=size, metric="euclidean", copy=True).fit_predict(x[fitted])
    rest = np.setdiff1d(np.arange(n), fitted, assume_unique=True)
    nearest = NearestNeighbors(n_neighbors=1).fit(x[fitted]).kneighbors(x[rest], return_distance=False)[:, 0]
    labels[rest] = labels[fitted][nearest]
    return labels


def cluster_labels(
    x: np.ndarray, method: str = "kmeans", k: int | None = None, seed: int = 0, min_cluster_size: int | None = None
) -> np.ndarray:
    """One int label per row (-1: noise, HDBSCAN only)."""
    n = len(x)
    if method not in METHODS:
        raise SealError(f"unknown clustering method `{method}`", hint=f"use one of {', '.join(METHODS)}")
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    if method == "hdbscan":
        return _hdbscan_labels(x, seed, min_cluster_size, HDBSCAN_SAMPLE)
    k = k or default_k(n)
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=np.int32)
    if n > MINIBATCH_ABOVE:
        from sklearn.cluster import MiniBatchKMeans

        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    else:
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=k, random_state=seed, n_init=3)
    return model.fit_predict(x).astype(np.int32)


def ctfidf_terms(texts: list[str], labels: np.ndarray, top: int = TOP_TERMS, seed: int = 0) -> dict[int, list[str]]:
    """The most distinguishing terms of each cluster by class-based TF-IDF."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    if len(texts) == 0:
        return {}
    idx = np.arange(len(texts))
    if len(texts) > TERMS_SAMPLE:
        idx = np.sort(np.random.default_rng(seed).choice(len(texts), TERMS_SAMPLE, replace=False))
    docs = [texts[i] for i in idx]
    labs = labels[idx]
    vec = CountVectorizer(
        stop_words=sorted(ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS),
        token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]{2,}\b",
        min_df=2 if len(docs) >= 20 else 1,
        max_df=0.5 if len(docs) >= 20 else 1.0,
        max_features=50_000,
    )
    try:
        counts = vec.fit_transform(docs)
    except ValueError:  # empty vocabulary
        return {int(c): [] for c in np.unique(labels)}
    vocab = np.asarray(vec.get_feature_names_out())
    clusters = np.unique(labs)
    from scipy import sparse

    onehot = sparse.csr_matrix(
        (np.ones(len(labs)), (np.searchsorted(clusters, labs), np.arange(len(labs)))), shape=(len(clusters), len(labs))
    )
    per_cluster = np.asarray((onehot @ counts).todense(), dtype=np.float64)  # clusters × vocab
    words = per_cluster.sum(axis=1, keepdims=True)
    tf = per_cluster / np.where(words > 0, words, 1.0)
    avg_words = float(words.mean()) if len(words) else 0.0
    freq = per_cluster.sum(axis=0)
    idf = np.log(1.0 + avg_words / np.where(freq > 0, freq, 1.0))
    scores = tf * idf
    out: dict[int, list[str]] = {}
    for row, c in enumerate(clusters.tolist()):
        order = np.argsort(-scores[row])[:top]
        out[int(c)] = [str(vocab[t]) for t in order if scores[row, t] > 0]
    for c in np.unique(labels).tolist():
        out.setdefault(int(c), [])
    return out


@dataclass
class RMStats:
    """One RM in one cluster (or the dataset)."""

    scored: int
    agree: int  # chosen > rejected (and not identical)
    resisting: int  # chosen ≤ rejected, ties and identical responses included
    resistance: float | None
    ci_low: float | None
    ci_high: float | None
    agreement: float | None  # agree / decided (decided = not tied, not identical), as in `seal resistance`
    mean_margin: float | None
    excess: float | None = None  # resistance − the dataset's resistance


@dataclass
class ClusterInfo:
    cluster: int
    size: int
    terms: list[str]
    resistance: dict[str, RMStats] = field(default_factory=dict)
    excess: float | None = None  # of the ranking RM
    features: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    confusing: dict[str, int] = field(default_factory=dict)  # near_identical / duplicates / contradictory
    rank: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rm_stats(chosen: np.ndarray, rejected: np.ndarray, identical: np.ndarray, conf: float = 0.95) -> RMStats:
    scored = np.isfinite(chosen) & np.isfinite(rejected)
    n = int(scored.sum())
    live = scored & ~identical
    agree = int(np.count_nonzero(live & (chosen > rejected)))
    disagree = int(np.count_nonzero(live & (chosen < rejected)))
    p = proportion(n - agree, n, conf)
    decided = agree + disagree
    margins = (chosen - rejected)[scored]
    return RMStats(
        scored=n,
        agree=agree,
        resisting=n - agree,
        resistance=p.share,
        ci_low=p.ci_low,
        ci_high=p.ci_high,
        agreement=(agree / decided) if decided else None,
        mean_margin=float(margins.mean()) if n else None,
    )


def score_arrays(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    col = table.column(column).combine_chunks()
    chosen = pc.struct_field(col, "chosen").to_numpy(zero_copy_only=False)
    rejected = pc.struct_field(col, "rejected").to_numpy(zero_copy_only=False)
    chosen = np.where(pc.is_valid(col).to_numpy(zero_copy_only=False), chosen, np.nan)
    return np.asarray(chosen, dtype=np.float64), np.asarray(rejected, dtype=np.float64)


def feature_means(
    table: pa.Table, columns: list[str], labels: np.ndarray
) -> dict[int, dict[str, dict[str, dict[str, float | None]]]]:
    """{cluster: {set: {feature: {chosen, rejected}}}}: means of numeric and boolean feature values."""
    out: dict[int, dict[str, dict[str, dict[str, float | None]]]] = {}
    clusters = np.unique(labels)
    for column in columns:
        col = table.column(column).combine_chunks()
        if not pa.types.is_struct(col.type):
            continue
        set_name = column.removeprefix("features_")
        for feat in col.type:
            if not pa.types.is_struct(feat.type):
                continue
            sub = pc.struct_field(col, feat.name)
            sides = {}
            for side in ("chosen", "rejected"):
                if feat.type.get_field_index(side) < 0:
                    continue
                values = pc.struct_field(sub, side)
                if pa.types.is_boolean(values.type):
                    values = pc.cast(values, pa.float64())
                if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
                    continue
                arr = np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
                sides[side] = arr
            if not sides:
                continue
            for c in clusters.tolist():
                mask = labels == c
                entry = {}
                for side, arr in sides.items():
                    vals = arr[mask]
                    vals = vals[np.isfinite(vals)]
                    entry[side] = float(vals.mean()) if len(vals) else None
                out.setdefault(int(c), {}).setdefault(set_name, {})[feat.name] = entry
    return out
