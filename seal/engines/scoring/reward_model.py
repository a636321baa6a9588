"""The reward-model scorer: lists of (context messages, response) -> one float per text.

Used by the `score` stage and by the re-scoring of perturbed variants; it knows nothing of the store. Fast
on CPU: texts are tokenised in batches (seal.engines.scoring.inputs), sorted by length into batches (little
padding), run under `torch.inference_mode()`, with no per-token Python loops. Padding is always on the right
with the model's pad token id, so positions and last-token pooling are those of an unpadded text and scores
do not depend on the batch size. Causal chat-format models may score texts that share a context over one
pass of the shared prefix (seal.engines.scoring.shared_prefix); BERT-layout encoders run their last layer
at the pooled token only (seal.engines.scoring.pooled_layer).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seal import hub
from seal.engines.device import DeviceError, resolve_device, resolve_dtype
from seal.engines.scoring.checkpoint import (
    ModelError,
    load_config,
    load_tokenizer,
    local_files_sha256,
    quiet_transformers,
    resolve_commit,
    resolve_format,
    resolve_head,
    resolve_max_length,
    resolve_pad_id,
    unreachable_error,
    warn_unpinned,
)
from seal.engines.scoring.inputs import (
    INPUT_FORMATS,
    TRANSCRIPT_RENDERER,
    TRUNCATION_SIDES,
    Encoded,
    Encoding,
    Item,
    Progress,
    encode,
)
from seal.engines.scoring.model_output import reward_values
from seal.engines.scoring.pooled_layer import last_layer_status, unwrap_last_layer, wrap_last_layer
from seal.engines.scoring.shared_prefix import (
    PrefixGroup,
    can_share,
    group_by_context,
    kv_bytes_per_token,
    pack_groups,
    score_window,
)
from seal.errors import first_line

PADDING_SIDE = "right"
# `--batch-size auto`: a token budget per batch (padded tokens), halved on CUDA out-of-memory. On CPU small
# length-sorted batches pad less and stay in cache (measured: 28% padding at 8,192 tokens, 7-9% at 2,048).
# On an H200 (DeBERTa-v3-large, bf16, 1,000 hh pairs) 32,768 scored 542 pairs/s in 5.1 GiB, against
# 444 at 16,384, 512 at 65,536 (9.5 GiB) and 485 at 131,072: larger batches only pad more.
AUTO_TOKEN_BUDGET = {"cpu": 2048, "mps": 16384, "cuda": 32768}
AUTO_MAX_BATCH = 256
# Prefix sharing by default only where a token's compute is large next to its KV cache, which shared
# prefixes are copied as. Measured on a 2-core CPU (hh-rlhf, 1.56x fewer tokens): a narrow 8-layer Llama
# (1.6k FLOP per cached byte) ran 0.76x as fast shared, a 1B-class layer shape (30k) 1.20x as fast.
# An 8B Llama-3 RM has about 120k in bf16.
SHARING_MIN_FLOP_PER_KV_BYTE = 8192
# Prefix sharing keeps the KV cache of a window of prefixes while their suffixes run: at most this much.
SHARED_KV_BYTES = {"cpu": 2**30, "mps": 2**30, "cuda": 2 * 2**30}


@dataclass
class ScoringStats:
    """Counters over every `score` call of one RewardModel (the stage reads them for provenance)."""

    texts: int = 0
    truncated: int = 0
    non_finite: int = 0
    batches: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    oom_retries: int = 0
    shared_texts: int = 0  # texts scored on top of a prefix shared with other texts
    prefix_tokens_saved: int = 0  # prefix tokens not recomputed thanks to the sharing
    tokenize_seconds: float = 0.0
    forward_seconds: float = 0.0
    load_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("tokenize_seconds", "forward_seconds", "load_seconds"):
            out[key] = round(out[key], 3)
        return out


def parse_batch_size(value: int | str | None) -> int | str:
    """A positive int or "auto"."""
    if value is None or value == "auto":
        return "auto"
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ModelError(f"bad batch size `{value}`", hint="use a positive integer or auto") from None
    if size < 1:
        raise ModelError(f"bad batch size `{value}`", hint="use a positive integer or auto")
    return size


class RewardModel:
    """A reward model ready to score texts: config and tokenizer load at once, weights on first use.

    >>> rm = RewardModel("OpenAssistant/reward-model-deberta-v3-large-v2", max_length=512)
    >>> rm.score([([{"role": "user", "content": "Hi"}], "Hello! How can I help?")])  # -> np.ndarray (1,)
    """

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        dtype: str = "auto",
        max_length: int | None = None,
        truncation: str = "left",
        input_format: str = "auto",
        head_index: int | None = None,
        trust_remote_code: bool = False,
        device: str = "auto",
        share_prefix: bool | None = None,
        pooled_last_layer: bool = True,
        compile: bool = False,
    ):
        """`share_prefix`: score texts with the same context over one pass of their common prefix
        (causal chat-format models only). None: where the model allows it and computes enough per
        byte of KV cache for the copies of cached prefixes to pay (see `SHARING_MIN_FLOP_PER_KV_BYTE`);
        True: wherever the model allows it; False: never. `pooled_last_layer`: run a BERT-layout encoder's
        last layer at the pooled first token only (see `seal.engines.scoring.pooled_layer`). `compile`: run the
        forward through `torch.compile` (dynamic shapes): a one-off compile of tens of seconds to minutes
        that pays on large runs (DeBERTa-v3-large on an H200: 1.56x after 133 s); no prefix sharing then."""
        if truncation not in TRUNCATION_SIDES:
            raise ModelError(f"unknown truncation side `{truncation}`", hint="use left or right")
        if input_format not in INPUT_FORMATS:
            raise ModelError(f"unknown input format `{input_format}`", hint="use auto, pair or chat")
        if max_length is not None and int(max_length) < 8:
            raise ModelError(f"--max-length {max_length} is too small", hint="use at least 8 tokens")
        if head_index is not None and int(head_index) < 0:
            raise ModelError(f"--head-index {head_index} must be >= 0")
        self.model_id = model
        path = Path(model).expanduser()
        self.is_local = path.is_dir()
        self.source = str(path.resolve()) if self.is_local else model
        self.revision = revision
        self.trust_remote_code = bool(trust_remote_code)
        self.truncation = truncation
        try:
            self.dtype = resolve_dtype(dtype)
            self.device_request = device
            self.device = resolve_device(device)
        except DeviceError as err:  # a reward model that cannot run as asked is a ModelError for callers
            raise ModelError(err.message, hint=err.hint) from None
        self.stats = ScoringStats()
        self._model: Any = None
        self.weights_format: str | None = None
        self.commit: str | None = None
        # Why the recipe pins no commit, or how the commit was found (provenance `revision_note`).
        self.revision_note: str | None = "a local folder has no commit: files_sha256 pins its files"
        # Why the Hub cannot be used (then only the local cache is), or None (seal.hub: one short probe).
        self.offline = hub.unreachable() if not self.is_local and hub.is_repo_id(model) else None

        t0 = time.perf_counter()
        self.config = load_config(self.source, model, self.offline, **self._hub_kwargs())
        if not self.is_local:
            self.commit, self.revision_note = resolve_commit(self.model_id, revision, self.offline)
            if self.commit is None and self.revision_note:
                warn_unpinned(self.model_id, revision, self.revision_note)
        self.files_sha256 = local_files_sha256(path) if self.is_local else None
        self.tokenizer = load_tokenizer(self.source, model, self.offline, **self._hub_kwargs())
        self.stats.load_seconds += time.perf_counter() - t0

        self.num_outputs = int(getattr(self.config, "num_labels", 1) or 1)
        self.head_index = resolve_head(self.config, model, head_index, self.trust_remote_code)
        self.input_format, self.input_format_reason = resolve_format(self.tokenizer, model, input_format)
        self.max_length, self.max_length_reason = resolve_max_length(self.config, self.tokenizer, model, max_length)
        self.pad_token_id = resolve_pad_id(self.config, self.tokenizer)
        names = list(getattr(self.tokenizer, "model_input_names", []) or [])
        self.use_token_type_ids = "token_type_ids" in names
        self.share_prefix = share_prefix
        # Decided when the weights are loaded ("on: ..." / "off: ..."); the first shared batch is then
        # checked against the plain computation and sharing is turned off on any difference.
        self.prefix_sharing = "off: not requested" if share_prefix is False else "undecided"
        self._sharing_checked = False
        self.pooled_last_layer = "off: not requested" if not pooled_last_layer else "undecided"
        self.compile = bool(compile)
        if self.compile and share_prefix is not False:
            self.share_prefix = False
            self.prefix_sharing = "off: the forward is compiled (--compile)"

    # -- loading -----------------------------------------------------------------------------------
    def _hub_kwargs(self) -> dict[str, Any]:
        return {"revision": self.commit or self.revision, "trust_remote_code": self.trust_remote_code}

    @property
    def model(self) -> Any:
        """The torch model, loaded (safetensors preferred) on first use."""
        if self._model is None:
            self.load()
        return self._model

    def load(self) -> RewardModel:
        """Load the weights now (idempotent); errors are ModelError with a hint."""
        if self._model is not None:
            return self
        import torch
        import transformers
        from transformers import AutoModelForSequenceClassification

        t0 = time.perf_counter()
        kwargs: dict[str, Any] = dict(self._hub_kwargs(), output_loading_info=True)
        dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        kwargs[dtype_key] = getattr(torch, self.dtype)
        attempts: list[bool | None]
        if self.is_local:
            has_st = any(p.suffix == ".safetensors" for p in Path(self.source).iterdir())
            attempts = [True] if has_st else [False]
        else:
            attempts = [True, False]  # safetensors first; fall back to .bin only if the repo has none
        model = info = None
        last_err: Exception | None = None
        for use_st in attempts:
            try:
                with quiet_transformers(), hub.cache_only(self.offline is not None):
                    model, info = AutoModelForSequenceClassification.from_pretrained(
                        self.source, use_safetensors=use_st, **kwargs
                    )
                self.weights_format = "safetensors" if use_st else "pytorch_bin"
                break
            except Exception as err:
                last_err = err
        if model is None:
            if self.offline is not None:
                raise unreachable_error(self.model_id, self.offline) from None
            raise ModelError(
                f"cannot load `{self.model_id}` as a sequence classifier: {first_line(last_err)}",
                hint="a reward model is an AutoModelForSequenceClassification checkpoint; "
                "custom architectures need --trust-remote-code",
            ) from None
        missing = sorted((info or {}).get("missing_keys") or [])
        if missing:
            raise ModelError(
                f"`{self.model_id}` lacks {len(missing)} weight(s) that would be random "
                f"({', '.join(missing[:4])}{', …' if len(missing) > 4 else ''}): it is not a trained reward model",
                hint="seal scores with reward models (…ForSequenceClassification with one output)",
            )
        text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        if getattr(text_config, "pad_token_id", None) is None:
            text_config.pad_token_id = self.pad_token_id
            if text_config is not model.config:
                model.config.pad_token_id = self.pad_token_id
        model.to(self.device)
        model.eval()
        self._model = model
        if self.pooled_last_layer == "undecided":
            self.pooled_last_layer = self._wrap_last_layer(model)
        if self.share_prefix is not False:
            ok, why = can_share(model, self.config, self.input_format, self.use_token_type_ids)
            if ok and self.share_prefix is None:
                intensity = _flop_per_kv_byte(model, self.config, self.dtype)
                if intensity < SHARING_MIN_FLOP_PER_KV_BYTE:
                    ok, why = (
                        False,
                        (
                            f"{why}, but its KV cache is large for its compute ({intensity:,.0f} FLOP per cached "
                            f"byte < {SHARING_MIN_FLOP_PER_KV_BYTE:,}): copying cached prefixes would cost more"
                        ),
                    )
            self.prefix_sharing = ("on: " if ok else "off: ") + why
        if self.compile:
            model.forward = torch.compile(model.forward, dynamic=True)
        self.stats.load_seconds += time.perf_counter() - t0
        return self

    def _wrap_last_layer(self, model: Any) -> str:
        """Wrap the last layer (pooled token only) if the model allows it, and keep it only if a padded
        synthetic batch scores the same as with the whole layer."""
        import torch

        status = last_layer_status(self.config, model)
        if not status.startswith("on"):
            return status
        generator = torch.Generator().manual_seed(0)
        vocab = int(getattr(self.config, "vocab_size", 0) or 100)
        lengths = [min(self.max_length, n) for n in (23, 9, 2)]
        ids = torch.randint(1, max(vocab, 2), (len(lengths), lengths[0]), generator=generator)
        ids[ids == self.pad_token_id] = (self.pad_token_id + 1) % vocab
        mask = torch.zeros_like(ids)
        for row, n in enumerate(lengths):
            mask[row, :n] = 1
            ids[row, n:] = self.pad_token_id
        inputs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        if self.use_token_type_ids:
            inputs["token_type_ids"] = torch.zeros_like(ids).to(self.device)
        try:
            with torch.inference_mode():
                whole = model(**inputs).logits.float()
                wrap_last_layer(model)
                fast = model(**inputs).logits.float()
        except Exception as err:
            unwrap_last_layer(model)
            return f"off: running the last layer at the pooled token failed ({first_line(err)})"
        worst = float(((fast - whole).abs() / (1 + whole.abs())).max())
        tolerance = 1e-4 if self.dtype == "float32" else 5e-2
        if not worst <= tolerance:
            unwrap_last_layer(model)
            return f"off: the pooled-token last layer differed from the whole layer by {worst:.2g} (relative)"
        return status

    # -- what determines the output ----------------------------------------------------------------
    def recipe_params(self) -> dict[str, Any]:
        """Everything that determines the scores (fingerprinted); batch size and device are not here."""
        from seal import __version__

        return {
            "model": self.source,
            "revision": None if self.is_local else self.revision,  # a local folder has no revisions
            "commit": self.commit,
            "files_sha256": self.files_sha256,
            "dtype": self.dtype,
            "max_length": self.max_length,
            "truncation": self.truncation,
            "padding_side": PADDING_SIDE,
            "pad_token_id": self.pad_token_id,
            "input_format": self.input_format,
            "renderer": TRANSCRIPT_RENDERER if self.input_format == "pair" else "chat_template",
            "head_index": self.head_index,
            "seal_version": __version__,
        }

    def provenance(self) -> dict[str, Any]:
        """What does not change the scores: device, versions, how formats and limits were chosen."""
        import torch
        import transformers

        return {
            "device": self.device,
            "device_requested": self.device_request,
            "input_format_reason": self.input_format_reason,
            "max_length_reason": self.max_length_reason,
            "num_outputs": self.num_outputs,
            "weights_format": self.weights_format,
            "trust_remote_code": self.trust_remote_code,
            "architecture": (getattr(self.config, "architectures", None) or [None])[0],
            "prefix_sharing": self.prefix_sharing,
            "pooled_last_layer": self.pooled_last_layer,
            "compiled": self.compile,
            "revision_note": self.revision_note,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }

    # -- encoding ----------------------------------------------------------------------------------
    def encode(self, items: Sequence[Item]) -> Encoded:
        """Tokenise (context, response) items in one batched call each, then truncate to max_length."""
        encoding = Encoding(self.input_format, self.max_length, self.truncation, self.use_token_type_ids, self.model_id)
        return encode(self.tokenizer, items, encoding)

    # -- scoring -----------------------------------------------------------------------------------
    def score(
        self, items: Sequence[Item], *, batch_size: int | str = "auto", progress: Progress | None = None
    ) -> np.ndarray:
        """One float64 score per (context messages, response) item, in input order.

        Items are sorted by token length (longest first) into batches of `batch_size` texts, or with
        "auto" into batches of about a fixed number of padded tokens (halved on CUDA out-of-memory).
        With a causal chat-format model, items with the same context are scored over one pass of their
        common prefix (see `seal.engines.scoring.shared_prefix`). `progress(n)` is called after each batch
        with the number of texts it scored.
        """
        batch_size = parse_batch_size(batch_size)
        n = len(items)
        out = np.empty(n, dtype=np.float64)
        if n == 0:
            return out
        model = self.model
        t0 = time.perf_counter()
        encoded = self.encode(items)
        self.stats.tokenize_seconds += time.perf_counter() - t0
        plain = np.arange(n)
        if self.prefix_sharing.startswith("on"):
            groups, plain = group_by_context([ctx for ctx, _ in items], encoded.input_ids, self.pad_token_id)
            if groups:
                leftover = self._score_groups(model, encoded, groups, out, batch_size, progress)
                plain = np.sort(np.concatenate([plain, leftover]))
        self._score_plain(model, encoded, plain, out, batch_size, progress)
        self.stats.texts += n
        self.stats.truncated += int(encoded.truncated.sum())
        self.stats.non_finite += int((~np.isfinite(out)).sum())
        return out

    def _score_plain(
        self,
        model: Any,
        encoded: Encoded,
        subset: np.ndarray,
        out: np.ndarray,
        batch_size: int | str,
        progress: Progress | None,
    ) -> None:
        """Score `subset` of the encoded texts one text per row, longest first."""
        lengths = encoded.lengths
        order = subset[np.argsort(-lengths[subset], kind="stable")]
        budget = AUTO_TOKEN_BUDGET.get(self.device, 8192)
        pos, n = 0, len(order)
        while pos < n:
            first_len = max(int(lengths[order[pos]]), 1)
            auto = batch_size == "auto"
            size = max(1, min(AUTO_MAX_BATCH, budget // first_len)) if auto else int(batch_size)
            idx = order[pos : pos + size]
            values = None
            try:
                values = self._forward(model, encoded, idx)
            except Exception as err:
                if not _is_oom(err):
                    raise
            if values is None:  # out of memory: retry smaller (outside `except`, so the batch is freed)
                _free_cuda()
                self.stats.oom_retries += 1
                if batch_size == "auto" and size > 1:
                    budget = max(first_len, (size // 2) * first_len)
                    continue
                raise ModelError(
                    f"out of memory on {self.device} with a batch of {size} texts of up to {first_len} tokens",
                    hint="use a smaller --batch-size (or auto), a smaller --max-length, or --dtype bfloat16",
                ) from None
            out[idx] = values
            pos += len(idx)
            if progress is not None:
                progress(len(idx))

    def _score_groups(
        self,
        model: Any,
        encoded: Encoded,
        groups: list[PrefixGroup],
        out: np.ndarray,
        batch_size: int | str,
        progress: Progress | None,
    ) -> np.ndarray:
        """Score the groups over shared prefixes; returns the text indices left for the plain path
        (those of a window that ran out of memory, or all that remain once sharing was turned off)."""
        auto = batch_size == "auto"
        budget = AUTO_TOKEN_BUDGET.get(self.device, 8192) if auto else 2**62
        max_texts = AUTO_MAX_BATCH if auto else int(batch_size)
        per_token = kv_bytes_per_token(self.config, self.dtype)
        windows = pack_groups(groups, max(1, SHARED_KV_BYTES.get(self.device, 2**30) // per_token))
        done = np.zeros(len(out), dtype=bool)
        wanted = np.asarray([i for g in groups for i in g.members], dtype=np.int64)
        for window in windows:
            if not self.prefix_sharing.startswith("on"):
                break
            chosen = [groups[g] for g in window]
            t0 = time.perf_counter()
            out_of_memory = False
            try:
                for batch in score_window(
                    model, chosen, encoded.input_ids, self.pad_token_id, self.device, self.head_index, budget, max_texts
                ):
                    self.stats.forward_seconds += time.perf_counter() - t0
                    self.stats.batches += 1
                    self.stats.tokens += batch.tokens
                    self.stats.padded_tokens += batch.padded_tokens
                    if not self._sharing_checked:
                        self._check_sharing(model, encoded, batch.members, batch.values)
                        if not self.prefix_sharing.startswith("on"):
                            break
                    out[batch.members] = batch.values
                    done[batch.members] = True
                    self.stats.shared_texts += len(batch.members)
                    if progress is not None:
                        progress(len(batch.members))
                    t0 = time.perf_counter()
            except Exception as err:
                # Out of memory: the plain path scores what is left, halving its batches as needed. Any
                # other failure turns sharing off for this model, and the plain path takes over.
                out_of_memory = _is_oom(err)
                if not out_of_memory:
                    self.prefix_sharing = f"off: sharing failed ({first_line(err)})"
            if out_of_memory:  # outside `except`, so the failed batch's tensors are freed
                _free_cuda()
                self.stats.oom_retries += 1
            for g in chosen:
                scored = int(done[list(g.members)].sum())
                self.stats.prefix_tokens_saved += g.prefix_len * max(scored - 1, 0)
        return wanted[~done[wanted]]

    def _check_sharing(self, model: Any, encoded: Encoded, members: np.ndarray, shared: np.ndarray) -> None:
        """Compare the first shared batch with the plain computation; turn sharing off on a difference."""
        self._sharing_checked = True
        plain = np.concatenate([self._forward(model, encoded, members[i : i + 16]) for i in range(0, len(members), 16)])
        tolerance = 1e-3 if self.dtype == "float32" else 5e-2
        worst = float(np.max(np.abs(shared - plain) / (1.0 + np.abs(plain))))
        if not np.isfinite(worst) or worst > tolerance:
            self.prefix_sharing = (
                f"off: shared-prefix scores differed from plain ones by {worst:.2g} (relative) on the first batch"
            )

    def _forward(self, model: Any, encoded: Encoded, idx: np.ndarray) -> np.ndarray:
        import torch

        seqs = [encoded.input_ids[i] for i in idx]
        width = max(len(s) for s in seqs) or 1
        input_ids = np.full((len(seqs), width), self.pad_token_id, dtype=np.int64)
        attention = np.zeros((len(seqs), width), dtype=np.int64)
        types = np.zeros((len(seqs), width), dtype=np.int64) if encoded.token_type_ids is not None else None
        for row, i in enumerate(idx):
            seq = encoded.input_ids[i]
            input_ids[row, : len(seq)] = seq
            attention[row, : len(seq)] = 1
            if types is not None and encoded.token_type_ids is not None:
                types[row, : len(seq)] = encoded.token_type_ids[i]
        inputs = {
            "input_ids": torch.from_numpy(input_ids).to(self.device),
            "attention_mask": torch.from_numpy(attention).to(self.device),
        }
        if types is not None:
            inputs["token_type_ids"] = torch.from_numpy(types).to(self.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            values = reward_values(model(**inputs), self.head_index)
            if values is None:
                raise ModelError(f"`{self.model_id}` returned no logits")
        self.stats.forward_seconds += time.perf_counter() - t0
        self.stats.batches += 1
        self.stats.tokens += int(attention.sum())
        self.stats.padded_tokens += int(attention.size)
        return values


def _flop_per_kv_byte(model: Any, config: Any, dtype: str) -> float:
    """Forward FLOPs per token (2 x non-embedding parameters) over the bytes of KV cache per token."""
    total = sum(p.numel() for p in model.parameters())
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None and getattr(embeddings, "weight", None) is not None:
        total -= embeddings.weight.numel()
    return 2.0 * total / max(kv_bytes_per_token(config, dtype), 1)


def _is_oom(err: Exception) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(err, oom)) or "out of memory" in str(err).lower()


def _free_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def score_texts(
    rm: RewardModel,
    items: Sequence[Item],
    *,
    batch_size: int | str = "auto",
    progress: Progress | None = None,
) -> np.ndarray:
    """The reusable scoring core: (context messages, response) items -> float64 scores, in input order."""
    return rm.score(items, batch_size=batch_size, progress=progress)
