"""Feature imprint: regressions of reward (and of reward-model errors) on labelled features.

Text level (the SEAL paper's imprint): one row per text, two per pair,

    r_A(t) = β0 + Σ_τ β_τ x_τ(t) + ε_t,        SEs clustered by pair by default,

so β_τ is the reward difference (in A's logit units) between texts with and without τ, the rest held
fixed. ``minus=B`` fits r_A − r_B (the imprint change). ``fe="pair"`` is the within-pair estimator:
r_A(chosen) − r_A(rejected) on x(chosen) − x(rejected) without an intercept, which gives exactly the β of
pair fixed effects (LSDV: ``r ~ x + C(pair_id)``) and of demeaning within pairs; features equal on both
sides of every pair (e.g. conversation-level ones) drop out.

Pair level (the SEAL paper's pair regressions): one row per pair, the chosen-side and the rejected-side
value of every feature as regressors of

- ``misaligned`` = 1 when A does not score the chosen response strictly higher: r_A(c) < r_A(r), and a tie
  r_A(c) == r_A(r) counts as misaligned by default (``ties``: misaligned | aligned | drop), matching the
  strict agreement δ = 1[r(c) > r(r)] of METHOD.md; a linear probability model, or a logit;
- ``theta`` (with ``control=B``) = the signed angle in degrees from u = (r_B(c), r_B(r)) to
  v = (r_A(c), r_A(r)), atan2(u_c·v_r − u_r·v_c, u·v): counter-clockwise positive in the (chosen, rejected)
  plane, the SEAL paper's convention (seal.analysis.angles). Pairs with identical responses (no preference)
  and zero vectors (no direction) are left out and counted.

The estimator is numpy (QR least squares, sandwich covariances) and equals statsmodels' formula API on the
same data (tests hold it to 1e-8): ``cluster`` is statsmodels' CR1 (G/(G−1)·(N−1)/(N−K)), ``hc3`` its
HC3, ``nonrobust`` the classical σ²(X'X)⁻¹. Inference uses t with G−1 degrees of freedom (cluster) or
N−K (others); the logit uses the normal. Constant and exactly collinear regressors are dropped and named;
a VIF report, N, R², the condition number and the formula come with every fit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats as sps

from seal.analysis.angles import ANGLE_DEFINITION, angle_population, shift_angles
from seal.annotate.features.featureset import Feature, FeatureSet
from seal.annotate.features.writer import stored_feature_sets
from seal.annotate.models import list_models, model_with_role, score_column
from seal.errors import SealError
from seal.render import to_jsonable
from seal.store import Store

LEVELS = ("text", "pair")
COV_TYPES = ("cluster", "hc3", "nonrobust")
CORRECTIONS = ("bonferroni", "holm", "fdr_bh", "none")
CATEGORICAL = ("ordinal", "onehot")
TIES = ("misaligned", "aligned", "drop")
DEFAULT_MIN_COUNT = 30
COLLINEAR_TOL = 1e-9


# =====================================================================================================
# Estimators
# =====================================================================================================
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


def _n_groups(groups: np.ndarray | None, n: int) -> int:
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
    n_clusters = _n_groups(groups, n) if cov == "cluster" else None
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
        n_clusters = _n_groups(groups, n)
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
    """Adjusted p-values (bonferroni, holm, fdr_bh, none)."""
    if method == "none":
        return np.asarray(pvalues, dtype=float)
    from seal.analysis.stats import adjust_pvalues

    return adjust_pvalues(pvalues, "bh" if method == "fdr_bh" else method)


# =====================================================================================================
# Features from the store
# =====================================================================================================
@dataclass(frozen=True)
class Regressor:
    """One design column built from a feature (a level of it for one-hot and multi-hot)."""

    name: str
    feature: str
    feature_set: str
    role: str
    sign: int
    type: str
    level: str | None = None
    side: str | None = None  # pair level: chosen / rejected


def resolve_features(
    sets: dict[str, FeatureSet], selection: str | Sequence[str] | None = None
) -> list[tuple[str, Feature]]:
    """(set name, feature) for a selection: None = every feature of every stored set; else names separated
    by commas, each a set name (all its features), ``set.feature``, a feature name, or a unique suffix
    (``harmless`` for ``last_response_is_harmless``)."""
    if not sets:
        raise SealError("the store has no labelled features", hint="run `seal label` or `seal import-features` first")
    if selection is None:
        return [(s, f) for s, fs in sets.items() for f in fs.features]
    tokens = [t.strip() for t in (selection.split(",") if isinstance(selection, str) else selection) if t.strip()]
    if not tokens:
        raise SealError("no features selected")
    out: list[tuple[str, Feature]] = []
    for token in tokens:
        if token in sets:
            out += [(token, f) for f in sets[token].features]
            continue
        if "." in token:
            set_name, _, feature = token.partition(".")
            if set_name not in sets:
                raise SealError(f"no labelled feature set `{set_name}`", hint=f"sets: {', '.join(sets)}")
            out.append((set_name, sets[set_name].feature(feature)))
            continue
        exact = [(s, f) for s, fs in sets.items() for f in fs.features if f.name == token]
        matches = exact or [(s, f) for s, fs in sets.items() for f in fs.features if f.name.endswith("_" + token)]
        if len(matches) == 1:
            out.append(matches[0])
            continue
        if not matches:
            known = ", ".join(f"{s}.{f.name}" for s, fs in sets.items() for f in fs.features)
            raise SealError(f"no labelled feature `{token}`", hint=f"features: {known}")
        raise SealError(
            f"feature `{token}` is ambiguous: {', '.join(f'{s}.{f.name}' for s, f in matches)}",
            hint="qualify it as set.feature",
        )
    seen: set[tuple[str, str]] = set()
    unique = []
    for s, f in out:
        if (s, f.name) not in seen:
            seen.add((s, f.name))
            unique.append((s, f))
    return unique


def _column_array(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _to_float(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def side_values(struct: pa.Array, feature: Feature, side: str) -> pa.Array:
    """The labels of one feature and side (null where the pair is unlabelled)."""
    return pc.struct_field(pc.struct_field(struct, feature.name), side)


def encode_feature(
    struct: pa.Array, feature: Feature, categorical: str = "ordinal"
) -> tuple[list[str | None], np.ndarray, np.ndarray]:
    """(levels, chosen, rejected) numeric encodings of one feature: arrays (n, L) with NaN where missing.
    Levels are [None] for bool / number / ordinal categories, category labels after the reference
    (the first listed) for one-hot, allowed values for lists (multi-hot)."""
    out = []
    levels: list[str | None]
    for side in ("chosen", "rejected"):
        values = side_values(struct, feature, side)
        if feature.type in ("bool", "number"):
            levels = [None]
            out.append(_to_float(values)[:, None])
        elif feature.type == "category":
            labels = list(feature.values)
            index = pc.index_in(values, value_set=pa.array(labels))
            idx = np.asarray(pc.fill_null(index, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
            if categorical == "ordinal":
                levels = [None]
                codes = np.array([float(feature.values[label]) for label in labels] + [np.nan])
                out.append(codes[idx][:, None])
            else:
                levels = labels[1:]
                onehot = (idx[:, None] == np.arange(1, len(labels))[None, :]).astype(np.float64)
                onehot[idx < 0] = np.nan
                out.append(onehot)
        else:
            allowed = list(feature.values)
            levels = list(allowed)
            n = len(values)
            matrix = np.zeros((n, len(allowed)))
            valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            flat = pc.list_flatten(values)
            parents = np.asarray(pc.list_parent_indices(values).to_numpy(zero_copy_only=False), dtype=np.int64)
            col = np.asarray(
                pc.fill_null(pc.index_in(flat, value_set=pa.array(allowed)), -1).to_numpy(zero_copy_only=False),
                dtype=np.int64,
            )
            ok = col >= 0
            matrix[parents[ok], col[ok]] = 1.0
            matrix[~valid] = np.nan
            out.append(matrix)
    return levels, out[0], out[1]


@dataclass
class PairData:
    """Scores and encoded features of the pairs, aligned by row (one row per pair)."""

    pair_ids: np.ndarray
    scores: dict[str, np.ndarray]  # alias -> (n, 2) [chosen, rejected]
    regressors: list[Regressor]  # one per column (side-free)
    chosen: np.ndarray  # (n, m)
    rejected: np.ndarray  # (n, m)
    dropped: list[dict[str, str]] = field(default_factory=list)
    pairs_version: int | None = None
    identical: np.ndarray | None = None  # flags.identical_responses per pair (None: the store has no such flag)


def load_pair_data(
    store: Store,
    aliases: Sequence[str],
    features: list[tuple[str, Feature]],
    sets: dict[str, FeatureSet],
    categorical: str = "ordinal",
    min_count: int = DEFAULT_MIN_COUNT,
) -> PairData:
    """Read the score and label columns once and encode every selected feature."""
    by_set: dict[str, list[Feature]] = {}
    for s, f in features:
        by_set.setdefault(s, []).append(f)
    columns = ["pair_id"] + [score_column(a) for a in aliases] + [sets[s].column for s in by_set]
    table = store.pairs()
    version = int(table.version)
    schema = table.schema
    has_identical = "flags" in schema.names and schema.field("flags").type.get_field_index("identical_responses") >= 0
    if has_identical:
        columns.append("flags.identical_responses")
    data = table.to_lance().to_table(columns=list(dict.fromkeys(columns)))
    scores = {}
    for alias in aliases:
        struct = _column_array(data, score_column(alias))
        scores[alias] = np.column_stack(
            [_to_float(pc.struct_field(struct, "chosen")), _to_float(pc.struct_field(struct, "rejected"))]
        )
    bare = [f.name for _, f in features]
    regressors: list[Regressor] = []
    chosen_cols, rejected_cols = [], []
    dropped: list[dict[str, str]] = []
    for s, fs in by_set.items():
        struct = _column_array(data, sets[s].column)
        for f in fs:
            base = f.name if bare.count(f.name) == 1 else f"{s}.{f.name}"
            levels, c, r = encode_feature(struct, f, categorical)
            for j, level in enumerate(levels):
                name = base if level is None else f"{base}={level}"
                if f.type == "list":
                    count = int(np.nansum(c[:, j]) + np.nansum(r[:, j]))
                    if count < min_count:
                        dropped.append({"name": name, "reason": f"in {count} texts, fewer than min_count {min_count}"})
                        continue
                regressors.append(Regressor(name, f.name, s, f.role, f.sign, f.type, level))
                chosen_cols.append(c[:, j])
                rejected_cols.append(r[:, j])
    n = data.num_rows
    stack = lambda cols: np.column_stack(cols) if cols else np.zeros((n, 0))  # noqa: E731
    return PairData(
        pair_ids=np.asarray(data.column("pair_id").to_pylist(), dtype=object),
        scores=scores,
        regressors=regressors,
        chosen=stack(chosen_cols),
        rejected=stack(rejected_cols),
        dropped=dropped,
        pairs_version=version,
        identical=(
            np.asarray(data.column("flags.identical_responses").fill_null(False).to_numpy(), dtype=bool)
            if has_identical
            else None
        ),
    )


def shift_angle(control: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Signed angle in degrees from u = control (c, r) to v = model (c, r), counter-clockwise positive in the
    (chosen, rejected) plane (see seal.analysis.angles); NaN where a vector is zero or missing."""
    return shift_angles(control[:, 0], control[:, 1], model[:, 0], model[:, 1])


