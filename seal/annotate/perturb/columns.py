"""Column contract of the `perturb` stage (shared by the stage, the robustness analysis and labelers).

For a perturbation named ``M`` (``[A-Za-z0-9]+(_[A-Za-z0-9]+)*``; the default is the op names joined by ``_``):

- ``variants_M``: list<VARIANT>, one entry per perturbed side of a sampled pair (at most one per side), null for
  pairs outside the sample. VARIANT = struct{side, target, method, params, seed, status, text, context,
  similarity, below_min_similarity, changed, attempts, error}: ``text`` is the variant's final response,
  ``context`` the rewritten conversation before it (``target`` = conversation; null when only the response
  was rewritten, so the shared context stays the original one).
- ``vscore_M__<alias>``: struct{chosen: float64, rejected: float64}, one column per (perturbation, RM): the
  RM's score of the variant of each side, null for a side without a usable variant (its original score in
  ``score_<alias>`` applies). A separate top-level column per RM, because LanceDB cannot widen a struct: an
  RM scored later adds its own column without touching the variants or the other RMs' columns, and each
  column carries its own recipe (variants fingerprint + the RM's score fingerprint) in `runs`.
- ``vfeatures_M__<set>``: the type of ``features_<set>`` (struct{feature: struct{chosen, rejected}}), the
  labels of the variant texts for feature set ``<set>``, written by `write_variant_labels`.

Runs: stage ``perturb`` (name M), ``vscore`` (name ``M__alias``), ``vlabel`` (name ``M__set``).
"""

from __future__ import annotations

import re

import pyarrow as pa

from seal.errors import SealError
from seal.schema import MESSAGE

VARIANTS_PREFIX = "variants_"
VSCORE_PREFIX = "vscore_"
VFEATURES_PREFIX = "vfeatures_"
SEPARATOR = "__"
SIDES = ("chosen", "rejected")
TARGETS = ("response", "conversation")
SIDE_CHOICES = ("both", "chosen", "rejected")
OK, UNCHANGED, FAILED = "ok", "unchanged", "failed"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*$")

VARIANT = pa.struct(
    [
        ("side", pa.string()),
        ("target", pa.string()),
        ("method", pa.string()),
        ("params", pa.string()),  # canonical JSON of what the rewriter was told
        ("seed", pa.int64()),
        ("status", pa.string()),  # ok | unchanged | failed
        ("text", pa.string()),
        ("context", pa.list_(MESSAGE)),
        ("similarity", pa.float64()),
        ("below_min_similarity", pa.bool_()),
        ("changed", pa.bool_()),
        ("attempts", pa.int32()),
        ("error", pa.string()),
    ]
)
VARIANTS_TYPE = pa.list_(VARIANT)
VSCORE_TYPE = pa.struct([("chosen", pa.float64()), ("rejected", pa.float64())])


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise SealError(
            f"bad perturbation name `{name}`",
            hint="use letters and digits separated by single underscores (e.g. typos, typos_case, llm)",
        )
    return name


def variants_column(name: str) -> str:
    return VARIANTS_PREFIX + check_name(name)


def vscore_column(name: str, alias: str) -> str:
    return f"{VSCORE_PREFIX}{check_name(name)}{SEPARATOR}{alias}"


def vfeatures_column(name: str, feature_set: str) -> str:
    return f"{VFEATURES_PREFIX}{check_name(name)}{SEPARATOR}{feature_set}"


def split_column(column: str, prefix: str) -> tuple[str, str]:
    """``vscore_typos__rm`` -> ("typos", "rm")."""
    body = column.removeprefix(prefix)
    name, _, rest = body.partition(SEPARATOR)
    return name, rest


def perturbation_names(columns: list[str]) -> list[str]:
    """Perturbation names that have a variants column."""
    return sorted(c.removeprefix(VARIANTS_PREFIX) for c in columns if c.startswith(VARIANTS_PREFIX))
