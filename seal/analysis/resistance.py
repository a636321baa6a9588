"""Alignment resistance: how often a reward model (RM) matches the human preference, and how that changed
from a control RM (e.g. the RM before alignment training) — METHOD.md, "Reward vectors and shift" and
"Alignment resistance".

Denominators, stated once (they are also in every JSON result under ``definitions``):

- *scored* pairs have finite chosen and rejected scores from every RM in the analysis (the model and, when
  given, the control). Other pairs are excluded and counted in ``coverage``.
- *identical* pairs carry ``flags.identical_responses`` (chosen text == rejected text).
- a *tie* is a pair that is not identical and whose two scores are exactly equal.
- *agree* means chosen score > rejected score (strict). One **tie rule** (``ties``) governs every block
  of the report — agreement, regimes, McNemar, ``--by`` groups and the labeler cross-tab
  (seal.analysis.regimes) alike:

  - ``exclude`` (default): ties and identical pairs are their own categories, never disagreement.
    disagree = chosen < rejected, decided = agree + disagree = scored − ties − identical,
    **agreement = agree / decided**; regimes and McNemar are over the pairs decided by both RMs (pairs
    identical or tied under either RM are excluded and counted).
  - ``disagree``: the paper's strict counting, δ = 1[chosen > rejected] over every scored pair; ties and
    identical pairs count as disagreement (they are still counted and reported), decided = scored.

  Ties and identical pairs are always reported as shares of the scored pairs, and
  ``agree_share_of_scored`` = agree / scored is the paper's mean of δ under either rule.
- *regimes* (control agrees, model agrees): stayed aligned (1, 1), got aligned (0, 1), resists (0, 0),
  reversed (1, 0). The exact McNemar test compares the two RMs on the same pairs: b = reversed,
  c = got aligned.
- the *shift angle* θ from u = (control chosen, control rejected) to v = (model chosen, model rejected) is
  the signed angle in degrees, counter-clockwise positive in the (chosen, rejected) plane, in (−180°, 180°]
  (seal.analysis.angles; the SEAL paper's ``compute_angle``, mean θ +6.48° published). Pairs with
  identical responses carry no preference and pairs where u or v is the zero vector no direction: both
  are left out and counted. Pairs tied under one RM with different responses stay in.

Everything is computed with numpy over whole columns (no per-pair Python loop), reading only the score
columns, ``flags.identical_responses`` and the ``--by`` column.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.analysis.angles import ANGLE_DEFINITION, angle_population, shift_angles
from seal.analysis.stats import (
    DEFAULT_CONFIDENCE,
    Distribution,
    McNemarResult,
    Proportion,
    SignTestResult,
    describe,
    mcnemar_exact,
    proportion,
    sign_test,
)
from seal.annotate.models import list_models
from seal.errors import SealError, StoreError
from seal.render import table
from seal.store import Store

IDENTICAL_FLAG = "flags.identical_responses"
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


# -- computation --------------------------------------------------------------------------------
@dataclass
class _Side:
    """Per-pair category indicators of one RM (over all rows; only meaningful where scored)."""

    alias: str
    chosen: np.ndarray
    rejected: np.ndarray
    agree: np.ndarray
    disagree: np.ndarray
    tie: np.ndarray


def _side(
    alias: str,
    chosen: np.ndarray,
    rejected: np.ndarray,
    identical: np.ndarray,
    scored: np.ndarray,
    ties: str = DEFAULT_TIE_RULE,
) -> _Side:
    live = scored & ~identical
    tie = live & (chosen == rejected)
    if ties == "disagree":  # the paper's strict delta over every scored pair
        agree = scored & (chosen > rejected)
        return _Side(alias, chosen, rejected, agree=agree, disagree=scored & ~agree, tie=tie)
    return _Side(
        alias, chosen, rejected, agree=live & (chosen > rejected), disagree=live & (chosen < rejected), tie=tie
    )


def _counts(mask: np.ndarray, codes: np.ndarray | None, n_groups: int) -> np.ndarray:
    """Count of `mask` overall (codes None) or per group code."""
    if codes is None:
        return np.array([int(np.count_nonzero(mask))])
    return np.bincount(codes[mask], minlength=n_groups)


def _agreements(
    side: _Side, identical: np.ndarray, scored: np.ndarray, codes, n_groups, conf, rule: str = DEFAULT_TIE_RULE
) -> list[Agreement]:
    agree = _counts(side.agree, codes, n_groups)
    disagree = _counts(side.disagree, codes, n_groups)
    ties = _counts(side.tie, codes, n_groups)
    ident = _counts(identical & scored, codes, n_groups)
    n_scored = _counts(scored, codes, n_groups)
    out = []
    for a, d, t, i, s in zip(
        agree.tolist(), disagree.tolist(), ties.tolist(), ident.tolist(), n_scored.tolist(), strict=True
    ):
        out.append(
            Agreement(
                alias=side.alias,
                scored=s,
                agree=a,
                disagree=d,
                ties=t,
                identical=i,
                decided=a + d,
                agreement=proportion(a, a + d, conf),
                tie_share=proportion(t, s, conf),
                identical_share=proportion(i, s, conf),
                agree_share_of_scored=proportion(a, s, conf),
                tie_rule=rule,
            )
        )
    return out


def _regimes(
    model: _Side, control: _Side, identical, scored, codes, n_groups, conf, ties: str = DEFAULT_TIE_RULE
) -> list[Regimes]:
    m_dec = model.agree | model.disagree
    c_dec = control.agree | control.disagree
    both = m_dec & c_dec
    counts = {
        name: _counts(
            both & (control.agree if c else control.disagree) & (model.agree if m else model.disagree), codes, n_groups
        )
        for name, c, m in REGIMES
    }
    special = {
        "identical": _counts(identical & scored, codes, n_groups),
        "tie_model_only": _counts(model.tie & ~control.tie, codes, n_groups),
        "tie_control_only": _counts(control.tie & ~model.tie, codes, n_groups),
        "tie_both": _counts(model.tie & control.tie, codes, n_groups),
    }
    out = []
    for g in range(len(counts["resists"])):
        per = {name: int(counts[name][g]) for name, _, _ in REGIMES}
        n = sum(per.values())
        counts_g = {k: int(v[g]) for k, v in special.items()}
        zeros = dict.fromkeys(counts_g, 0)
        out.append(
            Regimes(
                n=n,
                **{name: proportion(k, n, conf) for name, k in per.items()},
                excluded=zeros if ties == "disagree" else counts_g,
                mcnemar=mcnemar_exact(per["reversed"], per["got_aligned"]),
                tie_rule=ties,
                counted_as_disagreement=counts_g if ties == "disagree" else zeros,
            )
        )
    return out


def _quadrants(side: _Side, scored: np.ndarray, conf: float) -> Quadrants:
    c, r = side.chosen[scored], side.rejected[scored]
    n = int(c.size)
    shares = {
        name: proportion(int(np.count_nonzero((np.sign(c) == sc) & (np.sign(r) == sr))), n, conf)
        for name, sc, sr in QUADRANTS
    }
    on_axis = proportion(int(np.count_nonzero((c == 0) | (r == 0))), n, conf)
    return Quadrants(alias=side.alias, n=n, **shares, on_axis=on_axis)


def _shift(control: _Side, model: _Side, identical: np.ndarray, scored: np.ndarray, conf: float) -> Shift:
    theta, excluded = angle_population(
        control.chosen[scored],
        control.rejected[scored],
        model.chosen[scored],
        model.rejected[scored],
        identical[scored],
    )
    defined = theta[~np.isnan(theta)]
    dist = describe(defined)
    test = sign_test(defined)
    return Shift(
        control=control.alias,
        model=model.alias,
        n=int(defined.size),
        zero_vectors=excluded["zero_vectors"],
        mean=dist.mean,
        median=dist.quantiles.get("p50"),
        sd=dist.sd,
        distribution=dist,
        positive=proportion(test.n_positive, test.n_positive + test.n_negative, conf),
        sign_test=test,
        excluded={"identical": excluded["identical"], "zero_vectors": excluded["zero_vectors"]},
    )


def resistance_from_arrays(
    model: ModelRef,
    model_scores: tuple[Any, Any],
    *,
    control: ModelRef | None = None,
    control_scores: tuple[Any, Any] | None = None,
    identical: Any = None,
    by: str | None = None,
    by_values: pa.Array | pa.ChunkedArray | None = None,
    pairs_version: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    ties: str = DEFAULT_TIE_RULE,
) -> ResistanceResult:
    """The analysis on in-memory columns: (chosen, rejected) score arrays with NaN for missing scores, the
    identical-responses flags (None = none identical) and the --by values (an Arrow array); `ties` is the
    tie rule of every block (exclude | disagree, see the module docstring)."""
    check_tie_rule(ties)
    t0 = time.perf_counter()
    mc, mr = (np.asarray(a, dtype=np.float64) for a in model_scores)
    n = mc.size
    ident = np.zeros(n, bool) if identical is None else np.asarray(identical, dtype=bool)
    finite_m = np.isfinite(mc) & np.isfinite(mr)
    scored = finite_m.copy()
    unscored_by = {model.alias: int(n - np.count_nonzero(finite_m))}
    if control is not None:
        if control_scores is None:
            raise ValueError("control_scores are required with a control")
        cc, cr = (np.asarray(a, dtype=np.float64) for a in control_scores)
        finite_c = np.isfinite(cc) & np.isfinite(cr)
        scored &= finite_c
        unscored_by[control.alias] = int(n - np.count_nonzero(finite_c))
    n_scored = int(np.count_nonzero(scored))
    coverage = Coverage(n, n_scored, n - n_scored, unscored_by)

    m_side = _side(model.alias, mc, mr, ident, scored, ties)
    sides = [m_side]
    c_side = None
    if control is not None:
        c_side = _side(control.alias, cc, cr, ident, scored, ties)
        sides.append(c_side)

    agreement = {s.alias: _agreements(s, ident, scored, None, 1, confidence, ties)[0] for s in sides}
    regimes = _regimes(m_side, c_side, ident, scored, None, 1, confidence, ties)[0] if c_side is not None else None
    quadrants = {s.alias: _quadrants(s, scored, confidence) for s in sides}
    margins = {s.alias: describe(s.chosen[scored] - s.rejected[scored]) for s in sides}
    shift = _shift(c_side, m_side, ident, scored, confidence) if c_side is not None else None

    groups = None
    if by is not None:
        if by_values is None:
            raise ValueError("by_values are required with by")
        groups = _groups(by, by_values, sides, m_side, c_side, ident, scored, confidence, ties)

    return ResistanceResult(
        model=model,
        control=control,
        by=by,
        pairs_version=pairs_version,
        confidence=confidence,
        coverage=coverage,
        agreement=agreement,
        regimes=regimes,
        quadrants=quadrants,
        shift=shift,
        margins=margins,
        groups=groups,
        seconds=round(time.perf_counter() - t0, 4),
        ties=ties,
        definitions=definitions(ties),
    )


def _groups(by, values, sides, m_side, c_side, ident, scored, conf, ties) -> list[Group]:
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    encoded = pc.dictionary_encode(arr)
    dictionary = encoded.dictionary
    if len(dictionary) > MAX_GROUPS:
        raise SealError(
            f"`{by}` has {len(dictionary):,} distinct values; --by needs a grouping column (at most {MAX_GROUPS:,})"
        )
    null_code = len(dictionary)
    codes = encoded.indices.fill_null(null_code).to_numpy(zero_copy_only=False).astype(np.int64)
    n_groups = null_code + 1
    pairs = np.bincount(codes, minlength=n_groups)
    n_scored = _counts(scored, codes, n_groups)
    per_alias = {s.alias: _agreements(s, ident, scored, codes, n_groups, conf, ties) for s in sides}
    regimes = _regimes(m_side, c_side, ident, scored, codes, n_groups, conf, ties) if c_side is not None else None
    keys = [*dictionary.to_pylist(), None]
    order = [int(i) for i in pc.sort_indices(dictionary).to_pylist()] + [null_code]
    out = []
    for g in order:
        if pairs[g] == 0:
            continue
        out.append(
            Group(
                key=keys[g],
                pairs=int(pairs[g]),
                scored=int(n_scored[g]),
                agreement={alias: rows[g] for alias, rows in per_alias.items()},
                regimes=regimes[g] if regimes is not None else None,
            )
        )
    return out


# -- reading from the store ---------------------------------------------------------------------
def resolve_models(
    store: Store, model: str | None = None, control: str | None = None, use_control: bool = True
) -> tuple[ModelRef, ModelRef | None]:
    """The model (default: the RM with role aligned, else the only RM) and the control (default: the RM
    with role control, if any; none when `use_control` is False)."""
    models = list_models(store)
    if not models:
        raise StoreError(
            "the store holds no reward-model scores", hint="run `seal score` or `seal import-scores` first"
        )
    names = ", ".join(models)

    def ref(alias: str) -> ModelRef:
        info = models[alias]
        return ModelRef(alias, info["column"], info["role"], info["origin"])

    def with_role(role: str, exclude: str | None = None) -> list[str]:
        return [a for a, info in models.items() if info["role"] == role and a != exclude]

    if model is None:
        aligned = with_role("aligned")
        if len(aligned) > 1:
            raise SealError(
                f"several reward models have role aligned: {', '.join(aligned)}", hint="pick one with --model"
            )
        if aligned:
            model = aligned[0]
        elif len(models) == 1:
            model = next(iter(models))
        else:
            raise SealError(f"no reward model has role aligned (models: {names})", hint="pick one with --model")
    elif model not in models:
        raise StoreError(f"no scores for reward model `{model}` (models: {names})")
    if control is None and use_control:
        controls = with_role("control", exclude=model)
        if len(controls) > 1:
            raise SealError(
                f"several reward models have role control: {', '.join(controls)}", hint="pick one with --control"
            )
        control = controls[0] if controls else None
    elif control is not None:
        if control not in models:
            raise StoreError(f"no scores for reward model `{control}` (models: {names})")
        if control == model:
            raise SealError(f"--control `{control}` is the model itself", hint="compare two different RMs")
    return ref(model), (ref(control) if control else None)


def _check_by(schema: pa.Schema, by: str) -> None:
    parts = by.split(".")
    if parts[0] not in schema.names:
        raise StoreError(
            f"pairs have no column `{parts[0]}`",
            hint=f"--by takes a column of pairs: {', '.join(schema.names)} (nested fields with a dot)",
        )
    typ = schema.field(parts[0]).type
    for depth, part in enumerate(parts[1:], start=1):
        if not pa.types.is_struct(typ) or typ.get_field_index(part) < 0:
            parent = ".".join(parts[:depth])
            fields = [typ.field(i).name for i in range(typ.num_fields)] if pa.types.is_struct(typ) else []
            hint = f"fields of `{parent}`: {', '.join(fields)}" if fields else f"`{parent}` has no fields"
            raise StoreError(f"pairs have no column `{by}`", hint=hint)
        typ = typ.field(part).type
    if pa.types.is_struct(typ):
        fields = ", ".join(f"{by}.{typ.field(i).name}" for i in range(typ.num_fields))
        raise SealError(f"`{by}` is a struct", hint=f"group by one of its fields: {fields}")
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ) or pa.types.is_map(typ):
        raise SealError(f"`{by}` holds lists; --by needs one value per pair")


def resistance(
    store: Store,
    model: str | None = None,
    control: str | None = None,
    by: str | None = None,
    *,
    use_control: bool = True,
    confidence: float = DEFAULT_CONFIDENCE,
    ties: str = DEFAULT_TIE_RULE,
) -> ResistanceResult:
    """Agreement, regimes, reward-vector shift and margins of RM `model` (against `control`), overall and
    per value of column `by` of pairs, under tie rule `ties` (exclude | disagree); see the module
    docstring for every denominator."""
    check_tie_rule(ties)
    t0 = time.perf_counter()
    store.require()
    model_ref, control_ref = resolve_models(store, model, control, use_control)
    table = store.pairs()
    schema = table.schema
    columns = [f"{model_ref.column}.chosen", f"{model_ref.column}.rejected"]
    if control_ref is not None:
        columns += [f"{control_ref.column}.chosen", f"{control_ref.column}.rejected"]
    flags = schema.field("flags").type if "flags" in schema.names else None
    has_identical = (
        flags is not None and pa.types.is_struct(flags) and flags.get_field_index("identical_responses") >= 0
    )
    if has_identical:
        columns.append(IDENTICAL_FLAG)
    if by is not None:
        _check_by(schema, by)
        if by not in columns:
            columns.append(by)
    ds = table.to_lance()
    data = ds.to_table(columns=columns)

    def floats(name: str) -> np.ndarray:
        return data.column(name).to_numpy().astype(np.float64, copy=False)

    identical = data.column(IDENTICAL_FLAG).fill_null(False).to_numpy() if has_identical else None
    result = resistance_from_arrays(
        model_ref,
        (floats(columns[0]), floats(columns[1])),
        control=control_ref,
        control_scores=(floats(columns[2]), floats(columns[3])) if control_ref is not None else None,
        identical=identical,
        by=by,
        by_values=data.column(by) if by is not None else None,
        pairs_version=int(ds.version),
        confidence=confidence,
        ties=ties,
    )
    return replace(result, seconds=round(time.perf_counter() - t0, 4))


# -- text rendering -----------------------------------------------------------------------------
def _pct(p: Proportion) -> str:
    return p.percent()


def _ci(p: Proportion) -> str:
    return p.interval()


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pvalue(p: float) -> str:
    return f"{p:.3g}"


_RULE_TEXT = {
    "exclude": "ties and identical responses are their own categories, never disagreement",
    "disagree": "the paper's strict counting: ties and identical responses count as disagreement",
}


def render_text(result: ResistanceResult) -> str:
    r = result
    conf = f"{100 * r.confidence:g}%"
    lines = []
    head = f"resistance of `{r.model.alias}` (role {r.model.role}, {r.model.origin})"
    if r.control is not None:
        head += f" against control `{r.control.alias}` (role {r.control.role}, {r.control.origin})"
    lines.append(head + (f" — pairs version {r.pairs_version}" if r.pairs_version is not None else ""))
    cov = r.coverage
    missing = ", ".join(f"{alias} {n:,}" for alias, n in cov.unscored_by_model.items())
    line = f"pairs: {cov.pairs_total:,} total, {cov.pairs_scored:,} scored" + (
        " by both RMs" if r.control is not None else ""
    )
    if cov.pairs_unscored:
        line += f", {cov.pairs_unscored:,} excluded without scores (missing: {missing})"
    lines.append(line)

    lines.append("")
    lines.append(f"tie rule: {r.ties} — {_RULE_TEXT[r.ties]}")
    if r.ties == "disagree":
        lines.append(
            "agreement = chosen > rejected over every scored pair (decided = scored: ties and identical responses "
            "count as disagreement); ties and identical also as shares of scored pairs"
        )
    else:
        lines.append(
            "agreement = chosen > rejected over decided pairs (scored − ties − identical responses); "
            "ties and identical as shares of scored pairs"
        )
    rows = []
    for a in r.agreement.values():
        rows.append(
            {
                "model": a.alias,
                "scored": a.scored,
                "agree": a.agree,
                "disagree": a.disagree,
                "ties": a.ties,
                "identical": a.identical,
                "agreement": _pct(a.agreement),
                f"{conf} CI": _ci(a.agreement),
                "ties %": _pct(a.tie_share),
                "identical %": _pct(a.identical_share),
                "agree/scored": _pct(a.agree_share_of_scored),
            }
        )
    lines.append(table(rows))

    if r.regimes is not None:
        g = r.regimes
        lines.append("")
        if r.ties == "disagree":
            ex = g.counted_as_disagreement
            where, how = "scored pairs", "counted as disagreement"
        else:
            ex = g.excluded
            where, how = "pairs decided by both RMs", "excluded"
        control_name = r.control.alias if r.control else "control"
        lines.append(
            f"regimes over {g.n:,} {where}, tie rule {r.ties} ({how}: {ex['identical']:,} identical, "
            f"{ex['tie_model_only']:,} tied by {r.model.alias} only, {ex['tie_control_only']:,} by "
            f"{control_name} only, {ex['tie_both']:,} by both)"
        )
        rows = [
            {
                "regime": name.replace("_", " "),
                "control": c,
                "model": m,
                "count": p.count,
                "share": _pct(p),
                f"{conf} CI": _ci(p),
            }
            for name, c, m, p in g.items()
        ]
        lines.append(table(rows))
        mc = g.mcnemar
        lines.append(f"McNemar (exact): b = {mc.b:,} reversed, c = {mc.c:,} got aligned, p = {_pvalue(mc.pvalue)}")

    lines.append("")
    lines.append("reward vectors (r_chosen, r_rejected): share of scored pairs per quadrant")
    rows = [
        {
            "model": q.alias,
            "c>0,r>0": _pct(q.chosen_pos_rejected_pos),
            "c<0,r>0": _pct(q.chosen_neg_rejected_pos),
            "c>0,r<0": _pct(q.chosen_pos_rejected_neg),
            "c<0,r<0": _pct(q.chosen_neg_rejected_neg),
            "on an axis": _pct(q.on_axis),
        }
        for q in r.quadrants.values()
    ]
    lines.append(table(rows))
    if r.shift is not None:
        s = r.shift
        st = s.sign_test
        lines.append(
            f"shift angle θ from {s.control}'s reward vector to {s.model}'s in degrees (counter-clockwise "
            "positive in the (chosen, rejected) plane, as the SEAL paper):"
        )
        left_out = s.excluded or {"zero_vectors": s.zero_vectors}
        lines.append(
            f"  n {s.n:,}, mean {_num(s.mean, 2)}, median {_num(s.median, 2)}, sd {_num(s.sd, 2)}; "
            f"θ>0 {st.n_positive:,}, θ<0 {st.n_negative:,}, θ=0 {st.n_zero:,}, sign test p = {_pvalue(st.pvalue)}; "
            f"left out: {left_out.get('identical', 0):,} identical responses, "
            f"{left_out.get('zero_vectors', 0):,} zero vectors"
        )

    lines.append("")
    lines.append("margins (chosen − rejected) over scored pairs")
    rows = []
    for alias, d in r.margins.items():
        row: dict[str, Any] = {"model": alias, "n": d.n, "mean": _num(d.mean), "sd": _num(d.sd)}
        row.update({k: _num(v) for k, v in d.quantiles.items()})
        rows.append(row)
    lines.append(table(rows))

    if r.groups is not None:
        lines.append("")
        lines.append(f"by {r.by} (tie rule {r.ties}; decided and regimes as above, per group)")
        rows = []
        for grp in r.groups:
            row = {r.by: "(null)" if grp.key is None else str(grp.key), "pairs": grp.pairs, "scored": grp.scored}
            for alias, a in grp.agreement.items():
                row[f"{alias} decided"] = a.decided
                row[f"{alias} agreement"] = _pct(a.agreement)
                row[f"{alias} CI"] = _ci(a.agreement)
            if grp.regimes is not None:
                row["stayed"] = _pct(grp.regimes.stayed_aligned)
                row["resists"] = _pct(grp.regimes.resists)
                row["resists CI"] = _ci(grp.regimes.resists)
                row["got aligned"] = _pct(grp.regimes.got_aligned)
                row["reversed"] = _pct(grp.regimes.reversed)
                row["McNemar p"] = _pvalue(grp.regimes.mcnemar.pvalue)
            rows.append(row)
        lines.append(table(rows))
    return "\n".join(lines)


__all__ = [
    "DEFAULT_TIE_RULE",
    "DEFINITIONS",
    "TIE_RULES",
    "Agreement",
    "Coverage",
    "Group",
    "ModelRef",
    "Quadrants",
    "Regimes",
    "ResistanceResult",
    "Shift",
    "check_tie_rule",
    "definitions",
    "render_text",
    "resistance",
    "resistance_from_arrays",
    "resolve_models",
    "shift_angles",
]
