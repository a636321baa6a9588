"""Score texts that share a token prefix with one pass over the prefix (causal reward models).

In a preference dataset the chosen and the rejected text of a pair share their context, often more
than half of the tokens (hh-rlhf harmless: 112 context tokens against 88 of the two responses
together). A causal (decoder) RM's hidden states at the shared positions are identical for both
texts, so the prefix is run once with a KV cache and only the differing suffixes are run on top of it.

Bidirectional encoders (BERT, DeBERTa, ...) cannot share: their context states depend on the response.
Sharing is therefore offered only to chat-format models of a causal family, and the first shared
batch of every model is checked against the plain computation (`RewardModel` turns sharing off, and
says so, on any difference).

The prefix of a group is the longest common prefix of its members' final token ids (after
truncation), shortened so that every member keeps at least one token of its own and its last non-pad
token (where the classifier head pools) in its suffix.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seal.engines.scoring.model_output import reward_values

# Model types whose attention is bidirectional: never eligible, whatever their forward accepts.
ENCODER_MODEL_TYPES = frozenset(
    {
        "albert",
        "bert",
        "camembert",
        "deberta",
        "deberta-v2",
        "distilbert",
        "electra",
        "ernie",
        "longformer",
        "modernbert",
        "mpnet",
        "nomic_bert",
        "roberta",
        "xlm-roberta",
        "xlm-roberta-xl",
    }
)
MIN_SAVED_TOKENS = 16  # below this a group is cheaper scored as plain texts (one model call fewer)


@dataclass(frozen=True)
class PrefixGroup:
    """Texts (indices into the scored list) whose first `prefix_len` tokens are identical."""

    members: tuple[int, ...]
    prefix_len: int

    def cost(self, lengths: np.ndarray) -> int:
        """Tokens computed when the group is shared: the prefix once, then each suffix."""
        return self.prefix_len + int(sum(int(lengths[i]) - self.prefix_len for i in self.members))


def cache_argument(model: Any) -> str | None:
    """The name under which `model.forward` takes a KV cache (`cache` in newer transformers,
    `past_key_values` before), or None when it takes none."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return None
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return None


def can_share(model: Any, config: Any, input_format: str, use_token_type_ids: bool) -> tuple[bool, str]:
    """Whether prefix sharing may be tried for this model, and why (not)."""
    model_type = str(getattr(config, "model_type", "") or "")
    if input_format != "chat":
        return False, "pair-format models are encoders: the context depends on the response"
    if model_type in ENCODER_MODEL_TYPES or getattr(config, "is_encoder_decoder", False):
        return False, f"`{model_type}` attends in both directions"
    if use_token_type_ids:
        return False, "the model takes token type ids"
    if cache_argument(model) is None:
        return False, "the model's forward takes no KV cache"
    return True, f"causal `{model_type}` with a KV cache"


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    m = min(len(a), len(b))
    if m == 0:
        return 0
    diff = np.flatnonzero(a[:m] != b[:m])
    return int(diff[0]) if len(diff) else m


def _last_non_pad(ids: np.ndarray, pad_id: int) -> int:
    real = np.flatnonzero(ids != pad_id)
    return int(real[-1]) if len(real) else -1


def group_by_context(
    contexts: Sequence[Any], input_ids: Sequence[np.ndarray], pad_id: int, min_saved: int = MIN_SAVED_TOKENS
) -> tuple[list[PrefixGroup], np.ndarray]:
    """Group texts with equal contexts and a worthwhile common token prefix.

    Returns the groups and the indices of the texts left to score on their own.
    """
    by_context: dict[str, list[int]] = {}
    for i, context in enumerate(contexts):
        key = json.dumps(_plain(context), sort_keys=True, ensure_ascii=False)
        by_context.setdefault(key, []).append(i)
    groups: list[PrefixGroup] = []
    singles: list[int] = []
    for members in by_context.values():
        if len(members) < 2:
            singles.extend(members)
            continue
        first = input_ids[members[0]]
        prefix = len(first)
        for i in members:
            seq = input_ids[i]
            prefix = min(prefix, _common_prefix(first, seq), len(seq) - 1, _last_non_pad(seq, pad_id))
        if prefix * (len(members) - 1) < min_saved or prefix < 1:
            singles.extend(members)
            continue
        groups.append(PrefixGroup(tuple(members), prefix))
    return groups, np.asarray(sorted(singles), dtype=np.int64)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def pack_groups(groups: Sequence[PrefixGroup], window_tokens: int) -> list[list[int]]:
    """Windows of group indices: groups sorted by prefix length (longest first), each window's KV
    cache padded to its longest prefix within `window_tokens` tokens. The cache stays in memory while
    the window's suffixes run; a large window lets them be sorted by length across many groups."""
    order = sorted(range(len(groups)), key=lambda g: -groups[g].prefix_len)
    windows: list[list[int]] = []
    current: list[int] = []
    for g in order:
        if current and (len(current) + 1) * groups[current[0]].prefix_len > window_tokens:
            windows.append(current)
            current = []
        current.append(g)
    if current:
        windows.append(current)
    return windows


