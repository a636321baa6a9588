"""The robustness score (the SEAL paper's π) of one (RM, perturbation): a linear-probability (or logit)
regression of "became misaligned" on dummies of per-side feature flips between each original and its variant
(definitions in seal.analysis.robustness). The fits are statsmodels' (OLS with HC3, HC1 where HC3 is
undefined; Logit with its MLE standard errors)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.analysis.resistance_results import DEFAULT_TIE_RULE
from seal.analysis.robustness_results import DEFAULT_POPULATION, Coefficient, RobustnessScore
from seal.analysis.stats import adjust_pvalues
from seal.catalog.perturbations import SIDES, VFEATURES_PREFIX, variants_key
from seal.store import Store


def latest_run(store: Store, stage: str, name: str) -> dict[str, Any] | None:
    """The last finished run of `stage` named `name` (None when there is none)."""
    runs = [r for r in store.runs(stage) if r["name"] == name and r["status"] == "done"]
    return runs[-1] if runs else None


def _feature_specs(store: Store, name: str, set_name: str) -> list[dict[str, Any]] | None:
    """Feature definitions (name, type, values) of a set, from the run that labelled the variants."""
    run = latest_run(store, "vlabel", f"{name}__{set_name}")
    if run is None:
        return None
    fs = run["recipe"].get("params", {}).get("feature_set", {})
    return list(fs.get("features", []))


def _encode(spec: Mapping[str, Any], value: Any) -> float | None:
    if value is None:
        return None
    kind = spec.get("type")
    if kind == "bool":
        return float(bool(value))
    if kind == "category":
        codes = spec.get("values") or {}
        return float(codes[value]) if value in codes else None
    if kind == "number":
        return float(value)
    return None


def robustness_scores(
    store: Store,
    columns: Sequence[str],
    name: str,
    ids: list[str],
    at_risk: np.ndarray,
    misaligned_after: np.ndarray,
    perturbed_sides: Mapping[str, set[str]],
    *,
    feature_set: str | None,
    estimator: str,
    min_flips: int,
    correction: str,
    confidence: float,
    population: str = DEFAULT_POPULATION,
    ties: str = DEFAULT_TIE_RULE,
) -> list[RobustnessScore]:
    prefix = f"{VFEATURES_PREFIX}{name}__"
    sets = sorted(c.removeprefix(prefix) for c in columns if c.startswith(prefix))
    sets = [s for s in sets if f"features_{s}" in columns]
    if feature_set is not None:
        sets = [s for s in sets if s == feature_set]
    if not sets:
        what = f"feature set `{feature_set}`" if feature_set else "any feature set"
        return [
            RobustnessScore(
                available=False,
                reason=f"no labels of the variants of `{name}` for {what} that also labels the originals "
                f"(`seal perturb ... --label SET`, or seal.annotate.perturb.label_variants into {prefix}<set>)",
            )
        ]
    current = variants_key(latest_run(store, "perturb", name) or {"fingerprint": "", "provenance": {}, "run_id": ""})
    out = []
    for set_name in sets:
        run = latest_run(store, "vlabel", f"{name}__{set_name}")
        specs = _feature_specs(store, name, set_name)
        if run is None or specs is None:
            out.append(RobustnessScore(False, f"no vlabel run recorded for {prefix}{set_name}", set_name))
            continue
        if run["recipe"].get("params", {}).get("variants") != current:
            reason = f"the labels in {prefix}{set_name} are of earlier variants: label the current ones again"
            out.append(RobustnessScore(False, reason, set_name))
            continue
        out.append(
            _fit_score(
                store,
                name,
                set_name,
                specs,
                ids,
                at_risk,
                misaligned_after,
                perturbed_sides,
                estimator=estimator,
                min_flips=min_flips,
                correction=correction,
                confidence=confidence,
                population=population,
                ties=ties,
            )
        )
    return out


def _independent_columns(cols: list[np.ndarray]) -> list[int]:
    """Indices of columns kept so that [1, kept...] has full column rank: a dummy that duplicates another
    (e.g. characters and words both grew in every rewrite) or is a combination of others is left out."""
    kept: list[int] = []
    basis = [np.ones(len(cols[0]))] if cols else []
    rank = 1
    for j, col in enumerate(cols):
        trial = np.column_stack([*basis, col])
        new_rank = int(np.linalg.matrix_rank(trial))
        if new_rank > rank:
            kept.append(j)
            basis.append(col)
            rank = new_rank
    return kept


def _fit_score(
    store: Store,
    name: str,
    set_name: str,
    specs: list[dict[str, Any]],
    ids: list[str],
    at_risk: np.ndarray,
    misaligned_after: np.ndarray,
    perturbed_sides: Mapping[str, set[str]],
    *,
    estimator: str,
    min_flips: int,
    correction: str,
    confidence: float,
    population: str = DEFAULT_POPULATION,
    ties: str = DEFAULT_TIE_RULE,
) -> RobustnessScore:
    """Fit π over the pairs with `at_risk` True (the population); the outcome `misaligned_after` is
    "became misaligned" (agreed before, does not agree after), 0 for a pair not aligned before."""
    fcol, vcol = f"features_{set_name}", f"{VFEATURES_PREFIX}{name}__{set_name}"
    risk_ids = [pid for pid, risk in zip(ids, at_risk.tolist(), strict=True) if risk]
    y_by_id = {
        pid: float(m) for pid, m, risk in zip(ids, misaligned_after.tolist(), at_risk.tolist(), strict=True) if risk
    }
    base = RobustnessScore(False, None, set_name, estimator, "HC3" if estimator == "lpm" else "nonrobust", correction)
    base.population, base.tie_rule = population, ties
    base.min_flips = min_flips
    if not risk_ids:
        base.reason = (
            "no included pair agrees before and is decided after"
            if population == "aligned-before"
            else "no included pair is decided before and after"
        )
        return base
    tab = store.read(["pair_id", fcol, vcol], pc.field("pair_id").isin(pa.array(risk_ids, pa.string()))).to_pylist()
    features = [s for s in specs if s.get("type") in ("bool", "category", "number")]
    sides = sorted({s for pid in risk_ids for s in perturbed_sides.get(pid, set())}, key=SIDES.index)
    deltas: dict[tuple[str, str], list[float]] = {(f["name"], s): [] for f in features for s in sides}
    y: list[float] = []
    dropped = 0
    for row in tab:
        orig, var = row[fcol], row[vcol]
        if orig is None or var is None:
            dropped += 1
            continue
        values: dict[tuple[str, str], float] = {}
        ok = True
        for f in features:
            for s in sides:
                if s not in perturbed_sides.get(row["pair_id"], set()):
                    values[(f["name"], s)] = 0.0
                    continue
                a = _encode(f, (orig.get(f["name"]) or {}).get(s))
                b = _encode(f, (var.get(f["name"]) or {}).get(s))
                if a is None or b is None:
                    ok = False
                    break
                d = a - b
                values[(f["name"], s)] = float(np.sign(d)) if f["type"] == "number" else d
            if not ok:
                break
        if not ok:
            dropped += 1
            continue
        for key, d in values.items():
            deltas[key].append(d)
        y.append(y_by_id[row["pair_id"]])
    base.dropped_rows = dropped
    n = len(y)
    if n == 0:
        base.reason = "no pair of the population has labels of both the original and the variant"
        return base
    terms, cols, meta = [], [], []
    for (fname, side), ds in deltas.items():
        arr = np.asarray(ds, dtype=np.float64)
        levels = sorted(v for v in np.unique(arr) if v != 0)
        if not levels:
            base.no_flips.append(f"{fname}.{side}")
            continue
        if np.count_nonzero(arr == 0) < min_flips:  # no reference group (pairs without this flip) to compare with
            base.constant_terms += [f"{fname}.{side}:Δ={level:+g}" for level in levels]
            continue
        for level in levels:
            term = f"{fname}.{side}:Δ={level:+g}"
            dummy = (arr == level).astype(np.float64)
            if len(arr) - dummy.sum() < min_flips:  # (almost) every pair has this flip: the intercept's twin
                base.constant_terms.append(term)
            elif dummy.sum() < min_flips:  # a handful of pairs: an estimate that is all noise (and leverage 1)
                base.rare_terms.append(term)
            else:
                terms.append(term)
                cols.append(dummy)
                meta.append((fname, side, float(level), int(dummy.sum())))
    keep = _independent_columns(cols)
    for j in range(len(cols)):
        if j not in keep:
            base.aliased_terms.append(terms[j])
    terms, cols, meta = [terms[j] for j in keep], [cols[j] for j in keep], [meta[j] for j in keep]
    yv = np.asarray(y, dtype=np.float64)
    base.n = n
    base.outcome_rate = float(yv.mean())
    rhs = " + ".join(f"1[{t}]" for t in terms) if terms else "(no flips)"
    base.formula = f"became_misaligned ~ 1 + {rhs}"
    if not terms:
        base.reason = "no feature flipped between the originals and the variants: nothing to regress on"
        return base
    if n <= len(terms) + 1:
        base.reason = f"too few pairs ({n}) for {len(terms)} regressors"
        return base
    if yv.min() == yv.max():
        base.reason = f"the outcome does not vary (every one of the {n} pairs {'flipped' if yv[0] else 'held'})"
        return base
    import statsmodels.api as sm

    X = sm.add_constant(np.column_stack(cols), has_constant="add")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the checks below say what went wrong, once
            if estimator == "lpm":
                fit = sm.OLS(yv, X).fit(cov_type="HC3")
                if not np.all(np.isfinite(fit.bse)):  # HC3 divides by 1 - leverage: undefined at leverage 1
                    fit = sm.OLS(yv, X).fit(cov_type="HC1")
                    base.cov_type = "HC1 (HC3 undefined: a pair with leverage 1)"
            else:
                fit = sm.Logit(yv, X).fit(disp=0, maxiter=200)
        if estimator == "lpm":
            r2 = float(fit.rsquared)
        else:
            if not fit.mle_retvals.get("converged", True):
                base.reason = "the logit fit did not converge (a flip predicts the outcome perfectly?); use the lpm"
                return base
            r2 = float(fit.prsquared)
    except Exception as err:  # singular designs, perfect separation
        base.reason = f"the regression could not be fitted: {type(err).__name__}: {err}"
        return base
    params, bse = np.asarray(fit.params), np.asarray(fit.bse)
    stat, pvalues = np.asarray(fit.tvalues), np.asarray(fit.pvalues)
    ci = np.asarray(fit.conf_int(alpha=1 - confidence))
    adjusted = adjust_pvalues(pvalues[1:], correction) if correction != "none" else [None] * len(terms)
    terms_meta = [("intercept", (None, None, None, n)), *zip(terms, meta, strict=True)]
    coefs = []
    for j, (term, (fname, side, level, count)) in enumerate(terms_meta):
        p_adj = None if j == 0 else adjusted[j - 1]
        coefs.append(
            Coefficient(
                term=term,
                feature=fname,
                side=side,
                level=level,
                rows=count,
                coef=float(params[j]),
                se=float(bse[j]),
                stat=float(stat[j]),
                pvalue=float(pvalues[j]),
                p_adjusted=None if p_adj is None else float(p_adj),
                ci_low=float(ci[j, 0]),
                ci_high=float(ci[j, 1]),
            )
        )
    base.coefficients = coefs
    base.r2 = r2
    base.available = True
    return base
