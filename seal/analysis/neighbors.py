"""All pairs of rows whose unit vectors have cosine similarity ≥ a threshold, without a quadratic loop.

Below `exact_below` rows: exact, with blocked matrix products (block × n at a time, upper triangle only).
Above: an inverted-file search: k-means centroids (trained on a sample) partition the rows; each row is
compared, with one matrix product per partition, against the members of its `nprobe` nearest partitions.
Pairs whose similarity clears a high threshold (≥ 0.8) share a partition or a probed neighbour partition
with overwhelming probability; the benchmark (benchmarks/confusing.py) measures recall against exact.

Partitions hold about `ROWS_PER_LIST` rows, so their number grows with n; finding each row's nearest
centroids among all of them, and training them, would then grow with n² (about 15 TFLOP at 1.6M rows).
Above `TWO_LEVEL_ABOVE` partitions the centroids sit under a coarse level of about √lists cells: each cell's
partitions are trained on the sample rows of that cell, and a row's `nprobe` partitions are the nearest
among those of its `COARSE_PROBES` nearest cells (benchmarks/scale.py times it up to 1.6M rows).

Returns edges (i, j, similarity) with i < j, each once, at most `max_neighbors` per row i (the most
similar kept), sorted by i then decreasing similarity.
"""

from __future__ import annotations

import math

import numpy as np

EXACT_BELOW = 20_000
BLOCK_ROWS = 1024
NPROBE = 6
ROWS_PER_LIST = 256
TRAIN_ITERATIONS = 8
TRAIN_SAMPLE_PER_LIST = 32
TWO_LEVEL_ABOVE = 1024  # partitions (about 262,000 rows): above, a coarse level finds each row's partitions
# coarse cells whose partitions a row considers: at 400,000 rows (1,562 partitions) 8 found exactly the edges the
# one-level search finds (4 missed 0.25 %), in 12 % less CPU; at 1.6M rows the one-level probes alone are ~8 TFLOP
COARSE_PROBES = 8


def _cap(i: np.ndarray, j: np.ndarray, s: np.ndarray, max_neighbors: int | None) -> tuple[np.ndarray, ...]:
    """Sort by (i, -s) and keep at most `max_neighbors` edges per i."""
    order = np.lexsort((-s, i))
    i, j, s = i[order], j[order], s[order]
    if max_neighbors is not None and len(i):
        starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
        counts = np.diff(np.r_[starts, len(i)])
        rank = np.arange(len(i)) - np.repeat(starts, counts)
        keep = rank < max_neighbors
        i, j, s = i[keep], j[keep], s[keep]
    return i, j, s


def _exact(x: np.ndarray, threshold: float, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(x)
    out_i, out_j, out_s = [], [], []
    for start in range(0, n, block):
        end = min(n, start + block)
        # only columns after the block's first row (upper triangle): j > i
        sims = x[start:end] @ x[start:].T
        rows, cols = np.nonzero(sims >= threshold)
        cols_global = cols + start
        rows_global = rows + start
        keep = cols_global > rows_global
        out_i.append(rows_global[keep])
        out_j.append(cols_global[keep])
        out_s.append(sims[rows[keep], cols[keep]])
    if not out_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s)


def train_centroids(x: np.ndarray, nlist: int, seed: int = 0, iterations: int = TRAIN_ITERATIONS) -> np.ndarray:
    """Spherical k-means (cosine) on a sample of rows; unit-norm centroids."""
    rng = np.random.default_rng(seed)
    n = len(x)
    sample = x[rng.choice(n, size=min(n, nlist * TRAIN_SAMPLE_PER_LIST), replace=False)]
    centroids = sample[rng.choice(len(sample), size=nlist, replace=False)].copy()
    for _ in range(iterations):
        assign = _top1(sample, centroids)
        order = np.argsort(assign, kind="stable")
        sorted_assign = assign[order]
        starts = np.flatnonzero(np.r_[True, sorted_assign[1:] != sorted_assign[:-1]])
        sums = sample[rng.choice(len(sample), size=nlist, replace=True)].copy()  # empty lists: re-seeded
        sums[sorted_assign[starts]] = np.add.reduceat(sample[order], starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return centroids


def _top1(x: np.ndarray, centroids: np.ndarray, block: int = 8192) -> np.ndarray:
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), block):
        out[start : start + block] = np.argmax(x[start : start + block] @ centroids.T, axis=1)
    return out


def _probes(x: np.ndarray, centroids: np.ndarray, nprobe: int, block: int = 8192) -> np.ndarray:
    """The `nprobe` nearest centroids of each row (column 0: the nearest)."""
    import torch

    n = len(x)
    nprobe = min(nprobe, len(centroids))
    out = np.empty((n, nprobe), dtype=np.int64)
    cent = torch.from_numpy(np.ascontiguousarray(centroids))
    with torch.inference_mode():
        for start in range(0, n, block):
            sims = torch.from_numpy(x[start : start + block]) @ cent.T
            out[start : start + block] = torch.topk(sims, nprobe, dim=1, sorted=True).indices.numpy()
    return out


