"""Feature imprint: equality with statsmodels' formula API (cluster, HC3, nonrobust, within-pair / fixed
effects, logit), the pair-level outcomes, design pruning and VIFs, encodings, corrections, standardisation,
the CLI (JSON schema, plot) and a coverage simulation showing why SEs must be clustered by pair."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import statsmodels.formula.api as smf
from paper_port import paper_angle

import seal
from seal.analysis.imprint import (
    imprint,
    misalignment,
    ols_batch,
    prune_design,
    resolve_features,
    shift_angle,
)
from seal.annotate.features.writer import labels_from_arrays, write_labels
from seal.catalog.features import stored_feature_sets
from seal.catalog.featuresets import load_feature_set
from seal.catalog.models import SCORE_TYPE
from seal.cli_schemas import validate_output
from seal.errors import SealError
from seal.recipe import Recipe
from seal.store import RunRecord, new_run_id, now_utc

TOL = 1e-8
SET_YAML = """name: mini
features:
  - {name: last_response_is_harmless, type: bool, role: target}
  - {name: last_response_is_helpful, type: bool, role: target}
  - {name: insult, type: bool, role: target, sign: -1}
  - {name: eloquent, type: bool, role: spoiler}
  - {name: length, type: number, role: spoiler}
  - {name: sentiment, type: category, role: spoiler, values: {negative: -1, neutral: 0, positive: 1}}
  - {name: topics, type: list, values: [science, sport, art, music]}
"""
BOOLS = ["last_response_is_harmless", "last_response_is_helpful", "insult", "eloquent"]


def transcript(human: str, assistant: str) -> str:
    return f"\n\nHuman: {human}\n\nAssistant: {assistant}"


def add_scores(store, alias: str, pair_ids, chosen, rejected, role: str = "aligned") -> None:
    struct = pa.StructArray.from_arrays(
        [pa.array(chosen, pa.float64()), pa.array(rejected, pa.float64())], fields=list(SCORE_TYPE)
    )
    version = store.materialize_column(
        f"score_{alias}", pa.table({"pair_id": pa.array(pair_ids), f"score_{alias}": struct})
    )
    store.record_run(
        RunRecord(
            new_run_id(),
            "score",
            alias,
            "f" * 16,
            {"stage": "score", "name": alias},
            {"role": role, "origin": "imported"},
            "done",
            len(pair_ids),
            version,
            now_utc(),
            now_utc(),
        )
    )


def build(store, tmp_path: Path, n: int = 160, seed: int = 1, identical: tuple[int, ...] = ()) -> dict:
    """A store of n hh-style pairs with the `mini` labels and two RMs (post: aligned, pre: control); the pairs
    at `identical` have the same response on both sides."""
    path = tmp_path / "pairs.jsonl"
    with path.open("w") as handle:
        for i in range(n):
            row = {
                "chosen": transcript(f"question {i}", f"answer {i} a"),
                "rejected": transcript(f"question {i}", f"answer {i} {'a' if i in identical else 'b'}"),
            }
            handle.write(json.dumps(row) + "\n")
    seal.ingest(store, path, name="sim")
    table = store.read(["pair_id", "source_index"]).sort_by("source_index")
    pair_ids = table.column("pair_id").to_pylist()
    rng = np.random.default_rng(seed)
    sides = {}
    for side, shift in (("chosen", 0.15), ("rejected", -0.15)):
        v = {name: rng.random(n) < 0.5 + shift for name in BOOLS}
        v["length"] = np.round(rng.gamma(2.0, 40.0, n), 1)
        v["sentiment"] = rng.choice(["negative", "neutral", "positive"], n).tolist()
        v["topics"] = [[t for t in ("science", "sport", "art", "music") if rng.random() < p] for p in rng.random(n)]
        sides[side] = v
    fs = load_feature_set(str(write_set(tmp_path)))
    labels = labels_from_arrays(fs, pair_ids, sides["chosen"], sides["rejected"])
    write_labels(store, fs, labels, Recipe("label", "mini", {"labeler": "test"}), {"labeler": "test"})
    pair_effect = rng.normal(0, 1.0, n)
    code = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}
    scores = {}
    for alias, coefs in (("post", (0.9, 0.5, -0.7, 0.3, 0.004, 0.25)), ("pre", (0.3, 0.2, -0.1, 0.4, 0.006, 0.1))):
        out = []
        for side in ("chosen", "rejected"):
            v = sides[side]
            r = (
                coefs[0] * v["last_response_is_harmless"] + coefs[1] * v["last_response_is_helpful"]
                + coefs[2] * v["insult"] + coefs[3] * v["eloquent"] + coefs[4] * v["length"]
                + coefs[5] * np.array([code[s] for s in v["sentiment"]])
                + 0.2 * np.array([("science" in t) for t in v["topics"]])
                + pair_effect + rng.normal(0, 0.8, n)
            )  # fmt: skip
            out.append(np.round(r, 3))
        scores[alias] = out
    scores["post"][1][:5] = scores["post"][0][:5]  # five exact ties
    add_scores(store, "post", pair_ids, *scores["post"], role="aligned")
    add_scores(store, "pre", pair_ids, *scores["pre"], role="control")
    return {"pair_ids": pair_ids, "sides": sides, "scores": scores, "n": n}


def write_set(tmp_path: Path) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text(SET_YAML)
    return path


@pytest.fixture
def world(store, tmp_path):
    return store, build(store, tmp_path)


def text_frame(data: dict, minus: bool = False) -> pd.DataFrame:
    """One row per text, built independently of seal's loader."""
    rows = []
    code = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}
    for i in range(data["n"]):
        for j, side in enumerate(("chosen", "rejected")):
            v = data["sides"][side]
            y = data["scores"]["post"][j][i] - (data["scores"]["pre"][j][i] if minus else 0.0)
            row = {"y": y, "pair": i, "side": side}
            row.update({b: float(v[b][i]) for b in BOOLS})
            row["length"] = v["length"][i]
            row["sentiment"] = code[v["sentiment"][i]]
            for t in ("science", "sport", "art", "music"):
                row[f"topics_{t}"] = float(t in v["topics"][i])
            rows.append(row)
    return pd.DataFrame(rows)


