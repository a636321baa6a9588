"""The regression core of the analyses: OLS and logit fits with robust covariances, p-value adjustment,
pruning of constant and collinear regressors, and VIFs (numpy and scipy only).

The estimator is numpy (QR least squares, sandwich covariances) and equals statsmodels' formula API on the
same data (tests hold it to 1e-8): ``cluster`` is statsmodels' CR1 (G/(G−1)·(N−1)/(N−K)), ``hc3`` its
HC3, ``nonrobust`` the classical σ²(X'X)⁻¹. Inference uses t with G−1 degrees of freedom (cluster) or
N−K (others); the logit uses the normal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from seal.analysis.stats import adjust_pvalues
from seal.errors import SealError

COV_TYPES = ("cluster", "hc3", "nonrobust")
CORRECTIONS = ("bonferroni", "holm", "fdr_bh", "none")
COLLINEAR_TOL = 1e-9


@dataclass
class Fit:
    """One fitted regression (arrays aligned with `names`)."""

    names: list[str]
    beta: np.ndarray
    se: np.ndarray
    tvalues: np.ndarray
    pvalues: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    cov_params: np.ndarray
    n: int
    k: int
    df_resid: float
    cov_type: str
    n_clusters: int | None
    inference: str  # "t(df)" or "normal"
    r2: float | None
    r2_adj: float | None
    condition_number: float
    estimator: str = "ols"
    converged: bool = True
    iterations: int = 0
    llf: float | None = None


def condition_number(X: np.ndarray) -> float:
    """sqrt(λmax/λmin) of X'X, i.e. the 2-norm condition number of X (what statsmodels reports)."""
    eig = np.linalg.eigvalsh(X.T @ X)
    return float(np.sqrt(eig[-1] / eig[0])) if eig[0] > 0 else float("inf")


