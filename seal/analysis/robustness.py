"""Robustness: how a reward model's judgements move when the responses are rewritten without changing
their meaning (METHOD.md, "Robustness"). Reads ``score_<alias>``, ``variants_<M>``, ``vscore_<M>__<alias>``
and, for the robustness score, ``features_<set>`` with ``vfeatures_<M>__<set>``; writes nothing.

Definitions (also in every JSON result under ``definitions``):

- a *usable variant* was rewritten (not failed), has a score from this RM and — unless
  ``include_dissimilar`` — a similarity to its original of at least the perturbation's ``min_similarity``
  (variants below it are kept in the store, marked, and excluded here by default).
- *included pairs* have finite original scores, are not flagged identical_responses, and every perturbed
  side has a usable variant. "Before" is (r(chosen), r(rejected)); "after" replaces each perturbed side's
  score with its variant's (a side that was not perturbed keeps its score).
- the *tie rule* (``ties``) is the one of `seal resistance`: ``exclude`` (default) keeps exact ties apart,
  never as disagreement; ``disagree`` is the paper's strict counting, δ = 1[chosen > rejected], a tie
  counting as disagreement.
- *agreement* = agree / decided (agree: chosen > rejected, strict; decided excludes exact ties under
  ``exclude``, is every included pair under ``disagree``), before and after, over the included pairs, with
  Wilson intervals; ties are counted.
- *flips*, over the pairs decided both before and after (every included pair under ``disagree``): became
  misaligned (agree -> disagree) = b, became aligned (disagree -> agree) = c; exact McNemar test on (b, c).
- *reward change* Δ = r(variant) − r(original) per usable variant text; normalised by the RM's reward SD,
  the SD (ddof 1) of its scores over every original text (both sides) of every scored pair in the store.
  Correlation: Pearson and Spearman of (original, variant) rewards over those texts.
- *shift angle* θ in degrees from u = before to v = after, counter-clockwise positive in the (chosen, rejected)
  plane as in the SEAL paper (seal.analysis.angles; zero vectors excluded and counted).
- *sensitivity* of a perturbation = mean |Δ| / SD divided by the mean semantic change (1 − cosine similarity),
  the latter floored at ``semantic_floor`` so that edits invisible to the embedding model do not divide by ~0:
  reward change per unit of meaning change. Ranked per RM across perturbations (highest = most sensitive).
- *robustness score* (the paper's π): a linear-probability (or logit) regression of "became misaligned"
  (agreed before, does not agree after) on per-side feature flips: for every feature f of the set and
  perturbed side s, Δ = enc(original) − enc(variant) (booleans 0/1, categories by their codes, numbers by
  the sign of the difference), one dummy per non-zero level of Δ (level 0 is the reference), an intercept;
  HC3 standard errors (logit: the usual MLE ones); p-values adjusted over the dummies (Bonferroni by default).
  The population (``population``) is ``all`` (default, the paper's estimand as its tables read: every
  included pair decided before and after under the tie rule; a pair not aligned before has outcome 0) or
  ``aligned-before`` (only those that agreed before: the conditional risk of a flip).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow.compute as pc

from seal.analysis.angles import angle_population
from seal.analysis.resistance_results import DEFAULT_TIE_RULE, check_tie_rule
from seal.analysis.robustness_results import (
    CORRECTIONS,
    DEFAULT_CORRECTION,
    DEFAULT_POPULATION,
    DEFINITIONS,
    MIN_FLIPS,
    POPULATIONS,
    SEMANTIC_FLOOR,
    Coefficient,
    MethodResult,
    RobustnessResult,
    RobustnessScore,
    StateAgreement,
)
from seal.analysis.robustness_score import robustness_scores
from seal.analysis.stats import DEFAULT_CONFIDENCE, describe, mcnemar_exact, proportion
from seal.catalog.models import list_models, score_column
from seal.catalog.perturbations import FAILED, SIDES, list_perturbations, variants_column, vscore_column, vscore_status
from seal.errors import SealError, StoreError
from seal.store import Store


def _agreement(c: np.ndarray, r: np.ndarray, confidence: float, ties_rule: str = DEFAULT_TIE_RULE) -> StateAgreement:
    agree = int(np.count_nonzero(c > r))
    ties = int(np.count_nonzero(c == r))
    disagree = int(np.count_nonzero(c < r)) + (ties if ties_rule == "disagree" else 0)
    return StateAgreement(agree, disagree, ties, agree + disagree, proportion(agree, agree + disagree, confidence))


def _reward_sd(store: Store, alias: str) -> float | None:
    col = score_column(alias)
    scores = store.read([col]).column(col).combine_chunks()
    c, r = (np.asarray(pc.fill_null(pc.struct_field(scores, s), np.nan), dtype=np.float64) for s in SIDES)
    ok = np.isfinite(c) & np.isfinite(r)  # pairs with both scores, as in the agreement
    arr = np.concatenate([c[ok], r[ok]])
    return float(arr.std(ddof=1)) if arr.size > 1 else None


def robustness(
    store: Store,
    model: str | None = None,
    method: str | None = None,
    *,
    include_dissimilar: bool = False,
    feature_set: str | None = None,
    estimator: str = "lpm",
    min_flips: int = MIN_FLIPS,
    correction: str = DEFAULT_CORRECTION,
    confidence: float = DEFAULT_CONFIDENCE,
    semantic_floor: float = SEMANTIC_FLOOR,
    population: str = DEFAULT_POPULATION,
    ties: str = DEFAULT_TIE_RULE,
) -> RobustnessResult:
    """Robustness of every scored RM (or `model`) to every perturbation (or `method`) in the store.
    `population` is the robustness score's (all | aligned-before), `ties` the tie rule (exclude | disagree)."""
    t0 = time.perf_counter()
    store.require()
    check_tie_rule(ties)
    if population not in POPULATIONS:
        raise SealError(f"unknown population `{population}`", hint=f"use one of: {', '.join(POPULATIONS)}")
    if estimator not in ("lpm", "logit"):
        raise SealError(f"unknown estimator `{estimator}`", hint="use lpm or logit")
    if correction not in CORRECTIONS:
        raise SealError(f"unknown correction `{correction}`", hint=f"use one of {', '.join(CORRECTIONS)}")
    if not 0 < semantic_floor <= 1:
        raise SealError("semantic_floor must lie in (0, 1]")
    if min_flips < 1:
        raise SealError("min_flips must be at least 1")
    perturbations = list_perturbations(store)
    if not perturbations:
        raise StoreError("the store has no perturbations", hint="run `seal perturb --method typos` first")
    if method is not None:
        if method not in perturbations:
            raise StoreError(f"no perturbation `{method}`", hint=f"perturbations: {', '.join(perturbations)}")
        perturbations = {method: perturbations[method]}
    models = list_models(store)
    if model is not None:
        if model not in models:
            raise StoreError(f"no scored reward model `{model}`", hint=f"models: {', '.join(models) or 'none'}")
        models = {model: models[model]}
    version = store.version()
    columns = store.columns()
    results = []
    for alias in models:
        sd = _reward_sd(store, alias)
        for name, pinfo in perturbations.items():
            results.append(
                _one(
                    store,
                    columns,
                    alias,
                    name,
                    pinfo,
                    sd,
                    include_dissimilar=include_dissimilar,
                    feature_set=feature_set,
                    estimator=estimator,
                    min_flips=min_flips,
                    correction=correction,
                    confidence=confidence,
                    semantic_floor=semantic_floor,
                    population=population,
                    ties=ties,
                )
            )
    return RobustnessResult(
        store=str(store.path),
        pairs_version=version,
        options={
            "model": model,
            "method": method,
            "include_dissimilar": include_dissimilar,
            "feature_set": feature_set,
            "estimator": estimator,
            "min_flips": min_flips,
            "correction": correction,
            "confidence": confidence,
            "semantic_floor": semantic_floor,
            "population": population,
            "ties": ties,
        },
        results=results,
        seconds=round(time.perf_counter() - t0, 3),
    )


