"""The pairs as the confusing-entries analysis reads them (seal.analysis.confusing): texts, the content
embeddings where present, and the score and feature columns of the cluster ranking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.catalog.embeddings import CONTEXT_TEXT, TEXT_FIELDS, context_texts, emb_column, vector_matrix
from seal.store import Store

SNIPPET = 80


def squash(text: str | None) -> str:
    """`text` with every run of whitespace collapsed to one space."""
    return " ".join((text or "").split())


def _snip(text: str | None, width: int = SNIPPET) -> str:
    text = squash(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _last_user(context: list[dict[str, str]] | None) -> str:
    for m in reversed(context or []):
        if m.get("role") == "user":
            return m.get("content") or ""
    return ""


@dataclass
class ConfusingData:
    ids: list[str]
    datasets: list[str]
    contexts: list[Any]
    context_text: list[str]
    chosen: list[str]
    rejected: list[str]
    mats: dict[str, np.ndarray]
    embedded: np.ndarray  # bool per pair: all three text embeddings present
    table: pa.Table  # pair_id + score/features columns


def load_confusing_data(store: Store, need_embeddings: bool) -> ConfusingData:
    """The texts of every pair (and their embeddings when `need_embeddings` and present), with the score
    and feature columns the cluster ranking reads."""
    schema = store.schema()
    names = schema.names
    scores = [n for n in names if n.startswith("score_") and pa.types.is_struct(schema.field(n).type)]
    feats = [n for n in names if n.startswith("features_") and pa.types.is_struct(schema.field(n).type)]
    cols = ["pair_id", "dataset", "context", "chosen", "rejected", *scores, *feats]
    have_emb = all(emb_column(f) in names for f in TEXT_FIELDS)
    if need_embeddings and have_emb:
        cols += [emb_column(f) for f in TEXT_FIELDS]
    if CONTEXT_TEXT in names:
        cols.append(CONTEXT_TEXT)
    tbl = store.read(cols)
    n = tbl.num_rows
    if CONTEXT_TEXT in names:
        ctx_arr = tbl.column(CONTEXT_TEXT).combine_chunks()
        if ctx_arr.null_count:
            ctx_arr = pc.if_else(pc.is_valid(ctx_arr), ctx_arr, context_texts(tbl.column("context")))
    else:
        ctx_arr = context_texts(tbl.column("context"))
    mats: dict[str, np.ndarray] = {}
    embedded = np.zeros(n, dtype=bool)
    if need_embeddings and have_emb:
        embedded[:] = True
        for f in TEXT_FIELDS:
            mat, valid = vector_matrix(tbl.column(emb_column(f)))
            mats[f] = mat
            embedded &= valid
    return ConfusingData(
        ids=tbl.column("pair_id").to_pylist(),
        datasets=tbl.column("dataset").to_pylist(),
        contexts=tbl.column("context"),  # arrow; converted lazily for snippets
        context_text=ctx_arr.to_pylist(),
        chosen=[t or "" for t in tbl.column("chosen").to_pylist()],
        rejected=[t or "" for t in tbl.column("rejected").to_pylist()],
        mats=mats,
        embedded=embedded,
        table=tbl.select(["pair_id", *scores, *feats]),
    )


def snippet(data: ConfusingData, i: int) -> dict[str, str]:
    """Short context (last user turn), chosen and rejected texts of pair `i`."""
    ctx = data.contexts[i].as_py() if hasattr(data.contexts, "__getitem__") else None
    return {"context": _snip(_last_user(ctx)), "chosen": _snip(data.chosen[i]), "rejected": _snip(data.rejected[i])}