def length_batches(lengths: np.ndarray, budget: int, max_texts: int) -> list[np.ndarray]:
    """Rows (positions in `lengths`) in batches, longest first, within `budget` padded tokens."""
    order = np.argsort(-lengths, kind="stable")
    batches, pos = [], 0
    while pos < len(order):
        size = max(1, min(max_texts, budget // max(int(lengths[order[pos]]), 1)))
        batches.append(order[pos : pos + size])
        pos += size
    return batches


def kv_bytes_per_token(config: Any, dtype: str) -> int:
    """Bytes of KV cache one token takes in every layer (keys and values), in dtype `float32` or a
    16-bit one."""
    itemsize = 4 if dtype == "float32" else 2
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = int(getattr(text, "num_attention_heads", 1) or 1)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or text.hidden_size // heads)
    return int(text.num_hidden_layers) * 2 * kv_heads * head_dim * itemsize


def _layer_tensors(cache: Any) -> list[tuple[Any, Any]]:
    """Per-layer (keys, values) of a transformers cache, newer (`layers`) or older (`key_cache`) layout."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def _cache_from(tensors: list[tuple[Any, Any]]) -> Any:
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer, (keys, values) in enumerate(tensors):
        cache.update(keys, values, layer)
    return cache


@dataclass
class SharedBatch:
    """Scores of one suffix batch: text indices, their scores, real and padded tokens computed."""

    members: np.ndarray
    values: np.ndarray
    tokens: int
    padded_tokens: int


def score_window(
    model: Any,
    groups: Sequence[PrefixGroup],
    input_ids: Sequence[np.ndarray],
    pad_id: int,
    device: str,
    head_index: int,
    budget: int,
    max_texts: int,
) -> Iterator[SharedBatch]:
    """Run the prefixes of `groups` (in batches of about `budget` padded tokens) keeping their KV
    cache, then all their members' suffixes in batches sorted by suffix length, each on top of the
    cached prefixes of its rows' groups."""
    import torch

    cache_name = cache_argument(model)
    members = np.asarray([i for g in groups for i in g.members], dtype=np.int64)
    owner = np.asarray([k for k, g in enumerate(groups) for _ in g.members], dtype=np.int64)
    prefix_len = np.asarray([g.prefix_len for g in groups], dtype=np.int64)
    suffix_len = np.asarray([len(input_ids[i]) for i in members], dtype=np.int64) - prefix_len[owner]

    def put(array: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    with torch.inference_mode():
        # Prefix pass: per layer, the keys and values of every group, right-padded to the longest prefix
        # (written once into window-sized tensors, row k = group k).
        longest = int(prefix_len.max())
        window_kv: list[tuple[Any, Any]] = []
        pending_tokens = pending_padded = 0
        for rows in length_batches(prefix_len, budget, max_texts):
            width = int(prefix_len[rows].max())
            ids = np.full((len(rows), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, k in enumerate(rows):
                ids[r, : prefix_len[k]] = input_ids[groups[k].members[0]][: prefix_len[k]]
                mask[r, : prefix_len[k]] = 1
            output = model(input_ids=put(ids), attention_mask=put(mask), use_cache=True)
            cache = getattr(output, "cache", None)
            if cache is None:
                cache = getattr(output, "past_key_values", None)
            if cache is None:
                raise RuntimeError("the model returned no KV cache")
            target = put(rows)
            for layer, (keys, values) in enumerate(_layer_tensors(cache)):
                if layer == len(window_kv):
                    shape = (len(groups), keys.shape[1], longest, keys.shape[3])
                    window_kv.append((keys.new_zeros(shape), values.new_zeros(shape)))
                window_kv[layer][0][:, :, :width].index_copy_(0, target, keys)
                window_kv[layer][1][:, :, :width].index_copy_(0, target, values)
            pending_tokens += int(mask.sum())
            pending_padded += int(ids.size)
            del output, cache
        # Suffix pass: each row on top of its group's prefix.
        for rows in length_batches(suffix_len, budget, max_texts):
            width = int(suffix_len[rows].max())
            groups_of_rows = owner[rows]
            past = int(prefix_len[groups_of_rows].max())
            ids = np.full((len(rows), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), past + width), dtype=np.int64)
            for r, row in enumerate(rows):
                k = groups_of_rows[r]
                tail = input_ids[members[row]][prefix_len[k] :]
                ids[r, : len(tail)] = tail
                mask[r, : prefix_len[k]] = 1
                mask[r, past : past + len(tail)] = 1
            select = put(groups_of_rows)
            past_kv = [
                (keys[:, :, :past].index_select(0, select), values[:, :, :past].index_select(0, select))
                for keys, values in window_kv
            ]
            output = model(
                input_ids=put(ids),
                attention_mask=put(mask),
                position_ids=put(prefix_len[groups_of_rows][:, None] + np.arange(width, dtype=np.int64)[None, :]),
                use_cache=True,
                **{cache_name: _cache_from(past_kv)},
            )
            values = reward_values(output, head_index)
            if values is None:
                raise RuntimeError("the model returned no logits")
            # The prefix pass is counted with the first suffix batch.
            yield SharedBatch(
                members=members[rows],
                values=values,
                tokens=int(mask[:, past:].sum()) + pending_tokens,
                padded_tokens=int(ids.size) + pending_padded,
            )
            pending_tokens = pending_padded = 0
