"""The labeler's preference γ and its cross-tab with the alignment regimes of a model and a control RM.

γ (METHOD.md, "Alignment resistance"): the target features of each side, taken in the order given (the
first is the most important), are compared lexicographically — for (harmless, helpful) that is
(1,1) ≻ (1,0) ≻ (0,1) ≻ (0,0). γ = ``c`` when the labeler's order prefers the human-chosen side,
``i`` (indifferent) when both sides are equal, ``r`` when it prefers the rejected side. Features with
sign −1 (harm flags) count reversed; numeric and categorical features compare by their encoding.
Pairs with a missing label get no γ (``unlabelled``).

Agreement of an RM: δ = 1 when r(chosen) > r(rejected) strictly. With a model (post) and a control (pre)
RM every pair falls in a regime, named by (δ_control, δ_model): stayed aligned (1,1), got aligned (0,1),
resists (0,0), reversed (1,0). Ties follow the one rule of `seal resistance` (``ties``):

- ``exclude`` (default): pairs with identical responses or tied scores under any RM of the table are left
  out of every row and counted (``excluded``), so the ``all`` row equals the regimes of `seal resistance`;
- ``disagree``: the paper's strict counting — every scored pair enters and a tie or an identical pair
  counts as δ = 0.

`gamma_regime_table` gives counts, shares with Wilson intervals (within each γ, and within each regime),
the agreement of each RM per γ, and an exact McNemar test of model vs control agreement within each γ
(discordant pairs: reversed vs got aligned). Without a control: the model's agreement per γ only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from seal.analysis.design import encode_feature, resolve_features
from seal.analysis.resistance_results import DEFAULT_TIE_RULE, check_tie_rule
from seal.analysis.stats import mcnemar_exact, proportion
from seal.catalog.features import stored_feature_sets
from seal.catalog.models import list_models, model_with_role, score_column
from seal.errors import SealError
from seal.schema import IDENTICAL_FLAG, has_identical_flag
from seal.store import Store

GAMMAS = ("c", "i", "r")
GAMMA_NAMES = {"c": "labeler prefers chosen", "i": "labeler indifferent", "r": "labeler prefers rejected"}
REGIMES = ("stayed_aligned", "got_aligned", "resists", "reversed")
REGIME_CODES = {"stayed_aligned": (1, 1), "got_aligned": (0, 1), "resists": (0, 0), "reversed": (1, 0)}
DEFAULT_GAMMA_FEATURES = ("harmless", "helpful")


# -- arrays ------------------------------------------------------------------------------------------------
def labeler_preference(chosen: np.ndarray, rejected: np.ndarray, signs: Sequence[int] | None = None) -> np.ndarray:
    """γ per pair as +1 (c), 0 (i), −1 (r), NaN (a label missing), from (n, m) arrays of the m features'
    numeric values on each side, compared lexicographically (column 0 first)."""
    chosen = np.atleast_2d(np.asarray(chosen, dtype=np.float64))
    rejected = np.atleast_2d(np.asarray(rejected, dtype=np.float64))
    if chosen.shape != rejected.shape:
        raise ValueError("chosen and rejected must have the same shape")
    sign = np.ones(chosen.shape[1]) if signs is None else np.asarray(signs, dtype=np.float64)
    diff = np.sign((chosen - rejected) * sign)
    missing = ~np.isfinite(diff).all(axis=1)
    diff = np.nan_to_num(diff)
    first = np.argmax(diff != 0, axis=1)
    gamma = diff[np.arange(len(diff)), first]
    return np.where(missing, np.nan, gamma)


def agreement(scores: np.ndarray) -> np.ndarray:
    """δ per pair: 1.0 when r(chosen) > r(rejected) strictly, 0.0 otherwise, NaN when a score is missing."""
    c, r = scores[:, 0], scores[:, 1]
    out = (c > r).astype(np.float64)
    out[~(np.isfinite(c) & np.isfinite(r))] = np.nan
    return out


def gamma_letters(gamma: np.ndarray) -> np.ndarray:
    """+1/0/−1/NaN -> 'c'/'i'/'r'/'' ."""
    out = np.full(len(gamma), "", dtype=object)
    out[gamma == 1] = "c"
    out[gamma == 0] = "i"
    out[gamma == -1] = "r"
    return out


@dataclass
class GammaRegimeResult:
    """The γ × regime cross-tab (see the module docstring). `rows` has one entry per γ plus ``all``."""

    model: str
    control: str | None
    features: list[str]
    n_pairs: int  # pairs with γ and every needed score
    n_unlabelled: int  # pairs without γ (a label missing)
    n_unscored: int  # pairs without a needed score
    ties_model: int
    ties_control: int | None
    gamma: dict[str, dict[str, Any]]  # c/i/r: count, share, ci
    rows: list[dict[str, Any]]
    regimes: dict[str, dict[str, Any]] = field(default_factory=dict)  # per regime: n, γ shares, sides with human
    confidence: float = 0.95
    tie_rule: str = DEFAULT_TIE_RULE
    # pairs (labelled and scored) left out under tie rule exclude, or counted as δ = 0 under disagree
    excluded: dict[str, int] = field(default_factory=dict)
    counted_as_disagreement: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_frame(self) -> Any:
        import pandas as pd

        records = []
        for row in self.rows:
            for regime, cell in row.get("regimes", {}).items():
                records.append({"gamma": row["gamma"], "regime": regime, **cell})
        return pd.DataFrame(records)

    def render(self) -> str:
        from seal.render import table

        pct = lambda p: "–" if p["share"] is None else f"{100 * p['share']:.1f}%"  # noqa: E731
        ci = lambda p: "–" if p["ci_low"] is None else f"[{100 * p['ci_low']:.1f}, {100 * p['ci_high']:.1f}]"  # noqa: E731
        special = self.counted_as_disagreement if self.tie_rule == "disagree" else self.excluded
        how = "counted as disagreement" if self.tie_rule == "disagree" else "left out"
        lines = [
            f"labeler preference γ from {', '.join(self.features)} (lexicographic, first most important); "
            f"{self.n_pairs:,} pairs, {self.n_unlabelled:,} unlabelled, {self.n_unscored:,} without scores",
            f"tie rule {self.tie_rule} ({how}: {special.get('identical', 0):,} identical responses, "
            f"{special.get('tied', 0):,} tied by an RM of the table)",
        ]
        rows = []
        for row in self.rows:
            out = {"γ": row["gamma"], "pairs": row["n"], "share": pct(row["share"]) if row["share"] else ""}
            for regime in REGIMES if self.control else ():
                cell = row["regimes"][regime]
                out[regime.replace("_", " ")] = f"{cell['count']:,} {pct(cell)} {ci(cell)}"
            out[f"agree {self.model}"] = f"{pct(row['agreement_model'])} {ci(row['agreement_model'])}"
            if self.control:
                out[f"agree {self.control}"] = f"{pct(row['agreement_control'])} {ci(row['agreement_control'])}"
                out["McNemar p"] = row["mcnemar"]["pvalue"]
            rows.append(out)
        lines.append(table(rows, width=40))
        if self.control:
            lines.append(
                "regimes (control, model): stayed aligned (1,1), got aligned (0,1), resists (0,0), reversed (1,0); "
                "cells: count, share of the γ row, Wilson 95% CI; McNemar: exact, reversed vs got aligned"
            )
            sides = [
                f"{regime.replace('_', ' ')} {pct(v['labeler_sides_with_human'])}"
                for regime, v in self.regimes.items()
                if v["labeler_sides_with_human"]["n"]
            ]
            if sides:
                lines.append("where the labeler has a view, it sides with the human: " + ", ".join(sides))
        return "\n".join(lines)


def _prop(count: int, n: int, confidence: float) -> dict[str, Any]:
    p = proportion(count, n, confidence)
    return {"count": p.count, "n": p.n, "share": p.share, "ci_low": p.ci_low, "ci_high": p.ci_high}


def gamma_regime_from_arrays(
    gamma: np.ndarray,
    model_scores: np.ndarray,
    control_scores: np.ndarray | None = None,
    *,
    model: str = "model",
    control: str | None = None,
    features: Sequence[str] = DEFAULT_GAMMA_FEATURES,
    confidence: float = 0.95,
    identical: np.ndarray | None = None,
    ties: str = DEFAULT_TIE_RULE,
) -> GammaRegimeResult:
    """The cross-tab from arrays: γ (+1/0/−1/NaN per pair), (n, 2) score arrays [chosen, rejected], the
    identical-responses flags (None: none) and the tie rule (exclude | disagree, module docstring)."""
    check_tie_rule(ties)
    gamma = np.asarray(gamma, dtype=np.float64)
    model_scores = np.asarray(model_scores, dtype=np.float64)
    control_scores = None if control_scores is None else np.asarray(control_scores, dtype=np.float64)
    d_model = agreement(model_scores)
    d_control = agreement(control_scores) if control_scores is not None else None
    scored = np.isfinite(d_model) & (np.isfinite(d_control) if d_control is not None else True)
    labelled = np.isfinite(gamma)
    ident = np.zeros(len(gamma), bool) if identical is None else np.asarray(identical, dtype=bool)
    tied_model = (model_scores[:, 0] == model_scores[:, 1]) & ~ident
    tied_control = (
        (control_scores[:, 0] == control_scores[:, 1]) & ~ident if control_scores is not None else np.zeros_like(ident)
    )
    candidates = scored & labelled
    special = {
        "identical": int(np.sum(candidates & ident)),
        "tied": int(np.sum(candidates & (tied_model | tied_control))),
    }
    use = candidates & ~ident & ~tied_model & ~tied_control if ties == "exclude" else candidates
    ties_model = int(np.sum(tied_model & candidates))
    ties_control = None if control_scores is None else int(np.sum(tied_control & candidates))
    letters = gamma_letters(gamma)
    n = int(use.sum())
    gamma_counts = {g: _prop(int(np.sum(use & (letters == g))), n, confidence) for g in GAMMAS}
    regime_masks = {}
    if d_control is not None:
        for regime, (dc, dm) in REGIME_CODES.items():
            regime_masks[regime] = use & (d_control == dc) & (d_model == dm)
    rows = []
    for g in (*GAMMAS, "all"):
        in_row = use & (letters == g) if g != "all" else use
        size = int(in_row.sum())
        row: dict[str, Any] = {
            "gamma": g,
            "meaning": GAMMA_NAMES.get(g, "all pairs"),
            "n": size,
            "share": gamma_counts[g] if g != "all" else None,
            "agreement_model": _prop(int(np.sum(in_row & (d_model == 1))), size, confidence),
        }
        if d_control is not None:
            row["agreement_control"] = _prop(int(np.sum(in_row & (d_control == 1))), size, confidence)
            row["regimes"] = {
                regime: {
                    **_prop(int(np.sum(in_row & mask)), size, confidence),
                    "share_of_regime": _prop(int(np.sum(in_row & mask)), int(mask.sum()), confidence)["share"],
                }
                for regime, mask in regime_masks.items()
            }
            b = int(np.sum(in_row & regime_masks["reversed"]))
            c = int(np.sum(in_row & regime_masks["got_aligned"]))
            row["mcnemar"] = mcnemar_exact(b, c).to_json()
        rows.append(row)
    regimes = {}
    for regime, mask in regime_masks.items():
        with_view = int(np.sum(mask & ((letters == "c") | (letters == "r"))))
        regimes[regime] = {
            "n": int(mask.sum()),
            "share": _prop(int(mask.sum()), n, confidence),
            "labeler_sides_with_human": _prop(int(np.sum(mask & (letters == "c"))), with_view, confidence),
        }
    return GammaRegimeResult(
        model=model,
        control=control,
        features=list(features),
        n_pairs=n,
        n_unlabelled=int(np.sum(scored & ~labelled)),
        n_unscored=int(np.sum(~scored)),
        ties_model=ties_model,
        ties_control=ties_control,
        gamma=gamma_counts,
        rows=rows,
        regimes=regimes,
        confidence=confidence,
        tie_rule=ties,
        excluded=special if ties == "exclude" else dict.fromkeys(special, 0),
        counted_as_disagreement=special if ties == "disagree" else dict.fromkeys(special, 0),
    )


# -- from the store ----------------------------------------------------------------------------------------
def _gamma_features(store: Store, features: str | Sequence[str]) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """The stored feature sets and the (set, feature) pairs `features` names, in order of importance."""
    sets = stored_feature_sets(store)
    selected = resolve_features(sets, list(features) if not isinstance(features, str) else features)
    for s, f in selected:
        if f.type == "list":
            raise SealError(f"γ needs ordered features; `{s}.{f.name}` is a list")
    return sets, selected


def _feature_columns(sets: dict[str, Any], selected: list[tuple[str, Any]]) -> list[str]:
    return [sets[s].column for s in dict.fromkeys(s for s, _ in selected)]


def _gamma(data: Any, sets: dict[str, Any], selected: list[tuple[str, Any]]) -> np.ndarray:
    """γ per pair (+1/0/−1/NaN) from the label columns of `data`."""
    chosen, rejected = [], []
    for s, f in selected:
        struct = data.column(sets[s].column).combine_chunks()
        _, c, r = encode_feature(struct, f, "ordinal")
        chosen.append(c[:, 0])
        rejected.append(r[:, 0])
    return labeler_preference(np.column_stack(chosen), np.column_stack(rejected), [f.sign for _, f in selected])


def gamma_from_store(
    store: Store, features: str | Sequence[str] = DEFAULT_GAMMA_FEATURES
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(pair ids, γ per pair as +1/0/−1/NaN, qualified feature names) from the stored labels.

    `features`: names as `seal imprint --features` takes them (``harmless,helpful`` finds
    ``last_response_is_harmless`` and ``last_response_is_helpful``), in order of importance."""
    sets, selected = _gamma_features(store, features)
    data = store.read(["pair_id", *_feature_columns(sets, selected)])
    ids = np.asarray(data.column("pair_id").to_pylist(), dtype=object)
    return ids, _gamma(data, sets, selected), [f"{s}.{f.name}" for s, f in selected]