def _swap(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def group_sums(scores: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Sum the rows of `scores` (..., n, k) within groups (n integer codes); None = each row its own group."""
    if groups is None:
        return scores
    groups = np.asarray(groups)
    if len(groups) > 1 and np.any(groups[1:] < groups[:-1]):
        order = np.argsort(groups, kind="stable")
        groups, scores = groups[order], scores[..., order, :]
    starts = np.flatnonzero(np.concatenate([[True], groups[1:] != groups[:-1]]))
    return np.add.reduceat(scores, starts, axis=-2)


def n_groups(groups: np.ndarray | None, n: int) -> int:
    """How many distinct groups `groups` holds (n when None: each row its own group)."""
    if groups is None:
        return n
    groups = np.asarray(groups)
    if len(groups) > 1 and np.all(groups[1:] >= groups[:-1]):
        return 1 + int(np.count_nonzero(groups[1:] != groups[:-1]))
    return len(np.unique(groups))


def _sandwich(
    X: np.ndarray, bread: np.ndarray, resid: np.ndarray, cov: str, groups: np.ndarray | None, leverage: Any = None
) -> np.ndarray:
    """Robust covariance bread·meat·bread (stacked over leading axes)."""
    n, k = X.shape[-2], X.shape[-1]
    if cov == "cluster":
        sg = group_sums(X * resid[..., None], groups)
        meat = _swap(sg) @ sg
        g = sg.shape[-2]
        factor = g / (g - 1) * (n - 1) / (n - k)
        return factor * (bread @ meat @ bread)
    if cov in ("hc0", "hc1", "hc3"):
        w = resid**2
        if cov == "hc3":
            w = w / (1 - leverage) ** 2
        elif cov == "hc1":
            w = w * n / (n - k)
        meat = _swap(X * w[..., None]) @ X
        return bread @ meat @ bread
    raise SealError(f"unknown covariance `{cov}`", hint=f"use one of {', '.join(COV_TYPES)}")


def ols_batch(
    X: np.ndarray, y: np.ndarray, cov: str = "cluster", groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OLS on stacked datasets sharing one design shape: X (..., n, k), y (..., n), `groups` the same
    integer codes for every dataset. Returns (β, covariance, residuals) with leading axes kept."""
    n, k = X.shape[-2], X.shape[-1]
    if n <= k:
        raise SealError(f"too few rows ({n}) for {k} coefficients")
    # R of X = QR (Q is never formed), then the corrected semi-normal equations: β from R'Rβ = X'y and one
    # refinement step on the residuals, as accurate as solving with Q and much faster for tall X.
    r = np.linalg.qr(X, mode="r")
    r_inv = np.linalg.inv(r)
    bread = r_inv @ _swap(r_inv)  # (X'X)^-1
    xt = _swap(X)
    beta = (bread @ (xt @ y[..., None]))[..., 0]
    resid = y - (X @ beta[..., None])[..., 0]
    beta = beta + (bread @ (xt @ resid[..., None]))[..., 0]
    resid = y - (X @ beta[..., None])[..., 0]
    if cov == "nonrobust":
        s2 = np.einsum("...n,...n->...", resid, resid) / (n - k)
        covariance = bread * s2[..., None, None]
    else:
        leverage = np.einsum("...nk,...nk->...n", X @ r_inv, X @ r_inv) if cov == "hc3" else None
        covariance = _sandwich(X, bread, resid, cov, groups, leverage)
    return beta, covariance, resid


def _inference(
    beta: np.ndarray, covariance: np.ndarray, df: float | None, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    se = np.sqrt(np.clip(np.diagonal(covariance, axis1=-2, axis2=-1), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = beta / se
    if df is None:
        p = 2 * sps.norm.sf(np.abs(t))
        crit = sps.norm.isf(alpha / 2)
    else:
        p = 2 * sps.t.sf(np.abs(t), df)
        crit = sps.t.isf(alpha / 2, df)
    return se, t, p, beta - crit * se, beta + crit * se


def ols_fit(
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    cov: str = "cluster",
    groups: np.ndarray | None = None,
    has_const: bool = True,
    alpha: float = 0.05,
) -> Fit:
    """OLS with `cov` standard errors (cluster: by `groups`; None = one cluster per row)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, k = X.shape
    beta, covariance, resid = ols_batch(X, y, cov, groups)
    n_clusters = n_groups(groups, n) if cov == "cluster" else None
    df = float(n_clusters - 1) if cov == "cluster" else float(n - k)
    se, t, p, lo, hi = _inference(beta, covariance, df, alpha)
    ssr = float(resid @ resid)
    tss = float(((y - y.mean()) ** 2).sum()) if has_const else float(y @ y)
    r2 = 1 - ssr / tss if tss > 0 else None
    r2_adj = None if r2 is None else 1 - (1 - r2) * (n - (1 if has_const else 0)) / (n - k)
    return Fit(
        names=list(names),
        beta=beta,
        se=se,
        tvalues=t,
        pvalues=p,
        ci_low=lo,
        ci_high=hi,
        cov_params=covariance,
        n=n,
        k=k,
        df_resid=float(n - k),
        cov_type=cov,
        n_clusters=n_clusters,
        inference=f"t({df:g})",
        r2=r2,
        r2_adj=r2_adj,
        condition_number=condition_number(X),
    )


def logit_fit(
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    cov: str = "cluster",
    groups: np.ndarray | None = None,
    alpha: float = 0.05,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> Fit:
    """Logistic regression by Newton–Raphson; nonrobust (inverse Hessian) or cluster-robust SEs
    (statsmodels' correction). McFadden's pseudo-R² in `r2`. Normal-based inference."""
    if cov not in ("cluster", "nonrobust"):
        raise SealError(f"--logit supports --cov cluster or nonrobust, not {cov}")
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, k = X.shape
    beta = np.zeros(k)
    converged, it = False, 0
    for it in range(1, max_iter + 1):  # noqa: B007
        p = 1 / (1 + np.exp(-(X @ beta)))
        w = p * (1 - p)
        hessian = (X * w[:, None]).T @ X
        step = np.linalg.solve(hessian, X.T @ (y - p))
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            converged = True
            break
    eta = X @ beta
    p = 1 / (1 + np.exp(-eta))
    bread = np.linalg.inv((X * (p * (1 - p))[:, None]).T @ X)
    if cov == "nonrobust":
        covariance = bread
        n_clusters = None
    else:
        covariance = _sandwich(X, bread, y - p, "cluster", groups)
        n_clusters = n_groups(groups, n)
    se, t, pv, lo, hi = _inference(beta, covariance, None, alpha)
    llf = float(np.sum(y * eta - np.logaddexp(0, eta)))
    p0 = y.mean()
    llnull = float(n * (p0 * math.log(p0) + (1 - p0) * math.log(1 - p0))) if 0 < p0 < 1 else float("nan")
    return Fit(
        names=list(names),
        beta=beta,
        se=se,
        tvalues=t,
        pvalues=pv,
        ci_low=lo,
        ci_high=hi,
        cov_params=covariance,
        n=n,
        k=k,
        df_resid=float(n - k),
        cov_type=cov,
        n_clusters=n_clusters,
        inference="normal",
        r2=1 - llf / llnull if llnull == llnull and llnull != 0 else None,
        r2_adj=None,
        condition_number=condition_number(X),
        estimator="logit",
        converged=converged,
        iterations=it,
        llf=llf,
    )


def prune_design(
    X: np.ndarray, names: Sequence[str], has_const: bool, tol: float = COLLINEAR_TOL
) -> tuple[list[int], list[dict[str, str]]]:
    """Regressors to keep (indices into X's columns, the intercept excluded) and the dropped ones with the
    reason: constant (with an intercept) or all zero (without), or exactly collinear with kept ones."""
    dropped: list[dict[str, str]] = []
    candidates = []
    lows, highs = (X.min(axis=0), X.max(axis=0)) if len(X) else (np.zeros(X.shape[1]), np.zeros(X.shape[1]))
    for j, name in enumerate(names):
        if has_const and lows[j] == highs[j]:
            dropped.append({"name": name, "reason": f"constant (always {lows[j]:g})"})
        elif not has_const and lows[j] == highs[j] == 0:
            dropped.append({"name": name, "reason": "always equal on both sides of a pair"})
        else:
            candidates.append(j)
    if not candidates:
        return [], dropped
    gram = _scaled_gram(X[:, candidates], has_const)
    kept: list[int] = []  # positions in candidates
    for pos in range(len(candidates)):
        if kept:
            sub = gram[np.ix_(kept, kept)]
            coef = np.linalg.lstsq(sub, gram[kept, pos], rcond=None)[0]
            residual = gram[pos, pos] - gram[pos, kept] @ coef
        else:
            coef, residual = np.zeros(0), gram[pos, pos]
        if residual < tol:
            partners = [names[candidates[kept[i]]] for i in np.argsort(-np.abs(coef)) if abs(coef[i]) > 1e-6]
            shown = ", ".join(partners[:5]) + (" …" if len(partners) > 5 else "")
            suffix = " and the intercept" if has_const else ""
            dropped.append(
                {"name": names[candidates[pos]], "reason": f"collinear with {shown or 'kept regressors'}{suffix}"}
            )
        else:
            kept.append(pos)
    return [candidates[i] for i in kept], dropped


def _scaled_gram(X: np.ndarray, centered: bool) -> np.ndarray:
    """Cross-products of X's columns (centered first when `centered`), scaled to a unit diagonal: the
    correlation matrix, or its uncentered analogue."""
    Z = X - X.mean(axis=0) if centered else X
    gram = Z.T @ Z
    d = np.sqrt(np.diag(gram))
    return gram / np.outer(d, d)


def vif(X: np.ndarray) -> np.ndarray:
    """Variance inflation factors of the columns of X (no intercept column): diag of the inverse
    correlation matrix, i.e. 1 / (1 − R²_j) of each regressor on the others with an intercept."""
    if X.shape[1] == 1:
        return np.ones(1)
    try:
        return np.diag(np.linalg.inv(_scaled_gram(X, True)))
    except np.linalg.LinAlgError:  # pragma: no cover - pruned designs are full rank
        return np.full(X.shape[1], np.inf)


def adjust(pvalues: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values (bonferroni, holm, fdr_bh or bh, none)."""
    if method == "none":
        return np.asarray(pvalues, dtype=float)
    return adjust_pvalues(pvalues, "bh" if method == "fdr_bh" else method)
