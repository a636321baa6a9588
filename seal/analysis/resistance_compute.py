"""The resistance analysis on in-memory columns (numpy over whole columns, no per-pair loop): agreement,
regimes with McNemar, quadrants, the shift angle, margins and `--by` groups. Definitions in
seal.analysis.resistance."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.analysis.angles import angle_population
from seal.analysis.resistance_results import (
    DEFAULT_TIE_RULE,
    MAX_GROUPS,
    QUADRANTS,
    REGIMES,
    Agreement,
    Coverage,
    Group,
    ModelRef,
    Quadrants,
    Regimes,
    ResistanceResult,
    Shift,
    check_tie_rule,
    definitions,
)
from seal.analysis.stats import DEFAULT_CONFIDENCE, describe, mcnemar_exact, proportion, sign_test
from seal.errors import SealError


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