FORMULA = "y ~ " + " + ".join(
    [*BOOLS, "length", "sentiment", "topics_science", "topics_sport", "topics_art", "topics_music"]
)


def coef_arrays(result, regression: int = 0) -> tuple[np.ndarray, np.ndarray]:
    coefs = result.regressions[regression].coefficients
    return np.array([c["beta"] for c in coefs]), np.array([c["se"] for c in coefs])


# -- equality with statsmodels ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cov", "fit_kwargs"),
    [("cluster", "cluster"), ("hc3", {"cov_type": "HC3"}), ("nonrobust", {})],
)
def test_text_level_equals_statsmodels(world, cov, fit_kwargs):
    store, data = world
    result = imprint(store, "post", features="mini", cov=cov, correction="none", min_count=1)
    df = text_frame(data)
    if fit_kwargs == "cluster":
        fit_kwargs = {"cov_type": "cluster", "cov_kwds": {"groups": df["pair"]}}
    ref = smf.ols(FORMULA, df).fit(**fit_kwargs)
    beta, se = coef_arrays(result)
    np.testing.assert_allclose(beta, ref.params.values, rtol=0, atol=TOL)
    np.testing.assert_allclose(se, ref.bse.values, rtol=0, atol=TOL)
    reg = result.regressions[0]
    assert reg.n == 2 * data["n"] and reg.k == len(ref.params)
    assert reg.r2 == pytest.approx(ref.rsquared, abs=1e-12)
    assert reg.condition_number == pytest.approx(ref.condition_number, rel=1e-8)
    assert reg.formula == "score_post ~ 1 + " + FORMULA.split("~ ")[1].replace("topics_", "topics=")
    if cov == "nonrobust":
        np.testing.assert_allclose([c["p"] for c in reg.coefficients], ref.pvalues.values, atol=1e-10)
        np.testing.assert_allclose([c["ci_low"] for c in reg.coefficients], ref.conf_int()[0].values, atol=1e-8)


