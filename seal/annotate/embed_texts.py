"""The texts of the embed stage and their vectors, resumably.

For the pairs to embed, each text field's vectors come from, in order: its column when that column holds this
recipe (e.g. ``emb_chosen`` reused to make ``emb_pair``), the checkpoint of an interrupted run, the encoder.
Texts are deduplicated before encoding (identical contexts and responses are encoded once, also across fields
with the same truncation side) and checkpointed as they are encoded, keyed by a hash of the truncation side and
text, in the work table ``work__emb_texts`` with the encoder's fingerprint: a killed run re-encodes only what is
not there, and a checkpoint made with another recipe is dropped, never mixed in.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.catalog.embeddings import context_texts, emb_column, vector_matrix, vectors_array
from seal.engines.encoder import TextEncoder
from seal.progress import progress_bar
from seal.store import Store

TRUNCATION = {"context": "left", "chosen": "right", "rejected": "right"}
WORK_COLUMN = "emb_texts"  # work table work__emb_texts: (key, fingerprint, vector)
COMMIT_TEXTS = 4096
COMMIT_SECONDS = 30.0

AfterCommit = Callable[[int, int], None]  # (commits so far, texts committed so far)


def text_key(side: str, text: str) -> str:
    """The checkpoint key of a text encoded with truncation `side`."""
    return hashlib.blake2b(f"{side}\x1f{text}".encode(), digest_size=16).hexdigest()


def work_schema(dim: int) -> pa.Schema:
    """The rows of the checkpoint: text key, encoder fingerprint, vector."""
    return pa.schema(
        [
            pa.field("key", pa.string()),
            pa.field("fingerprint", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
    )


@dataclass
class TextCounts:
    """How the texts of one run were obtained."""

    needed: int = 0  # texts of the pairs to embed without a stored vector (before deduplication)
    unique: int = 0
    reused: int = 0  # taken from a fresh stored column
    resumed: int = 0  # encoded by an interrupted run
    commits: int = 0  # checkpoint commits


class TextVectors:
    """Vectors of the text fields of some pairs, from fresh columns, the checkpoint or the encoder."""

    def __init__(
        self,
        store: Store,
        encoder: TextEncoder,
        *,
        commit_texts: int = COMMIT_TEXTS,
        commit_seconds: float = COMMIT_SECONDS,
        after_commit: AfterCommit | None = None,
        runner: Any = None,
    ):
        """`runner`: a `seal.distributed` runner to encode on (Ray actors), or None to encode here."""
        self.store = store
        self.runner = runner
        self.encoder = encoder
        self.commit_texts = max(1, int(commit_texts))
        self.commit_seconds = float(commit_seconds)
        self.after_commit = after_commit
        self.counts = TextCounts()
        self.encode_wall = 0.0  # seconds spent encoding and checkpointing (wall clock)

    def vectors(
        self, rows: pa.Table, fields: Sequence[str], fresh: Mapping[str, bool], show_progress: bool = False
    ) -> dict[str, np.ndarray]:
        """{field: n × d matrix} for the `rows` (pair_id, context, chosen, rejected, and ``emb_<field>`` of the
        fresh fields). Stored vectors of fresh fields are kept; every other text is resumed or encoded."""
        n = rows.num_rows
        texts = {
            "context": context_texts(rows.column("context")).to_pylist(),
            "chosen": [t or "" for t in rows.column("chosen").to_pylist()],
            "rejected": [t or "" for t in rows.column("rejected").to_pylist()],
        }
        stored: dict[str, np.ndarray | None] = {f: None for f in fields}
        known: dict[str, np.ndarray] = {}
        for f in fields:
            if fresh.get(f):
                mat, valid = vector_matrix(rows.column(emb_column(f)))
                stored[f] = np.array(mat)  # writable: missing rows are filled in below
                known[f] = valid
            else:
                known[f] = np.zeros(n, dtype=bool)
        self.counts.reused = int(sum(int(k.sum()) for k in known.values()))
        # which unique texts must be encoded
        slots: dict[str, list[tuple[str, int]]] = {}
        first_text: dict[str, tuple[str, str]] = {}
        for f in fields:
            side = TRUNCATION[f]
            for i in np.flatnonzero(~known[f]).tolist():
                text = texts[f][i]
                key = text_key(side, text)
                if key not in slots:
                    slots[key] = []
                    first_text[key] = (side, text)
                slots[key].append((f, i))
        self.counts.needed = sum(len(v) for v in slots.values())
        self.counts.unique = len(slots)
        fingerprint = self.encoder.fingerprint()
        found = self._resume(fingerprint, set(slots))
        self.counts.resumed = len(found)
        pending = [k for k in slots if k not in found]
        t_enc = time.perf_counter()
        if pending:
            found.update(self._encode_pending(pending, first_text, fingerprint, show_progress))
        self.encode_wall += time.perf_counter() - t_enc
        if found:
            dim = len(next(iter(found.values())))
        elif any(v is not None for v in stored.values()):
            dim = next(v for v in stored.values() if v is not None).shape[1]
        else:
            dim = self.encoder.dim
        out = {f: stored[f] if stored[f] is not None else np.zeros((n, dim), dtype=np.float32) for f in fields}
        for key, targets in slots.items():
            vec = found[key]
            for f, i in targets:
                out[f][i] = vec
        return out

    def _resume(self, fingerprint: str, wanted: set[str]) -> dict[str, np.ndarray]:
        table = self.store.work_read(WORK_COLUMN, ["key", "fingerprint", "vector"])
        if table is None or table.num_rows == 0:
            return {}
        fps = table.column("fingerprint").combine_chunks()
        if pc.any(pc.not_equal(fps, fingerprint)).as_py():  # another recipe's texts: never mixed in
            self.store.drop_work_table(WORK_COLUMN)
            return {}
        keys = table.column("key").to_pylist()
        mat, _ = vector_matrix(table.column("vector"))
        return {k: mat[i] for i, k in enumerate(keys) if k in wanted}

    def _encode_pending(
        self, pending: list[str], first_text: dict[str, tuple[str, str]], fingerprint: str, show_progress: bool
    ) -> dict[str, np.ndarray]:
        if self.runner is not None:  # the actors load the encoder; the driver never does
            return self._encode_on_ray(pending, first_text, fingerprint, min(self.commit_texts, 4096))
        enc = self.encoder
        enc.load()
        schema = work_schema(enc.dim)
        found: dict[str, np.ndarray] = {}
        # Globally by truncation side then character length (a cheap proxy), so that chunks hold texts of
        # similar length; inside a chunk the encoder sorts by exact token length.
        pending.sort(key=lambda k: (first_text[k][0], len(first_text[k][1])))
        buffer: list[pa.Table] = []
        buffered = 0
        committed = 0
        last_commit = time.perf_counter()

        def commit() -> None:
            nonlocal buffer, buffered, last_commit, committed
            if not buffered:
                return
            self.store.work_append(WORK_COLUMN, pa.concat_tables(buffer), schema)
            self.counts.commits += 1
            committed += buffered
            buffer, buffered, last_commit = [], 0, time.perf_counter()
            if self.after_commit is not None:
                self.after_commit(self.counts.commits, committed)

        chunk = min(self.commit_texts, 4096)
        with progress_bar(show_progress, total=len(pending), desc="Embedding", unit="texts") as bar:
            for start in range(0, len(pending), chunk):
                keys = pending[start : start + chunk]
                by_side: dict[str, list[int]] = {}
                for j, k in enumerate(keys):
                    by_side.setdefault(first_text[k][0], []).append(j)
                mat = np.zeros((len(keys), enc.dim), dtype=np.float32)
                for side, idx in by_side.items():
                    mat[idx] = enc.encode([first_text[keys[j]][1] for j in idx], truncation=side, progress=bar.update)
                for j, k in enumerate(keys):
                    found[k] = mat[j]
                buffer.append(
                    pa.Table.from_arrays(
                        [pa.array(keys, pa.string()), pa.array([fingerprint] * len(keys)), vectors_array(mat)],
                        schema=schema,
                    )
                )
                buffered += len(keys)
                if buffered >= self.commit_texts or time.perf_counter() - last_commit >= self.commit_seconds:
                    commit()
            commit()
        return found

    def _encode_on_ray(
        self,
        pending: list[str],
        first_text: dict[str, tuple[str, str]],
        fingerprint: str,
        chunk: int,
    ) -> dict[str, np.ndarray]:
        """Encode the pending texts on Ray actors (each holding this encoder), checkpointing each batch."""
        from seal.annotate.batch_fns import EncodeBatches

        blocks = []
        for start in range(0, len(pending), chunk):
            keys = pending[start : start + chunk]
            blocks.append(
                pa.table(
                    {
                        "key": pa.array(keys, pa.string()),
                        "side": pa.array([first_text[k][0] for k in keys], pa.string()),
                        "text": pa.array([first_text[k][1] for k in keys], pa.string()),
                    }
                )
            )
        found: dict[str, np.ndarray] = {}
        committed = 0
        dataset = self.runner.from_arrow(blocks)
        use_gpu = getattr(self.encoder, "device_request", "auto") in ("auto", "cuda")
        for out in self.runner.map(EncodeBatches(self.encoder), dataset, batch_rows=chunk, use_gpu=use_gpu):
            schema = work_schema(out.schema.field("vector").type.list_size)
            mat, _ = vector_matrix(out.column("vector"))
            keys = out.column("key").to_pylist()
            for j, k in enumerate(keys):
                found[k] = mat[j]
            rows = pa.Table.from_arrays(
                [out.column("key"), pa.array([fingerprint] * len(keys), pa.string()), out.column("vector")],
                schema=schema,
            )
            self.store.work_append(WORK_COLUMN, rows, schema)
            self.counts.commits += 1
            committed += len(keys)
            if self.after_commit is not None:
                self.after_commit(self.counts.commits, committed)
        return found
