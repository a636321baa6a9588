"""The per-batch work of the stages, as picklable factories that the Ray engine ships to its actors.

Each class holds the same engine object the local path uses (a `RewardModel`, a `TextEncoder`, a labeler
factory) and, when called, loads it once and returns a function from an Arrow batch to an Arrow batch of
results keyed by pair id (or text key). The local path runs the same engines in-process; these functions
compute what its loops compute, batch for batch, so a stage gives the same values on either engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from seal.catalog.embeddings import vectors_array
from seal.catalog.models import SCORE_TYPE


def on_this_node(engine: Any) -> Any:
    """An engine built on the driver, placed on the node it now runs on: `device="auto"` is resolved again
    (the driver may have no GPU while the actor has one)."""
    if getattr(engine, "device_request", None) == "auto":
        from seal.engines.device import resolve_device

        engine.device = resolve_device("auto")
    return engine


def score_schema(column: str) -> pa.Schema:
    """The rows of the score checkpoint: pair id, score struct, fingerprint."""
    return pa.schema(
        [pa.field("pair_id", pa.string()), pa.field(column, SCORE_TYPE), pa.field("fingerprint", pa.string())]
    )


def score_rows(
    rm: Any,
    rows: pa.Table,
    column: str,
    fingerprint: str,
    batch_size: Any,
    progress: Callable[[int], Any] | None = None,
) -> pa.Table:
    """Score both responses of `rows` (pair_id, context, chosen, rejected) with `rm`: the checkpoint rows."""
    contexts = rows.column("context").to_pylist()
    chosen = rows.column("chosen").to_pylist()
    rejected = rows.column("rejected").to_pylist()
    items = [(ctx or [], text or "") for ctx, text in zip(contexts + contexts, chosen + rejected, strict=True)]
    values = rm.score(items, batch_size=batch_size, progress=progress)
    n = rows.num_rows
    scores = pa.StructArray.from_arrays(
        [pa.array(values[:n], pa.float64()), pa.array(values[n:], pa.float64())], fields=list(SCORE_TYPE)
    )
    fingerprints = pa.array([fingerprint] * n, pa.string())
    return pa.Table.from_arrays([rows.column("pair_id"), scores, fingerprints], schema=score_schema(column))


@dataclass
class ScoreBatches:
    """Ray factory: a reward model scoring batches of pairs into checkpoint rows."""

    rm: Any
    column: str
    fingerprint: str
    batch_size: Any

    def __call__(self) -> Callable[[pa.Table], pa.Table]:
        on_this_node(self.rm).load()
        return self.score

    def score(self, rows: pa.Table) -> pa.Table:
        return score_rows(self.rm, rows, self.column, self.fingerprint, self.batch_size)


@dataclass
class EncodeBatches:
    """Ray factory: a text encoder turning (key, side, text) rows into (key, vector) rows."""

    encoder: Any

    def __call__(self) -> Callable[[pa.Table], pa.Table]:
        on_this_node(self.encoder).load()
        return self.encode

    def encode(self, rows: pa.Table) -> pa.Table:
        keys = rows.column("key").to_pylist()
        sides = rows.column("side").to_pylist()
        texts = rows.column("text").to_pylist()
        mat = np.zeros((len(keys), self.encoder.dim), dtype=np.float32)
        by_side: dict[str, list[int]] = {}
        for j, side in enumerate(sides):
            by_side.setdefault(side, []).append(j)
        for side, idx in by_side.items():
            mat[idx] = self.encoder.encode([texts[j] for j in idx], truncation=side)
        return pa.table({"key": pa.array(keys, pa.string()), "vector": vectors_array(mat)})


@dataclass
class LabelBatches:
    """Ray factory: a labeler (built by `make_labeler`, entered when it is a context manager) labelling pairs."""

    make_labeler: Callable[[], Any]

    def __call__(self) -> Callable[[pa.Table], pa.Table]:
        labeler = self.make_labeler()
        if hasattr(labeler, "__enter__"):
            labeler = labeler.__enter__()
        self.labeler = labeler
        return self.label

    def label(self, rows: pa.Table) -> pa.Table:
        return self.labeler.label_pairs(rows)


@dataclass
class RescoreBatches:
    """Ray factory: a reward model scoring (index, messages as JSON, text) items into (index, score) rows."""

    load_rm: Callable[[], Any]
    batch_size: Any

    def __call__(self) -> Callable[[pa.Table], pa.Table]:
        self.rm = on_this_node(self.load_rm())
        return self.score

    def score(self, rows: pa.Table) -> pa.Table:
        from seal.engines.scoring import score_texts

        items = [
            (json.loads(m), t)
            for m, t in zip(rows.column("messages").to_pylist(), rows.column("text").to_pylist(), strict=True)
        ]
        out = score_texts(self.rm, items, batch_size=self.batch_size)
        return pa.table({"index": rows.column("index"), "score": pa.array(np.asarray(out, np.float64))})