def test_within_pair_estimator_equals_fixed_effects_demeaning_and_differences(world):
    store, data = world
    df = text_frame(data)
    terms = FORMULA.split("~ ")[1]
    fe_nonrobust = imprint(store, "post", features="mini", fe="pair", cov="nonrobust", correction="none", min_count=1)
    beta, se = coef_arrays(fe_nonrobust)
    # 1. pair fixed effects as dummies (LSDV): same β and, with two texts per pair, the same classical SEs
    lsdv = smf.ols(f"y ~ {terms} + C(pair)", df).fit()
    names = [c["name"].replace("=", "_") for c in fe_nonrobust.regressions[0].coefficients]
    np.testing.assert_allclose(beta, lsdv.params[names].values, atol=TOL)
    np.testing.assert_allclose(se, lsdv.bse[names].values, atol=TOL)
    # 2. demeaning within pairs: same β
    cols = ["y", *[n for n in names]]
    demeaned = df[cols] - df.groupby("pair")[cols].transform("mean")
    within = smf.ols(f"y ~ {' + '.join(names)} - 1", demeaned).fit()
    np.testing.assert_allclose(beta, within.params.values, atol=TOL)
    # 3. chosen − rejected differences without intercept: same β; cluster by pair = HC1 there; HC3 too
    chosen, rejected = df[df.side == "chosen"].reset_index(), df[df.side == "rejected"].reset_index()
    diff = chosen[cols] - rejected[cols]
    diff["pair"] = chosen["pair"]
    for cov, kwargs in (
        ("cluster", {"cov_type": "cluster", "cov_kwds": {"groups": diff["pair"]}}),
        ("hc3", {"cov_type": "HC3"}),
    ):
        ours = imprint(store, "post", features="mini", fe="pair", cov=cov, correction="none", min_count=1)
        ref = smf.ols(f"y ~ {' + '.join(names)} - 1", diff).fit(**kwargs)
        b, s = coef_arrays(ours)
        np.testing.assert_allclose(b, ref.params.values, atol=TOL)
        np.testing.assert_allclose(s, ref.bse.values, atol=TOL)
    reg = fe_nonrobust.regressions[0]
    assert reg.n == data["n"] and reg.r2_kind == "within" and reg.formula.startswith("Δ(score_post) ~ 0 + Δ")
    assert not any(c["role"] == "intercept" for c in reg.coefficients)


def test_minus_fits_the_difference_of_rewards(world):
    store, data = world
    df = text_frame(data, minus=True)
    result = imprint(store, "post", minus="pre", features="mini", correction="none", min_count=1)
    ref = smf.ols(FORMULA, df).fit(cov_type="cluster", cov_kwds={"groups": df["pair"]})
    beta, se = coef_arrays(result)
    np.testing.assert_allclose(beta, ref.params.values, atol=TOL)
    np.testing.assert_allclose(se, ref.bse.values, atol=TOL)
    assert result.regressions[0].outcome == "reward_diff"
    assert result.regressions[0].formula.startswith("score_post - score_pre ~ 1 + ")


def pair_frame(data: dict) -> pd.DataFrame:
    df = text_frame(data)
    chosen = df[df.side == "chosen"].drop(columns=["y", "side"]).set_index("pair").add_suffix("_c")
    rejected = df[df.side == "rejected"].drop(columns=["y", "side"]).set_index("pair").add_suffix("_r")
    out = chosen.join(rejected).reset_index()
    post = np.column_stack(data["scores"]["post"])
    pre = np.column_stack(data["scores"]["pre"])
    out["misaligned"] = (post[:, 0] <= post[:, 1]).astype(float)
    out["tie"] = post[:, 0] == post[:, 1]
    # θ by the paper's own compute_angle (ported), from the control's vector to the model's.
    out["theta"] = [paper_angle(tuple(u), tuple(v)) for u, v in zip(pre, post, strict=True)]
    return out


def pair_formula(outcome: str) -> str:
    names = [*BOOLS, "length", "sentiment", "topics_science", "topics_sport", "topics_art", "topics_music"]
    return f"{outcome} ~ " + " + ".join(f"{n}_{s}" for n in names for s in ("c", "r"))


