"""An encoder RM's last layer run at the pooled first token only: same scores, checked at load."""

from __future__ import annotations

import numpy as np
import pytest
from test_scores import example_items
from tiny_models import build_bert_rm, build_deberta_rm, build_llama_rm

from seal.engines.scoring import RewardModel, pooled_layer


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    return {kind: build_bert_rm(root / kind, seed=3, kind=kind) for kind in ("bert", "roberta")}


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_scores_equal_the_whole_last_layer_at_any_batch_size(encoders, kind):
    items = example_items()
    whole = RewardModel(str(encoders[kind]), max_length=64, pooled_last_layer=False)
    reference = whole.score(items, batch_size=1)
    assert reference.std() > 0.01
    rm = RewardModel(str(encoders[kind]), max_length=64).load()
    assert rm.pooled_last_layer == f"on: `{kind}` runs its last layer at the pooled (first) token only"
    assert rm.provenance()["pooled_last_layer"] == rm.pooled_last_layer
    for batch_size in (1, 3, "auto"):
        assert np.abs(rm.score(items, batch_size=batch_size) - reference).max() <= 1e-4, batch_size
    assert hasattr(rm.model.base_model.encoder.layer[-1], "inner")  # the last layer is the wrapped one
    assert not hasattr(rm.model.base_model.encoder.layer[-2], "inner")


def test_other_architectures_keep_their_layers(tmp_path):
    deberta = RewardModel(str(build_deberta_rm(tmp_path / "deberta")), max_length=64).load()
    assert deberta.pooled_last_layer == "off: `deberta-v2` is not a BERT-layout encoder"
    llama = RewardModel(str(build_llama_rm(tmp_path / "llama")), max_length=64).load()
    assert llama.pooled_last_layer == "off: `llama` is not a BERT-layout encoder"


def test_a_wrapped_layer_that_differs_is_unwrapped_at_load(encoders, monkeypatch):
    real = pooled_layer.first_token_forward

    def drifting(layer, hidden_states, attention_mask):
        return real(layer, hidden_states, attention_mask) + 0.5

    monkeypatch.setattr(pooled_layer, "first_token_forward", drifting)
    rm = RewardModel(str(encoders["bert"]), max_length=64).load()
    assert rm.pooled_last_layer.startswith("off: the pooled-token last layer differed")
    assert not hasattr(rm.model.base_model.encoder.layer[-1], "inner")
    whole = RewardModel(str(encoders["bert"]), max_length=64, pooled_last_layer=False)
    items = example_items()
    assert np.abs(rm.score(items) - whole.score(items)).max() <= 1e-4
