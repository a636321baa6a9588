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
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from seal.errors import SealError
from seal.recipe import Recipe, canonical_json
from seal.schema import MESSAGE
from seal.store import Store

UP_TO_DATE, PENDING, STALE = "up-to-date", "pending", "stale"  # the plan statuses of seal.pipeline

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


VSCORE_STAGE_VERSION = 1


def _latest_run(store: Store, stage: str, name: str) -> dict[str, Any] | None:
    runs = [r for r in store.runs(stage) if r["name"] == name and r["status"] == "done"]
    return runs[-1] if runs else None


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = set(old) | set(new)
    return sorted(k for k in keys if canonical_json(old.get(k)) != canonical_json(new.get(k)))


# -- re-scoring ---------------------------------------------------------------------------------------
def variants_key(run: Mapping[str, Any]) -> str:
    """What the variant scores depend on: the variants recipe and the content of the variants."""
    return f"{run['fingerprint']}:{run['provenance'].get('content_hash', run['run_id'])}"


def _vscore_recipe(name: str, variants_key: str, alias: str, score_fp: str) -> Recipe:
    return Recipe(
        stage="vscore",
        name=f"{name}__{alias}",
        stage_version=VSCORE_STAGE_VERSION,
        params={"perturbation": name, "variants": variants_key, "model": alias, "score": score_fp},
    )


def vscore_status(store: Store, name: str, alias: str, info: Mapping[str, Any]) -> tuple[str, str]:
    vrun = _latest_run(store, "perturb", name)
    if vrun is None:
        return PENDING, "no variants yet"
    recipe = _vscore_recipe(name, variants_key(vrun), alias, info["fingerprint"])
    column = vscore_column(name, alias)
    last = _latest_run(store, "vscore", recipe.name)
    if last is None or column not in store.columns():
        return PENDING, "variants not scored yet"
    if last["fingerprint"] != recipe.fingerprint():
        changed = _changed_keys(last["recipe"].get("params", {}), recipe.params)
        return STALE, f"changed since the variants were scored: {', '.join(changed)}"
    return UP_TO_DATE, "variant scores up to date"


def list_perturbations(store: Store) -> dict[str, dict[str, Any]]:
    """Every perturbation in the store: {name: {column, method, fingerprint, recipe, vscore columns, vfeatures}}."""
    store.require()
    columns = store.columns()
    out: dict[str, dict[str, Any]] = {}
    for run in store.runs("perturb"):
        if run["status"] != "done" or variants_column(run["name"]) not in columns:
            continue
        name = run["name"]
        out[name] = {
            "name": name,
            "column": variants_column(name),
            "method": run["recipe"]["params"].get("method"),
            "fingerprint": run["fingerprint"],
            "recipe": run["recipe"],
            "run_id": run["run_id"],
        }
    for name, entry in out.items():
        entry["vscore_columns"] = sorted(c for c in columns if c.startswith(f"vscore_{name}__"))
        entry["vfeatures_columns"] = sorted(c for c in columns if c.startswith(f"vfeatures_{name}__"))
    return dict(sorted(out.items()))
