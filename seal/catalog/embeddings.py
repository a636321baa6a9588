"""Embedding columns: ``emb_<field>`` names, the texts they embed, the pair and content vector definitions, the
vector helpers shared by the embed stage, search and confusing entries, and the embed runs a store holds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.store import Store

STAGE = "embed"


TEXT_FIELDS = ("context", "chosen", "rejected")


FIELDS = (*TEXT_FIELDS, "pair")


EMB_PREFIX = "emb_"


CONTEXT_TEXT = "context_text"


FTS_COLUMNS = ("chosen", "rejected", CONTEXT_TEXT)


PAIR_DEFINITION = "normalize(e_context + e_chosen - e_rejected)"


CONTENT_DEFINITION = "normalize(e_context + e_chosen + e_rejected)"


NPROBES = 20


REFINE_FACTOR = 10


def emb_column(field_name: str) -> str:
    return EMB_PREFIX + field_name


# -- texts -----------------------------------------------------------------------------------------
def context_texts(context: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``<Role>: <content>`` turns joined by blank lines, one string per pair ("" for no context)."""
    lists = context.combine_chunks() if isinstance(context, pa.ChunkedArray) else context
    if len(lists) == 0:
        return pa.array([], pa.string())
    flat = lists.flatten()
    role = pc.utf8_capitalize(pc.fill_null(flat.field("role"), ""))
    turns = pc.binary_join_element_wise(role, pc.fill_null(flat.field("content"), ""), ": ")
    offsets = pc.subtract(lists.offsets, lists.offsets[0])
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, turns), "\n\n")
    return pc.if_else(pc.is_null(lists), "", pc.fill_null(joined, ""))


def vector_matrix(column: pa.ChunkedArray | pa.Array, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n × d float32 matrix, validity mask) from a fixed_size_list column (null rows are zeros)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    d = arr.type.list_size if dim is None else dim
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if arr.null_count:
        arr = pc.if_else(arr.is_valid(), arr, pa.scalar([0.0] * d, arr.type))
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(arr), d), valid


def vectors_array(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def pair_vectors(context: np.ndarray, chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """``emb_pair``: normalize(ê_context + ê_chosen − ê_rejected) (oriented: a flipped label moves it)."""
    return normalize_rows(context + chosen - rejected).astype(np.float32)


def content_vectors(context: np.ndarray, chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """normalize(ê_context + ê_chosen + ê_rejected): order-insensitive (the same for a flipped label)."""
    return normalize_rows(context + chosen + rejected).astype(np.float32)


def latest_runs(store: Store) -> dict[str, dict[str, Any]]:
    """The latest `embed` run per field."""
    latest: dict[str, dict[str, Any]] = {}
    for run in store.runs(STAGE):
        latest[run["name"]] = run
    return latest


# -- indexes --------------------------------------------------------------------------------------
def vector_columns(schema: pa.Schema) -> list[str]:
    return [
        f.name
        for f in schema
        if f.name.startswith(EMB_PREFIX)
        and pa.types.is_fixed_size_list(f.type)
        and pa.types.is_floating(f.type.value_type)
    ]
