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
  HC3 standard errors (logit: the usual MLE ones); p-values adjusted over the dummies (Holm by default).
  The population (``population``) is ``all`` (default, the paper's estimand as its tables read: every
  included pair decided before and after under the tie rule; a pair not aligned before has outcome 0) or
  ``aligned-before`` (only those that agreed before: the conditional risk of a flip).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from seal.analysis.angles import ANGLE_DEFINITION, angle_population
from seal.analysis.resistance import DEFAULT_TIE_RULE, check_tie_rule
from seal.analysis.stats import (
    DEFAULT_CONFIDENCE,
    Proportion,
    adjust_pvalues,
    describe,
    mcnemar_exact,
    proportion,
)
from seal.annotate.models import list_models, score_column
from seal.annotate.perturb.columns import (
    FAILED,
    SIDES,
    VFEATURES_PREFIX,
    variants_column,
    vscore_column,
)
from seal.errors import SealError, StoreError
from seal.render import table, to_jsonable
from seal.store import Store

CORRECTIONS = ("holm", "bonferroni", "bh", "none")
SEMANTIC_FLOOR = 0.01
TEXT_TERMS = 12  # robustness-score terms shown in the text rendering (all are in the JSON)
MIN_FLIPS = 5  # a flip dummy needs this many pairs to enter the robustness-score regression
POPULATIONS = ("all", "aligned-before")
DEFAULT_POPULATION = "all"

DEFINITIONS = {
    "usable_variant": "rewritten (not failed), scored by this RM and, unless include_dissimilar, with similarity "
    ">= the perturbation's min_similarity",
    "included_pairs": "finite original scores, not identical_responses, every perturbed side has a usable variant",
    "after": "each perturbed side's score replaced by its variant's score; an unperturbed side keeps its own",
    "ties": "the tie rule of `seal resistance`: exclude (default) = exact ties are their own category, never "
    "disagreement; disagree = the paper's strict counting, a tie counts as disagreement",
    "agreement": "agree / decided over the included pairs, agree = chosen > rejected (strict); decided = agree + "
    "disagree (tie rule exclude) or every included pair (disagree); Wilson intervals",
    "flips": "over pairs decided before and after (every included pair under tie rule disagree): "
    "became_misaligned b (agree -> disagree), became_aligned c (disagree -> agree); exact McNemar on (b, c)",
    "reward_change": "delta = r(variant) - r(original) per usable variant text; normalised by the RM's reward SD "
    "over every original text of every scored pair in the store",
    "shift": f"{ANGLE_DEFINITION}; u = (chosen, rejected) before, v = after; zero vectors excluded (counted)",
    "sensitivity": "mean |delta| / SD divided by max(mean(1 - similarity), semantic_floor): reward change per unit "
    "of semantic change; ranked per RM, highest first",
    "robustness_score": "OLS linear probability (or logit) of became_misaligned (agreed before, does not agree "
    "after) over the population: all (default; every included pair decided before and after under the tie rule, "
    "a pair not aligned before has outcome 0, the paper's estimand) or aligned-before (only pairs that agreed "
    "before), on dummies of per-side feature flips delta = enc(original) - enc(variant) "
    "(one per non-zero level; numbers by sign), intercept; a dummy is left out (and listed) when fewer than "
    "min_flips pairs have it, when fewer than min_flips pairs lack it or lack any flip of that feature and side, "
    "or when it is collinear with earlier ones; HC3 SEs for OLS (HC1 where HC3 is undefined); p adjusted over "
    "the dummies",
}


# -- results ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StateAgreement:
    agree: int
    disagree: int
    ties: int
    decided: int
    agreement: Proportion

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["agreement"] = self.agreement.to_json()
        return out


@dataclass(frozen=True)
class Coefficient:
    term: str
    feature: str | None
    side: str | None
    level: float | None
    rows: int  # rows where the dummy is 1
    coef: float
    se: float
    stat: float
    pvalue: float
    p_adjusted: float | None
    ci_low: float
    ci_high: float


@dataclass
class RobustnessScore:
    available: bool
    reason: str | None = None
    feature_set: str | None = None
    estimator: str | None = None  # lpm | logit
    cov_type: str | None = None
    correction: str | None = None
    population: str = DEFAULT_POPULATION  # all | aligned-before
    tie_rule: str = DEFAULT_TIE_RULE
    formula: str | None = None
    n: int = 0
    outcome_rate: float | None = None
    r2: float | None = None  # R² (lpm) or McFadden's pseudo-R² (logit)
    dropped_rows: int = 0  # missing labels
    no_flips: list[str] = field(default_factory=list)  # (feature, side) with no flip at all: no dummy
    constant_terms: list[str] = field(default_factory=list)  # flips every pair has: left out (= intercept)
    rare_terms: list[str] = field(default_factory=list)  # flips fewer than min_flips pairs have: left out
    aliased_terms: list[str] = field(default_factory=list)  # dummies collinear with kept ones: left out
    min_flips: int = 0
    coefficients: list[Coefficient] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["coefficients"] = [to_jsonable(asdict(c)) for c in self.coefficients]
        return to_jsonable(out)


