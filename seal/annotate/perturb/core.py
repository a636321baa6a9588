"""What a perturbation is and what it still needs: `PerturbConfig` (a spec `perturbations` entry or `seal perturb`
options), its recipe, `sample_ids` (the seeded sample), `plan_perturb` (the work: which sampled pairs lack usable
variants, which RMs lack variant scores, which label sets are missing) and the `PerturbResult` of a run.
Column layout: see `seal.catalog.perturbations`; the stage that does the work: `seal.annotate.perturb.stage`.

Sampling is seeded and stable: the pairs with the `sample` smallest sha256(seed:pair_id) are perturbed, so
the same seed always picks the same pairs, and a rule rewrite of a text is a pure function of
(method, seed, pair_id, side). Work is committed in chunks to a checkpoint table, so a killed run resumes
where it stopped and never rewrites (or pays for) a text twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal.annotate.perturb.jobs import Rewriter
from seal.annotate.perturb.labels import heuristic_labels_status
from seal.annotate.perturb.reading import read_pairs
from seal.annotate.perturb.rescore import RescoreResult
from seal.annotate.perturb.rewriters import build_rewriter
from seal.annotate.perturb.similarity import encoder_for, encoder_recipe, store_embedding_spec
from seal.annotate.perturb.variants import has_failed
from seal.catalog.models import list_models
from seal.catalog.perturbations import (
    PENDING,
    SIDE_CHOICES,
    SIDES,
    STALE,
    TARGETS,
    UP_TO_DATE,
    VARIANTS_TYPE,
    _changed_keys,
    _latest_run,
    check_name,
    variants_column,
    vscore_status,
)
from seal.errors import SealError
from seal.recipe import Recipe
from seal.store import Store

STAGE = "perturb"
STAGE_VERSION = 1
# The checkpoint of a perturbation (work table of its variants column): finished pairs, by recipe.
WORK_SCHEMA = pa.schema([("pair_id", pa.string()), ("fingerprint", pa.string()), ("variants", VARIANTS_TYPE)])


# -- configuration ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PerturbConfig:
    """One perturbation: the spec's `perturbations` entry or `seal perturb` options."""

    method: str
    name: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    sample: int | None = None
    seed: int = 0
    sides: str = "both"
    target: str = "response"
    min_similarity: float | None = None
    similarity_model: str | None = None  # default: the store's embedding model
    # The llm rewriter's endpoint settings given apart from the method (base_url, api_key_env, concurrency,
    # timeout, max_retries: the options the LLM labeler takes too); provenance, never part of the recipe.
    endpoint: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sides not in SIDE_CHOICES:
            raise SealError(f"bad sides `{self.sides}`", hint=f"use one of {', '.join(SIDE_CHOICES)}")
        if self.target not in TARGETS:
            raise SealError(f"bad target `{self.target}`", hint=f"use one of {', '.join(TARGETS)}")
        if self.sample is not None and int(self.sample) < 1:
            raise SealError("sample must be a positive integer")
        if self.min_similarity is not None and not -1.0 <= float(self.min_similarity) <= 1.0:
            raise SealError("min_similarity must lie in [-1, 1]")

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> PerturbConfig:
        """From a spec `perturbations` entry (schemas/experiment.schema.json $defs/perturbation)."""
        return cls(
            method=entry["method"],
            name=entry.get("name"),
            params=dict(entry.get("params") or {}),
            sample=entry.get("sample"),
            seed=int(entry.get("seed", 0)),
            sides=entry.get("sides", "both"),
            target=entry.get("target", "response"),
            min_similarity=entry.get("min_similarity"),
        )

    def perturbed_sides(self) -> tuple[str, ...]:
        return SIDES if self.sides == "both" else (self.sides,)

    def rewriter(self) -> Rewriter:
        """The rewriter its method names."""
        return build_rewriter(self.method, self.params, self.endpoint)


