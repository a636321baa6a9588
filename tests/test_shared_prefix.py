"""Scoring texts that share a context over one pass of their common prefix (causal chat RMs).

The shared computation must give the scores of the plain one (fp32, <= 1e-4) in every corner: identical
responses, a response that extends the other, empty responses, three or more responses to one context,
truncated contexts, any batch size. Encoders never share; a model whose shared scores differ is caught
by the first-batch check and scored plainly.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_scores import _sentence, example_items
from tiny_models import build_deberta_rm, build_llama_rm

from seal.engines.scoring import RewardModel, shared_prefix
from seal.engines.scoring.shared_prefix import PrefixGroup, group_by_context, length_batches, pack_groups


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return build_llama_rm(tmp_path_factory.mktemp("llama") / "rm", seed=5)


def context(i: int, turns: int = 1) -> list[dict[str, str]]:
    messages = []
    for t in range(turns):
        messages.append({"role": "user", "content": f"question {i}.{t}: {_sentence(i + t, 6 + (i + t) % 7)}?"})
        if t < turns - 1:
            messages.append({"role": "assistant", "content": _sentence(i + t + 1, 5)})
    return messages


def tricky_items() -> list[tuple[list[dict[str, str]], str]]:
    """Pairs laid out as the score stage does (all chosen, then all rejected), plus corner cases."""
    chosen, rejected = [], []
    for i in range(14):
        ctx = context(i, turns=1 + i % 3)
        chosen.append((ctx, _sentence(i + 3, 2 + (i * 5) % 13)))
        rejected.append((ctx, _sentence(i + 4, 1 + (i * 3) % 11)))
    same = context(40, turns=2)
    extra = [
        (same, "exactly the same answer"),
        (same, "exactly the same answer"),  # identical responses
        (context(41), "yes"),
        (context(41), "yes, and then a good deal more"),  # one response extends the other
        (context(42), ""),
        (context(42), "not empty"),  # an empty response
        (context(43), "first of three"),
        (context(43), "second of three"),
        (context(43), "third of three, longer than the others"),  # more than two texts share
        (context(44, turns=3) * 4, "a long context that is truncated from the left"),
        (context(44, turns=3) * 4, "the other response to that long context"),
        ([], "no context at all"),
        ([], "still no context"),
    ]
    return chosen + rejected + extra


def test_shared_scores_equal_plain_scores_at_any_batch_size(llama):
    items = tricky_items()
    plain = RewardModel(str(llama), max_length=96, share_prefix=False).score(items, batch_size=1)
    rm = RewardModel(str(llama), max_length=96, share_prefix=True)
    for batch_size in ("auto", 1, 3, 64):
        shared = rm.score(items, batch_size=batch_size)
        assert np.abs(shared - plain).max() <= 1e-4, batch_size
    assert rm.prefix_sharing.startswith("on: causal `llama`")
    assert rm.stats.shared_texts > len(items) and rm.stats.prefix_tokens_saved > 0
    assert rm.stats.truncated > 0  # the long context was cut
    assert rm.provenance()["prefix_sharing"] == rm.prefix_sharing


def test_sharing_on_real_example_items_and_tokens_saved(llama):
    items = example_items()
    rm = RewardModel(str(llama), max_length=256, share_prefix=True)
    plain = RewardModel(str(llama), max_length=256, share_prefix=False)
    assert np.abs(rm.score(items) - plain.score(items)).max() <= 1e-4  # the first call also runs the check
    rm.stats.tokens = rm.stats.prefix_tokens_saved = plain.stats.tokens = 0
    assert np.abs(rm.score(items) - plain.score(items)).max() <= 1e-4
    # Fewer tokens went through the model: the shared prefixes were computed once.
    assert rm.stats.tokens + rm.stats.prefix_tokens_saved == plain.stats.tokens
    assert rm.stats.tokens < plain.stats.tokens


def test_by_default_a_model_with_little_compute_per_cached_byte_does_not_share(llama):
    rm = RewardModel(str(llama), max_length=96).load()  # 32 wide, 2 layers: its KV cache is as big as its compute
    assert rm.prefix_sharing.startswith("off: causal `llama` with a KV cache, but its KV cache is large")
    rm.score(tricky_items())
    assert rm.stats.shared_texts == 0


def test_by_default_a_compute_heavy_model_shares(tmp_path):
    # Grouped KV heads make a small cache for the compute, as in real decoder RMs.
    build_llama_rm(
        tmp_path / "rm",
        hidden_size=256,
        num_hidden_layers=1,
        num_attention_heads=8,
        num_key_value_heads=1,
        intermediate_size=2048,
        head_dim=32,
    )
    rm = RewardModel(str(tmp_path / "rm"), max_length=96).load()
    assert rm.prefix_sharing == "on: causal `llama` with a KV cache"
    plain = RewardModel(str(tmp_path / "rm"), max_length=96, share_prefix=False)
    items = tricky_items()
    assert np.abs(rm.score(items) - plain.score(items)).max() <= 1e-4 and rm.stats.shared_texts > 0


def test_encoders_never_share(tmp_path):
    rm = RewardModel(str(build_deberta_rm(tmp_path / "deberta")), max_length=64, share_prefix=True).load()
    assert rm.prefix_sharing.startswith("off: pair-format")
    rm.score(example_items())
    assert rm.stats.shared_texts == 0


def test_a_model_whose_shared_scores_differ_is_scored_plainly(llama, monkeypatch):
    items = tricky_items()
    plain = RewardModel(str(llama), max_length=96, share_prefix=False).score(items)
    real = shared_prefix.score_window
    calls = []

    def off_by_one(*args, **kwargs):  # what a model with bidirectional attention would do to the check
        calls.append(1)
        for batch in real(*args, **kwargs):
            batch.values = batch.values + 1.0
            yield batch

    monkeypatch.setattr("seal.engines.scoring.reward_model.score_window", off_by_one)
    rm = RewardModel(str(llama), max_length=96, share_prefix=True)
    assert np.abs(rm.score(items, batch_size=4) - plain).max() <= 1e-4
    assert rm.prefix_sharing.startswith("off: shared-prefix scores differed")
    assert len(calls) == 1  # after the failed check no shared batch runs again
    assert rm.stats.shared_texts == 0
    assert np.abs(rm.score(items) - plain).max() <= 1e-4 and len(calls) == 1


def test_grouping_caps_the_prefix_so_every_text_keeps_its_last_real_token():
    pad = 0
    ids = [
        np.array([5, 6, 7, 8, 9, 10, 11]),
        np.array([5, 6, 7, 8, 9, 10, 11, 12]),  # extends the first
        np.array([5, 6, 7, 8, 9, 10, 0]),  # ends with a pad-id token: pooled at index 5
        np.array([1, 2, 3]),
    ]
    contexts = ["a", "a", "a", "b"]
    groups, singles = group_by_context(contexts, ids, pad, min_saved=1)
    assert groups == [PrefixGroup((0, 1, 2), 5)]  # not 6: text 2's pooled token (index 5) stays in its suffix
    assert singles.tolist() == [3]
    # A prefix that saves too little is not worth a second model call.
    groups, singles = group_by_context(contexts, ids, pad, min_saved=100)
    assert groups == [] and singles.tolist() == [0, 1, 2, 3]


def test_packing_keeps_every_group_once_within_the_budget():
    rng = np.random.default_rng(0)
    prefixes = rng.integers(1, 300, size=150)
    groups = [PrefixGroup((2 * k, 2 * k + 1), int(prefixes[k])) for k in range(150)]
    windows = pack_groups(groups, window_tokens=4096)
    assert sorted(g for w in windows for g in w) == list(range(150))
    for window in windows:
        longest = max(groups[g].prefix_len for g in window)
        assert len(window) == 1 or len(window) * longest <= 4096
    suffixes = rng.integers(1, 400, size=300)
    batches = length_batches(suffixes, budget=2048, max_texts=16)
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    for rows in batches:
        assert len(rows) <= 16 and (len(rows) == 1 or len(rows) * suffixes[rows].max() <= 2048)


def test_a_failing_shared_pass_falls_back_to_plain_scoring(llama, monkeypatch):
    items = tricky_items()
    plain = RewardModel(str(llama), max_length=96, share_prefix=False).score(items)

    def broken(*args, **kwargs):
        raise TypeError("this model's forward does not take that cache")
        yield  # a generator, like the real one

    monkeypatch.setattr("seal.engines.scoring.reward_model.score_window", broken)
    rm = RewardModel(str(llama), max_length=96, share_prefix=True)
    assert np.abs(rm.score(items) - plain).max() <= 1e-4
    assert rm.prefix_sharing == "off: sharing failed (this model's forward does not take that cache)"