def _score_matrix(data: Any, alias: str) -> np.ndarray:
    """(n, 2) [chosen, rejected] scores of RM `alias` from `data` (NaN where missing)."""
    import pyarrow.compute as pc

    struct = data.column(score_column(alias)).combine_chunks()
    return np.column_stack(
        [
            np.asarray(pc.struct_field(struct, side).to_numpy(zero_copy_only=False), dtype=np.float64)
            for side in ("chosen", "rejected")
        ]
    )


def gamma_regime_table(
    store: Store,
    model: str | None = None,
    control: str | None = None,
    features: str | Sequence[str] = DEFAULT_GAMMA_FEATURES,
    confidence: float = 0.95,
    ties: str = DEFAULT_TIE_RULE,
) -> GammaRegimeResult:
    """The γ × regime cross-tab of the stored labels and scores under tie rule `ties`. `model` defaults to
    the RM with role aligned and `control` to the one with role control (None: agreement per γ only).
    Labels, scores and the identical-responses flag come from one read of the same rows."""
    check_tie_rule(ties)
    store.require()
    models = list_models(store)
    model = model or model_with_role(store, "aligned")
    if model is None:
        raise SealError("no reward model given and none has role aligned", hint="pass --model ALIAS")
    for alias in (model, control):
        if alias is not None and alias not in models:
            raise SealError(f"no scores for `{alias}`", hint=f"scored models: {', '.join(models) or 'none'}")
    sets, selected = _gamma_features(store, features)
    version = store.version()
    has_identical = has_identical_flag(store.schema())
    columns = [*_feature_columns(sets, selected), score_column(model)]
    if control:
        columns.append(score_column(control))
    if has_identical:
        columns.append(IDENTICAL_FLAG)
    data = store.read(list(dict.fromkeys(columns)), version=version)
    identical = data.column(IDENTICAL_FLAG).fill_null(False).to_numpy(zero_copy_only=False) if has_identical else None
    return gamma_regime_from_arrays(
        _gamma(data, sets, selected),
        _score_matrix(data, model),
        _score_matrix(data, control) if control else None,
        model=model,
        control=control,
        features=[f"{s}.{f.name}" for s, f in selected],
        confidence=confidence,
        identical=identical,
        ties=ties,
    )