@dataclass
class MethodResult:
    """One (RM, perturbation) combination."""

    model: str
    method: str
    method_spec: str | None
    target: str | None
    sides: str | None
    min_similarity: float | None
    status: str  # ok | stale | no_pairs
    note: str | None
    coverage: dict[str, int]
    before: StateAgreement | None
    after: StateAgreement | None
    flips: dict[str, Any] | None
    reward: dict[str, Any] | None
    shift: dict[str, Any] | None
    semantic_change: dict[str, Any] | None
    sensitivity: float | None
    robustness_score: list[RobustnessScore]

    def to_json(self) -> dict[str, Any]:
        out = {
            "model": self.model,
            "method": self.method,
            "method_spec": self.method_spec,
            "target": self.target,
            "sides": self.sides,
            "min_similarity": self.min_similarity,
            "status": self.status,
            "note": self.note,
            "coverage": self.coverage,
            "agreement": None
            if self.before is None or self.after is None
            else {"before": self.before.to_json(), "after": self.after.to_json(), "change": _change(self)},
            "flips": self.flips,
            "reward": self.reward,
            "shift": self.shift,
            "semantic_change": self.semantic_change,
            "sensitivity": self.sensitivity,
            "robustness_score": [r.to_json() for r in self.robustness_score],
        }
        return to_jsonable(out)


def _change(r: MethodResult) -> float | None:
    a, b = r.before.agreement.share if r.before else None, r.after.agreement.share if r.after else None
    return None if a is None or b is None else b - a


@dataclass
class RobustnessResult:
    """`seal robustness` output: per (RM, perturbation) tables and a sensitivity ranking per RM."""

    store: str
    pairs_version: int
    options: dict[str, Any]
    results: list[MethodResult]
    seconds: float

    def sensitivity_table(self) -> list[dict[str, Any]]:
        rows = []
        for model in sorted({r.model for r in self.results}):
            mine = [r for r in self.results if r.model == model and r.status == "ok"]
            ranked = sorted(mine, key=lambda r: -math.inf if r.sensitivity is None else -r.sensitivity)
            for rank, r in enumerate(ranked, start=1):
                rows.append(
                    {
                        "model": model,
                        "method": r.method,
                        "method_spec": r.method_spec,
                        "rank": rank if r.sensitivity is not None else None,
                        "texts": (r.reward or {}).get("texts", 0),
                        "mean_abs_change_sd": (r.reward or {}).get("mean_abs_change_sd"),
                        "mean_semantic_change": (r.semantic_change or {}).get("mean"),
                        "sensitivity": r.sensitivity,
                    }
                )
        return rows

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "store": self.store,
                "pairs_version": self.pairs_version,
                "options": self.options,
                "definitions": DEFINITIONS,
                "results": [r.to_json() for r in self.results],
                "sensitivity": self.sensitivity_table(),
                "seconds": self.seconds,
            }
        )

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.summary_rows())

    def summary_rows(self) -> list[dict[str, Any]]:
        rows = []
        for r in self.results:
            b, a = r.before, r.after
            rows.append(
                {
                    "model": r.model,
                    "method": r.method,
                    "status": r.status,
                    "pairs": r.coverage.get("included", 0),
                    "agree_before": b.agreement.share if b else None,
                    "agree_after": a.agreement.share if a else None,
                    "became_misaligned": (r.flips or {}).get("became_misaligned"),
                    "became_aligned": (r.flips or {}).get("became_aligned"),
                    "mcnemar_p": ((r.flips or {}).get("mcnemar") or {}).get("pvalue"),
                    "reward_r": (r.reward or {}).get("pearson"),
                    "mean_abs_change_sd": (r.reward or {}).get("mean_abs_change_sd"),
                    "theta_mean": ((r.shift or {}).get("angle_degrees") or {}).get("mean"),
                    "similarity_mean": (r.semantic_change or {}).get("similarity_mean"),
                    "sensitivity": r.sensitivity,
                }
            )
        return rows

    def to_text(self) -> str:
        lines = [f"robustness (pairs version {self.pairs_version})", ""]
        agreement_rows = []
        for r in self.results:
            b, a = r.before, r.after
            agreement_rows.append(
                {
                    "model": r.model,
                    "method": r.method,
                    "pairs": r.coverage.get("included", 0),
                    "agree before": _pct(b.agreement) if b else r.status,
                    "95% CI before": b.agreement.interval() if b else "",
                    "agree after": _pct(a.agreement) if a else "",
                    "95% CI after": a.agreement.interval() if a else "",
                    "excluded": r.coverage.get("pairs_with_variants", 0) - r.coverage.get("included", 0),
                }
            )
        tie_rule = self.options.get("ties", DEFAULT_TIE_RULE)
        lines += [f"agreement before / after (tie rule {tie_rule})", table(agreement_rows), ""]
        flip_rows = []
        for r in self.results:
            if r.flips is None:
                continue
            flip_rows.append(
                {
                    "model": r.model,
                    "method": r.method,
                    "decided": r.flips["pairs"],
                    "became misaligned": r.flips["became_misaligned"],
                    "became aligned": r.flips["became_aligned"],
                    "McNemar p": r.flips["mcnemar"]["pvalue"],
                    "reward r": (r.reward or {}).get("pearson"),
                    "mean |Δ|/SD": (r.reward or {}).get("mean_abs_change_sd"),
                    "θ mean°": ((r.shift or {}).get("angle_degrees") or {}).get("mean"),
                }
            )
        lines += ["flips (exact McNemar), reward correlation, change and shift", table(flip_rows), ""]
        lines += ["sensitivity: reward change (in SDs) per unit of semantic change (1 - similarity)"]
        lines += [
            table(
                self.sensitivity_table(),
                ["model", "rank", "method", "texts", "mean_abs_change_sd", "mean_semantic_change", "sensitivity"],
            ),
            "",
        ]
        for r in self.results:
            for score in r.robustness_score:
                head = f"robustness score: {r.model} × {r.method}"
                if not score.available:
                    lines.append(f"{head}: not computed ({score.reason})")
                    continue
                lines.append(
                    f"{head} × features_{score.feature_set}: {score.estimator}, {score.cov_type} SEs, "
                    f"{score.correction} correction, population {score.population} (tie rule {score.tie_rule}), "
                    f"N={score.n}, outcome rate {score.outcome_rate:.3f}, R²={_fmt(score.r2)}"
                )
                if score.formula:
                    lines.append(f"  {score.formula}")
                shown = sorted(score.coefficients[1:], key=lambda c: c.pvalue if c.pvalue == c.pvalue else 2.0)
                rows = [score.coefficients[0], *shown[:TEXT_TERMS]]
                cells = [
                    {"term": c.term, "rows": c.rows, "coef": c.coef, "se": c.se, "p": c.pvalue, "p adj": c.p_adjusted}
                    for c in rows
                ]
                lines.append(table(cells))
                if len(shown) > TEXT_TERMS:
                    lines.append(f"({len(shown) - TEXT_TERMS} more terms with larger p in --json)")
                left_out = [
                    ("no flips", score.no_flips),
                    (f"fewer than {score.min_flips} pairs without it (~ intercept)", score.constant_terms),
                    (f"in fewer than {score.min_flips} pairs", score.rare_terms),
                    ("collinear with a kept term", score.aliased_terms),
                ]
                for what, terms in left_out:
                    if terms:
                        lines.append(f"(left out, {what}: {', '.join(terms)})")
                lines.append("")
        notes = [f"{r.model} × {r.method}: {r.note}" for r in self.results if r.note]
        if notes:
            lines += ["notes", *notes]
        return "\n".join(lines).rstrip()