def _empty(alias: str, name: str, pinfo: Mapping[str, Any], status: str, note: str) -> MethodResult:
    params = pinfo["recipe"].get("params", {})
    return MethodResult(
        alias,
        name,
        params.get("method"),
        params.get("target"),
        params.get("sides"),
        params.get("min_similarity"),
        status,
        note,
        {},
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        [],
    )


def _one(
    store: Store,
    columns: Sequence[str],
    alias: str,
    name: str,
    pinfo: Mapping[str, Any],
    sd: float | None,
    *,
    include_dissimilar: bool,
    feature_set: str | None,
    estimator: str,
    min_flips: int,
    correction: str,
    confidence: float,
    semantic_floor: float,
    population: str = DEFAULT_POPULATION,
    ties: str = DEFAULT_TIE_RULE,
) -> MethodResult:
    vcol, scol = vscore_column(name, alias), score_column(alias)
    info = list_models(store)[alias]
    if vcol not in columns:
        why = "imported scores cannot be re-scored" if info["origin"] != "scored" else "rerun `seal perturb`"
        return _empty(alias, name, pinfo, "not_scored", f"the variants have no scores from this RM ({why})")
    status, reason = vscore_status(store, name, alias, info)
    if status != "up-to-date":
        return _empty(alias, name, pinfo, "stale", f"variant scores are stale ({reason}); rerun `seal perturb`")
    params = pinfo["recipe"].get("params", {})
    wanted = ["pair_id", "flags", scol, variants_column(name), vcol]
    tab = store.read(wanted)
    rows = tab.filter(pc.is_valid(tab.column(variants_column(name)))).to_pylist()

    cov = dict.fromkeys(
        [
            "pairs_with_variants",
            "included",
            "identical",
            "unscored",
            "failed",
            "dissimilar",
            "variant_unscored",
            "texts",
        ],
        0,
    )
    before_c, before_r, after_c, after_r, included_ids = [], [], [], [], []
    perturbed_sides: dict[str, set[str]] = {}
    t_orig, t_var, t_sim, t_ids = [], [], [], []
    for row in rows:
        variants = row[variants_column(name)]
        if variants is None:
            continue
        cov["pairs_with_variants"] += 1
        score = row[scol] or {}
        c0, r0 = score.get("chosen"), score.get("rejected")
        if c0 is None or r0 is None or not (math.isfinite(c0) and math.isfinite(r0)):
            cov["unscored"] += 1
            continue
        vscore = row[vcol] or {}
        after = {"chosen": c0, "rejected": r0}
        usable = True
        sides = set()
        for v in variants:
            side = v["side"]
            sides.add(side)
            if v["status"] == FAILED:
                cov["failed"] += 1
                usable = False
                continue
            if v["below_min_similarity"] and not include_dissimilar:
                cov["dissimilar"] += 1
                usable = False
                continue
            s = vscore.get(side)
            if s is None or not math.isfinite(s):
                cov["variant_unscored"] += 1
                usable = False
                continue
            after[side] = s
            t_orig.append(score[side])
            t_var.append(s)
            t_sim.append(v["similarity"] if v["similarity"] is not None else 1.0)
            t_ids.append((row["pair_id"], side))
        identical = bool((row["flags"] or {}).get("identical_responses"))
        if identical:
            cov["identical"] += 1
            continue
        if not usable:
            continue
        cov["included"] += 1
        before_c.append(c0)
        before_r.append(r0)
        after_c.append(after["chosen"])
        after_r.append(after["rejected"])
        included_ids.append(row["pair_id"])
        perturbed_sides[row["pair_id"]] = sides
    cov["texts"] = len(t_orig)
    if cov["pairs_with_variants"] == 0 or (cov["included"] == 0 and not t_orig):
        out = _empty(alias, name, pinfo, "no_pairs", "no usable variants")
        out.coverage = cov
        return out

    bc, br, ac, ar = (np.asarray(x, dtype=np.float64) for x in (before_c, before_r, after_c, after_r))
    before = _agreement(bc, br, confidence, ties)
    after = _agreement(ac, ar, confidence, ties)
    decided = (bc != br) & (ac != ar) if ties == "exclude" else np.ones(bc.size, bool)
    agree_b, agree_a = bc > br, ac > ar
    b = int(np.count_nonzero(decided & agree_b & ~agree_a))
    c = int(np.count_nonzero(decided & ~agree_b & agree_a))
    flips = {
        "pairs": int(np.count_nonzero(decided)),
        "stayed_aligned": int(np.count_nonzero(decided & agree_b & agree_a)),
        "became_misaligned": b,
        "became_aligned": c,
        "stayed_misaligned": int(np.count_nonzero(decided & ~agree_b & ~agree_a)),
        "became_misaligned_share": proportion(b, int(np.count_nonzero(decided & agree_b)), confidence).to_json(),
        "became_aligned_share": proportion(c, int(np.count_nonzero(decided & ~agree_b)), confidence).to_json(),
        "mcnemar": mcnemar_exact(b, c).to_json(),
    }

    to, tv, ts = (np.asarray(x, dtype=np.float64) for x in (t_orig, t_var, t_sim))
    delta = tv - to
    reward: dict[str, Any] = {"texts": int(to.size), "reward_sd": sd}
    reward["pearson"] = _pearson(to, tv)
    reward["spearman"] = _spearman(to, tv)
    reward["change"] = describe(delta).to_json()
    if sd:
        reward["change_sd"] = describe(delta / sd).to_json()
        reward["mean_abs_change_sd"] = float(np.mean(np.abs(delta)) / sd) if delta.size else None
    else:
        reward["change_sd"] = None
        reward["mean_abs_change_sd"] = None
    reward["changed_sign_share"] = float(np.mean(np.sign(to) != np.sign(tv))) if to.size else None

    theta, left_out = angle_population(bc, br, ac, ar)  # identical pairs never reach here (not included)
    shift = {
        "angle_degrees": describe(theta).to_json(),
        "abs_angle_degrees": describe(np.abs(theta)).to_json(),
        "excluded_zero_vectors": left_out["zero_vectors"],
    }

    semantic = 1.0 - np.clip(ts, -1.0, 1.0)
    semantic_change = {
        "mean": float(semantic.mean()) if semantic.size else None,
        "similarity_mean": float(ts.mean()) if ts.size else None,
        "similarity": describe(ts).to_json(),
        "floor": semantic_floor,
    }
    sensitivity = None
    if reward["mean_abs_change_sd"] is not None and semantic.size:
        sensitivity = reward["mean_abs_change_sd"] / max(float(semantic.mean()), semantic_floor)

    at_risk = decided & agree_b if population == "aligned-before" else decided
    scores = robustness_scores(
        store,
        columns,
        name,
        included_ids,
        at_risk,
        agree_b & ~agree_a,
        perturbed_sides,
        feature_set=feature_set,
        estimator=estimator,
        min_flips=min_flips,
        correction=correction,
        confidence=confidence,
        population=population,
        ties=ties,
    )
    return MethodResult(
        model=alias,
        method=name,
        method_spec=params.get("method"),
        target=params.get("target"),
        sides=params.get("sides"),
        min_similarity=params.get("min_similarity"),
        status="ok",
        note=None,
        coverage=cov,
        before=before,
        after=after,
        flips=flips,
        reward=reward,
        shift=shift,
        semantic_change=semantic_change,
        sensitivity=sensitivity,
        robustness_score=scores,
    )


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 3 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 3:
        return None
    from scipy.stats import spearmanr

    value = spearmanr(x, y).statistic
    return None if value is None or not math.isfinite(value) else float(value)


__all__ = [
    "CORRECTIONS",
    "DEFAULT_CORRECTION",
    "DEFAULT_POPULATION",
    "DEFINITIONS",
    "MIN_FLIPS",
    "POPULATIONS",
    "SEMANTIC_FLOOR",
    "Coefficient",
    "MethodResult",
    "RobustnessResult",
    "RobustnessScore",
    "StateAgreement",
    "robustness",
]
