"""Statistics helpers shared by the analyses: proportions with Wilson intervals, exact binomial tests
(McNemar, sign test), distribution summaries and multiple-testing adjustments.

Every function accepts plain Python numbers; the interval and test functions also accept numpy arrays and
work element-wise, so per-group statistics need no Python loop. Results that describe one quantity are
small frozen dataclasses with `to_json()`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as _sp

DEFAULT_CONFIDENCE = 0.95
DEFAULT_QUANTILES = (5, 25, 50, 75, 95)


@functools.lru_cache(maxsize=16)
def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(_sp.norm.isf((1 - confidence) / 2))


# -- proportions --------------------------------------------------------------------------------
def wilson_interval(
    count: Any, n: Any, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Wilson score interval for count successes in n trials (element-wise on arrays).

    Where n == 0 the bounds are NaN. The formula is the one of statsmodels' `proportion_confint(method="wilson")`.
    """
    count_a = np.asarray(count, dtype=np.float64)
    n_a = np.asarray(n, dtype=np.float64)
    if np.any(count_a < 0) or np.any(count_a > n_a):
        raise ValueError("counts must lie between 0 and n")
    z = _z(confidence)
    z2 = z * z
    with np.errstate(divide="ignore", invalid="ignore"):
        p = count_a / n_a
        denom = 1 + z2 / n_a
        center = (p + z2 / (2 * n_a)) / denom
        half = z * np.sqrt(p * (1 - p) / n_a + z2 / (4 * n_a * n_a)) / denom
        # The bounds are exactly 0 at count 0 and exactly 1 at count n (rounding would leave 1e-17).
        low = np.where(count_a == 0, 0.0, np.clip(center - half, 0.0, 1.0))
        high = np.where(count_a == n_a, 1.0, np.clip(center + half, 0.0, 1.0))
        low = np.where(n_a > 0, low, np.nan)
        high = np.where(n_a > 0, high, np.nan)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


@dataclass(frozen=True)
class Proportion:
    """count of n, its share and a Wilson interval; share and bounds are None when n == 0."""

    count: int
    n: int
    share: float | None
    ci_low: float | None
    ci_high: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def percent(self, digits: int = 2) -> str:
        return "–" if self.share is None else f"{100 * self.share:.{digits}f}%"

    def interval(self, digits: int = 2) -> str:
        if self.ci_low is None or self.ci_high is None:
            return "–"
        return f"[{100 * self.ci_low:.{digits}f}, {100 * self.ci_high:.{digits}f}]"