def _pct(p: Proportion) -> str:
    return p.percent()


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


# -- reading ------------------------------------------------------------------------------------------
def _latest(store: Store, stage: str, name: str) -> dict[str, Any] | None:
    runs = [r for r in store.runs(stage) if r["name"] == name and r["status"] == "done"]
    return runs[-1] if runs else None


def _agreement(c: np.ndarray, r: np.ndarray, confidence: float, ties_rule: str = DEFAULT_TIE_RULE) -> StateAgreement:
    agree = int(np.count_nonzero(c > r))
    ties = int(np.count_nonzero(c == r))
    disagree = int(np.count_nonzero(c < r)) + (ties if ties_rule == "disagree" else 0)
    return StateAgreement(agree, disagree, ties, agree + disagree, proportion(agree, agree + disagree, confidence))


def _reward_sd(store: Store, alias: str) -> float | None:
    import pyarrow.compute as pc

    col = score_column(alias)
    scores = store.pairs().to_lance().to_table(columns=[col]).column(col).combine_chunks()
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
    correction: str = "holm",
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
    from seal.annotate.perturb.core import list_perturbations

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
    columns = store.columns()
    table_ = store.pairs()
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
        pairs_version=int(table_.version),
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
    from seal.annotate.perturb.core import vscore_status

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
    import pyarrow.compute as pc

    tab = store.pairs().to_lance().to_table(columns=wanted)
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
    scores = _robustness_scores(
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


# -- the robustness score (π) -------------------------------------------------------------------------
def _feature_specs(store: Store, name: str, set_name: str) -> list[dict[str, Any]] | None:
    """Feature definitions (name, type, values) of a set, from the run that labelled the variants."""
    run = _latest(store, "vlabel", f"{name}__{set_name}")
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


def _robustness_scores(
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
    from seal.annotate.perturb.core import variants_key

    current = variants_key(_latest(store, "perturb", name) or {"fingerprint": "", "provenance": {}, "run_id": ""})
    out = []
    for set_name in sets:
        run = _latest(store, "vlabel", f"{name}__{set_name}")
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
    import pyarrow as pa
    import pyarrow.compute as pc

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
    tab = (
        store.pairs()
        .to_lance()
        .to_table(
            columns=["pair_id", fcol, vcol],
            filter=pc.field("pair_id").isin(pa.array(risk_ids, pa.string())),
        )
        .to_pylist()
    )
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
