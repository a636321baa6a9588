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
from dataclasses import replace

import numpy as np
import pyarrow as pa

from seal.analysis.angles import shift_angles
from seal.analysis.resistance_compute import resistance_from_arrays
from seal.analysis.resistance_render import render_text
from seal.analysis.resistance_results import (
    DEFAULT_TIE_RULE,
    DEFINITIONS,
    TIE_RULES,
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
from seal.analysis.stats import DEFAULT_CONFIDENCE
from seal.catalog.models import list_models
from seal.errors import SealError, StoreError
from seal.schema import IDENTICAL_FLAG, has_identical_flag
from seal.store import Store


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
    version = store.version()
    schema = store.schema()
    columns = [f"{model_ref.column}.chosen", f"{model_ref.column}.rejected"]
    if control_ref is not None:
        columns += [f"{control_ref.column}.chosen", f"{control_ref.column}.rejected"]
    has_identical = has_identical_flag(schema)
    if has_identical:
        columns.append(IDENTICAL_FLAG)
    if by is not None:
        _check_by(schema, by)
        if by not in columns:
            columns.append(by)
    data = store.read(columns, version=version)

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
        pairs_version=version,
        confidence=confidence,
        ties=ties,
    )
    return replace(result, seconds=round(time.perf_counter() - t0, 4))


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
