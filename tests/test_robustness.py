"""`seal robustness`: a planted sensitivity (an RM that rewards '!' must be most sensitive to the op that adds
'!'), the before/after figures recomputed independently from the stored columns, the robustness score on
planted feature flips, and the real hh-rlhf harmless split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from paper_port import paper_angle
from tiny_models import minilm_tokenizer

from seal.analysis.robustness import robustness
from seal.annotate.features.writer import labels_from_records, write_labels
from seal.annotate.perturb import PerturbConfig, label_variants, perturb
from seal.annotate.scores import score
from seal.catalog.featuresets import load_feature_set
from seal.cli_schemas import validate_output
from seal.errors import SealError, StoreError
from seal.ingest import ingest
from seal.recipe import Recipe


def build_exclaim_rm(path: Path, scale: float = 10.0) -> Path:
    """A BertForSequenceClassification with hand-set weights whose reward grows with the share of '!' tokens.

    Embeddings: every token (0, 0, 1, -1), '!' (1, -1, 1, -1); attention with zero queries and keys averages
    the value projection (dims 0-1) over the sequence, so the [CLS] state gets (p, -p) with p the share of '!'
    tokens; the LayerNorms keep dim 0 monotone in p; the feed-forward adds nothing; pooler and classifier
    read dim 0: reward = scale * tanh(f(p)), 0 for a text without '!'. The MiniLM tokenizer is uncased, so
    casing is invisible to it.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tok = minilm_tokenizer()
    bang = tok.convert_tokens_to_ids("!")
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=4,
        max_position_embeddings=512,
        num_labels=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tok.pad_token_id,
    )
    model = BertForSequenceClassification(config).eval()
    layer = model.bert.encoder.layer[0]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        emb = model.bert.embeddings
        emb.word_embeddings.weight[:] = torch.tensor([0.0, 0.0, 1.0, -1.0])
        emb.word_embeddings.weight[bang] = torch.tensor([1.0, -1.0, 1.0, -1.0])
        for norm in (emb.LayerNorm, layer.attention.output.LayerNorm, layer.output.LayerNorm):
            norm.weight.fill_(1.0)
        layer.attention.self.value.weight[:] = torch.diag(torch.tensor([1.0, 1.0, 0.0, 0.0]))
        layer.attention.output.dense.weight[:] = torch.eye(4)
        model.bert.pooler.dense.weight[0, 0] = 1.0
        model.classifier.weight[0, 0] = scale
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def exclaim_rm(tmp_path_factory) -> Path:
    return build_exclaim_rm(tmp_path_factory.mktemp("exclaim") / "rm")


REPLIES = [
    "Sure, I can help. Put the egg in boiling water for nine minutes.",
    "I am not able to help with that. It could hurt someone.",
    "That sounds great! Let me know if you need anything else.",
    "You should talk to a doctor. They will know what to do.",
    "No way! That is a terrible idea. Please do not do it.",
    "Paris is the capital of France. It is a lovely city.",
    "Try asking your friend directly. Honesty usually helps.",
    "Wow! What a question! I love it.",
]


