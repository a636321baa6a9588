"""Checks of the scoring core that need a CUDA GPU, printed as one JSON object.

1. Batch-size determinism in float32 on the GPU: the same texts scored with batch sizes 1, 7 and
   auto; the max abs difference must stay <= 1e-4.
2. The out-of-memory path for real: with the process capped to a little more memory than the
   weights take, `batch_size="auto"` must hit CUDA OOM, halve its token budget until batches fit,
   and give the same scores as an uncapped run.
3. Throughput of bf16 scoring against the token budget per batch (what `auto` uses on CUDA).

Uses a randomly initialised DeBERTa-v3-large (benchmarks/score.py builds it; no download):

    python benchmarks/score_cuda_checks.py --tokenizer DIR [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import score as bench

import seal.engines.scoring.reward_model as scoring
from seal.engines.scoring import RewardModel


def timed_score(rm: RewardModel, items: list, batch_size: int | str) -> tuple[np.ndarray, float]:
    bench.synchronize(rm.device)
    t0 = time.perf_counter()
    out = rm.score(items, batch_size=batch_size)
    bench.synchronize(rm.device)
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(bench.REPO.parent / "shared" / "data"))
    parser.add_argument("--tokenizer", default=None)
    parser.add_argument("--texts", type=int, default=256, help="texts for the determinism and OOM checks")
    parser.add_argument("--sweep-pairs", type=int, default=1000)
    parser.add_argument("--budgets", default="16384,32768,65536,131072")
    parser.add_argument("--device", default="cuda", help="cpu only to dry-run this script (no OOM check)")
    args = parser.parse_args()
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device")
    bench.TOKENIZER_DIR = Path(args.tokenizer) if args.tokenizer else None
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    report: dict = {"device_name": name, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = bench.build_random_deberta_large(Path(tmp) / "rm")
        pairs = bench.load_pairs(Path(args.data), max(args.sweep_pairs, args.texts))
        items = [(p["context"], p[side]) for p in pairs for side in ("chosen", "rejected")]
        # The longest texts first, so that the checks see full 512-token batches.
        lengths = RewardModel(str(model_dir), max_length=512, device="cpu").encode(items).lengths
        long_items = [items[i] for i in np.argsort(-lengths, kind="stable")[: args.texts]]

        rm = RewardModel(str(model_dir), max_length=512, device=device, dtype="float32").load()
        rm.score(long_items[:8])
        one, t_one = timed_score(rm, long_items, 1)
        seven, _ = timed_score(rm, long_items, 7)
        auto, t_auto = timed_score(rm, long_items, "auto")
        report["determinism_fp32"] = {
            "texts": len(long_items),
            "max_tokens": int(rm.encode(long_items).lengths.max()),
            "max_abs_diff_batch1_vs_7": float(np.abs(one - seven).max()),
            "max_abs_diff_batch1_vs_auto": float(np.abs(one - auto).max()),
            "seconds_batch1": round(t_one, 3),
            "seconds_auto": round(t_auto, 3),
            "target_max": 1e-4,
        }

        if device == "cuda":
            report["oom_halving"] = oom_check(rm, long_items, auto)
        del rm
        if device == "cuda":
            torch.cuda.empty_cache()

        rm = RewardModel(str(model_dir), max_length=512, device=device, dtype="bfloat16").load()
        sweep_items = items[: 2 * args.sweep_pairs]
        rm.score(sweep_items[:64])
        sweep = []
        for budget in (int(b) for b in args.budgets.split(",")):
            scoring.AUTO_TOKEN_BUDGET[device] = budget
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            rm.stats.padded_tokens = rm.stats.tokens = rm.stats.batches = 0
            _, seconds = timed_score(rm, sweep_items, "auto")
            sweep.append(
                {
                    "token_budget": budget,
                    "pairs_per_s": round(args.sweep_pairs / seconds, 1),
                    "batches": rm.stats.batches,
                    "padding_overhead": round(rm.stats.padded_tokens / max(rm.stats.tokens, 1) - 1, 4),
                    "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                    if device == "cuda"
                    else None,
                }
            )
        report["bf16_token_budget_sweep"] = {"pairs": args.sweep_pairs, "runs": sweep}
    print(json.dumps(report))


def oom_check(rm: RewardModel, items: list, expected: np.ndarray) -> dict:
    """Score under a memory cap of the weights + 3 GiB: auto batching must survive real CUDA OOMs."""
    weights = torch.cuda.memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    cap = weights + 3 * 2**30
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(cap / total)
    rm.stats.oom_retries = 0
    try:
        capped, seconds = timed_score(rm, items, "auto")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    return {
        "memory_cap_gib": round(cap / 2**30, 2),
        "weights_gib": round(weights / 2**30, 2),
        "oom_retries": rm.stats.oom_retries,
        "max_abs_diff_vs_uncapped": float(np.abs(capped - expected).max()),
        "seconds": round(seconds, 3),
    }


if __name__ == "__main__":
    main()
