"""The result objects of `seal robustness` (seal.analysis.robustness): agreement before and after, the
robustness-score regression (π) with its coefficients, one result per (RM, perturbation) and the whole report
with its JSON (schemas/cli/robustness.schema.json), frame and text (seal.analysis.robustness_render)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from seal.analysis.angles import ANGLE_DEFINITION
from seal.analysis.resistance_results import DEFAULT_TIE_RULE
from seal.analysis.robustness_render import render_text
from seal.analysis.stats import Proportion
from seal.render import to_jsonable

CORRECTIONS = ("bonferroni", "holm", "bh", "none")
DEFAULT_CORRECTION = "bonferroni"
SEMANTIC_FLOOR = 0.01
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
        """The text report (seal.analysis.robustness_render)."""
        return render_text(self)
