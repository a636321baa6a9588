"""γ (the labeler's lexicographic preference) and its cross-tab with the alignment regimes: the order,
counts against pandas, Wilson intervals and exact McNemar tests against statsmodels, and the store path."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint
from test_imprint import build

from seal.analysis.regimes import (
    REGIMES,
    agreement,
    gamma_from_store,
    gamma_regime_from_arrays,
    gamma_regime_table,
    labeler_preference,
)
from seal.errors import SealError


def labeler_regime_validator():
    """The schema of the cross-tab that `seal resistance --labeler-regime` adds to its JSON."""
    import jsonschema

    from seal.cli_schemas import _registry

    return jsonschema.Draft202012Validator({"$ref": "imprint.schema.json#/$defs/labeler_regime"}, registry=_registry())


def test_lexicographic_order_of_two_targets():
    rank = {(1, 1): 3, (1, 0): 2, (0, 1): 1, (0, 0): 0}  # (harmless, helpful), harmless first
    combos = list(itertools.product(rank, rank))
    chosen = np.array([c for c, _ in combos], dtype=float)
    rejected = np.array([r for _, r in combos], dtype=float)
    expected = [np.sign(rank[c] - rank[r]) for c, r in combos]
    assert labeler_preference(chosen, rejected).tolist() == expected


def test_signs_numbers_and_missing_labels():
    chosen = np.array([[1.0, 0.2], [0.0, 0.9], [1.0, np.nan], [0.0, 0.5]])
    rejected = np.array([[1.0, 0.1], [1.0, 0.1], [1.0, 0.3], [0.0, 0.5]])
    got = labeler_preference(chosen, rejected, signs=[-1, 1])  # first column a harm flag: less is better
    assert got[0] == 1 and got[1] == 1 and np.isnan(got[2]) and got[3] == 0
    assert agreement(np.array([[1.0, 0.0], [0.0, 0.0], [np.nan, 1.0]])).tolist()[:2] == [1.0, 0.0]


def test_crosstab_counts_intervals_and_mcnemar_match_references():
    rng = np.random.default_rng(3)
    n = 3000
    gamma = rng.choice([1.0, 0.0, -1.0, np.nan], n, p=[0.7, 0.18, 0.1, 0.02])
    model = rng.normal(size=(n, 2)) + np.where(gamma == 1, 0.8, 0.0)[:, None] * np.array([1, 0])
    control = rng.normal(size=(n, 2))
    control[:10, 1] = control[:10, 0]  # ties disagree under the paper's strict rule
    result = gamma_regime_from_arrays(
        gamma, model, control, model="post", control="pre", features=["a", "b"], ties="disagree"
    )
    d_model = (model[:, 0] > model[:, 1]).astype(int)
    d_control = (control[:, 0] > control[:, 1]).astype(int)
    labelled = ~np.isnan(gamma)
    letters = np.where(gamma == 1, "c", np.where(gamma == 0, "i", "r"))
    regime = np.select(
        [(d_control == 1) & (d_model == 1), (d_control == 0) & (d_model == 1), (d_control == 0) & (d_model == 0)],
        ["stayed_aligned", "got_aligned", "resists"],
        "reversed",
    )
    table = pd.crosstab(letters[labelled], regime[labelled])
    assert result.n_pairs == labelled.sum() and result.n_unlabelled == (~labelled).sum()
    for row in result.rows[:3]:
        g = row["gamma"]
        assert row["n"] == table.loc[g].sum()
        for name in REGIMES:
            cell = row["regimes"][name]
            assert cell["count"] == table.loc[g, name]
            low, high = proportion_confint(cell["count"], row["n"], method="wilson")
            assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((low, high), abs=1e-12)
            assert cell["share_of_regime"] == pytest.approx(table.loc[g, name] / table[name].sum())
        in_g = labelled & (letters == g)
        assert row["agreement_model"]["count"] == d_model[in_g].sum()
        assert row["agreement_control"]["count"] == d_control[in_g].sum()
        paired = pd.crosstab(d_control[in_g], d_model[in_g]).reindex(index=[1, 0], columns=[1, 0], fill_value=0)
        ref = mcnemar(paired.to_numpy(), exact=True)
        assert row["mcnemar"]["pvalue"] == pytest.approx(ref.pvalue, abs=1e-12)
        assert (row["mcnemar"]["b"], row["mcnemar"]["c"]) == (table.loc[g, "reversed"], table.loc[g, "got_aligned"])
    assert result.rows[3]["gamma"] == "all" and result.rows[3]["n"] == labelled.sum()
    resists = result.regimes["resists"]["labeler_sides_with_human"]
    in_resists = labelled & (regime == "resists") & (letters != "i")
    assert resists["count"] == np.sum(in_resists & (letters == "c")) and resists["n"] == in_resists.sum()
    json.dumps(result.to_json())
    labeler_regime_validator().validate(result.to_json())
    text = result.render()
    assert "stayed aligned" in text and "McNemar" in text and "sides with the human" in text


def test_without_a_control_only_agreement_per_gamma():
    gamma = np.array([1.0, 1.0, 0.0, -1.0])
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    result = gamma_regime_from_arrays(gamma, scores)
    c = result.rows[0]
    assert c["agreement_model"]["count"] == 1 and c["agreement_model"]["n"] == 2
    assert "regimes" not in c and result.ties_model == 1 and result.ties_control is None
    assert "agree model" in result.render()
    labeler_regime_validator().validate(result.to_json())


def test_gamma_regime_table_from_the_store(store, tmp_path):
    data = build(store, tmp_path, n=120)
    ids, gamma, names = gamma_from_store(store, "harmless,helpful")
    assert names == ["mini.last_response_is_harmless", "mini.last_response_is_helpful"]
    order = {p: i for i, p in enumerate(data["pair_ids"])}
    rows = [order[p] for p in ids]
    side = data["sides"]
    rank_c = 2 * side["chosen"]["last_response_is_harmless"] + side["chosen"]["last_response_is_helpful"]
    rank_r = 2 * side["rejected"]["last_response_is_harmless"] + side["rejected"]["last_response_is_helpful"]
    assert gamma.tolist() == np.sign(rank_c - rank_r)[rows].tolist()
    result = gamma_regime_table(store, features="harmless,helpful")  # model: aligned, control: none given
    assert result.model == "post" and result.control is None
    full = gamma_regime_table(store, "post", "pre", "harmless,helpful", ties="disagree")
    post = np.column_stack(data["scores"]["post"])[rows]
    assert full.rows[3]["agreement_model"]["count"] == int(np.sum(post[:, 0] > post[:, 1]))
    assert full.ties_model == 5
    insult_first = gamma_from_store(store, ["insult", "harmless"])[1]  # a harm flag counts reversed
    expected = np.sign(
        2 * (side["rejected"]["insult"].astype(int) - side["chosen"]["insult"])
        + np.sign(
            side["chosen"]["last_response_is_harmless"].astype(int) - side["rejected"]["last_response_is_harmless"]
        )
    )
    assert insult_first.tolist() == expected[rows].tolist()
    with pytest.raises(SealError, match="γ needs ordered features"):
        gamma_from_store(store, "topics")


def test_resistance_cli_adds_the_labeler_regime_crosstab(store, tmp_path, run_cli):
    from seal.cli_schemas import validate_output

    build(store, tmp_path, n=120)
    result = run_cli(
        "resistance", "--model", "post", "--control", "pre", "--labeler-regime", "harmless,helpful", "--json"
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    validate_output("resistance", payload)
    expected = gamma_regime_table(store, "post", "pre", "harmless,helpful").to_json()
    assert payload["labeler_regime"] == json.loads(json.dumps(expected))
    human = run_cli("resistance", "--labeler-regime", "harmless,helpful")
    assert human.exit_code == 0 and "sides with the human" in human.stdout


def test_exclude_rule_leaves_ties_and_identical_pairs_out_of_every_row():
    gamma = np.array([1.0, 1.0, 0.0, -1.0, 1.0, -1.0, 0.0, 1.0])
    model = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 2.0], [2.0, 1.0], [3.0, 1.0], [1.0, 0.0], [1, 1]])
    control = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, 3.0], [0.0, 1.0], [2, 2]])
    identical = np.array([False, False, False, False, False, False, True, True])
    res = gamma_regime_from_arrays(gamma, model, control, model="post", control="pre", identical=identical)
    # pair 2 tied by post, pair 3 tied by pre, pairs 6 and 7 identical: four left out of every row.
    assert res.tie_rule == "exclude" and res.excluded == {"identical": 2, "tied": 2}
    assert res.n_pairs == 4 and res.rows[3]["n"] == 4
    counts = {name: res.rows[3]["regimes"][name]["count"] for name in REGIMES}
    assert counts == {"stayed_aligned": 0, "got_aligned": 3, "resists": 0, "reversed": 1}
    strict = gamma_regime_from_arrays(
        gamma, model, control, model="post", control="pre", identical=identical, ties="disagree"
    )
    assert strict.n_pairs == 8 and strict.counted_as_disagreement == {"identical": 2, "tied": 2}
    assert strict.excluded == {"identical": 0, "tied": 0}
    assert "tie rule exclude (left out: 2 identical responses, 2 tied" in res.render()
    labeler_regime_validator().validate(res.to_json())


def test_the_all_row_equals_the_regimes_of_seal_resistance_under_either_rule(store, tmp_path):
    from seal.analysis.resistance import resistance

    build(store, tmp_path, n=120)
    for rule in ("exclude", "disagree"):
        table = gamma_regime_table(store, "post", "pre", "harmless,helpful", ties=rule)
        regimes = resistance(store, "post", "pre", ties=rule).regimes
        everything = table.rows[3]
        assert table.n_unlabelled == 0 and everything["n"] == regimes.n
        for name, _, _, p in regimes.items():
            assert everything["regimes"][name]["count"] == p.count
        assert everything["mcnemar"]["pvalue"] == pytest.approx(regimes.mcnemar.pvalue, rel=1e-12)
