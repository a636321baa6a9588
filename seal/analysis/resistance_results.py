"""The result objects of `seal resistance` (seal.analysis.resistance), the tie rules and the definitions of
every denominator that each JSON result carries (schemas/cli/resistance.schema.json)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from seal.analysis.angles import ANGLE_DEFINITION
from seal.analysis.resistance_render import render_text
from seal.analysis.stats import Distribution, McNemarResult, Proportion, SignTestResult
from seal.errors import SealError

MAX_GROUPS = 1000
REGIMES = (
    # name, control agrees, model agrees
    ("stayed_aligned", 1, 1),
    ("got_aligned", 0, 1),
    ("resists", 0, 0),
    ("reversed", 1, 0),
)
QUADRANTS = (
    # name, sign of chosen score, sign of rejected score
    ("chosen_pos_rejected_pos", 1, 1),
    ("chosen_neg_rejected_pos", -1, 1),
    ("chosen_pos_rejected_neg", 1, -1),
    ("chosen_neg_rejected_neg", -1, -1),
)

TIE_RULES = ("exclude", "disagree")
DEFAULT_TIE_RULE = "exclude"

_COMMON_DEFINITIONS = {
    "scored": "pairs with finite chosen and rejected scores from every RM in the analysis (model and control); "
    "the others are excluded and counted under coverage",
    "identical": "pairs flagged flags.identical_responses (chosen text == rejected text)",
    "tie": "pairs that are not identical and whose chosen and rejected scores are exactly equal",
    "tie_share": "ties / scored",
    "identical_share": "identical / scored",
    "agree_share_of_scored": "agree / scored: the paper's mean of delta (ties and identical count as not agreeing)",
    "mcnemar": "exact McNemar test on the regime pairs: b = reversed (control agrees, model not), "
    "c = got_aligned (model agrees, control not), p = two-sided binomial test of b against b + c at 1/2",
    "quadrants": "signs of (chosen score, rejected score) over the scored pairs; on_axis: a score exactly 0",
    "shift": f"{ANGLE_DEFINITION}; u = (control chosen, control rejected), v = (model chosen, model rejected); "
    "pairs with identical responses and pairs where u or v is the zero vector are left out (counted under "
    "excluded); pairs tied under one RM with different responses stay in",
    "margins": "chosen score - rejected score over the scored pairs; sd with ddof 1; quantiles interpolate linearly",
    "ci": "Wilson score intervals at the stated confidence",
}
_RULE_DEFINITIONS = {
    "exclude": {
        "ties": "exclude: ties and identical pairs are their own categories in every block, never disagreement",
        "agreement": "agree / decided, agree = chosen score > rejected score (strict), disagree = chosen < rejected, "
        "decided = agree + disagree = scored - ties - identical",
        "regimes": "(control agrees, model agrees) over the pairs decided by both RMs: stayed_aligned (1,1), "
        "got_aligned (0,1), resists (0,0), reversed (1,0); pairs identical or tied under either RM are excluded "
        "and counted",
    },
    "disagree": {
        "ties": "disagree: the paper's strict counting, delta = 1[chosen > rejected] over every scored pair; ties "
        "and identical pairs count as disagreement in every block (still counted and reported)",
        "agreement": "agree / decided, agree = chosen score > rejected score (strict), disagree = every other scored "
        "pair (ties and identical included), decided = scored",
        "regimes": "(control agrees, model agrees) over every scored pair, agreement strict: stayed_aligned (1,1), "
        "got_aligned (0,1), resists (0,0), reversed (1,0); ties and identical pairs counted as disagreement "
        "(their counts under counted_as_disagreement)",
    },
}


def definitions(ties: str = DEFAULT_TIE_RULE) -> dict[str, str]:
    """The denominators of a resistance result under tie rule `ties` (exclude | disagree)."""
    check_tie_rule(ties)
    return {**_COMMON_DEFINITIONS, **_RULE_DEFINITIONS[ties]}


def check_tie_rule(ties: str) -> None:
    """Raise a SealError unless `ties` is one of TIE_RULES."""
    if ties not in TIE_RULES:
        raise SealError(f"unknown tie rule `{ties}`", hint=f"use one of: {', '.join(TIE_RULES)}")


DEFINITIONS = definitions(DEFAULT_TIE_RULE)


# -- result objects -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRef:
    alias: str
    column: str
    role: str
    origin: str


@dataclass(frozen=True)
class Coverage:
    pairs_total: int
    pairs_scored: int
    pairs_unscored: int
    unscored_by_model: dict[str, int]


@dataclass(frozen=True)
class Agreement:
    """One RM's agreement with the human preference over a set of scored pairs."""

    alias: str
    scored: int
    agree: int
    disagree: int
    ties: int
    identical: int
    decided: int
    agreement: Proportion  # agree / decided
    tie_share: Proportion  # ties / scored
    identical_share: Proportion  # identical / scored
    agree_share_of_scored: Proportion  # agree / scored
    tie_rule: str = DEFAULT_TIE_RULE  # exclude: decided = scored - ties - identical; disagree: decided = scored


