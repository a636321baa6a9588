"""The imprint's regression specifications (seal.analysis.imprint): reward per text (or within pairs), and per
pair misalignment and the shift angle θ, each fitted by seal.analysis.regression on the design of
seal.analysis.design and described as a `Regression` (formula, fit statistics, coefficients, VIFs)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from seal.analysis.angles import ANGLE_DEFINITION, angle_population
from seal.analysis.design import PairData, Regressor, complete_rows, pair_design
from seal.analysis.regression import Fit, adjust, logit_fit, n_groups, ols_fit, prune_design, vif
from seal.catalog.models import score_column
from seal.errors import SealError
from seal.render import to_jsonable


@dataclass
class Regression:
    """One fitted imprint regression, ready to render."""

    outcome: str
    definition: str
    estimator: str
    formula: str
    rows: str
    n: int
    n_pairs: int
    n_dropped_missing: int
    k: int
    df_resid: float
    r2: float | None
    r2_adj: float | None
    r2_kind: str
    condition_number: float
    cov_type: str
    cov_detail: str
    n_clusters: int | None
    inference: str
    outcome_mean: float
    outcome_sd: float
    dropped: list[dict[str, str]]
    vif: list[dict[str, Any]]
    coefficients: list[dict[str, Any]]
    converged: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))


def _fnum(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _cov_detail(cov: str, n_clusters: int | None, unit: str) -> str:
    if cov == "cluster":
        if unit == "pair-row":
            return f"cluster-robust by pair (one row per pair, {n_clusters:,} clusters; CR1 = HC1 here)"
        return f"cluster-robust by pair ({n_clusters:,} clusters; CR1: G/(G−1)·(N−1)/(N−K))"
    if cov == "hc3":
        return "heteroskedasticity-robust HC3"
    return "classical (homoskedastic, independent rows)"


def _fit_and_describe(
    X: np.ndarray,
    y: np.ndarray,
    regressors: list[Regressor],
    *,
    has_const: bool,
    groups: np.ndarray | None,
    cov: str,
    correction: str,
    standardize: bool,
    alpha: float,
    logit: bool = False,
    sd_levels: np.ndarray | None = None,
    sd_y: float | None = None,
) -> tuple[Fit, list[dict[str, Any]], list[dict[str, str]], list[dict[str, Any]]]:
    """Prune, (standardise), fit; return the fit, coefficient rows, dropped regressors and VIFs.

    `sd_levels` / `sd_y`: the SDs used for standardised β (default: the SDs of X's and y's columns)."""
    names = [r.name for r in regressors]
    keep, dropped = prune_design(X, names, has_const)
    if not keep:
        raise SealError(
            "every regressor was dropped (constant or collinear)",
            hint="; ".join(d["name"] + ": " + d["reason"] for d in dropped),
        )
    X = X[:, keep]
    regs = [regressors[j] for j in keep]
    sx = (sd_levels[keep] if sd_levels is not None else X.std(axis=0, ddof=1)).astype(float)
    sy = float(sd_y if sd_y is not None else y.std(ddof=1))
    if logit:
        sy = 1.0
    design = X
    target = y
    if standardize:
        design = (X - X.mean(axis=0)) / sx if has_const else X / sx
        if not logit:
            target = (y - y.mean()) / sy if has_const else y / sy
    full = np.column_stack([np.ones(len(design)), design]) if has_const else design
    labels = (["Intercept"] if has_const else []) + [r.name for r in regs]
    if logit:
        fit = logit_fit(full, target, labels, cov=cov, groups=groups, alpha=alpha)
    else:
        fit = ols_fit(full, target, labels, cov=cov, groups=groups, has_const=has_const, alpha=alpha)
    offset = 1 if has_const else 0
    padj = np.full(len(labels), np.nan)
    padj[offset:] = adjust(fit.pvalues[offset:], correction)
    rows = []
    for i, label in enumerate(labels):
        reg = regs[i - offset] if i >= offset else None
        beta = fit.beta[i]
        if reg is None:
            std_beta = None
        elif standardize:
            std_beta = beta
        else:
            std_beta = beta * sx[i - offset] / sy if sy > 0 else None
        rows.append(
            {
                "name": label,
                "feature": reg.feature if reg else None,
                "feature_set": reg.feature_set if reg else None,
                "side": reg.side if reg else None,
                "level": reg.level if reg else None,
                "role": reg.role if reg else "intercept",
                "sign": reg.sign if reg else None,
                "beta": _fnum(beta),
                "se": _fnum(fit.se[i]),
                "t": _fnum(fit.tvalues[i]),
                "p": _fnum(fit.pvalues[i]),
                "p_adj": _fnum(padj[i]) if reg else None,
                "ci_low": _fnum(fit.ci_low[i]),
                "ci_high": _fnum(fit.ci_high[i]),
                "std_beta": None if std_beta is None else _fnum(std_beta),
                "direction": None if reg is None else ("+" if beta > 0 else "-" if beta < 0 else "0"),
            }
        )
    vifs = vif(X) if X.shape[1] else np.zeros(0)
    vif_rows = [{"name": r.name, "vif": _fnum(v)} for r, v in zip(regs, vifs, strict=True)]
    return fit, rows, dropped, vif_rows


def text_regression(
    data: PairData,
    model: str,
    minus: str | None,
    fe: str | None,
    *,
    standardize: bool,
    correction: str,
    alpha: float,
    cov: str,
) -> Regression:
    s = data.scores[model] - (data.scores[minus] if minus else 0.0)
    ylabel = score_column(model) + (f" - {score_column(minus)}" if minus else "")
    definition = f"reward of {model}" + (f" minus reward of {minus}" if minus else "") + " per text"
    regs = data.regressors
    n_pairs_all = len(s)
    if fe == "pair":
        ok = complete_rows(s[:, 0], s[:, 1], data.chosen, data.rejected)
        dy = s[ok, 0] - s[ok, 1]
        dx = data.chosen[ok] - data.rejected[ok]
        levels_x = np.concatenate([data.chosen[ok], data.rejected[ok]])
        levels_y = np.concatenate([s[ok, 0], s[ok, 1]])
        sd_levels = levels_x.std(axis=0, ddof=1) if len(levels_x) > 1 else np.ones(dx.shape[1])
        sd_y = float(levels_y.std(ddof=1)) if len(levels_y) > 1 else 1.0
        fit, rows, dropped, vifs = _fit_and_describe(
            dx,
            dy,
            regs,
            has_const=False,
            groups=None,
            cov=cov,
            correction=correction,
            standardize=standardize,
            alpha=alpha,
            sd_levels=sd_levels,
            sd_y=sd_y,
        )
        terms = " + ".join(f"Δ{r['name']}" for r in rows)
        return Regression(
            outcome="reward_within" if not minus else "reward_diff_within",
            definition=definition + ", within pairs",
            estimator="ols (within-pair / pair fixed effects)",
            formula=f"Δ({ylabel}) ~ 0 + {terms}",
            rows="one row per pair; Δ = chosen − rejected; the same β as "
            f"{ylabel} ~ {' + '.join(r['name'] for r in rows)} + C(pair_id)",
            **_fit_summary(fit, dy, cov, "pair-row"),
            n_pairs=fit.n,
            n_dropped_missing=int(n_pairs_all - ok.sum()),
            r2_kind="within",
            dropped=dropped,
            vif=vifs,
            coefficients=rows,
        )
    y = s.reshape(-1)  # c0, r0, c1, r1, ...
    X = np.stack([data.chosen, data.rejected], axis=1).reshape(-1, data.chosen.shape[1])
    groups = np.repeat(np.arange(n_pairs_all), 2)
    ok = complete_rows(y, X)
    y, X, groups = y[ok], X[ok], groups[ok]
    fit, rows, dropped, vifs = _fit_and_describe(
        X,
        y,
        regs,
        has_const=True,
        groups=groups if cov == "cluster" else None,
        cov=cov,
        correction=correction,
        standardize=standardize,
        alpha=alpha,
    )
    return Regression(
        outcome="reward" if not minus else "reward_diff",
        definition=definition,
        estimator="ols",
        formula=f"{ylabel} ~ 1 + {' + '.join(r['name'] for r in rows[1:])}",
        rows="one row per text (chosen and rejected): 2 per pair",
        **_fit_summary(fit, y, cov, "text"),
        n_pairs=n_groups(groups, len(groups)),
        n_dropped_missing=int((~ok).sum()),
        r2_kind="centered",
        dropped=dropped,
        vif=vifs,
        coefficients=rows,
    )


def _fit_summary(fit: Any, y: np.ndarray, cov: str, unit: str) -> dict[str, Any]:
    """The Regression fields every specification takes from its fit and outcome vector."""
    return {
        "n": fit.n,
        "k": fit.k,
        "df_resid": fit.df_resid,
        "r2": fit.r2,
        "r2_adj": fit.r2_adj,
        "condition_number": fit.condition_number,
        "cov_type": cov,
        "cov_detail": _cov_detail(cov, fit.n_clusters, unit),
        "n_clusters": fit.n_clusters,
        "inference": fit.inference,
        "outcome_mean": float(y.mean()),
        "outcome_sd": float(y.std(ddof=1)) if len(y) > 1 else 0.0,
    }


def misalignment(scores: np.ndarray, ties: str = "misaligned") -> np.ndarray:
    """1.0 where the RM does not prefer the chosen response (r(c) < r(r), ties per `ties`), NaN where a
    score is missing or (ties="drop") the scores tie."""
    c, r = scores[:, 0], scores[:, 1]
    out = (c < r).astype(np.float64)
    tie = c == r
    out[tie] = {"misaligned": 1.0, "aligned": 0.0, "drop": np.nan}[ties]
    out[~(np.isfinite(c) & np.isfinite(r))] = np.nan
    return out


def misalignment_regression(
    data: PairData, model: str, ties: str, logit: bool, *, standardize: bool, correction: str, alpha: float, cov: str
) -> Regression:
    y_all = misalignment(data.scores[model], ties)
    X, regs = pair_design(data)
    ok = complete_rows(y_all, X)
    y, X = y_all[ok], X[ok]
    fit, rows, dropped, vifs = _fit_and_describe(
        X,
        y,
        regs,
        has_const=True,
        groups=None,
        cov=cov,
        correction=correction,
        standardize=standardize,
        alpha=alpha,
        logit=logit,
    )
    c, r = data.scores[model][:, 0], data.scores[model][:, 1]
    n_ties = int(np.sum((c == r) & ok))
    tie_rule = {
        "misaligned": "ties r(c) = r(r) count as misaligned",
        "aligned": "ties count as aligned",
        "drop": "tied pairs are left out",
    }[ties]
    return Regression(
        outcome="misaligned",
        definition=f"1 if {model} scores chosen < rejected ({tie_rule}), else 0",
        estimator="logit" if logit else "ols (linear probability model)",
        formula=f"misaligned_{model} ~ 1 + {' + '.join(r['name'] for r in rows[1:])}",
        rows="one row per pair",
        **_fit_summary(fit, y, cov, "pair-row"),
        n_pairs=fit.n,
        n_dropped_missing=int((~ok).sum()),
        r2_kind="mcfadden" if logit else "centered",
        dropped=dropped,
        vif=vifs,
        coefficients=rows,
        converged=fit.converged,
        extra={"ties": n_ties, "tie_rule": ties},
    )


def theta_regression(
    data: PairData, model: str, control: str, *, standardize: bool, correction: str, alpha: float, cov: str
) -> Regression:
    u, v = data.scores[control], data.scores[model]
    theta, left_out = angle_population(u[:, 0], u[:, 1], v[:, 0], v[:, 1], data.identical)
    X, regs = pair_design(data)
    ok = complete_rows(theta, X)
    y, X = theta[ok], X[ok]
    fit, rows, dropped, vifs = _fit_and_describe(
        X, y, regs, has_const=True, groups=None, cov=cov, correction=correction, standardize=standardize, alpha=alpha
    )
    return Regression(
        outcome="theta",
        definition=f"signed angle (degrees) from ({control}(c), {control}(r)) to ({model}(c), {model}(r)): "
        f"{ANGLE_DEFINITION}; pairs with identical responses and zero vectors left out",
        estimator="ols",
        formula=f"theta_{control}_to_{model} ~ 1 + {' + '.join(r['name'] for r in rows[1:])}",
        rows="one row per pair",
        **_fit_summary(fit, y, cov, "pair-row"),
        n_pairs=fit.n,
        n_dropped_missing=int((~ok).sum()),
        r2_kind="centered",
        dropped=dropped,
        vif=vifs,
        coefficients=rows,
        extra={
            "theta_mean": _fnum(y.mean()),
            "theta_median": _fnum(np.median(y)),
            "excluded_identical": left_out["identical"],
            "excluded_zero_vectors": left_out["zero_vectors"],
        },
    )