def write_pairs(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w") as fh:
        for q, chosen, rejected in rows:
            fh.write(
                json.dumps(
                    {
                        "chosen": f"\n\nHuman: {q}\n\nAssistant: {chosen}",
                        "rejected": f"\n\nHuman: {q}\n\nAssistant: {rejected}",
                    }
                )
            )
            fh.write("\n")
    return path


def test_the_planted_surface_cue_is_found_most_sensitive(store, tmp_path, exclaim_rm):
    rows = [(f"Question {i}?", REPLIES[i % 8], REPLIES[(i + 3) % 8]) for i in range(24)]
    ingest(store, str(write_pairs(tmp_path / "pairs.jsonl", rows)))
    score(store, str(exclaim_rm), alias="bang")
    methods = ["punctuation:mode=exclaim", "typos:rate=0.05", "case:mode=upper", "filler", "contractions:mode=contract"]
    for method in methods:
        perturb(store, PerturbConfig(method=method, seed=7))
    result = robustness(store, model="bang")
    ranking = result.sensitivity_table()
    assert [r["rank"] for r in ranking] == [1, 2, 3, 4, 5]
    assert ranking[0]["method"] == "punctuation"
    top, runner_up = ranking[0]["sensitivity"], ranking[1]["sensitivity"]
    assert top > 5 * runner_up, ranking
    by_method = {r.method: r for r in result.results}
    assert by_method["case"].reward["mean_abs_change_sd"] == 0.0  # the tokenizer is uncased: nothing to see
    assert by_method["punctuation"].reward["change"]["mean"] > 0  # more '!' is more reward

    # The figures, recomputed from the stored columns with plain numpy.
    tab = store.read().to_pylist()
    before, after, original, variant = [], [], [], []
    for row in tab:
        s, v = row["score_bang"], row["vscore_punctuation__bang"]
        before.append((s["chosen"], s["rejected"]))
        after.append((v["chosen"], v["rejected"]))
        original += [s["chosen"], s["rejected"]]
        variant += [v["chosen"], v["rejected"]]
    b, a = np.array(before), np.array(after)
    punct = by_method["punctuation"]
    assert punct.coverage["included"] == 24 and punct.coverage["texts"] == 48
    assert punct.before.agree == int(np.sum(b[:, 0] > b[:, 1])) and punct.before.ties == int(np.sum(b[:, 0] == b[:, 1]))
    assert punct.after.agree == int(np.sum(a[:, 0] > a[:, 1]))
    decided = (b[:, 0] != b[:, 1]) & (a[:, 0] != a[:, 1])
    flips_down = int(np.sum(decided & (b[:, 0] > b[:, 1]) & (a[:, 0] < a[:, 1])))
    flips_up = int(np.sum(decided & (b[:, 0] < b[:, 1]) & (a[:, 0] > a[:, 1])))
    assert (punct.flips["became_misaligned"], punct.flips["became_aligned"]) == (flips_down, flips_up)
    expected_p = min(
        1.0,
        2
        * sum(math.comb(flips_down + flips_up, k) for k in range(min(flips_down, flips_up) + 1))
        / 2 ** (flips_down + flips_up),
    )
    assert punct.flips["mcnemar"]["pvalue"] == pytest.approx(expected_p)
    sd = np.std([x for r in tab for x in (r["score_bang"]["chosen"], r["score_bang"]["rejected"])], ddof=1)
    delta = np.array(variant) - np.array(original)
    assert punct.reward["mean_abs_change_sd"] == pytest.approx(np.mean(np.abs(delta)) / sd)
    assert punct.reward["pearson"] == pytest.approx(np.corrcoef(original, variant)[0, 1])
    # θ from before to after by the paper's compute_angle (ported); parallel pairs, NaN there by rounding, are 0.
    keep = ~((b == 0).all(axis=1) | (a == 0).all(axis=1))
    theta = np.array([paper_angle(tuple(u), tuple(v)) for u, v in zip(b[keep], a[keep], strict=True)])
    parallel = np.isclose(b[keep, 0] * a[keep, 1] - b[keep, 1] * a[keep, 0], 0) & ((b[keep] * a[keep]).sum(axis=1) > 0)
    theta = np.where(np.isnan(theta) & parallel, 0.0, theta)
    assert punct.shift["angle_degrees"]["mean"] == pytest.approx(theta.mean())
    assert all(s["available"] is False for s in punct.to_json()["robustness_score"])

    value = result.to_json()
    validate_output("robustness", value)
    text = result.to_text()
    assert "agreement before / after" in text and "not computed" in text


CUES = """\
name: cues
features:
  - {name: excited, type: bool}
  - {name: mood, type: category, values: {sad: -1, flat: 0, glad: 1}}
  - {name: bangs, type: number}
"""


def cues(text: str) -> dict[str, object]:
    mood = "glad" if "great" in text.lower() else "flat"
    return {"excited": text.count("!") >= 3, "mood": mood, "bangs": float(text.count("!"))}


def label_cues(store, tmp_path: Path) -> None:
    """Label the originals and the punctuation variants with the `cues` feature set."""
    (tmp_path / "cues.yaml").write_text(CUES)
    fs = load_feature_set(str(tmp_path / "cues.yaml"))
    records = [
        {"pair_id": r["pair_id"], "chosen": cues(r["chosen"]), "rejected": cues(r["rejected"])}
        for r in store.read().to_pylist()
    ]
    write_labels(store, fs, labels_from_records(fs, records), Recipe("label", "cues", {"labeler": "test"}))
    label_variants(store, "punctuation", fs, lambda texts: [cues(t.response) for t in texts])


def test_robustness_score_finds_the_planted_feature_flip(store, tmp_path, exclaim_rm, run_cli):
    # A: the rejected side becomes excited (3 '!') and beats the chosen one; B: it does too but the chosen side
    # has more '!' (stays aligned); C: the rejected side gains one '!' only (stays aligned).
    a = [(f"A{i}?", "Sure! Here you go!", "No. Go away. Leave me alone now.") for i in range(8)]
    b = [(f"B{i}?", "Sure! Here! You go! Enjoy it!", "No. Go away. Leave me alone now.") for i in range(4)]
    c = [(f"C{i}?", "Sure! Here you go!", "No") for i in range(6)]
    ingest(store, str(write_pairs(tmp_path / "pairs.jsonl", a + b + c)))
    score(store, str(exclaim_rm), alias="bang")
    perturb(store, PerturbConfig(method="punctuation:mode=exclaim"))

    missing = robustness(store).results[0].robustness_score[0]
    assert not missing.available and "no labels" in missing.reason

    label_cues(store, tmp_path)

    result = robustness(store)
    (res,) = result.results
    assert (res.flips["became_misaligned"], res.flips["stayed_aligned"]) == (8, 10)
    (pi,) = res.robustness_score
    assert pi.available and pi.estimator == "lpm" and pi.n == 18 and pi.cov_type == "HC3"
    assert pi.correction == result.options["correction"] == "bonferroni"  # one default, as in `seal imprint`
    terms = {c.term: c for c in pi.coefficients}
    planted = terms["excited.rejected:Δ=-1"]
    assert planted.coef == pytest.approx(8 / 12) and planted.rows == 12
    assert planted.p_adjusted < 0.01 and terms["intercept"].coef == pytest.approx(0, abs=1e-9)
    assert "bangs.rejected:Δ=-1" in pi.constant_terms  # every rejected side gained a '!'
    assert "excited.chosen" in pi.no_flips and "mood.rejected" in pi.no_flips
    assert pi.formula == "became_misaligned ~ 1 + 1[excited.rejected:Δ=-1]"

    logit = robustness(store, estimator="logit", correction="bonferroni").results[0].robustness_score[0]
    assert logit.estimator == "logit" and logit.correction == "bonferroni"
    assert logit.available or "did not converge" in logit.reason or "could not be fitted" in logit.reason

    out = run_cli("robustness", "--method", "punctuation", "--json")
    validate_output("robustness", json.loads(out.stdout))
    human = run_cli("robustness")
    assert "robustness score: bang × punctuation × features_cues" in human.stdout
    bad = run_cli("robustness", "--model", "nope")
    assert bad.exit_code == 1 and "no scored reward model `nope`" in bad.stderr


def test_robustness_needs_perturbations_and_reports_stale_scores(store, tmp_path, exclaim_rm):
    ingest(
        store,
        str(write_pairs(tmp_path / "pairs.jsonl", [("Q?", REPLIES[0], REPLIES[2]), ("R?", REPLIES[4], REPLIES[1])])),
    )
    score(store, str(exclaim_rm), alias="bang")
    with pytest.raises(StoreError, match="no perturbations"):
        robustness(store)
    perturb(store, PerturbConfig(method="typos"), rescore=False)
    (res,) = robustness(store).results
    assert res.status == "not_scored" and res.before is None
    perturb(store, PerturbConfig(method="typos"))
    score(store, str(exclaim_rm), alias="bang", max_length=64, replace=True)
    (res,) = robustness(store).results
    assert res.status == "stale" and "rerun `seal perturb`" in res.note


def test_real_harmless_split(shared_data, store, exclaim_rm, run_cli):
    """The real hh-rlhf harmless-base test split (its first 300 pairs, 15 perturbed, to stay fast)."""
    source = shared_data / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    if not source.exists():
        pytest.skip(f"{source} is absent")
    ingest(store, str(source), limit=300)
    score(store, str(exclaim_rm), alias="bang", max_length=256)
    for method in ("punctuation:mode=exclaim", "typos:rate=0.03"):
        result = run_cli(
            "perturb", "--method", method, "--sample", "15", "--seed", "1", "--min-similarity", "0.5", "-s", "--json"
        )
        assert result.exit_code == 0, result.stderr
        validate_output("perturb", json.loads(result.stdout))
    out = run_cli("robustness", "--json")
    value = json.loads(out.stdout)
    validate_output("robustness", value)
    by_method = {r["method"]: r for r in value["results"]}
    for r in by_method.values():
        assert r["status"] == "ok" and r["coverage"]["pairs_with_variants"] == 15
        assert r["agreement"]["before"]["agreement"]["n"] > 0 and r["flips"]["mcnemar"]["pvalue"] <= 1
    assert value["sensitivity"][0]["method"] == "punctuation"
    human = run_cli("robustness").stdout
    assert "flips (exact McNemar)" in human and "sensitivity" in human


def _independent_pi(store, terms: list[str], population: str):
    """The robustness-score regression rebuilt from the stored columns with statsmodels: outcome and dummies
    computed here from the scores and the cue labeler, for the terms seal kept, on `population`."""
    import statsmodels.api as sm

    rows = store.read().to_pylist()
    y, X = [], []
    for r in rows:
        before = r["score_bang"]
        variants = {v["side"]: v["text"] for v in r["variants_punctuation"] or []}
        vscore = r["vscore_punctuation__bang"] or {}
        after = {side: vscore.get(side) if side in variants else before[side] for side in ("chosen", "rejected")}
        if any(value is None for value in after.values()):
            continue
        agree_before, agree_after = before["chosen"] > before["rejected"], after["chosen"] > after["rejected"]
        decided = before["chosen"] != before["rejected"] and after["chosen"] != after["rejected"]
        if not decided or (population == "aligned-before" and not agree_before):
            continue
        dummies = []
        for term in terms:
            feature_side, level = term.split(":Δ=")
            feature, side = feature_side.split(".")
            original = cues(r[side])[feature]
            variant = cues(variants.get(side, r[side]))[feature]
            delta = float(original) - float(variant)
            dummies.append(float((np.sign(delta) if feature == "bangs" else delta) == float(level)))
        X.append(dummies)
        y.append(float(agree_before and not agree_after))
    return sm.OLS(np.array(y), sm.add_constant(np.array(X), has_constant="add")).fit(cov_type="HC3")


def test_robustness_score_population_all_is_the_papers_and_aligned_before_conditions(store, tmp_path, exclaim_rm):
    a = [(f"A{i}?", "Sure! Here you go!", "No. Go away. Leave me alone now.") for i in range(8)]
    b = [(f"B{i}?", "Sure! Here! You go! Enjoy it!", "No. Go away. Leave me alone now.") for i in range(4)]
    c = [(f"C{i}?", "Sure! Here you go!", "No") for i in range(6)]
    # D: wrong before (the rejected side shouts), and still wrong after: outcome 0 in the population `all`.
    d = [(f"D{i}?", "No. Go away. Leave me alone now.", "Wow! Yes! Great! Amazing!") for i in range(7)]
    ingest(store, str(write_pairs(tmp_path / "pairs.jsonl", a + b + c + d)))
    score(store, str(exclaim_rm), alias="bang")
    perturb(store, PerturbConfig(method="punctuation:mode=exclaim"))
    label_cues(store, tmp_path)

    everyone = robustness(store)
    (pi_all,) = everyone.results[0].robustness_score
    (pi_cond,) = robustness(store, population="aligned-before").results[0].robustness_score
    assert everyone.options["population"] == "all" and pi_all.population == "all"
    assert pi_cond.population == "aligned-before" and pi_all.tie_rule == pi_cond.tie_rule == "exclude"
    assert pi_all.available and pi_cond.available
    assert (pi_all.n, pi_cond.n) == (25, 18)  # the 7 D pairs enter only the paper's population
    assert pi_all.outcome_rate == pytest.approx(8 / 25) and pi_cond.outcome_rate == pytest.approx(8 / 18)
    for pi, population in ((pi_all, "all"), (pi_cond, "aligned-before")):
        terms = [c.term for c in pi.coefficients[1:]]
        ref = _independent_pi(store, terms, population)
        assert int(ref.nobs) == pi.n
        np.testing.assert_allclose([c.coef for c in pi.coefficients], ref.params, atol=1e-10)
        np.testing.assert_allclose([c.se for c in pi.coefficients], ref.bse, atol=1e-10)
    text = robustness(store, population="aligned-before").to_text()
    assert "population aligned-before (tie rule exclude), N=18" in text
    with pytest.raises(SealError, match="unknown population"):
        robustness(store, population="some")