@dataclass(frozen=True)
class Regimes:
    """The four (control, model) agreement regimes over the pairs both RMs decide, and McNemar."""

    n: int
    stayed_aligned: Proportion
    got_aligned: Proportion
    resists: Proportion
    reversed: Proportion
    excluded: dict[str, int]
    mcnemar: McNemarResult
    tie_rule: str = DEFAULT_TIE_RULE
    # under tie rule disagree: the pairs counted as disagreement (identical, tied by one or both RMs)
    counted_as_disagreement: dict[str, int] = field(default_factory=dict)

    def items(self) -> list[tuple[str, int, int, Proportion]]:
        return [(name, c, m, getattr(self, name)) for name, c, m in REGIMES]


@dataclass(frozen=True)
class Quadrants:
    """Where one RM's reward vectors (r_chosen, r_rejected) lie, as shares of the scored pairs."""

    alias: str
    n: int
    chosen_pos_rejected_pos: Proportion
    chosen_neg_rejected_pos: Proportion
    chosen_pos_rejected_neg: Proportion
    chosen_neg_rejected_neg: Proportion
    on_axis: Proportion


@dataclass(frozen=True)
class Shift:
    """The signed angle θ (degrees) from the control's reward vector to the model's, pair by pair
    (counter-clockwise positive in the (chosen, rejected) plane, as the SEAL paper's code)."""

    control: str
    model: str
    n: int
    zero_vectors: int  # scored pairs (not identical) where u or v is the zero vector
    mean: float | None
    median: float | None
    sd: float | None
    distribution: Distribution
    positive: Proportion  # θ > 0 among the non-zero angles
    sign_test: SignTestResult
    excluded: dict[str, int] = field(default_factory=dict)  # identical, zero_vectors: left out of θ


@dataclass(frozen=True)
class Group:
    """Agreement (and regimes) of the pairs sharing one value of the --by column."""

    key: Any
    pairs: int
    scored: int
    agreement: dict[str, Agreement]
    regimes: Regimes | None


@dataclass(frozen=True)
class ResistanceResult:
    """Everything `seal resistance` reports; `to_json()` follows schemas/cli/resistance.schema.json."""

    model: ModelRef
    control: ModelRef | None
    by: str | None
    pairs_version: int | None
    confidence: float
    coverage: Coverage
    agreement: dict[str, Agreement]
    regimes: Regimes | None
    quadrants: dict[str, Quadrants]
    shift: Shift | None
    margins: dict[str, Distribution]
    groups: list[Group] | None
    seconds: float = 0.0
    ties: str = DEFAULT_TIE_RULE
    definitions: dict[str, str] = field(default_factory=lambda: dict(DEFINITIONS))

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        order = ("model", "control", "by", "pairs_version", "confidence", "ties", "coverage", "agreement", "regimes")
        out = {key: raw[key] for key in order}
        out["reward_vectors"] = {"quadrants": raw["quadrants"], "shift": raw["shift"]}
        out.update(margins=raw["margins"], groups=raw["groups"], seconds=raw["seconds"])
        out["definitions"] = raw["definitions"]
        return out

    def to_frame(self) -> Any:
        """One row for all scored pairs and one per group: N, agreement with CI per RM, regime shares."""
        import pandas as pd

        rows = [
            self._frame_row(
                "(all)", self.coverage.pairs_total, self.coverage.pairs_scored, self.agreement, self.regimes
            )
        ]
        for g in self.groups or []:
            rows.append(self._frame_row(g.key, g.pairs, g.scored, g.agreement, g.regimes))
        return pd.DataFrame(rows)

    @staticmethod
    def _frame_row(key: Any, pairs: int, scored: int, agreement: dict[str, Agreement], regimes: Regimes | None):
        row: dict[str, Any] = {"group": key, "pairs": pairs, "scored": scored}
        for alias, a in agreement.items():
            row[f"{alias}_decided"] = a.decided
            row[f"{alias}_agreement"] = a.agreement.share
            row[f"{alias}_ci_low"] = a.agreement.ci_low
            row[f"{alias}_ci_high"] = a.agreement.ci_high
            row[f"{alias}_ties"] = a.ties
            row[f"{alias}_identical"] = a.identical
        if regimes is not None:
            row["regime_n"] = regimes.n
            for name, _, _, p in regimes.items():
                row[name] = p.share
            row["mcnemar_p"] = regimes.mcnemar.pvalue
        return row

    def to_text(self) -> str:
        return render_text(self)
