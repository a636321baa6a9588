"""What a reward-model checkpoint says before any text is scored: its config and tokenizer (from a local
folder or the Hub), the commit or file hash that pins it, its reward head, input format, token limit and
pad id. Every refusal is a `ModelError` with a hint."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seal import hub
from seal.errors import SealError, first_line

DEFAULT_MAX_LENGTH_CAP = 4096  # used when the model allows more (long-context decoders)
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HASH_CACHE: dict[tuple[str, int, int], str] = {}
_TOKENIZER_FILES = re.compile(
    r"^(config\.json|tokenizer.*|vocab.*|merges\.txt|.*\.model|special_tokens_map\.json|added_tokens\.json"
    r"|chat_template\.(jinja|json)|.*\.py)$"
)


class ModelError(SealError):
    """A reward model that cannot be loaded or used as asked."""


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No load reports, progress bars or length warnings from transformers while seal drives it."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def local_files_sha256(folder: Path) -> str:
    """A sha256 over the files of a local model folder that determine its scores (config, tokenizer,
    chat template, remote code, and the weights that load: safetensors when present, else .bin)."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    weights = [p for p in files if p.suffix == ".safetensors"] or [p for p in files if p.suffix == ".bin"]
    chosen = sorted({*weights, *(p for p in files if _TOKENIZER_FILES.match(p.name))})
    digest = hashlib.sha256()
    for path in chosen:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _HASH_CACHE:
            file_digest = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                    file_digest.update(block)
            _HASH_CACHE[key] = file_digest.hexdigest()
        digest.update(f"{path.name}\0{_HASH_CACHE[key]}\n".encode())
    return digest.hexdigest()


def resolve_commit(repo_id: str, revision: str | None, offline: str | None = None) -> tuple[str | None, str | None]:
    """The Hub commit a revision resolves to, and a one-line note when it is unknown or may be stale.

    The local cache answers first (a model just loaded from the Hub left its commit there); else one Hub
    lookup (none when `offline` says why the Hub is unreachable)."""
    if revision and _HEX40.match(revision):
        return revision, None
    asked = f"{repo_id}@{revision or 'main'}"
    stale = (
        f"resolved from the local cache while the Hub is unreachable ({offline}): `{revision or 'main'}` may "
        "have moved on the Hub since"
        if offline
        else None
    )
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
        if isinstance(cached, str):
            path = Path(cached)
        else:
            with hub.cache_only(offline is not None):
                path = Path(hf_hub_download(repo_id, "config.json", revision=revision))
    except Exception as err:
        return None, f"the Hub lookup of {asked} failed: {first_line(err)}"
    parts = path.parts
    if "snapshots" in parts:
        candidate = parts[parts.index("snapshots") + 1]
        if _HEX40.match(candidate):
            return candidate, stale
    return None, f"the Hub lookup of {asked} gave no commit (config.json at {path})"


def warn_unpinned(model: str, revision: str | None, note: str) -> None:
    """Say on stderr that a recipe will not pin the model's commit, and why."""
    print(
        f"seal: warning: the commit of `{model}` is unknown ({note}); the recipe pins only the revision "
        f"`{revision or 'main'}`, which can move on the Hub",
        file=sys.stderr,
    )


def unreachable_error(model_id: str, offline: str) -> SealError:
    """The one-line error for a model the Hub cannot serve and the cache does not hold."""
    return hub.unreachable_error(
        f"model `{model_id}`",
        offline,
        "pass a local model folder (--model ./path/to/model), or download it where there is network "
        f"(`hf download {model_id} --local-dir DIR`)",
    )


def load_config(source: str, model_id: str, offline: str | None, **hub_kwargs: Any) -> Any:
    """The transformers config of a local folder or Hub id (`offline`: why only the cache may be used)."""
    from transformers import AutoConfig

    try:
        with quiet_transformers(), hub.cache_only(offline is not None):
            return AutoConfig.from_pretrained(source, **hub_kwargs)
    except Exception as err:  # transformers raises OSError/ValueError/... with long messages
        if offline is not None:
            raise unreachable_error(model_id, offline) from None
        raise ModelError(
            f"cannot load the config of `{model_id}`: {first_line(err)}",
            hint="give a Hub model id (cached, or with network access) or a local model folder; "
            "custom architectures need --trust-remote-code",
        ) from None