def proportion(count: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> Proportion:
    """A `Proportion` with its Wilson interval."""
    count, n = int(count), int(n)
    if n == 0:
        return Proportion(count, 0, None, None, None)
    low, high = wilson_interval(count, n, confidence)
    return Proportion(count, n, count / n, float(low), float(high))


def proportions(counts: Any, ns: Any, confidence: float = DEFAULT_CONFIDENCE) -> list[Proportion]:
    """`Proportion`s for arrays of counts and totals, computed in one vectorised pass."""
    counts_a = np.asarray(counts, dtype=np.int64)
    ns_a = np.broadcast_to(np.asarray(ns, dtype=np.int64), counts_a.shape)
    low, high = wilson_interval(counts_a, ns_a, confidence)
    low, high = np.atleast_1d(low), np.atleast_1d(high)
    out = []
    for c, n, lo, hi in zip(counts_a.tolist(), ns_a.tolist(), low.tolist(), high.tolist(), strict=True):
        if n == 0:
            out.append(Proportion(c, 0, None, None, None))
        else:
            out.append(Proportion(c, n, c / n, lo, hi))
    return out


# -- exact binomial tests -----------------------------------------------------------------------
def binom_two_sided_half(k: Any, n: Any) -> np.ndarray | float:
    """Exact two-sided binomial p-value of k successes in n trials under p = 1/2 (element-wise).

    p = min(1, 2 · P[X ≤ min(k, n − k)]): the test behind the exact McNemar test and the sign test.
    n == 0 gives p = 1.
    """
    k_a = np.asarray(k, dtype=np.int64)
    n_a = np.asarray(n, dtype=np.int64)
    tail = np.minimum(k_a, n_a - k_a)
    p = np.minimum(1.0, 2.0 * _sp.binom.cdf(tail, n_a, 0.5))
    p = np.where(n_a == 0, 1.0, p)
    return float(p) if p.ndim == 0 else p


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test on a paired 2×2 table: a binomial test on the discordant counts b and c."""

    b: int
    c: int
    n_discordant: int
    statistic: int  # min(b, c), as statsmodels reports it for the exact test
    pvalue: float
    method: str = "exact (binomial on discordant pairs, two-sided)"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_exact(b: int, c: int) -> McNemarResult:
    """Exact McNemar test. With the table [[n11, b], [c, n00]] this matches
    `statsmodels.stats.contingency_tables.mcnemar(table, exact=True)`."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    return McNemarResult(b, c, b + c, min(b, c), float(binom_two_sided_half(b, b + c)))


@dataclass(frozen=True)
class SignTestResult:
    """Exact sign test: positives vs negatives among the non-zero values, two-sided, p = 1/2."""

    n_positive: int
    n_negative: int
    n_zero: int
    pvalue: float
    method: str = "exact binomial sign test (zeros dropped, two-sided)"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sign_test(values: Any) -> SignTestResult:
    """Exact sign test of `values` around 0 (NaN values are ignored)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    pos, neg = int(np.count_nonzero(arr > 0)), int(np.count_nonzero(arr < 0))
    zero = int(arr.size) - pos - neg
    return SignTestResult(pos, neg, zero, float(binom_two_sided_half(pos, pos + neg)))


# -- distributions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Distribution:
    """Summary of a sample: n, mean, SD (ddof = 1), min/max and quantiles (linear interpolation)."""

    n: int
    mean: float | None
    sd: float | None
    min: float | None
    max: float | None
    quantiles: dict[str, float | None]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def describe(values: Any, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Distribution:
    """Summarise the finite values of a sample; quantile keys are ``p5``, ``p25``, ..."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    keys = [f"p{q:g}" for q in quantiles]
    if arr.size == 0:
        return Distribution(0, None, None, None, None, dict.fromkeys(keys))
    qs = np.percentile(arr, list(quantiles))
    return Distribution(
        n=int(arr.size),
        mean=float(arr.mean()),
        sd=float(arr.std(ddof=1)) if arr.size > 1 else None,
        min=float(arr.min()),
        max=float(arr.max()),
        quantiles={k: float(v) for k, v in zip(keys, qs, strict=True)},
    )


# -- multiple testing ---------------------------------------------------------------------------
ADJUSTMENTS = ("bonferroni", "holm", "bh")


def adjust_pvalues(pvalues: Any, method: str = "holm") -> np.ndarray:
    """Adjusted p-values: ``bonferroni``, ``holm`` (step-down) or ``bh`` (Benjamini–Hochberg FDR).

    NaN p-values stay NaN and do not count towards the number of tests. Matches statsmodels'
    `multipletests(..., method="bonferroni" | "holm" | "fdr_bh")`.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    vals = p[ok]
    m = vals.size
    if m == 0:
        return out
    if method == "bonferroni":
        adj = np.minimum(1.0, vals * m)
    elif method == "holm":
        order = np.argsort(vals, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * vals[order])
        adj = np.empty(m)
        adj[order] = np.minimum(1.0, stepped)
    elif method == "bh":
        order = np.argsort(vals, kind="stable")[::-1]
        ranks = np.arange(m, 0, -1)
        stepped = np.minimum.accumulate(vals[order] * m / ranks)
        adj = np.empty(m)
        adj[order] = np.minimum(1.0, stepped)
    else:
        raise ValueError(f"unknown adjustment `{method}`; use one of {', '.join(ADJUSTMENTS)}")
    out[ok] = adj
    return out


__all__ = [
    "ADJUSTMENTS",
    "DEFAULT_CONFIDENCE",
    "Distribution",
    "McNemarResult",
    "Proportion",
    "SignTestResult",
    "adjust_pvalues",
    "binom_two_sided_half",
    "describe",
    "mcnemar_exact",
    "proportion",
    "proportions",
    "sign_test",
    "wilson_interval",
]