def train_two_level(x: np.ndarray, nlist: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """About `nlist` unit centroids in cells of a coarse level of ⌈√nlist⌉ centroids: (coarse centroids,
    partition centroids ordered by cell, each cell's first partition and the end: cell c owns partitions
    bounds[c]:bounds[c + 1]). Each cell gets partitions in proportion to its share of the training sample."""
    rng = np.random.default_rng(seed)
    cells = math.isqrt(nlist - 1) + 1
    coarse = train_centroids(x, cells, seed)
    sample = x[rng.choice(len(x), size=min(len(x), nlist * TRAIN_SAMPLE_PER_LIST), replace=False)]
    cell_of = _top1(sample, coarse)
    parts, bounds = [], [0]
    for c in range(cells):
        members = sample[cell_of == c]
        k = min(len(members), max(1, round(nlist * len(members) / len(sample))))
        if k:
            parts.append(train_centroids(members, k, seed + 1 + c))
        bounds.append(bounds[-1] + k)
    return coarse, np.concatenate(parts).astype(np.float32), np.asarray(bounds)


def _probes_two_level(
    x: np.ndarray, coarse: np.ndarray, centroids: np.ndarray, bounds: np.ndarray, nprobe: int
) -> np.ndarray:
    """The `nprobe` nearest partitions of each row among the partitions of its `COARSE_PROBES` nearest cells
    (column 0: the nearest), one matrix product per cell over the rows that consider it."""
    n = len(x)
    nprobe = min(nprobe, len(centroids))
    cells = _probes(x, coarse, COARSE_PROBES)
    best_sim = np.full((n, nprobe), -np.inf, dtype=np.float32)
    best_id = np.zeros((n, nprobe), dtype=np.int64)
    flat_cells = cells.reshape(-1)
    flat_rows = np.repeat(np.arange(n), cells.shape[1])
    order = np.argsort(flat_cells, kind="stable")
    row_bounds = np.searchsorted(flat_cells[order], np.arange(len(coarse) + 1))
    for c in range(len(coarse)):
        lo, hi = bounds[c], bounds[c + 1]
        rows = flat_rows[order[row_bounds[c] : row_bounds[c + 1]]]
        if hi == lo or not len(rows):
            continue
        sims = np.concatenate([best_sim[rows], x[rows] @ centroids[lo:hi].T], axis=1)
        ids = np.concatenate([best_id[rows], np.broadcast_to(np.arange(lo, hi), (len(rows), hi - lo))], axis=1)
        keep = np.argpartition(-sims, nprobe - 1, axis=1)[:, :nprobe] if sims.shape[1] > nprobe else None
        if keep is not None:
            sims, ids = np.take_along_axis(sims, keep, axis=1), np.take_along_axis(ids, keep, axis=1)
        best_sim[rows], best_id[rows] = sims, ids
    order_in_row = np.argsort(-best_sim, axis=1, kind="stable")
    return np.take_along_axis(best_id, order_in_row, axis=1)


def _ivf(
    x: np.ndarray, threshold: float, nlist: int, nprobe: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(x)
    if nlist > TWO_LEVEL_ABOVE:
        coarse, centroids, bounds = train_two_level(x, nlist, seed)
        probes = _probes_two_level(x, coarse, centroids, bounds, nprobe)
        nlist = len(centroids)
    else:
        centroids = train_centroids(x, nlist, seed)
        probes = _probes(x, centroids, nprobe)
    primary = probes[:, 0]
    member_order = np.argsort(primary, kind="stable")
    member_bounds = np.searchsorted(primary[member_order], np.arange(nlist + 1))
    flat_lists = probes.reshape(-1)
    flat_rows = np.repeat(np.arange(n), probes.shape[1])
    query_order = np.argsort(flat_lists, kind="stable")
    query_rows = flat_rows[query_order]
    query_bounds = np.searchsorted(flat_lists[query_order], np.arange(nlist + 1))
    x_sorted = x[member_order]  # each list's members are one contiguous slice
    out_i, out_j, out_s = [], [], []
    for lst in range(nlist):
        lo, hi = member_bounds[lst], member_bounds[lst + 1]
        queries = query_rows[query_bounds[lst] : query_bounds[lst + 1]]
        if hi == lo or len(queries) == 0:
            continue
        sims = x[queries] @ x_sorted[lo:hi].T
        qi, mj = np.nonzero(sims >= threshold)
        if len(qi) == 0:
            continue
        a, b = queries[qi], member_order[lo + mj]
        keep = a != b
        a, b, s = a[keep], b[keep], sims[qi[keep], mj[keep]]
        out_i.append(np.minimum(a, b))
        out_j.append(np.maximum(a, b))
        out_s.append(s)
    if not out_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    i = np.concatenate(out_i).astype(np.int64)
    j = np.concatenate(out_j).astype(np.int64)
    s = np.concatenate(out_s)
    _, first = np.unique(i * n + j, return_index=True)  # a pair is found from both sides: keep one
    return i[first], j[first], s[first]


def similar_pairs(
    x: np.ndarray,
    threshold: float,
    *,
    max_neighbors: int | None = 32,
    exact_below: int = EXACT_BELOW,
    nlist: int | None = None,
    nprobe: int = NPROBE,
    seed: int = 0,
    block: int = BLOCK_ROWS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (i, j, cosine) with i < j and cosine ≥ threshold between the unit rows of `x`."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    if n < exact_below:
        i, j, s = _exact(x, threshold, block)
    else:
        lists = nlist or max(16, n // ROWS_PER_LIST)
        lists = min(lists, max(1, int(math.sqrt(n) * 8)), n)
        i, j, s = _ivf(x, threshold, lists, nprobe, seed)
    return _cap(i.astype(np.int64), j.astype(np.int64), s.astype(np.float32), max_neighbors)