def perturb_recipe(config: PerturbConfig, rewriter: Rewriter, similarity: Mapping[str, Any]) -> Recipe:
    """What determines the variants column: the method, sampling, sides, target, the similarity threshold and
    the embedding model's recipe (`similarity`, from `encoder_recipe`)."""
    name = check_name(config.name or rewriter.default_name())
    return Recipe(
        stage=STAGE,
        name=name,
        stage_version=STAGE_VERSION,
        params={
            "method": rewriter.method,
            "rewriter": rewriter.recipe_params(),
            "sample": config.sample,
            "seed": config.seed,
            "sides": config.sides,
            "target": config.target,
            "min_similarity": config.min_similarity,
            "similarity": dict(similarity),
        },
    )


def sample_ids(ids: Sequence[str], sample: int | None, seed: int) -> list[str]:
    """The `sample` pair ids with the smallest sha256(seed:pair_id) (all when sample is None), sorted."""
    unique = sorted(set(ids))
    if sample is None or sample >= len(unique):
        return unique
    ranked = sorted(unique, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
    return sorted(ranked[:sample])


# -- results ------------------------------------------------------------------------------------------
@dataclass
class PerturbResult:
    """What one `perturb` did; `to_json()` is the `seal perturb --json` output."""

    name: str
    column: str
    method: str
    kind: str
    status: str  # done | up-to-date
    reason: str
    fingerprint: str
    sides: str
    target: str
    seed: int
    sample: int | None
    similarity_model: str
    min_similarity: float | None
    pairs_total: int
    pairs_sampled: int
    pairs_rewritten: int  # in this run (the rest came from the checkpoint or the column)
    variants: dict[str, int]
    similarity: dict[str, Any]
    rescored: list[RescoreResult]
    labels: list[dict[str, Any]]
    run_id: str | None
    pairs_version: int | None
    recipe: dict[str, Any]
    provenance: dict[str, Any]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["rescored"] = [r.to_json() for r in self.rescored]
        return out

    def summary(self) -> str:
        """One line for `seal run`."""
        counts = self.variants
        rescored = ", ".join(f"{r.alias} ({r.status})" for r in self.rescored) or "no scored RM"
        return (
            f"{self.column}: {counts['total']} variants of {self.pairs_sampled} pairs "
            f"({counts['failed']} failed, {counts['below_min_similarity']} below min similarity); "
            f"re-scored by {rescored}"
        )


# -- planning -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PerturbPlan:
    """What `perturb` would do: variants missing or stale (and why), which RMs lack variant scores and which
    label sets lack labels. The fields after `rescore_todo` are the work itself, which the perturb stage's
    `run` does exactly (`to_json` leaves them out)."""

    name: str
    column: str
    fingerprint: str
    status: str
    reason: str
    pairs_todo: int | None
    rescore_todo: list[str]
    changed: tuple[str, ...] = ()  # recipe params that differ from the last run (status stale)
    recipe: Recipe | None = None
    similarity: Mapping[str, Any] = field(default_factory=dict)  # the embedding model spec of the similarity
    pairs_version: int | None = None  # the version of `pairs` the plan read
    pairs_total: int = 0
    selected: tuple[str, ...] = ()  # the sampled pairs
    todo: tuple[str, ...] = ()  # sampled pairs to rewrite
    kept: Mapping[str, Any] = field(default_factory=dict)  # variants of the other sampled pairs
    write: bool = False  # the variants column is (re)written
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # every RM, as `list_models` says
    label_sets: tuple[str, ...] = ()  # heuristic feature sets the variants are labelled with
    labels_todo: tuple[str, ...] = ()  # those whose labels are missing or stale

    def to_json(self) -> dict[str, Any]:
        keys = ("name", "column", "fingerprint", "status", "reason", "pairs_todo", "rescore_todo")
        return {k: getattr(self, k) if k != "rescore_todo" else list(self.rescore_todo) for k in keys}


def _existing_variants(store: Store, column: str, fingerprint: str, fresh: bool) -> dict[str, Any]:
    """Variants made with this recipe: from the column (when its last run matches) then the checkpoint."""
    existing: dict[str, Any] = {}
    if fresh:
        tab = read_pairs(store, ["pair_id", column])
        for pid, value in zip(tab.column("pair_id").to_pylist(), tab.column(column).to_pylist(), strict=True):
            if value is not None:
                existing[pid] = value
    checkpoint = store.work_read(column, ["pair_id", "variants"], pc.field("fingerprint") == fingerprint)
    if checkpoint is not None:
        pids, values = checkpoint.column("pair_id").to_pylist(), checkpoint.column("variants").to_pylist()
        existing.update(zip(pids, values, strict=True))
    return existing


def plan_perturb(
    store: Store,
    config: PerturbConfig,
    rewriter: Rewriter | None = None,
    *,
    rescore: bool = True,
    label_sets: Sequence[str] = (),
) -> PerturbPlan:
    """What `perturb` would do: variants missing or stale (and why), which RMs lack variant scores (with
    `rescore`) and which of `label_sets` lack heuristic labels of the variants."""
    rewriter = rewriter or config.rewriter()
    similarity = store_embedding_spec(store, config.similarity_model)
    recipe = perturb_recipe(config, rewriter, encoder_recipe(encoder_for(similarity)))
    name, fp = recipe.name, recipe.fingerprint()
    column = variants_column(name)
    if not store.exists():
        reason = "no pairs yet (ingest comes first)"
        return PerturbPlan(name, column, fp, PENDING, reason, None, [], recipe=recipe, similarity=similarity)
    version = store.version()
    all_ids = store.pair_ids().to_pylist()
    selected = sample_ids(all_ids, config.sample, config.seed)
    last = _latest_run(store, STAGE, name)
    fresh = last is not None and last["fingerprint"] == fp and column in store.columns()
    existing = _existing_variants(store, column, fp, fresh)
    todo = [pid for pid in selected if pid not in existing or has_failed(existing[pid])]
    pairs_todo = len(todo)
    changed: tuple[str, ...] = ()
    if last is None or column not in store.columns():
        status, reason = PENDING, "no variants yet"
    elif last["fingerprint"] != fp:
        changed = tuple(_changed_keys(last["recipe"].get("params", {}), recipe.params)) or ("stage version",)
        status, reason = STALE, f"recipe changed since the last run: {', '.join(changed)}"
        pairs_todo = len(selected)  # every sampled pair gets variants of the new recipe
    elif todo:
        status, reason = PENDING, f"{len(todo)} sampled pair(s) lack variants or have failed ones to retry"
    else:
        status, reason = UP_TO_DATE, "variants up to date"
    models = list_models(store)
    rescore_todo = []
    for alias, info in models.items():
        if not rescore or info["origin"] != "scored":
            continue
        if status != UP_TO_DATE or vscore_status(store, name, alias, info)[0] != UP_TO_DATE:
            rescore_todo.append(alias)
    labels_todo = [s for s in label_sets if status != UP_TO_DATE or heuristic_labels_status(store, name, s) is None]
    if status == UP_TO_DATE and (rescore_todo or labels_todo):
        parts = [f"variant scores missing or stale for: {', '.join(rescore_todo)}"] if rescore_todo else []
        parts += [f"variant labels missing or stale for: {', '.join(labels_todo)}"] if labels_todo else []
        status, reason = PENDING, "; ".join(parts)
    todo_set = set(todo)
    return PerturbPlan(
        name,
        column,
        fp,
        status,
        reason,
        pairs_todo,
        rescore_todo,
        changed=changed,
        recipe=recipe,
        similarity=similarity,
        pairs_version=version,
        pairs_total=len(all_ids),
        selected=tuple(selected),
        todo=tuple(todo),
        kept={pid: existing[pid] for pid in selected if pid not in todo_set},
        write=bool(todo) or not fresh,
        models=models,
        label_sets=tuple(label_sets),
        labels_todo=tuple(labels_todo),
    )