def test_pair_level_misalignment_theta_and_logit_equal_statsmodels(world):
    store, data = world
    df = pair_frame(data)
    result = imprint(store, "post", control="pre", level="pair", features="mini", correction="none", min_count=1)
    mis, theta = result.regressions
    assert (
        mis.outcome == "misaligned"
        and mis.extra["ties"] == 5
        and "ties r(c) = r(r) count as misaligned" in mis.definition
    )
    assert mis.outcome_mean == pytest.approx(df["misaligned"].mean())
    for reg, outcome in ((mis, "misaligned"), (theta, "theta")):
        ref = smf.ols(pair_formula(outcome), df).fit(cov_type="cluster", cov_kwds={"groups": df["pair"]})
        np.testing.assert_allclose([c["beta"] for c in reg.coefficients], ref.params.values, atol=TOL)
        np.testing.assert_allclose([c["se"] for c in reg.coefficients], ref.bse.values, atol=TOL)
    assert mis.coefficients[1]["name"] == "last_response_is_harmless[chosen]"
    assert mis.coefficients[1]["side"] == "chosen" and mis.coefficients[2]["side"] == "rejected"
    dropped = imprint(store, "post", level="pair", features="mini", ties="drop", min_count=1).regressions[0]
    assert dropped.n == data["n"] - 5 and dropped.extra["ties"] == 0
    logit = imprint(store, "post", level="pair", features="mini", logit=True, cov="nonrobust", min_count=1)
    ref = smf.logit(pair_formula("misaligned"), df).fit(disp=0)
    reg = logit.regressions[0]
    np.testing.assert_allclose([c["beta"] for c in reg.coefficients], ref.params.values, atol=1e-7)
    np.testing.assert_allclose([c["se"] for c in reg.coefficients], ref.bse.values, atol=1e-7)
    assert reg.r2_kind == "mcfadden" and reg.r2 == pytest.approx(ref.prsquared, abs=1e-6) and reg.converged


def test_misalignment_and_angle_definitions():
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [np.nan, 1.0]])
    assert misalignment(scores).tolist()[:3] == [0.0, 1.0, 1.0]
    assert misalignment(scores, "aligned")[2] == 0.0 and np.isnan(misalignment(scores, "drop")[2])
    assert np.isnan(misalignment(scores)[3])
    angles = shift_angle(
        np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    )
    # counter-clockwise positive, as the paper's compute_angle
    assert angles[0] == pytest.approx(90.0) and angles[1] == pytest.approx(-45.0) and np.isnan(angles[2])
    assert angles[0] == pytest.approx(paper_angle((1.0, 0.0), (0.0, 1.0)))
    assert angles[1] == pytest.approx(paper_angle((1.0, 0.0), (1.0, -1.0)))


def test_theta_regression_leaves_out_pairs_with_identical_responses(store, tmp_path):
    data = build(store, tmp_path, n=120, identical=(3, 40, 77))
    result = imprint(store, "post", control="pre", level="pair", features="mini", correction="none", min_count=1)
    theta = next(r for r in result.regressions if r.outcome == "theta")
    assert theta.extra["excluded_identical"] == 3 and theta.extra["excluded_zero_vectors"] == 0
    assert theta.n == 117 and "counter-clockwise" in theta.definition
    df = pair_frame(data).drop(index=[3, 40, 77])
    ref = smf.ols(pair_formula("theta"), df).fit(cov_type="cluster", cov_kwds={"groups": df["pair"]})
    np.testing.assert_allclose([c["beta"] for c in theta.coefficients], ref.params.values, atol=TOL)
    assert theta.extra["theta_mean"] == pytest.approx(df["theta"].mean())


# -- design ------------------------------------------------------------------------------------------------
def test_constant_and_collinear_regressors_are_dropped_and_named():
    rng = np.random.default_rng(0)
    n = 50
    a, b = rng.normal(size=n), rng.normal(size=n)
    X = np.column_stack([a, np.full(n, 3.0), b, 2 * a - b + 1, rng.normal(size=n)])
    keep, dropped = prune_design(X, ["a", "const", "b", "combo", "c"], has_const=True)
    assert keep == [0, 2, 4]
    assert dropped[0] == {"name": "const", "reason": "constant (always 3)"}
    assert dropped[1]["name"] == "combo" and dropped[1]["reason"].startswith("collinear with a, b")


def test_vif_report_matches_statsmodels(world):
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    store, data = world
    df = text_frame(data)
    result = imprint(store, "post", features="mini", min_count=1)
    names = [v["name"].replace("=", "_") for v in result.regressions[0].vif]
    exog = np.column_stack([np.ones(len(df)), df[names].to_numpy()])
    expected = [variance_inflation_factor(exog, j) for j in range(1, exog.shape[1])]
    np.testing.assert_allclose([v["vif"] for v in result.regressions[0].vif], expected, rtol=1e-8)


