"""Perturbations: rewrite responses (rule ops or an LLM), measure how far each variant moved in meaning, and
re-score the variants with every scored reward model. Column contract: `seal.catalog.perturbations`."""

from seal.annotate.perturb.core import PerturbConfig, PerturbPlan, PerturbResult, plan_perturb, sample_ids
from seal.annotate.perturb.labels import VariantText, label_variants, variant_texts, write_variant_labels
from seal.annotate.perturb.rescore import RescoreResult, rescore_variants
from seal.annotate.perturb.rules import OPS, RuleChain
from seal.annotate.perturb.stage import PerturbStage, perturb
from seal.catalog.perturbations import (
    VARIANT,
    VARIANTS_TYPE,
    VSCORE_TYPE,
    list_perturbations,
    variants_column,
    vfeatures_column,
    vscore_column,
)

__all__ = [
    "OPS",
    "VARIANT",
    "VARIANTS_TYPE",
    "VSCORE_TYPE",
    "PerturbConfig",
    "PerturbPlan",
    "PerturbResult",
    "PerturbStage",
    "RescoreResult",
    "RuleChain",
    "VariantText",
    "label_variants",
    "list_perturbations",
    "perturb",
    "plan_perturb",
    "rescore_variants",
    "sample_ids",
    "variant_texts",
    "variants_column",
    "vfeatures_column",
    "vscore_column",
    "write_variant_labels",
]
