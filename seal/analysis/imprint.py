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

The fits are seal.analysis.regression's (numpy, equal to statsmodels' formula API on the same data): ``cluster``
is CR1, ``hc3`` HC3, ``nonrobust`` the classical σ²(X'X)⁻¹; the design comes from seal.analysis.design.
Constant and exactly collinear regressors are dropped and named; a VIF report, N, R², the condition number
and the formula come with every fit. Intervals are at level `confidence` (0.95; the JSON reports
``alpha`` = 1 − confidence); p-values are adjusted over the feature terms (Bonferroni by default).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from seal.analysis.angles import shift_angles
from seal.analysis.design import (
    CATEGORICAL,
    DEFAULT_MIN_COUNT,
    PairData,
    Regressor,
    encode_feature,
    load_pair_data,
    resolve_features,
)
from seal.analysis.imprint_regressions import (
    Regression,
    misalignment,
    misalignment_regression,
    text_regression,
    theta_regression,
)
from seal.analysis.imprint_render import plot_imprint, render_text
from seal.analysis.regression import (
    CORRECTIONS,
    COV_TYPES,
    Fit,
    adjust,
    logit_fit,
    ols_batch,
    ols_fit,
    prune_design,
    vif,
)
from seal.analysis.stats import DEFAULT_CONFIDENCE
from seal.catalog.features import stored_feature_sets
from seal.catalog.models import list_models, model_with_role
from seal.errors import SealError
from seal.render import to_jsonable
from seal.store import Store

LEVELS = ("text", "pair")
TIES = ("misaligned", "aligned", "drop")
# `bh` (the name `seal robustness` and the shared --correction option use) is imprint's `fdr_bh`.
CORRECTION_ALIASES = {"bh": "fdr_bh"}


def shift_angle(control: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Signed angle in degrees from u = control (c, r) to v = model (c, r), counter-clockwise positive in the
    (chosen, rejected) plane (see seal.analysis.angles); NaN where a vector is zero or missing."""
    return shift_angles(control[:, 0], control[:, 1], model[:, 0], model[:, 1])


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
        """The text report (seal.analysis.imprint_render)."""
        return render_text(self)

    def plot(self, path: str) -> str:
        """A coefficient plot (β with its CI per term; targets, spoilers and others coloured) as PNG."""
        return plot_imprint(self, path)


def interval_alpha(confidence: float = DEFAULT_CONFIDENCE, alpha: float | None = None) -> float:
    """1 − confidence (rounded to 12 places, so 0.95 gives exactly 0.05), or `alpha` when given."""
    value = round(1.0 - confidence, 12) if alpha is None else alpha
    if not 0 < value < 1:
        what = f"alpha {alpha!r}" if alpha is not None else f"confidence {confidence!r}"
        raise SealError(f"{what} must lie strictly between 0 and 1")
    return value


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
    confidence: float = DEFAULT_CONFIDENCE,
    alpha: float | None = None,
) -> ImprintResult:
    """The feature imprint of reward model `model` (default: the one with role aligned).

    text level: r_model(text) [− r_minus(text)] on the text's features (`fe="pair"`: within pairs);
    pair level: misalignment of `model` (and, with `control`, the shift angle θ from control to model) on
    the chosen- and rejected-side features. See the module docstring for the exact definitions.
    Intervals are at level `confidence`; `alpha` (deprecated) sets 1 − confidence instead."""
    t0 = time.perf_counter()
    correction = CORRECTION_ALIASES.get(correction, correction)
    _check_options(level, fe, cov, correction, categorical, ties)
    alpha = interval_alpha(confidence, alpha)
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
        regressions = [text_regression(data, model, minus, fe, **common)]
    else:
        regressions = [misalignment_regression(data, model, ties, logit, **common)]
        if control:
            regressions.append(theta_regression(data, model, control, **common))
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


__all__ = [
    "CATEGORICAL",
    "CORRECTIONS",
    "COV_TYPES",
    "DEFAULT_MIN_COUNT",
    "LEVELS",
    "TIES",
    "Fit",
    "ImprintResult",
    "PairData",
    "Regression",
    "Regressor",
    "adjust",
    "encode_feature",
    "imprint",
    "load_pair_data",
    "logit_fit",
    "misalignment",
    "ols_batch",
    "ols_fit",
    "plot_imprint",
    "prune_design",
    "resolve_features",
    "shift_angle",
    "vif",
]
