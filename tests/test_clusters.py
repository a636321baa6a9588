"""Cluster labels of pair embeddings: k-means and HDBSCAN on planted blobs, and HDBSCAN's sampled fit
for large sets (fitted on a seeded sample, the rest labelled by their nearest sampled neighbour)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from seal.analysis import clusters as cl
from seal.errors import SealError


def blobs(n_per: int = 150, k: int = 5, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 10
    truth = np.repeat(np.arange(k), n_per)
    x = centres[truth] + rng.normal(size=(k * n_per, dim)) * 0.5
    order = rng.permutation(len(x))
    return x[order].astype(np.float32), truth[order]


@pytest.mark.parametrize("method", ["kmeans", "hdbscan"])
def test_planted_blobs_are_recovered(method):
    x, truth = blobs()
    labels = cl.cluster_labels(x, method=method, k=5, seed=0)
    assert labels.dtype == np.int32 and len(labels) == len(x)
    assert adjusted_rand_score(truth, labels) >= 0.95
    assert np.array_equal(labels, cl.cluster_labels(x, method=method, k=5, seed=0))  # seeded


def test_hdbscan_on_a_sample_labels_the_rest_by_nearest_neighbour():
    x, truth = blobs(n_per=200)
    sampled = cl._hdbscan_labels(x, seed=3, min_cluster_size=None, sample=300)
    assert adjusted_rand_score(truth, sampled) >= 0.95
    full = cl._hdbscan_labels(x, seed=3, min_cluster_size=None, sample=len(x))
    assert adjusted_rand_score(full, sampled) >= 0.95
    assert np.array_equal(sampled, cl._hdbscan_labels(x, seed=3, min_cluster_size=None, sample=300))


def test_unknown_method_and_tiny_inputs():
    with pytest.raises(SealError, match="unknown clustering method"):
        cl.cluster_labels(np.zeros((3, 2)), method="dbscan")
    assert len(cl.cluster_labels(np.zeros((0, 2)))) == 0
    assert cl.cluster_labels(np.zeros((3, 2)), k=1).tolist() == [0, 0, 0]