def test_encodings_onehot_multihot_min_count_and_feature_selection(world):
    store, data = world
    onehot = imprint(store, "post", features="sentiment,topics,harmless", categorical="onehot", min_count=1)
    names = [c["name"] for c in onehot.regressions[0].coefficients]
    assert names == [
        "Intercept", "sentiment=neutral", "sentiment=positive", "topics=science", "topics=sport", "topics=art",
        "topics=music", "last_response_is_harmless",
    ]  # fmt: skip
    counts = {
        t: sum(t in x for side in ("chosen", "rejected") for x in data["sides"][side]["topics"]) for t in ("art",)
    }
    rare = imprint(store, "post", features="topics", min_count=counts["art"] + 1)
    assert any(d["name"] == "topics=art" and "fewer than min_count" in d["reason"] for d in rare.regressions[0].dropped)
    sets = stored_feature_sets(store)
    assert [f.name for _, f in resolve_features(sets, "mini.length,helpful")] == ["length", "last_response_is_helpful"]
    with pytest.raises(SealError, match="no labelled feature `nope`"):
        resolve_features(sets, "nope")
    with pytest.raises(SealError, match="--minus and --fe apply to --level text"):
        imprint(store, "post", level="pair", fe="pair")
    with pytest.raises(SealError, match="no scores for `ghost`"):
        imprint(store, "ghost")


def test_corrections_match_statsmodels_multipletests(world):
    from statsmodels.stats.multitest import multipletests

    store, _ = world
    for method in ("bonferroni", "holm", "fdr_bh"):
        reg = imprint(store, "post", features="mini", correction=method, min_count=1).regressions[0]
        p = np.array([c["p"] for c in reg.coefficients[1:]])
        np.testing.assert_allclose(
            [c["p_adj"] for c in reg.coefficients[1:]], multipletests(p, method=method)[1], atol=1e-12
        )
        assert reg.coefficients[0]["p_adj"] is None  # the intercept is not a tested feature


def test_standardized_coefficients(world):
    store, data = world
    df = text_frame(data)
    plain = imprint(store, "post", features="length,harmless")
    std = imprint(store, "post", features="length,harmless", standardize=True)
    for c_plain, c_std in zip(plain.regressions[0].coefficients[1:], std.regressions[0].coefficients[1:], strict=True):
        column = df["length" if c_plain["name"] == "length" else "last_response_is_harmless"]
        expected = c_plain["beta"] * column.std() / df["y"].std()
        assert c_plain["std_beta"] == pytest.approx(expected, rel=1e-10)
        assert c_std["beta"] == pytest.approx(expected, rel=1e-10) and c_std["std_beta"] == c_std["beta"]
        assert c_std["t"] == pytest.approx(c_plain["t"], rel=1e-8)


# -- CLI ---------------------------------------------------------------------------------------------------
def test_cli_imprint_json_text_and_plot(run_cli, world, tmp_path):
    _store, _ = world
    result = run_cli("imprint", "--model", "post", "--features", "mini", "--json", "--min-count", "1")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    validate_output("imprint", out)
    coefs = {c["name"]: c for c in out["regressions"][0]["coefficients"]}
    assert coefs["insult"]["sign"] == -1 and coefs["insult"]["role"] == "target" and coefs["insult"]["direction"] == "-"
    assert coefs["eloquent"]["role"] == "spoiler"
    pair = run_cli("imprint", "--control", "pre", "--level", "pair", "--json", "--plot", tmp_path / "p.png")
    assert pair.exit_code == 0, pair.output
    validate_output("imprint", json.loads(pair.stdout))
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    text = run_cli("imprint", "--fe", "pair", "--cov", "hc3", "--correction", "holm")
    assert text.exit_code == 0
    assert "formula: Δ(score_post) ~ 0 + Δ" in text.stdout and "heteroskedasticity-robust HC3" in text.stdout
    bad = run_cli("imprint", "--logit")
    assert bad.exit_code == 1 and "--control and --logit apply to --level pair" in bad.stderr


def test_text_output_warns_when_sets_label_different_pairs_or_rows_are_few(run_cli, world):
    store, data = world
    seal.label(store, sample=20)  # heuristics on 20 of the 160 pairs; `mini` labels every pair
    joint = run_cli("imprint", "--model", "post", "--min-count", "1")
    assert joint.exit_code == 0, joint.output
    assert "N = 40 (20 pairs; 280 rows dropped for missing values)" in joint.stdout
    assert "only the pairs every set labels are fitted: --features SET" in joint.stdout
    assert "(fewer than 10 per term)" in joint.stdout
    alone = run_cli("imprint", "--model", "post", "--features", "mini", "--min-count", "1")
    assert alone.exit_code == 0, alone.output
    assert f"N = {2 * data['n']:,} ({data['n']} pairs; 0 rows" in alone.stdout
    assert "every set labels" not in alone.stdout and "per term" not in alone.stdout