def load_tokenizer(source: str, model_id: str, offline: str | None, **hub_kwargs: Any) -> Any:
    """The tokenizer, with the "sequence longer than the maximum" warning silenced (seal truncates itself)."""
    from transformers import AutoTokenizer

    try:
        with quiet_transformers(), hub.cache_only(offline is not None):
            tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs)
    except Exception as err:
        if offline is not None:
            raise unreachable_error(model_id, offline) from None
        raise ModelError(f"cannot load the tokenizer of `{model_id}`: {first_line(err)}") from None
    warned = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warned, dict):
        warned["sequence-length-is-longer-than-the-specified-maximum"] = True
    return tokenizer


def _looks_like_classifier(config: Any) -> bool:
    archs = getattr(config, "architectures", None) or []
    return not archs or any(("SequenceClassification" in a) or ("Reward" in a) or ("Classif" in a) for a in archs)


def resolve_head(config: Any, model_id: str, head_index: int | None, trust_remote_code: bool) -> int:
    """The output that is the reward: 0 for a one-output classifier, `head_index` for a multi-output one."""
    if not _looks_like_classifier(config) and not trust_remote_code:
        arch = ", ".join(config.architectures)
        raise ModelError(
            f"`{model_id}` is a {arch} checkpoint, not a sequence classifier: it has no reward head",
            hint="seal scores with reward models (…ForSequenceClassification with one output)",
        )
    num_outputs = int(getattr(config, "num_labels", 1) or 1)
    if num_outputs == 1:
        if head_index not in (None, 0):
            raise ModelError(f"--head-index {head_index} is out of range: `{model_id}` has one output")
        return 0
    if head_index is None:
        labels = list((getattr(config, "id2label", None) or {}).values())[:8]
        raise ModelError(
            f"`{model_id}` has {num_outputs} outputs ({', '.join(map(str, labels))}), not one reward",
            hint=f"pass --head-index N (0..{num_outputs - 1}) to score with output N (multi-objective RMs)",
        )
    if head_index >= num_outputs:
        raise ModelError(
            f"--head-index {head_index} is out of range: `{model_id}` has {num_outputs} outputs",
            hint=f"use 0..{num_outputs - 1}",
        )
    return int(head_index)


def resolve_format(tokenizer: Any, model_id: str, requested: str) -> tuple[str, str]:
    """`pair` or `chat`, and why: `auto` is chat when the tokenizer has a chat template."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if requested == "chat":
        if not has_template:
            raise ModelError(
                f"--input-format chat: the tokenizer of `{model_id}` has no chat template",
                hint="use --input-format pair (tokenizer(context, response))",
            )
        return "chat", "asked for (--input-format chat)"
    if requested == "pair":
        return "pair", "asked for (--input-format pair)"
    if has_template:
        return "chat", "auto: the tokenizer has a chat template"
    return "pair", "auto: the tokenizer has no chat template, so tokenizer(context, response)"


def _text_config(config: Any) -> Any:
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _model_limit(config: Any, tokenizer: Any) -> int | None:
    limits = []
    positions = getattr(_text_config(config), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    tml = getattr(tokenizer, "model_max_length", None)
    if isinstance(tml, int) and 0 < tml < 1_000_000:
        limits.append(tml)
    return min(limits) if limits else None


def resolve_max_length(config: Any, tokenizer: Any, model_id: str, requested: int | None) -> tuple[int, str]:
    """The token limit per text, and why: the one asked for (within the model's), else the model's (capped)."""
    limit = _model_limit(config, tokenizer)
    if requested is not None:
        requested = int(requested)
        if limit is not None and requested > limit:
            raise ModelError(
                f"--max-length {requested} exceeds what `{model_id}` accepts ({limit} tokens)",
                hint=f"use --max-length {limit} or less",
            )
        return requested, "asked for (--max-length)"
    if limit is None:
        return DEFAULT_MAX_LENGTH_CAP, f"the model states no limit: {DEFAULT_MAX_LENGTH_CAP}"
    if limit > DEFAULT_MAX_LENGTH_CAP:
        return DEFAULT_MAX_LENGTH_CAP, f"capped at {DEFAULT_MAX_LENGTH_CAP} (the model accepts {limit})"
    return limit, "the model's limit"


def resolve_pad_id(config: Any, tokenizer: Any) -> int:
    """The id padded with: the model config's pad id (decoder RMs pool at the last token that is not
    this id, so it must be the one the model knows), else the tokenizer's pad, eos, or 0."""
    for candidate in (
        getattr(_text_config(config), "pad_token_id", None),
        getattr(tokenizer, "pad_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
    ):
        if isinstance(candidate, int):
            return candidate
        if isinstance(candidate, list) and candidate and isinstance(candidate[0], int):
            return candidate[0]
    return 0
