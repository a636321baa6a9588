"""`seal resistance`: agreement, ties and identical responses, regimes + McNemar, reward vectors, margins,
--by groups, model defaults, the CLI and its JSON schema. Numbers are checked against hand-computed values
and against statsmodels."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO
from paper_port import paper_angle
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

import seal
from seal.analysis.resistance import ModelRef, resistance, resistance_from_arrays, shift_angles
from seal.annotate.import_scores import import_scores
from seal.catalog.models import SCORE_TYPE
from seal.errors import SealError
from seal.recipe import Recipe
from seal.store import RunRecord, new_run_id, now_utc

SCHEMA = json.loads((REPO / "schemas" / "cli" / "resistance.schema.json").read_text())


def check_schema(payload: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(payload)


def ingest_pairs(store, tmp_path: Path, n: int, name: str = "fx", identical=(), context_mismatch=()) -> list[str]:
    """Ingest n hh-style pairs as dataset `name`; returns their pair ids in file order."""
    path = tmp_path / f"{name}.jsonl"
    with open(path, "w") as handle:
        for i in range(n):
            chosen = f"\n\nHuman: {name} question {i}\n\nAssistant: good answer {i}"
            rejected = f"\n\nHuman: {name} question {i}\n\nAssistant: bad answer {i}"
            if i in identical:
                rejected = chosen
            if i in context_mismatch:
                rejected = f"\n\nHuman: {name} another question {i}\n\nAssistant: bad answer {i}"
            handle.write(json.dumps({"chosen": chosen, "rejected": rejected}) + "\n")
    result = seal.ingest(store, str(path), name=name)
    assert result.ingested == n and result.quarantined == 0
    rows = store.read(["pair_id", "dataset", "source_index"]).to_pylist()
    return [r["pair_id"] for r in sorted((r for r in rows if r["dataset"] == name), key=lambda r: r["source_index"])]


def import_arrays(store, tmp_path: Path, alias: str, ids, chosen, rejected, role: str) -> None:
    path = tmp_path / f"{alias}.parquet"
    table = pa.table({"pair_id": pa.array(ids, pa.string()), "chosen": chosen, "rejected": rejected})
    pq.write_table(table, path)
    import_scores(store, path, alias, role=role)


# -- the hand-computed store --------------------------------------------------------------------
# index: (post chosen, post rejected), (pre chosen, pre rejected); see the comments for each category.
POST = [(2, 1), (3, -1), (-1, 1), (1, 2), (1, 0.5), (0.5, 0.5), (1, 0), (0.2, 0.2), (1, 1), (2, -2), (1, 0)]
PRE = [(1, 2), (2, 1), (-2, -1), (3, 0), (0.5, 1), (1, 0), (0.3, 0.3), (0.1, 0.1), (2, 2), (-1, 1)]
# 0 got aligned, 1 stayed, 2 resists (context mismatch), 3 reversed, 4 got aligned, 5 post tie,
# 6 pre tie, 7 both tie, 8 identical responses, 9 got aligned (opposite vectors), 10 no pre score, 11 no scores.
# θ of each scored pair by the paper's own compute_angle (ported in tests/paper_port.py), from pre to post;
# pair 8 (identical responses) carries no preference and is left out of θ.
# Pair 7, (0.1, 0.1) -> (0.2, 0.2), is parallel: the paper's arccos gives NaN there by rounding; seal gives 0.
HAND_ANGLES = [0.0 if i == 7 else paper_angle(PRE[i], POST[i]) for i in range(10) if i != 8]


@pytest.fixture
def hand(store, tmp_path):
    ids = ingest_pairs(store, tmp_path, 12, identical={8}, context_mismatch={2})
    post, pre = np.array(POST, float), np.array(PRE, float)
    import_arrays(store, tmp_path, "post", ids[:11], post[:, 0], post[:, 1], "aligned")
    import_arrays(store, tmp_path, "pre", ids[:10], pre[:, 0], pre[:, 1], "control")
    return ids


def test_hand_computed_agreement(store, hand):
    r = resistance(store)
    assert (r.model.alias, r.model.role, r.control.alias, r.control.role) == ("post", "aligned", "pre", "control")
    assert (r.coverage.pairs_total, r.coverage.pairs_scored, r.coverage.pairs_unscored) == (12, 10, 2)
    assert r.coverage.unscored_by_model == {"post": 1, "pre": 2}
    post, pre = r.agreement["post"], r.agreement["pre"]
    assert (post.scored, post.agree, post.disagree, post.ties, post.identical, post.decided) == (10, 5, 2, 2, 1, 7)
    assert (pre.scored, pre.agree, pre.disagree, pre.ties, pre.identical, pre.decided) == (10, 3, 4, 2, 1, 7)
    assert post.agreement.share == 5 / 7 and pre.agreement.share == 3 / 7
    assert (post.tie_share.share, post.identical_share.share, post.agree_share_of_scored.share) == (0.2, 0.1, 0.5)
    low, high = proportion_confint(5, 7, method="wilson")
    assert (post.agreement.ci_low, post.agreement.ci_high) == pytest.approx((low, high), abs=1e-12)


def test_hand_computed_regimes_and_mcnemar(store, hand):
    g = resistance(store).regimes
    assert g.n == 6
    assert [(name, p.count) for name, _, _, p in g.items()] == [
        ("stayed_aligned", 1), ("got_aligned", 3), ("resists", 1), ("reversed", 1)
    ]  # fmt: skip
    assert g.got_aligned.share == 0.5 and g.resists.share == pytest.approx(1 / 6)
    assert g.excluded == {"identical": 1, "tie_model_only": 1, "tie_control_only": 1, "tie_both": 1}
    assert (g.mcnemar.b, g.mcnemar.c, g.mcnemar.n_discordant) == (1, 3, 4)
    assert g.mcnemar.pvalue == pytest.approx(0.625)  # 2 * (1 + 4) / 16


def test_hand_computed_reward_vectors_and_margins(store, hand):
    r = resistance(store)
    q = r.quadrants["post"]
    assert q.n == 10
    counts = [q.chosen_pos_rejected_pos.count, q.chosen_neg_rejected_pos.count, q.chosen_pos_rejected_neg.count,
              q.chosen_neg_rejected_neg.count, q.on_axis.count]  # fmt: skip
    assert counts == [6, 1, 2, 0, 1]
    q = r.quadrants["pre"]
    counts = [q.chosen_pos_rejected_pos.count, q.chosen_neg_rejected_pos.count, q.chosen_pos_rejected_neg.count,
              q.chosen_neg_rejected_neg.count, q.on_axis.count]  # fmt: skip
    assert counts == [6, 1, 0, 1, 2]

    s = r.shift
    assert (s.control, s.model, s.n, s.zero_vectors) == ("pre", "post", 9, 0)
    assert s.excluded == {"identical": 1, "zero_vectors": 0}
    angles = np.array(HAND_ANGLES)
    assert angles[3] == pytest.approx(63.43494882292201) and angles[8] == 180.0  # spot checks of the port
    assert math.isnan(paper_angle(PRE[7], POST[7]))
    assert s.mean == pytest.approx(angles.mean())
    assert s.median == pytest.approx(np.median(angles))
    assert s.sd == pytest.approx(angles.std(ddof=1))
    assert (s.sign_test.n_positive, s.sign_test.n_negative, s.sign_test.n_zero) == (3, 5, 1)
    assert s.sign_test.pvalue == pytest.approx(2 * (1 + 8 + 28 + 56) / 256)
    assert s.positive.share == 3 / 8

    margins = np.array([1, 4, -2, -1, 0.5, 0, 1, 0, 0, 4])
    m = r.margins["post"]
    assert m.n == 10 and m.mean == pytest.approx(0.75) and m.sd == pytest.approx(margins.std(ddof=1))
    for q_ in (5, 25, 50, 75, 95):
        assert m.quantiles[f"p{q_}"] == pytest.approx(np.percentile(margins, q_))


def test_model_alone_uses_every_pair_it_scored(store, hand):
    r = resistance(store, use_control=False)
    assert r.control is None and r.regimes is None and r.shift is None
    assert (r.coverage.pairs_scored, r.coverage.pairs_unscored) == (11, 1)
    a = r.agreement["post"]
    assert (a.agree, a.disagree, a.ties, a.identical) == (6, 2, 2, 1)  # pair 10 (1, 0) agrees
    assert list(r.agreement) == ["post"] and list(r.margins) == ["post"]
    check_schema(r.to_json())


def test_by_flag_and_dataset(store, hand, tmp_path):
    r = resistance(store, by="flags.context_mismatch")
    assert [g.key for g in r.groups] == [False, True]
    flagged = r.groups[1]
    assert (flagged.pairs, flagged.scored) == (1, 1)
    assert flagged.agreement["post"].agreement.share == 0.0
    assert flagged.regimes.resists.count == 1 and flagged.regimes.n == 1
    rest = r.groups[0]
    assert (rest.pairs, rest.scored) == (11, 9)
    assert rest.agreement["post"].agree == 5 and rest.agreement["post"].decided == 6
    assert rest.regimes.got_aligned.count == 3 and rest.regimes.resists.count == 0

    # A second dataset, unscored: its group has pairs but no scored pairs (shares are null, not 0).
    ingest_pairs(store, tmp_path, 3, name="other")
    r = resistance(store, by="dataset")
    assert [(g.key, g.pairs, g.scored) for g in r.groups] == [("fx", 12, 10), ("other", 3, 0)]
    empty = r.groups[1]
    assert empty.agreement["post"].agreement.share is None and empty.regimes.n == 0
    assert empty.regimes.mcnemar.pvalue == 1.0
    payload = r.to_json()
    check_schema(payload)
    assert payload["groups"][1]["agreement"]["post"]["agreement"]["share"] is None
    frame = r.to_frame()
    assert list(frame["group"]) == ["(all)", "fx", "other"]
    assert frame.loc[1, "post_agreement"] == 5 / 7


def test_by_errors(store, hand):
    with pytest.raises(SealError, match="no column `nope`"):
        resistance(store, by="nope")
    with pytest.raises(SealError, match=r"no column `flags.nope`.*identical_responses"):
        resistance(store, by="flags.nope")
    with pytest.raises(SealError, match=r"`flags` is a struct.*flags.context_mismatch"):
        resistance(store, by="flags")
    with pytest.raises(SealError, match="holds lists"):
        resistance(store, by="context")
    with pytest.raises(SealError, match="distinct values"):
        resistance_from_arrays(
            ModelRef("m", "score_m", "aligned", "imported"), (np.ones(1001), np.zeros(1001)),
            by="x", by_values=pa.array(range(1001)),
        )  # fmt: skip


def test_by_score_field_and_null_group(store, hand):
    r = resistance(store, by="score_pre.chosen", use_control=False)
    keys = [g.key for g in r.groups]
    assert keys[-1] is None and r.groups[-1].pairs == 2  # pairs 10 and 11 have no pre score
    assert keys[:-1] == sorted(k for k in keys[:-1])


# -- model selection ----------------------------------------------------------------------------
def test_model_defaults_and_errors(store, tmp_path):
    ids = ingest_pairs(store, tmp_path, 4)
    with pytest.raises(SealError, match="no reward-model scores"):
        resistance(store)
    ones, zeros = np.ones(4), np.zeros(4)
    import_arrays(store, tmp_path, "a", ids, ones, zeros, "other")
    r = resistance(store)  # the only RM
    assert r.model.alias == "a" and r.control is None
    import_arrays(store, tmp_path, "b", ids, zeros, ones, "other")
    with pytest.raises(SealError, match="no reward model has role aligned"):
        resistance(store)
    r = resistance(store, model="b", control="a")
    assert r.agreement["b"].agree == 0 and r.regimes.reversed.count == 4
    with pytest.raises(SealError, match="no scores for reward model `zz`"):
        resistance(store, model="zz")
    with pytest.raises(SealError, match="is the model itself"):
        resistance(store, model="a", control="a")
    import_arrays(store, tmp_path, "c", ids, ones, zeros, "control")
    r = resistance(store, model="a")
    assert r.control.alias == "c"
    import_arrays(store, tmp_path, "d", ids, ones, zeros, "aligned")
    assert resistance(store).model.alias == "d"
    import_arrays(store, tmp_path, "e", ids, ones, zeros, "aligned")
    with pytest.raises(SealError, match="several reward models have role aligned: d, e"):
        resistance(store)


# -- the regimes of METHOD.md ---------------------------------------------------------------------
REGIME_COUNTS = {"stayed_aligned": 4829, "got_aligned": 2577, "resists": 1719, "reversed": 875}


def test_method_regime_shares_reproduced(store, tmp_path):
    n = sum(REGIME_COUNTS.values())
    ids = ingest_pairs(store, tmp_path, n)
    rng = np.random.default_rng(7)
    # δ (agrees) per regime for (control, model); the regimes are shuffled over the pairs.
    labels = np.repeat(np.arange(4), list(REGIME_COUNTS.values()))
    rng.shuffle(labels)
    control_agrees = np.array([1, 0, 0, 1])[labels].astype(bool)
    model_agrees = np.array([1, 1, 0, 0])[labels].astype(bool)

    def scores(agrees):
        base = rng.normal(size=n)
        gap = rng.uniform(0.1, 3.0, size=n)
        return np.where(agrees, base + gap, base), np.where(agrees, base, base + gap)

    import_arrays(store, tmp_path, "post", ids, *scores(model_agrees), "aligned")
    import_arrays(store, tmp_path, "pre", ids, *scores(control_agrees), "control")

    r = resistance(store)
    g = r.regimes
    assert g.n == n == 10_000
    assert g.stayed_aligned.share == 0.4829
    assert g.got_aligned.share == 0.2577
    assert g.resists.share == 0.1719
    assert g.reversed.share == 0.0875
    for name, count in REGIME_COUNTS.items():
        p = getattr(g, name)
        assert p.count == count
        low, high = proportion_confint(count, n, alpha=0.05, method="wilson")
        assert (p.ci_low, p.ci_high) == pytest.approx((low, high), abs=1e-12)
    # rows: control agrees 1/0; columns: model agrees 1/0
    table = [[REGIME_COUNTS["stayed_aligned"], REGIME_COUNTS["reversed"]],
             [REGIME_COUNTS["got_aligned"], REGIME_COUNTS["resists"]]]  # fmt: skip
    ref = mcnemar(table, exact=True)
    assert (g.mcnemar.b, g.mcnemar.c) == (875, 2577)
    assert g.mcnemar.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    assert g.mcnemar.statistic == ref.statistic
    assert r.agreement["post"].agreement.share == 0.7406  # the paper's post-RM agreement
    assert r.agreement["pre"].agreement.share == 0.5704
    assert 1 - r.agreement["post"].agreement.share == pytest.approx(0.2594)  # "misalignment 25.9 %"
    check_schema(r.to_json())


# -- θ conventions --------------------------------------------------------------------------------
def _quadrant_vectors() -> list[tuple[float, float]]:
    """Vectors in all four quadrants, on the axes and on both diagonals, at several lengths."""
    out = []
    for deg in range(-180, 180, 15):
        for length in (0.3, 1.0, 4.7):
            rad = math.radians(deg + 0.5 * (deg % 2))
            out.append((length * math.cos(rad), length * math.sin(rad)))
    out += [(-2.0, -1.0), (-1.0, -2.0), (1.3, -0.2), (-0.4, 2.2), (3.0, 3.0), (-3.0, -3.0)]
    return out


def test_shift_angle_equals_the_papers_compute_angle_in_every_quadrant():
    vectors = _quadrant_vectors()
    u = np.array([a for a in vectors for _ in vectors])
    v = np.array([b for _ in vectors for b in vectors])
    ours = shift_angles(u[:, 0], u[:, 1], v[:, 0], v[:, 1])
    theirs = np.array([paper_angle(tuple(a), tuple(b)) for a, b in zip(u, v, strict=True)])
    both = ~np.isnan(theirs)
    assert both.mean() > 0.95  # the port's arccos is NaN only where rounding pushes |cos| past 1
    # As angles (modulo 360) the two agree everywhere. The one difference in representation: for opposite
    # vectors the port gives −180 where rounding makes the cross product a hair negative; seal's range is
    # (−180, 180], so it says +180 for every exactly opposite pair.
    wrapped = (ours[both] - theirs[both] + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(wrapped, 0.0, atol=1e-6)  # arccos loses precision near 0° and 180°
    assert set(ours[both][np.abs(ours[both] - theirs[both]) > 1e-6].tolist()) == {180.0}
    far_from_seam = both & (np.abs(theirs) > 1) & (np.abs(theirs) < 179)
    assert far_from_seam.sum() > 5000
    np.testing.assert_allclose(ours[far_from_seam], theirs[far_from_seam], atol=1e-9)
    # Where the port is NaN (parallel or opposite vectors), seal gives 0 or 180.
    assert set(np.round(ours[~both], 6).tolist()) <= {0.0, 180.0}


def test_shift_angle_across_the_180_degree_seam():
    # v just past the opposite of u, on either side: the sign switches across the seam, as in the paper's code.
    u = (-1.0, -1.0)
    for eps in (1e-3, 0.5, 5.0):
        for sign in (1, -1):
            rad = math.radians(45 + sign * eps)
            v = (math.cos(rad), math.sin(rad))
            got = float(shift_angles(*u, *v))
            assert got == pytest.approx(paper_angle(u, v), abs=1e-9)
            assert abs(abs(got) - (180 - eps)) < 1e-9
    assert shift_angles(1, -0.0, -1, 0.0) == 180.0  # exactly opposite: +180, never -180 (atan2(-0.0, -1))
    assert shift_angles(-1, 1, 2, -2) == 180.0 and shift_angles(2, -2, -1, 1) == 180.0


def test_shift_angle_conventions():
    # The premise of this test used to be argued from prose; every sign is now the paper's port's.
    cases = [((-2, -1), (-1, -2)), ((1, 0), (0, 1)), ((1, 0), (0, -1)), ((1, 1), (1, 0)), ((0, 1), (1, 0))]
    for a, b in cases:
        assert float(shift_angles(*a, *b)) == pytest.approx(paper_angle(a, b), abs=1e-12)
    # Pre (−2, −1) prefers rejected, post (−1, −2) prefers chosen: counter-clockwise, +36.87 (the case).
    assert float(shift_angles(-2, -1, -1, -2)) == pytest.approx(36.86989764584402)
    # Counter-clockwise is positive whichever quadrant: from the chosen axis to the rejected axis is +90.
    assert float(shift_angles(1, 0, 0, 1)) == pytest.approx(90.0)
    got = shift_angles([0, 1], [0, 1], [1, 0], [1, 0])
    assert math.isnan(got[0]) and math.isnan(got[1])  # u, then v, is the zero vector
    # Swapping u and v flips the sign.
    assert float(shift_angles(0.3, -2, 1.5, 0.1)) == pytest.approx(-float(shift_angles(1.5, 0.1, 0.3, -2)))


def test_shift_angle_where_arccos_gives_nan():
    # Parallel vectors whose rounded cosine exceeds 1: arccos returns NaN, atan2 returns 0.
    u = np.array([0.1, 0.7])
    v = 3 * u
    with np.errstate(invalid="ignore"):
        cos = (u @ v) / (np.linalg.norm(u) * np.linalg.norm(v))
        assert cos > 1.0 and math.isnan(np.degrees(np.arccos(cos)))
    theta = shift_angles(u[0], u[1], v[0], v[1])
    assert theta == pytest.approx(0.0, abs=1e-12)


def test_ties_and_identical_are_separate_categories():
    m = ModelRef("m", "score_m", "aligned", "imported")
    chosen = np.array([1.0, 2.0, 0.5, 0.5, 3.0, np.nan])
    rejected = np.array([0.0, 2.0, 0.5, 0.9, 3.0, 1.0])
    identical = np.array([False, False, False, False, True, False])
    r = resistance_from_arrays(m, (chosen, rejected), identical=identical)
    a = r.agreement["m"]
    assert (a.scored, a.agree, a.disagree, a.ties, a.identical, a.decided) == (5, 1, 1, 2, 1, 2)
    assert a.agreement.share == 0.5  # not 1/5: ties and identical are not disagreement
    assert a.agree_share_of_scored.share == 0.2
    assert r.coverage.pairs_unscored == 1


def test_large_store_is_fast(store):
    """160,800 pairs (the size of hh-rlhf train): resistance with a control and --by reads and computes fast."""
    n = 160_800
    ids = pa.array([f"p{i:06d}" for i in range(n)])
    flags = pa.StructArray.from_arrays(
        [pa.array(np.arange(n) % 200 == 0), pa.array(np.arange(n) % 97 == 0), pa.array(np.zeros(n, bool))],
        names=["identical_responses", "context_mismatch", "duplicate_in_source"],
    )
    datasets = pa.array(np.array(["harmless", "helpful", "online", "rejection"])[np.arange(n) % 4])
    store.add_pairs(pa.table({"pair_id": ids, "dataset": datasets, "flags": flags}))
    rng = np.random.default_rng(0)
    for alias in ("post", "pre"):
        c, r = rng.normal(size=n), rng.normal(size=n)
        struct = pa.StructArray.from_arrays([pa.array(c), pa.array(r)], fields=list(SCORE_TYPE))
        store.materialize_column(f"score_{alias}", pa.table({"pair_id": ids, f"score_{alias}": struct}))
        role = "aligned" if alias == "post" else "control"
        recipe = Recipe("score", alias, {})
        store.record_run(
            RunRecord(new_run_id(), "score", alias, recipe.fingerprint(), recipe.to_dict(),
                      {"role": role, "origin": "imported"}, "done", n, None, now_utc(), now_utc())
        )  # fmt: skip
    t0 = time.perf_counter()
    result = resistance(store, by="dataset")
    elapsed = time.perf_counter() - t0
    assert result.coverage.pairs_scored == n
    assert result.agreement["post"].identical == 804
    assert [g.pairs for g in result.groups] == [n // 4] * 4
    assert elapsed < 10, f"resistance over {n:,} pairs took {elapsed:.2f}s"


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_resistance_human_and_json(run_cli, store, hand):
    out = run_cli("resistance")
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert "resistance of `post` (role aligned, imported) against control `pre`" in text
    assert "12 total, 10 scored by both RMs, 2 excluded without scores" in text
    assert "71.43%" in text  # post agreement 5/7
    assert "tie rule: exclude" in text
    assert "regimes over 6 pairs decided by both RMs, tie rule exclude (excluded: 1 identical" in text
    assert "McNemar (exact): b = 1 reversed, c = 3 got aligned, p = 0.625" in text
    assert "shift angle θ from pre's reward vector to post's" in text and "counter-clockwise positive" in text
    assert "sign test p = 0.727" in text and "left out: 1 identical responses, 0 zero vectors" in text

    out = run_cli("resistance", "--by", "flags.context_mismatch", "--json")
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    check_schema(payload)
    assert payload["model"]["alias"] == "post" and payload["control"]["alias"] == "pre"
    assert payload["regimes"]["got_aligned"]["count"] == 3
    assert payload["reward_vectors"]["shift"]["sign_test"]["n_positive"] == 3
    assert payload["ties"] == "exclude" and payload["regimes"]["tie_rule"] == "exclude"
    assert [g["key"] for g in payload["groups"]] == [False, True]
    assert "agreement" in payload["definitions"]

    out = run_cli("resistance", "--no-control", "--by", "dataset")
    assert out.exit_code == 0, out.output
    assert "against control" not in out.stdout and "by dataset" in out.stdout

    bad = run_cli("resistance", "--by", "nope")
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: pairs have no column `nope`")
    assert bad.stderr.count("\n") == 1
    bad = run_cli("resistance", "--control", "pre", "--no-control")
    assert bad.exit_code != 0


def test_real_data_smoke(run_cli, store, shared_data, tmp_path):
    """The 2,312 hh-rlhf harmless-base test pairs with synthetic scores: import, then the full report."""
    source = shared_data / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    if not source.is_file():
        pytest.skip(f"{source} is absent")
    assert run_cli("ingest", source, "--json").exit_code == 0
    table = store.read(["pair_id"])
    ids = table.column("pair_id").to_pylist()
    assert len(ids) == 2312
    rng = np.random.default_rng(11)
    for alias, role, shift in (("post", "aligned", 0.6), ("pre", "control", 0.2)):
        path = tmp_path / f"{alias}.csv"
        c, r = rng.normal(size=len(ids)) + shift, rng.normal(size=len(ids))
        path.write_text(
            "pair_id,chosen,rejected\n"
            + "".join(f"{p},{a!r},{b!r}\n" for p, a, b in zip(ids, c.tolist(), r.tolist(), strict=True))
        )
        done = run_cli("import-scores", path, "--alias", alias, "--role", role)
        assert done.exit_code == 0, done.stderr
    out = run_cli("resistance", "--by", "flags.context_mismatch", "--json")
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    check_schema(payload)
    assert payload["coverage"]["pairs_scored"] == 2312
    assert sum(g["pairs"] for g in payload["groups"]) == 2312
    assert [g["pairs"] for g in payload["groups"] if g["key"] is True] == [5]  # README: 5 context mismatches
    human = run_cli("resistance")
    assert human.exit_code == 0 and "regimes over" in human.stdout


# -- the tie rule -------------------------------------------------------------------------------
def test_tie_rule_disagree_is_the_papers_strict_counting(store, hand, run_cli):
    r = resistance(store, ties="disagree")
    post, pre = r.agreement["post"], r.agreement["pre"]
    # δ = 1[chosen > rejected] over the 10 scored pairs: ties (5, 6, 7) and the identical pair 8 are disagreement.
    assert (post.scored, post.agree, post.disagree, post.decided, post.tie_rule) == (10, 5, 5, 10, "disagree")
    assert (pre.agree, pre.disagree, pre.decided) == (3, 7, 10)
    assert post.agreement.share == post.agree_share_of_scored.share == 0.5
    assert (post.ties, post.identical) == (2, 1)  # still counted and reported
    g = r.regimes
    assert g.n == 10 and g.tie_rule == "disagree"
    assert [(name, p.count) for name, _, _, p in g.items()] == [
        ("stayed_aligned", 1), ("got_aligned", 4), ("resists", 3), ("reversed", 2)
    ]  # fmt: skip
    assert g.excluded == {"identical": 0, "tie_model_only": 0, "tie_control_only": 0, "tie_both": 0}
    assert g.counted_as_disagreement == {"identical": 1, "tie_model_only": 1, "tie_control_only": 1, "tie_both": 1}
    assert (g.mcnemar.b, g.mcnemar.c) == (2, 4) and g.mcnemar.pvalue == pytest.approx(44 / 64)
    # An independent computation of the same counts: the paper's δ vectors and statsmodels' exact McNemar.
    post_c, post_r = np.array(POST[:10]).T
    pre_c, pre_r = np.array(PRE[:10]).T
    d_post, d_pre = post_c > post_r, pre_c > pre_r
    table = [[np.sum(d_pre & d_post), np.sum(d_pre & ~d_post)], [np.sum(~d_pre & d_post), np.sum(~d_pre & ~d_post)]]
    assert g.mcnemar.pvalue == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)
    # θ does not depend on the tie rule.
    assert r.shift.n == resistance(store).shift.n == 9
    check_schema(r.to_json())

    out = run_cli("resistance", "--ties", "disagree")
    assert out.exit_code == 0, out.output
    assert "tie rule: disagree" in out.stdout
    assert "regimes over 10 scored pairs, tie rule disagree (counted as disagreement: 1 identical" in out.stdout
    bad = run_cli("resistance", "--ties", "sometimes")
    assert bad.exit_code == 2


def test_groups_follow_the_tie_rule(store, hand):
    for rule, decided in (("exclude", 7), ("disagree", 10)):
        r = resistance(store, by="dataset", ties=rule)
        (group,) = r.groups
        assert group.agreement["post"].decided == decided and group.agreement["post"].tie_rule == rule
        assert group.regimes.n == r.regimes.n and group.regimes.tie_rule == rule


def test_shift_leaves_out_identical_pairs_and_zero_vectors():
    m, c = ModelRef("m", "score_m", "aligned", "imported"), ModelRef("c", "score_c", "control", "imported")
    mc, mr = np.array([1.0, 2.0, 0.0, 3.0, 1.0]), np.array([0.5, 2.0, 0.0, 1.5, 1.0])
    cc, cr = np.array([0.5, 1.0, 1.0, 3.0, 2.0]), np.array([1.0, 1.0, 2.0, 1.0, 1.0])
    identical = np.array([False, True, False, False, False])
    r = resistance_from_arrays(m, (mc, mr), control=c, control_scores=(cc, cr), identical=identical)
    s = r.shift
    # pair 1: identical responses (would enter at 0°); pair 2: the model's vector is zero; pair 4: tied under the
    # model, different responses: an ordinary vector that stays in.
    assert s.excluded == {"identical": 1, "zero_vectors": 1} and s.zero_vectors == 1 and s.n == 3
    expected = [paper_angle((cc[i], cr[i]), (mc[i], mr[i])) for i in (0, 3, 4)]
    assert s.mean == pytest.approx(np.mean(expected), abs=1e-9)
