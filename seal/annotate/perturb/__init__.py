"""Perturbations: rewrite responses (rule ops or an LLM), measure how far each variant moved in meaning, and
re-score the variants with every scored reward model. Column contract: `seal.annotate.perturb.columns`."""

from seal.annotate.perturb.columns import (
    VARIANT,
    VARIANTS_TYPE,
    VSCORE_TYPE,
    variants_column,
    vfeatures_column,
    vscore_column,
)
from seal.annotate.perturb.core import (
    PerturbConfig,
    PerturbResult,
    RescoreResult,
    VariantText,
    label_variants,
    list_perturbations,
    perturb,
    plan_perturb,
    rescore_variants,
    sample_ids,
    variant_texts,
    write_variant_labels,
)
from seal.annotate.perturb.rules import OPS, RuleChain

__all__ = [
    "OPS",
    "VARIANT",
    "VARIANTS_TYPE",
    "VSCORE_TYPE",
    "PerturbConfig",
    "PerturbResult",
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