# =====================================================================================================
# The analysis
# =====================================================================================================
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


@dataclass
class ImprintResult:
    """The imprint of one reward model's rewards (or errors) on features."""

    model: str
    minus: str | None
    control: str | None
    level: str
    fe: str | None
    cov: str
    correction: str
    standardize: bool
    categorical: str
    min_count: int
    ties: str
    alpha: float
    pairs_total: int
    pairs_version: int | None
    features: list[dict[str, Any]]
    regressions: list[Regression]
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "regressions"}
        out["regressions"] = [r.to_json() for r in self.regressions]
        return to_jsonable(out)

    def to_frame(self) -> Any:
        import pandas as pd

        rows = []
        for reg in self.regressions:
            for c in reg.coefficients:
                rows.append({"outcome": reg.outcome, **c})
        return pd.DataFrame(rows)

    def render(self) -> str:
        from seal.render import table

        lines = []
        minus = f" − {self.minus}" if self.minus else ""
        for reg in self.regressions:
            lines.append(f"== {reg.outcome}: {reg.definition}")
            lines.append(f"formula: {reg.formula}   [{reg.estimator}; {reg.rows}]")
            r2 = "–" if reg.r2 is None else f"{reg.r2:.4f}"
            lines.append(
                f"N = {reg.n:,} ({reg.n_pairs:,} pairs; {reg.n_dropped_missing:,} rows dropped for missing values), "
                f"{reg.r2_kind} R² = {r2}, condition number {reg.condition_number:.3g}"
            )
            lines.append(f"SE: {reg.cov_detail}; inference {reg.inference}; p adjusted: {self.correction}")
            if not reg.converged:
                lines.append("warning: the logit did not converge (separation?)")
            for d in reg.dropped:
                lines.append(f"dropped {d['name']}: {d['reason']}")
            rows = []
            for c in reg.coefficients:
                rows.append(
                    {
                        "term": c["name"],
                        "role": c["role"],
                        "beta": c["beta"],
                        "se": c["se"],
                        "t": c["t"],
                        "p": c["p"],
                        "p_adj": c["p_adj"],
                        "ci95": None if c["ci_low"] is None else f"[{c['ci_low']:.4g}, {c['ci_high']:.4g}]",
                        "std_beta": c["std_beta"],
                    }
                )
            lines.append(table(rows))
            high = [v for v in reg.vif if v["vif"] is not None and v["vif"] > 10]
            if high:
                lines.append("VIF > 10: " + ", ".join(f"{v['name']} {v['vif']:.1f}" for v in high))
            lines.append("")
        header = f"imprint of {self.model}{minus} ({self.level} level"
        header += f", fixed effects: {self.fe}" if self.fe else ""
        header += ", standardised)" if self.standardize else ")"
        return header + "\n\n" + "\n".join(lines).rstrip()

    def plot(self, path: str) -> str:
        """A coefficient plot (β with its CI per term; targets, spoilers and others coloured) as PNG."""
        return plot_imprint(self, path)