def test_cli_confidence_replaces_alpha_and_bh_is_fdr_bh(run_cli, world):
    """One name for the interval level (--confidence, default 0.95; the JSON keeps alpha = 1 − confidence) and
    one for Benjamini–Hochberg (`bh`, the shared --correction option's; imprint reports it as fdr_bh)."""
    args = ("imprint", "--model", "post", "--features", "mini", "--min-count", "1", "--json")

    def run(*extra):
        out = run_cli(*args, *extra)
        assert out.exit_code == 0, out.output
        value = json.loads(out.stdout)
        validate_output("imprint", value)
        return value

    default = run()
    assert default["alpha"] == 0.05 and default["correction"] == "bonferroni"
    ninety = run("--confidence", "0.9")
    assert ninety["alpha"] == 0.1
    legacy = run("--alpha", "0.1")  # hidden, deprecated: still works
    assert legacy["regressions"][0]["coefficients"] == ninety["regressions"][0]["coefficients"]
    narrow = {c["name"]: c for c in ninety["regressions"][0]["coefficients"]}
    wide = {c["name"]: c for c in default["regressions"][0]["coefficients"]}
    assert all(narrow[n]["ci_high"] - narrow[n]["ci_low"] < wide[n]["ci_high"] - wide[n]["ci_low"] for n in wide)
    both = run_cli(*args, "--alpha", "0.1", "--confidence", "0.9")
    assert both.exit_code == 2 and "exclude each other" in both.stderr
    assert "--alpha" not in run_cli("imprint", "--help").stdout
    bh, fdr = run("--correction", "bh"), run("--correction", "fdr_bh")
    assert bh["correction"] == fdr["correction"] == "fdr_bh"
    assert bh["regressions"][0]["coefficients"] == fdr["regressions"][0]["coefficients"]


# -- why cluster by pair: a coverage simulation ------------------------------------------------------------
def simulate(n_datasets: int = 400, pairs: int = 200, seed: int = 20240817):
    """400 datasets with planted β and a strong pair effect shared by both texts of a pair (and a regressor
    that is correlated within pairs, like most SEAL features): one vectorised fit for all datasets."""
    rng = np.random.default_rng(seed)
    beta = np.array([1.0, 0.5, -0.3])
    shape = (n_datasets, pairs, 2)
    x1 = rng.normal(0, 1, (n_datasets, pairs, 1)) + rng.normal(0, 0.5, shape)  # mostly a pair-level trait
    x2 = (rng.random(shape) < 0.5).astype(float)  # varies freely within pairs
    u = rng.normal(0, 2.0, (n_datasets, pairs, 1))  # pair effect: shared by both texts
    y = beta[0] + beta[1] * x1 + beta[2] * x2 + u + rng.normal(0, 0.5, shape)
    X = np.stack([np.ones(shape), x1, x2], axis=-1).reshape(n_datasets, 2 * pairs, 3)
    return X, y.reshape(n_datasets, 2 * pairs), np.repeat(np.arange(pairs), 2), beta


def coverage(X, y, groups, beta, cov: str) -> np.ndarray:
    from scipy import stats

    b, covariance, _ = ols_batch(X, y, cov, groups)
    se = np.sqrt(np.diagonal(covariance, axis1=-2, axis2=-1))
    n, k = X.shape[-2:]
    df = len(np.unique(groups)) - 1 if cov == "cluster" else n - k
    crit = stats.t.isf(0.025, df)
    return (np.abs(b - beta) <= crit * se).mean(axis=0)


def test_cluster_ses_cover_95_percent_and_classical_ses_do_not():
    X, y, groups, beta = simulate()
    clustered = coverage(X, y, groups, beta, "cluster")
    classical = coverage(X, y, groups, beta, "nonrobust")
    # Clustered by pair: every coefficient's 95% CI covers the truth in 95% ± 3% of the datasets.
    assert np.all(np.abs(clustered - 0.95) <= 0.03), clustered
    # Classical SEs treat the two texts of a pair as independent. With a pair effect in the errors and a
    # regressor that is itself mostly a pair trait, they are too small and the CIs under-cover badly;
    # for the regressor that varies within pairs the pair effect cancels and they are fine.
    assert classical[1] < 0.90 and classical[0] < 0.93, classical
    assert abs(classical[2] - 0.95) <= 0.03, classical
