"""The `perturb` stage: one spec `perturbations` entry -> ``variants_<name>`` plus ``vscore_<name>__<alias>``
for every scored RM (schemas/experiment.schema.json $defs/perturbation)."""

from __future__ import annotations

from typing import Any

from seal.annotate.perturb.core import (
    STALE,
    PerturbConfig,
    Rewriter,
    build_rewriter,
    perturb,
    perturb_recipe,
    plan_perturb,
)
from seal.annotate.perturb.similarity import encoder_for, encoder_recipe, store_embedding_spec
from seal.pipeline import Plan, register_stage
from seal.recipe import Recipe
from seal.spec import Spec
from seal.store import Store


class PerturbStage:
    """Make (or resume) one perturbation's variants, then have every scored RM re-score them."""

    def __init__(self, config: PerturbConfig):
        self.config = config
        self.rewriter: Rewriter = build_rewriter(config)
        # The embedding model is the store's (resolved when planning); the recipe here assumes the default.
        encoder = encoder_for(store_embedding_spec(None, config.similarity_model))
        self.recipe: Recipe = perturb_recipe(config, self.rewriter, encoder_recipe(encoder))

    def plan(self, store: Store) -> Plan:
        planned = plan_perturb(store, self.config, self.rewriter)
        changed: tuple[str, ...] = ()
        if planned.status == STALE and ":" in planned.reason:
            changed = tuple(k.strip() for k in planned.reason.split(":", 1)[1].split(","))
        estimate = {"rescore": planned.rescore_todo} if planned.rescore_todo else {}
        return Plan(
            "perturb",
            planned.name,
            planned.fingerprint,
            planned.status,
            planned.reason,
            planned.pairs_todo,
            planned.column,
            estimate,
            changed,
        )

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> dict[str, Any]:
        result = perturb(store, self.config, show_progress=show_progress, rewriter=self.rewriter)
        out = result.to_json()
        counts = result.variants
        rescored = ", ".join(f"{r.alias} ({r.status})" for r in result.rescored) or "no scored RM"
        out["summary"] = (
            f"{result.column}: {counts['total']} variants of {result.pairs_sampled} pairs "
            f"({counts['failed']} failed, {counts['below_min_similarity']} below min similarity); "
            f"re-scored by {rescored}"
        )
        return out


@register_stage("perturb", section="perturbations")
def build_perturb(entry: dict[str, Any], spec: Spec) -> PerturbStage:
    return PerturbStage(PerturbConfig.from_entry(entry))