def _fnum(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _check_options(level: str, fe: str | None, cov: str, correction: str, categorical: str, ties: str) -> None:
    for value, allowed, flag in (
        (level, LEVELS, "--level"),
        (cov, COV_TYPES, "--cov"),
        (correction, CORRECTIONS, "--correction"),
        (categorical, CATEGORICAL, "--categorical"),
        (ties, TIES, "--ties"),
    ):
        if value not in allowed:
            raise SealError(f"{flag} must be one of {', '.join(allowed)}, got {value!r}")
    if fe not in (None, "pair"):
        raise SealError(f"--fe must be pair, got {fe!r}")


def imprint(
    store: Store,
    model: str | None = None,
    *,
    minus: str | None = None,
    control: str | None = None,
    features: str | Sequence[str] | None = None,
    level: str = "text",
    fe: str | None = None,
    cov: str = "cluster",
    correction: str = "bonferroni",
    standardize: bool = False,
    logit: bool = False,
    categorical: str = "ordinal",
    min_count: int = DEFAULT_MIN_COUNT,
    ties: str = "misaligned",
    alpha: float = 0.05,
) -> ImprintResult:
    """The feature imprint of reward model `model` (default: the one with role aligned).

    text level: r_model(text) [− r_minus(text)] on the text's features (`fe="pair"`: within pairs);
    pair level: misalignment of `model` (and, with `control`, the shift angle θ from control to model) on
    the chosen- and rejected-side features. See the module docstring for the exact definitions."""
    t0 = time.perf_counter()
    _check_options(level, fe, cov, correction, categorical, ties)
    store.require()
    models = list_models(store)
    model = model or model_with_role(store, "aligned")
    if model is None:
        raise SealError("no reward model given and none has role aligned", hint="pass --model ALIAS")
    for alias, flag in ((model, "--model"), (minus, "--minus"), (control, "--control")):
        if alias is not None and alias not in models:
            known = ", ".join(models) or "none"
            raise SealError(f"{flag}: no scores for `{alias}`", hint=f"scored models: {known}")
    if level == "pair" and (minus or fe):
        raise SealError("--minus and --fe apply to --level text")
    if level == "text" and (control or logit):
        raise SealError("--control and --logit apply to --level pair")
    if logit and cov == "hc3":
        raise SealError("--logit supports --cov cluster or nonrobust")
    sets = stored_feature_sets(store)
    selected = resolve_features(sets, features)
    aliases = [a for a in (model, minus, control) if a]
    data = load_pair_data(store, aliases, selected, sets, categorical, min_count)
    if not data.regressors:
        raise SealError("no regressors left after encoding the selected features", hint="lower --min-count")
    common = {"standardize": standardize, "correction": correction, "alpha": alpha, "cov": cov}
    if level == "text":
        regressions = [_text_regression(data, model, minus, fe, **common)]
    else:
        regressions = [_misalignment_regression(data, model, ties, logit, **common)]
        if control:
            regressions.append(_theta_regression(data, model, control, **common))
    feature_info = [
        {"feature_set": s, "name": f.name, "type": f.type, "role": f.role, "sign": f.sign} for s, f in selected
    ]
    for reg in regressions:
        reg.dropped = data.dropped + reg.dropped
    return ImprintResult(
        model=model,
        minus=minus,
        control=control,
        level=level,
        fe=fe,
        cov=cov,
        correction=correction,
        standardize=standardize,
        categorical=categorical,
        min_count=min_count,
        ties=ties,
        alpha=alpha,
        pairs_total=len(data.pair_ids),
        pairs_version=data.pairs_version,
        features=feature_info,
        regressions=regressions,
        seconds=round(time.perf_counter() - t0, 3),
    )


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


def _complete(*arrays: np.ndarray) -> np.ndarray:
    mask = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        mask &= np.isfinite(a) if a.ndim == 1 else np.isfinite(a).all(axis=1)
    return mask


def _text_regression(
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
        ok = _complete(s[:, 0], s[:, 1], data.chosen, data.rejected)
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
    ok = _complete(y, X)
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
        n_pairs=_n_groups(groups, len(groups)),
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


def _pair_design(data: PairData) -> tuple[np.ndarray, list[Regressor]]:
    regs = []
    columns = []
    for j, r in enumerate(data.regressors):
        for side, values in (("chosen", data.chosen), ("rejected", data.rejected)):
            regs.append(Regressor(f"{r.name}[{side}]", r.feature, r.feature_set, r.role, r.sign, r.type, r.level, side))
            columns.append(values[:, j])
    return np.column_stack(columns), regs


def misalignment(scores: np.ndarray, ties: str = "misaligned") -> np.ndarray:
    """1.0 where the RM does not prefer the chosen response (r(c) < r(r), ties per `ties`), NaN where a
    score is missing or (ties="drop") the scores tie."""
    c, r = scores[:, 0], scores[:, 1]
    out = (c < r).astype(np.float64)
    tie = c == r
    out[tie] = {"misaligned": 1.0, "aligned": 0.0, "drop": np.nan}[ties]
    out[~(np.isfinite(c) & np.isfinite(r))] = np.nan
    return out


def _misalignment_regression(
    data: PairData, model: str, ties: str, logit: bool, *, standardize: bool, correction: str, alpha: float, cov: str
) -> Regression:
    y_all = misalignment(data.scores[model], ties)
    X, regs = _pair_design(data)
    ok = _complete(y_all, X)
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


def _theta_regression(
    data: PairData, model: str, control: str, *, standardize: bool, correction: str, alpha: float, cov: str
) -> Regression:
    u, v = data.scores[control], data.scores[model]
    theta, left_out = angle_population(u[:, 0], u[:, 1], v[:, 0], v[:, 1], data.identical)
    X, regs = _pair_design(data)
    ok = _complete(theta, X)
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


# =====================================================================================================
# Plot
# =====================================================================================================
ROLE_COLOURS = {"target": "#1f77b4", "spoiler": "#d62728", "none": "#7f7f7f"}


def plot_imprint(result: ImprintResult, path: str) -> str:
    """Coefficient plot: one panel per regression, β and its CI per term (intercept left out), coloured by
    role. Uses standardised β when the result is standardised."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    regs = result.regressions
    height = max(3.0, 0.28 * max(len(r.coefficients) for r in regs) + 1.5)
    fig, axes = plt.subplots(1, len(regs), figsize=(6.5 * len(regs), height), squeeze=False)
    for ax, reg in zip(axes[0], regs, strict=True):
        terms = [c for c in reg.coefficients if c["role"] != "intercept" and c["beta"] is not None]
        ys = np.arange(len(terms))[::-1]
        for y, c in zip(ys, terms, strict=True):
            colour = ROLE_COLOURS.get(c["role"], ROLE_COLOURS["none"])
            lo, hi = c["ci_low"], c["ci_high"]
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [y, y], color=colour, lw=2, alpha=0.7)
            ax.plot([c["beta"]], [y], "o", color=colour)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(ys)
        ax.set_yticklabels([c["name"] for c in terms], fontsize=8)
        unit = "standardised β" if result.standardize else "β"
        ax.set_xlabel(f"{unit} with {round(100 * (1 - result.alpha))}% CI")
        ax.set_title(f"{reg.outcome}: {result.model}" + (f" − {result.minus}" if result.minus else ""), fontsize=10)
    handles = [Line2D([0], [0], marker="o", color=c, label=role, lw=2) for role, c in ROLE_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
