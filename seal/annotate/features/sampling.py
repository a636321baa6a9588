"""Which pairs a label run covers: all of them, or a seeded sample that depends only on the pair ids."""

from __future__ import annotations

import hashlib

import pyarrow as pa


def sample_pair_ids(pair_ids: pa.Array | pa.ChunkedArray, n: int | None, seed: int = 0) -> pa.Array:
    """A seeded sample of n pair ids that depends only on the ids (a larger n extends a smaller one)."""
    ids = pair_ids.to_pylist()
    if n is None or n >= len(ids):
        return pa.array(ids, pa.string())
    ranks = [hashlib.blake2b(f"{seed}\x1f{p}".encode(), digest_size=8).digest() for p in ids]
    order = sorted(range(len(ids)), key=ranks.__getitem__)[:n]
    return pa.array([ids[i] for i in sorted(order)], pa.string())
