"""seal.analysis.stats against independent implementations (statsmodels, scipy) and hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.descriptivestats import sign_test as sm_sign_test
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from seal.analysis import stats


@pytest.mark.parametrize(
    ("count", "n"), [(0, 1), (1, 1), (0, 10), (10, 10), (3, 7), (4829, 10000), (119091, 160800), (1, 1000)]
)
@pytest.mark.parametrize("confidence", [0.95, 0.99, 0.8])
def test_wilson_matches_statsmodels(count, n, confidence):
    low, high = stats.wilson_interval(count, n, confidence)
    ref_low, ref_high = proportion_confint(count, n, alpha=1 - confidence, method="wilson")
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)
    assert 0.0 <= low <= count / n <= high <= 1.0


def test_wilson_bounds_are_exact_at_the_extremes():
    assert stats.wilson_interval(0, 25)[0] == 0.0
    assert stats.wilson_interval(25, 25)[1] == 1.0


def test_wilson_vectorised_and_empty():
    counts, ns = np.array([0, 5, 9, 0]), np.array([10, 10, 10, 0])
    low, high = stats.wilson_interval(counts, ns)
    ref_low, ref_high = proportion_confint(counts[:3], ns[:3], method="wilson")
    np.testing.assert_allclose(low[:3], ref_low, atol=1e-12)
    np.testing.assert_allclose(high[:3], ref_high, atol=1e-12)
    assert math.isnan(low[3]) and math.isnan(high[3])
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)


def test_proportion_objects():
    p = stats.proportion(3, 4)
    assert (p.count, p.n, p.share) == (3, 4, 0.75)
    assert p.percent() == "75.00%"
    empty = stats.proportion(0, 0)
    assert empty.share is None and empty.ci_low is None and empty.ci_high is None
    assert empty.percent() == "–" and empty.interval() == "–"
    many = stats.proportions([1, 0, 2], [2, 0, 2])
    assert [m.share for m in many] == [0.5, None, 1.0]
    assert many[0] == stats.proportion(1, 2)
    assert p.to_json() == {"count": 3, "n": 4, "share": 0.75, "ci_low": p.ci_low, "ci_high": p.ci_high}


@pytest.mark.parametrize(("b", "c"), [(0, 0), (5, 0), (0, 5), (1, 3), (12, 30), (875, 2577), (400, 401)])
def test_mcnemar_matches_statsmodels(b, c):
    ours = stats.mcnemar_exact(b, c)
    ref = mcnemar([[100, b], [c, 50]], exact=True)
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert ours.statistic == ref.statistic
    assert (ours.b, ours.c, ours.n_discordant) == (b, c, b + c)


def test_mcnemar_hand_value():
    # b = 1, c = 3: p = 2 * P[X <= 1 | n = 4] = 2 * 5/16
    assert stats.mcnemar_exact(1, 3).pvalue == pytest.approx(0.625)


def test_binomial_two_sided_vectorised():
    k = np.array([0, 3, 10, 7])
    n = np.array([0, 10, 20, 7])
    got = stats.binom_two_sided_half(k, n)
    assert got[0] == 1.0
    for i in range(1, 4):
        assert got[i] == pytest.approx(binomtest(int(k[i]), int(n[i]), 0.5).pvalue, rel=1e-12)


def test_sign_test_matches_statsmodels():
    rng = np.random.default_rng(3)
    values = np.round(rng.normal(0.3, 1, size=57), 1)
    values[:4] = 0.0
    ours = stats.sign_test(np.append(values, np.nan))
    _, ref_p = sm_sign_test(values, 0)
    assert ours.pvalue == pytest.approx(ref_p, rel=1e-12)
    assert ours.n_positive == int((values > 0).sum())
    assert ours.n_negative == int((values < 0).sum())
    assert ours.n_zero == int((values == 0).sum())


def test_describe():
    values = np.array([1.0, 4.0, -2.0, -1.0, 0.5, 0.0, np.nan, np.inf])
    d = stats.describe(values)
    finite = values[np.isfinite(values)]
    assert d.n == 6
    assert d.mean == pytest.approx(2.5 / 6)
    assert d.sd == pytest.approx(np.std(finite, ddof=1))
    assert (d.min, d.max) == (-2.0, 4.0)
    assert d.quantiles["p50"] == pytest.approx(0.25)
    assert list(d.quantiles) == ["p5", "p25", "p50", "p75", "p95"]
    empty = stats.describe([])
    assert empty.n == 0 and empty.mean is None and empty.quantiles["p50"] is None
    assert stats.describe([2.0]).sd is None


@pytest.mark.parametrize(("ours", "theirs"), [("bonferroni", "bonferroni"), ("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_pvalues_matches_statsmodels(ours, theirs):
    p = np.random.default_rng(0).uniform(size=40) ** 3
    p[5] = p[6]  # ties
    np.testing.assert_allclose(stats.adjust_pvalues(p, ours), multipletests(p, method=theirs)[1], rtol=1e-12)
    with_nan = stats.adjust_pvalues(np.append(p, np.nan), ours)
    assert math.isnan(with_nan[-1])
    np.testing.assert_allclose(with_nan[:-1], multipletests(p, method=theirs)[1], rtol=1e-12)


def test_adjust_pvalues_unknown_method():
    with pytest.raises(ValueError, match="unknown adjustment"):
        stats.adjust_pvalues([0.1], "fdr_by")
