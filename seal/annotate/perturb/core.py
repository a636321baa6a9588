"""Perturb pairs and re-score the variants: `perturb()` (variants + similarity + re-scoring by every scored RM),
`rescore_variants()` (one RM, e.g. one scored after the variants were made), `variant_texts()` and
`write_variant_labels()` (for labelers). Column layout: see `seal.annotate.perturb.columns`.

Sampling is seeded and stable: the pairs with the `sample` smallest sha256(seed:pair_id) are perturbed, so
the same seed always picks the same pairs, and a rule rewrite of a text is a pure function of
(method, seed, pair_id, side). Work is committed in chunks to a checkpoint table, so a killed run resumes
where it stopped and never rewrites (or pays for) a text twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.annotate.models import list_models, score_column
from seal.annotate.perturb.columns import (
    FAILED,
    OK,
    SIDE_CHOICES,
    SIDES,
    TARGETS,
    UNCHANGED,
    VARIANTS_TYPE,
    VSCORE_TYPE,
    check_name,
    variants_column,
    vfeatures_column,
    vscore_column,
)
from seal.annotate.perturb.similarity import (
    cosine_similarities,
    encoder_for,
    encoder_recipe,
    remember,
    store_embedding_spec,
    stored_vectors,
)
from seal.errors import SealError, StoreError
from seal.progress import progress_bar
from seal.recipe import Recipe, canonical_json
from seal.store import WORK_PREFIX, RunRecord, Store, new_run_id, now_utc

STAGE_VERSION = 1
VSCORE_STAGE_VERSION = 1
UP_TO_DATE, PENDING, STALE = "up-to-date", "pending", "stale"


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


@dataclass(frozen=True)
class Job:
    """One text to rewrite: a side of a pair (its context and final response)."""

    pair_id: str
    side: str
    context: tuple[Mapping[str, str], ...]
    response: str
    target: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.seed}|{self.pair_id}|{self.side}"


@dataclass
class Outcome:
    """A rewrite: the new response (and context, for target conversation), or why it failed."""

    response: str | None
    context: list[dict[str, str]] | None = None
    error: str | None = None
    attempts: int = 1
    cached: int = 0


class Rewriter(Protocol):
    kind: str
    method: str  # canonical method string stored in each variant

    def default_name(self) -> str: ...

    def recipe_params(self) -> dict[str, Any]: ...

    def provenance(self) -> dict[str, Any]: ...

    def chunk_size(self) -> int: ...

    def rewrite(self, jobs: Sequence[Job]) -> list[Outcome]: ...


class RuleRewriter:
    """Rule ops (seal.annotate.perturb.rules): seeded, deterministic, offline."""

    kind = "rules"

    def __init__(self, method: str, params: Mapping[str, Any] | None = None):
        from seal.annotate.perturb.rules import RuleChain

        self.chain = RuleChain.parse(method, params)
        self.method = self.chain.canonical()

    def default_name(self) -> str:
        return self.chain.default_name()

    def recipe_params(self) -> dict[str, Any]:
        return {"kind": self.kind, "ops": self.chain.params()}

    def provenance(self) -> dict[str, Any]:
        return {}

    def chunk_size(self) -> int:
        return 2000

    def rewrite(self, jobs: Sequence[Job]) -> list[Outcome]:
        out = []
        for job in jobs:
            response = self.chain.apply(job.response, job.key + "|response")
            context = None
            if job.target == "conversation":
                context = [
                    {"role": m["role"], "content": self.chain.apply(m["content"], f"{job.key}|turn{i}")}
                    for i, m in enumerate(job.context)
                ]
            out.append(Outcome(response, context))
        return out


def build_rewriter(config: PerturbConfig) -> Rewriter:
    from seal.annotate.perturb.rules import OPS, parse_op

    head = parse_op(config.method.split("+")[0])[0]
    if head == "llm":
        from seal.annotate.perturb.llm_rewriter import LLMRewriter

        return LLMRewriter.from_method(config.method, config.params)
    if head not in OPS:
        raise SealError(f"unknown perturbation method `{head}`", hint=f"use llm or a rule op: {', '.join(OPS)}")
    return RuleRewriter(config.method, config.params)


def perturb_recipe(config: PerturbConfig, rewriter: Rewriter, similarity: Mapping[str, Any]) -> Recipe:
    """What determines the variants column: the method, sampling, sides, target, the similarity threshold and
    the embedding model's recipe (`similarity`, from `encoder_recipe`)."""
    name = check_name(config.name or rewriter.default_name())
    return Recipe(
        stage="perturb",
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


# -- results ------------------------------------------------------------------------------------------
@dataclass
class RescoreResult:
    alias: str
    column: str
    status: str  # done | up-to-date | skipped
    reason: str
    texts_scored: int = 0
    texts_reused: int = 0
    fingerprint: str | None = None
    run_id: str | None = None
    pairs_version: int | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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


# -- reading ------------------------------------------------------------------------------------------
def _read(store: Store, columns: Sequence[str], ids: Sequence[str] | None = None) -> pa.Table:
    ds = store.pairs().to_lance()
    flt = None
    if ids is not None:
        flt = pc.field("pair_id").isin(pa.array(list(ids), pa.string()))
    return ds.to_table(columns=list(columns), filter=flt)


def sample_ids(ids: Sequence[str], sample: int | None, seed: int) -> list[str]:
    """The `sample` pair ids with the smallest sha256(seed:pair_id) (all when sample is None), sorted."""
    unique = sorted(set(ids))
    if sample is None or sample >= len(unique):
        return unique
    ranked = sorted(unique, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
    return sorted(ranked[:sample])


def _latest_run(store: Store, stage: str, name: str) -> dict[str, Any] | None:
    runs = [r for r in store.runs(stage) if r["name"] == name and r["status"] == "done"]
    return runs[-1] if runs else None


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = set(old) | set(new)
    return sorted(k for k in keys if canonical_json(old.get(k)) != canonical_json(new.get(k)))


# -- planning -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PerturbPlan:
    name: str
    column: str
    fingerprint: str
    status: str
    reason: str
    pairs_todo: int | None
    rescore_todo: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plan_perturb(store: Store, config: PerturbConfig, rewriter: Rewriter | None = None) -> PerturbPlan:
    """What `perturb` would do: variants missing or stale (and why), and which RMs lack variant scores."""
    rewriter = rewriter or build_rewriter(config)
    encoder = encoder_for(store_embedding_spec(store, config.similarity_model))
    recipe = perturb_recipe(config, rewriter, encoder_recipe(encoder))
    column = variants_column(recipe.name)
    fp = recipe.fingerprint()
    if not store.exists():
        return PerturbPlan(recipe.name, column, fp, PENDING, "no pairs yet (ingest comes first)", None, [])
    selected = sample_ids(store.pair_ids().to_pylist(), config.sample, config.seed)
    done = _done_variant_ids(store, column, fp)
    todo = len(set(selected) - done)
    last = _latest_run(store, "perturb", recipe.name)
    if last is None or column not in store.columns():
        status, reason = PENDING, "no variants yet"
    elif last["fingerprint"] != fp:
        changed = _changed_keys(last["recipe"].get("params", {}), recipe.params)
        status, reason = STALE, f"recipe changed since the last run: {', '.join(changed) or 'stage version'}"
        todo = len(selected)
    elif todo:
        status, reason = PENDING, f"{todo} sampled pair(s) lack variants or have failed ones to retry"
    else:
        status, reason = UP_TO_DATE, "variants up to date"
    rescore = []
    for alias, info in list_models(store).items():
        if info["origin"] != "scored":
            continue
        if status != UP_TO_DATE or vscore_status(store, recipe.name, alias, info)[0] != UP_TO_DATE:
            rescore.append(alias)
    if status == UP_TO_DATE and rescore:
        status, reason = PENDING, f"variant scores missing or stale for: {', '.join(rescore)}"
    return PerturbPlan(recipe.name, column, fp, status, reason, todo, rescore)


def _done_variant_ids(store: Store, column: str, fingerprint: str) -> set[str]:
    """Pairs whose variants for this recipe are in the column (when its last run matches) or the checkpoint."""
    done: set[str] = set()
    name = column.removeprefix("variants_")
    last = _latest_run(store, "perturb", name)
    if last is not None and last["fingerprint"] == fingerprint and column in store.columns():
        tab = _read(store, ["pair_id", column])
        for pid, value in zip(tab.column("pair_id").to_pylist(), tab.column(column).to_pylist(), strict=True):
            if value is not None and not _has_failed(value):
                done.add(pid)
    work = WORK_PREFIX + column
    if work in store.table_names():
        rows = store.db.open_table(work).to_lance().to_table(filter=pc.field("fingerprint") == fingerprint)
        for pid, value in zip(rows.column("pair_id").to_pylist(), rows.column("variants").to_pylist(), strict=True):
            if not _has_failed(value):
                done.add(pid)
    return done


def _has_failed(variants: Sequence[Mapping[str, Any]] | None) -> bool:
    """Failed rewrites are retried by the next run (they were never cached, so nothing is paid twice)."""
    return any(v["status"] == FAILED for v in variants or [])


# -- perturb ------------------------------------------------------------------------------------------
def perturb(
    store: Store,
    config: PerturbConfig,
    *,
    show_progress: bool = False,
    rescore: bool = True,
    device: str = "auto",
    batch_size: int | str = "auto",
    rewriter: Rewriter | None = None,
    label_sets: Sequence[str] = (),
) -> PerturbResult:
    """Make the variants of `config` for the sampled pairs (resuming from a checkpoint), record their
    similarity to the originals, write ``variants_<name>``, then re-score them with every scored RM and
    label them with the heuristic feature sets in `label_sets` (``vfeatures_<name>__<set>``)."""
    t0 = time.perf_counter()
    started = now_utc()
    store.require()
    rewriter = rewriter or build_rewriter(config)
    if hasattr(rewriter, "store"):
        rewriter.store = store  # the LLM rewriter caches its answers in the store
    encoder = encoder_for(store_embedding_spec(store, config.similarity_model))
    sim_model = encoder.resolved.model
    recipe = perturb_recipe(config, rewriter, encoder_recipe(encoder))
    name, fp = recipe.name, recipe.fingerprint()
    column = variants_column(name)
    all_ids = store.pair_ids().to_pylist()
    selected = sample_ids(all_ids, config.sample, config.seed)
    plan = plan_perturb(store, config, rewriter)

    work_schema = pa.schema([("pair_id", pa.string()), ("fingerprint", pa.string()), ("variants", VARIANTS_TYPE)])
    existing: dict[str, Any] = {}
    last = _latest_run(store, "perturb", name)
    if last is not None and last["fingerprint"] == fp and column in store.columns():
        tab = _read(store, ["pair_id", column])
        for pid, value in zip(tab.column("pair_id").to_pylist(), tab.column(column).to_pylist(), strict=True):
            if value is not None:
                existing[pid] = value
    if WORK_PREFIX + column in store.table_names():
        checkpoint = store.work_table(column, work_schema).to_lance().to_table(filter=pc.field("fingerprint") == fp)
        for pid, value in zip(
            checkpoint.column("pair_id").to_pylist(), checkpoint.column("variants").to_pylist(), strict=True
        ):
            existing[pid] = value
    todo = [pid for pid in selected if pid not in existing or _has_failed(existing[pid])]

    rewritten = 0
    provenance: dict[str, Any] = {"rewriter": rewriter.provenance(), "similarity_model": sim_model}
    run_id = None
    version = None
    fresh = last is not None and last["fingerprint"] == fp and column in store.columns()
    if todo or not fresh:
        size = rewriter.chunk_size()
        with progress_bar(show_progress, total=len(todo), desc=f"perturb {name}", unit="pair") as bar:
            for start in range(0, len(todo), size):
                chunk = todo[start : start + size]
                rows = _perturb_chunk(store, chunk, config, rewriter, encoder)
                batch = pa.Table.from_pylist(
                    [{"pair_id": pid, "fingerprint": fp, "variants": v} for pid, v in rows.items()],
                    schema=work_schema,
                )
                store.work_table(column, work_schema).add(batch)  # the checkpoint of a killed run
                existing.update(rows)
                rewritten += len(chunk)
                bar.update(len(chunk))
        values = pa.table(
            {
                "pair_id": pa.array(selected, pa.string()),
                column: pa.array([existing[pid] for pid in selected], VARIANTS_TYPE),
            }
        )
        version = store.materialize_column(column, values)
        run_id = new_run_id()
        counts = _variant_counts(existing[pid] for pid in selected)
        provenance["counts"] = counts
        provenance["content_hash"] = variants_content_hash(selected, [existing[pid] for pid in selected])
        provenance["rewritten_in_run"] = rewritten
        store.record_run(
            RunRecord(
                run_id=run_id,
                stage="perturb",
                name=name,
                fingerprint=fp,
                recipe=recipe.to_dict(),
                provenance=provenance,
                status="done",
                rows_written=len(selected),
                pairs_version=version,
                started_at=started,
                finished_at=now_utc(),
            )
        )
        store.drop_work_table(column)
        status = "done"
    else:
        status = UP_TO_DATE

    final = [existing[pid] for pid in selected]
    sims = [v["similarity"] for vs in final for v in vs if v["status"] != FAILED and v["similarity"] is not None]
    from seal.analysis.stats import describe

    rescored: list[RescoreResult] = []
    if rescore:
        for alias, info in list_models(store).items():
            if info["origin"] != "scored":
                rescored.append(
                    RescoreResult(
                        alias, vscore_column(name, alias), "skipped", "imported scores: no model to re-score with"
                    )
                )
                continue
            rescored.append(
                rescore_variants(store, name, alias, device=device, batch_size=batch_size, show_progress=show_progress)
            )
    labels = []
    for set_name in label_sets:
        out = label_variants_heuristics(store, name, set_name)
        labels.append(
            {
                "feature_set": out["column"].split("__", 1)[1],
                "column": out["column"],
                "status": out["status"],
                "pairs": out["pairs"],
                "run_id": out["run_id"],
            }
        )
    return PerturbResult(
        name=name,
        column=column,
        method=rewriter.method,
        kind=rewriter.kind,
        status=status,
        reason=plan.reason if status == "done" else "variants up to date",
        fingerprint=fp,
        sides=config.sides,
        target=config.target,
        seed=config.seed,
        sample=config.sample,
        similarity_model=sim_model,
        min_similarity=config.min_similarity,
        pairs_total=len(all_ids),
        pairs_sampled=len(selected),
        pairs_rewritten=rewritten,
        variants=_variant_counts(final),
        similarity=describe(sims).to_json(),
        rescored=rescored,
        labels=labels,
        run_id=run_id,
        pairs_version=version,
        recipe=recipe.to_dict(),
        provenance=provenance,
        seconds=round(time.perf_counter() - t0, 3),
    )


def variants_content_hash(ids: Sequence[str], values: Sequence[Any]) -> str:
    """A hash of what the RMs score: every usable variant's pair, side, context and text."""
    digest = hashlib.sha256()
    for pid, vs in zip(ids, values, strict=True):
        for v in vs or []:
            if v["status"] != FAILED:
                digest.update(canonical_json([pid, v["side"], v["context"], v["text"]]).encode())
                digest.update(b"\n")
    return digest.hexdigest()[:16]


def _variant_counts(values: Any) -> dict[str, int]:
    counts = {"total": 0, OK: 0, UNCHANGED: 0, FAILED: 0, "below_min_similarity": 0}
    for vs in values:
        for v in vs or []:
            counts["total"] += 1
            counts[v["status"]] += 1
            counts["below_min_similarity"] += int(bool(v["below_min_similarity"]))
    return counts


def _messages(value: Any) -> tuple[dict[str, str], ...]:
    return tuple({"role": str(m["role"]), "content": str(m["content"])} for m in (value or []))


def _perturb_chunk(
    store: Store, ids: Sequence[str], config: PerturbConfig, rewriter: Rewriter, encoder: Any
) -> dict[str, list[dict[str, Any]]]:
    from seal.annotate.scoring_model import render_transcript

    tab = _read(store, ["pair_id", "context", "chosen", "rejected"], ids).to_pylist()
    jobs = []
    for row in tab:
        for side in config.perturbed_sides():
            jobs.append(
                Job(row["pair_id"], side, _messages(row["context"]), row[side] or "", config.target, config.seed)
            )
    outcomes = rewriter.rewrite(jobs)
    originals, variants = [], []
    for job, out in zip(jobs, outcomes, strict=True):
        if out.response is None:
            originals.append("")
            variants.append("")
        elif config.target == "conversation":
            originals.append(render_transcript([*job.context, {"role": "assistant", "content": job.response}]))
            variants.append(render_transcript([*(out.context or []), {"role": "assistant", "content": out.response}]))
        else:
            originals.append(job.response)
            variants.append(out.response)
    if config.target == "response":  # the stored response embeddings stand for the originals when they match
        by_pair = {row["pair_id"]: row for row in tab}
        for side in config.perturbed_sides():
            known = stored_vectors(store, side, list(by_pair), encoder)
            remember(encoder, {by_pair[pid][side] or "": vec for pid, vec in known.items()})
    sims = cosine_similarities(originals, variants, encoder)
    params_json = canonical_json(rewriter.recipe_params())
    rows: dict[str, list[dict[str, Any]]] = {pid: [] for pid in ids}
    for job, out, orig, var, sim in zip(jobs, outcomes, originals, variants, sims, strict=True):
        failed = out.response is None
        changed = (not failed) and orig != var
        below = (not failed) and config.min_similarity is not None and float(sim) < float(config.min_similarity)
        rows[job.pair_id].append(
            {
                "side": job.side,
                "target": job.target,
                "method": rewriter.method,
                "params": params_json,
                "seed": job.seed,
                "status": FAILED if failed else (OK if changed else UNCHANGED),
                "text": out.response,
                "context": out.context if (config.target == "conversation" and not failed) else None,
                "similarity": None if failed else float(sim),
                "below_min_similarity": bool(below),
                "changed": bool(changed),
                "attempts": int(out.attempts),
                "error": out.error,
            }
        )
    return rows


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


RMLoader = Callable[[Mapping[str, Any], str], Any]


def load_rm_for_rescoring(info: Mapping[str, Any], device: str = "auto") -> Any:
    """The RM of a `score` run, rebuilt from its recipe (model, revision, dtype, max_length, truncation,
    input format, head), checked to reproduce that recipe: variants are scored exactly as the originals."""
    from seal.annotate.scoring_model import RewardModel

    params = dict(info["recipe"].get("params", {}))
    provenance = info.get("provenance", {}) or {}
    if "model" not in params:
        raise SealError(
            f"the score run of `{info['alias']}` does not say which model produced it",
            hint="re-score it with `seal score`",
        )
    rm = RewardModel(
        params["model"],
        revision=params.get("commit") or params.get("revision"),
        dtype=params.get("dtype", "auto"),
        max_length=params.get("max_length"),
        truncation=params.get("truncation", "left"),
        input_format=params.get("input_format", "auto"),
        head_index=params.get("head_index"),
        trust_remote_code=bool(provenance.get("trust_remote_code", False)),
        device=device,
    )
    now = rm.recipe_params()
    ignore = {"seal_version"}
    changed = [k for k in sorted(set(params) & set(now)) if k not in ignore and params[k] != now[k]]
    if changed:
        raise SealError(
            f"`{info['alias']}` no longer loads as it was scored (changed: {', '.join(changed)})",
            hint=f"re-score the originals first: `seal score {params['model']} --alias {info['alias']}`",
        )
    return rm


def rescore_variants(
    store: Store,
    name: str,
    alias: str,
    *,
    device: str = "auto",
    batch_size: int | str = "auto",
    show_progress: bool = False,
    loader: RMLoader | None = None,
) -> RescoreResult:
    """Score the variants of perturbation `name` with RM `alias` (same recipe as its `score` run) into
    ``vscore_<name>__<alias>``. Up-to-date columns are left alone; unchanged variants reuse the original score."""
    t0 = time.perf_counter()
    started = now_utc()
    models = list_models(store)
    column = vscore_column(name, alias)
    if alias not in models:
        raise StoreError(f"no scored reward model `{alias}`", hint="see `seal stats`; score it with `seal score`")
    info = models[alias]
    if info["origin"] != "scored":
        return RescoreResult(alias, column, "skipped", "imported scores: no model to re-score with")
    vrun = _latest_run(store, "perturb", name)
    vcol = variants_column(name)
    if vrun is None or vcol not in store.columns():
        raise StoreError(f"no variants `{name}`", hint=f"run `seal perturb --method ... --name {name}` first")
    recipe = _vscore_recipe(name, variants_key(vrun), alias, info["fingerprint"])
    fp = recipe.fingerprint()
    status, reason = vscore_status(store, name, alias, info)
    if status == UP_TO_DATE:
        return RescoreResult(alias, column, UP_TO_DATE, reason, fingerprint=fp, seconds=0.0)

    tab = _read(store, ["pair_id", vcol, score_column(alias)])
    tab = tab.filter(pc.is_valid(tab.column(vcol)))
    contexts: dict[str, Any] = {}
    if tab.num_rows:  # contexts of the perturbed pairs only
        ctx = _read(store, ["pair_id", "context"], tab.column("pair_id").to_pylist())
        contexts = dict(zip(ctx.column("pair_id").to_pylist(), ctx.column("context").to_pylist(), strict=True))
    work_schema = pa.schema([("pair_id", pa.string()), ("fingerprint", pa.string()), ("value", VSCORE_TYPE)])
    work = store.work_table(column, work_schema)
    checkpoint = work.to_lance().to_table(filter=pc.field("fingerprint") == fp)
    done = dict(zip(checkpoint.column("pair_id").to_pylist(), checkpoint.column("value").to_pylist(), strict=True))

    rows = sorted((r for r in tab.to_pylist() if r["pair_id"] not in done), key=lambda r: r["pair_id"])
    reused = scored = 0
    rm = None
    chunk_pairs = 512
    with progress_bar(show_progress, total=len(rows), desc=f"score {name} with {alias}", unit="pair") as bar:
        for start in range(0, len(rows), chunk_pairs):
            chunk = rows[start : start + chunk_pairs]
            items, where = [], []
            values: dict[str, dict[str, float | None]] = {}
            for row in chunk:
                value: dict[str, float | None] = {"chosen": None, "rejected": None}
                original = row[score_column(alias)] or {}
                for v in row[vcol]:
                    if v["status"] == FAILED or v["text"] is None:
                        continue
                    if v["status"] == UNCHANGED and original.get(v["side"]) is not None:
                        value[v["side"]] = original[v["side"]]
                        reused += 1
                        continue
                    context = v["context"] if v["context"] is not None else contexts[row["pair_id"]]
                    items.append((_messages(context), v["text"]))
                    where.append((row["pair_id"], v["side"]))
                values[row["pair_id"]] = value
            if items:
                if rm is None:
                    rm = (loader or load_rm_for_rescoring)(info, device)
                from seal.annotate.scoring_model import score_texts

                out = score_texts(rm, items, batch_size=batch_size)
                for (pid, side), s in zip(where, out.tolist(), strict=True):
                    values[pid][side] = float(s) if np.isfinite(s) else None
                scored += len(items)
            batch = pa.Table.from_pylist(
                [{"pair_id": pid, "fingerprint": fp, "value": v} for pid, v in values.items()], schema=work_schema
            )
            work.add(batch)
            done.update(values)
            bar.update(len(chunk))
    ids = sorted(done)
    values_table = pa.table(
        {"pair_id": pa.array(ids, pa.string()), column: pa.array([done[i] for i in ids], VSCORE_TYPE)}
    )
    version = store.materialize_column(column, values_table)
    run_id = new_run_id()
    store.record_run(
        RunRecord(
            run_id=run_id,
            stage="vscore",
            name=recipe.name,
            fingerprint=fp,
            recipe=recipe.to_dict(),
            provenance={
                "score_recipe": info["recipe"],
                "texts_scored": scored,
                "texts_reused": reused,
                "device": getattr(rm, "device", None),
                "batch_size": batch_size,
                "scoring": rm.stats.to_json() if rm is not None and hasattr(rm, "stats") else None,
            },
            status="done",
            rows_written=len(ids),
            pairs_version=version,
            started_at=started,
            finished_at=now_utc(),
        )
    )
    store.drop_work_table(column)
    return RescoreResult(
        alias,
        column,
        "done",
        reason,
        texts_scored=scored,
        texts_reused=reused,
        fingerprint=fp,
        run_id=run_id,
        pairs_version=version,
        seconds=round(time.perf_counter() - t0, 3),
    )


# -- labels of variants -------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantText:
    """A variant as a labeler sees it: the conversation before the final response, and that response."""

    pair_id: str
    side: str
    context: tuple[dict[str, str], ...]
    response: str
    similarity: float | None
    below_min_similarity: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.pair_id, self.side)


def variant_texts(store: Store, name: str, include_unchanged: bool = True) -> list[VariantText]:
    """The texts of perturbation `name` to label: one per usable variant (failed ones left out), with the
    context the RM saw (the rewritten one for target conversation, else the pair's original context)."""
    vcol = variants_column(name)
    if vcol not in store.columns():
        raise StoreError(f"no variants `{name}`", hint="run `seal perturb` first")
    out = []
    for row in _read(store, ["pair_id", "context", vcol]).to_pylist():
        for v in row[vcol] or []:
            if v["status"] == FAILED or (v["status"] == UNCHANGED and not include_unchanged):
                continue
            context = v["context"] if v["context"] is not None else row["context"]
            out.append(
                VariantText(
                    row["pair_id"],
                    v["side"],
                    _messages(context),
                    v["text"],
                    v["similarity"],
                    bool(v["below_min_similarity"]),
                )
            )
    return out


def vlabel_recipe(store: Store, name: str, feature_set: Any, labeler: Mapping[str, Any] | None = None) -> Recipe:
    """What determines the labels of the variants: the variants (recipe and content), the feature set, the labeler."""
    vrun = _latest_run(store, "perturb", name)
    if vrun is None:
        raise StoreError(f"no variants `{name}`", hint="run `seal perturb` first")
    return Recipe(
        stage="vlabel",
        name=f"{name}__{feature_set.name}",
        params={
            "perturbation": name,
            "variants": variants_key(vrun),
            "feature_set": feature_set.to_dict(),
            "labeler": dict(labeler or {}),
        },
    )


def write_variant_labels(
    store: Store,
    name: str,
    feature_set: Any,
    labels: Mapping[tuple[str, str], Mapping[str, Any]],
    *,
    recipe_params: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Store labels of variant texts in ``vfeatures_<name>__<set>`` (the type of ``features_<set>``).

    `labels` maps (pair_id, side) to that variant's {feature: value}; values are checked by the feature set
    (`FeatureSet.check`). Labels already in the column for other variants are kept (same recipe), so a labeler
    can write in batches. The write is recorded in `runs` (stage ``vlabel``, name ``<name>__<set>``).
    """
    started = now_utc()
    column = vfeatures_column(name, feature_set.name)
    recipe = vlabel_recipe(store, name, feature_set, recipe_params)
    fp = recipe.fingerprint()
    merged: dict[str, dict[str, dict[str, Any]]] = {}
    last = _latest_run(store, "vlabel", recipe.name)
    if last is not None and last["fingerprint"] == fp and column in store.columns():
        tab = _read(store, ["pair_id", column])
        for pid, value in zip(tab.column("pair_id").to_pylist(), tab.column(column).to_pylist(), strict=True):
            if value is not None:
                merged[pid] = value
    known = {(t.pair_id, t.side) for t in variant_texts(store, name)}
    unknown = [k for k in labels if tuple(k) not in known]
    if unknown:
        raise SealError(f"{len(unknown)} label key(s) are not variants of `{name}`, e.g. {unknown[0]}")
    from seal.annotate.features.featureset import InvalidLabel

    names = set(feature_set.names())
    for (pid, side), values in labels.items():
        unknown = sorted(set(values) - names)
        if unknown:
            raise SealError(f"labels for the {side} variant of pair {pid} have unknown keys: {', '.join(unknown)}")
        checked = {}
        for f in feature_set.features:
            value = values.get(f.name)
            try:  # a missing value (None) stays null: the analysis drops that pair
                checked[f.name] = None if value is None else f.check(value)
            except InvalidLabel as err:
                raise SealError(f"invalid labels for the {side} variant of pair {pid}: {err}") from None
        row = merged.setdefault(pid, {f: {"chosen": None, "rejected": None} for f in feature_set.names()})
        for feature, value in checked.items():
            row[feature] = dict(row.get(feature) or {"chosen": None, "rejected": None})
            row[feature][side] = value
    ids = sorted(merged)
    values = pa.table(
        {
            "pair_id": pa.array(ids, pa.string()),
            column: pa.array([merged[i] for i in ids], feature_set.arrow_type()),
        }
    )
    version = store.materialize_column(column, values)
    run_id = new_run_id()
    store.record_run(
        RunRecord(
            run_id=run_id,
            stage="vlabel",
            name=recipe.name,
            fingerprint=fp,
            recipe=recipe.to_dict(),
            provenance=dict(provenance or {}),
            status="done",
            rows_written=len(ids),
            pairs_version=version,
            started_at=started,
            finished_at=now_utc(),
        )
    )
    return {"column": column, "pairs": len(ids), "labels": len(labels), "run_id": run_id, "pairs_version": version}


def label_variants(
    store: Store,
    name: str,
    feature_set: Any,
    label_fn: Callable[[Sequence[VariantText]], Sequence[Mapping[str, Any]]],
    *,
    recipe_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Label every variant of `name` with `label_fn` (texts -> one {feature: value} per text) and store them."""
    texts = variant_texts(store, name)
    labels = label_fn(texts)
    if len(labels) != len(texts):
        raise SealError(f"the labeler returned {len(labels)} label sets for {len(texts)} texts")
    return write_variant_labels(
        store,
        name,
        feature_set,
        {t.key: lab for t, lab in zip(texts, labels, strict=True)},
        recipe_params=recipe_params,
    )


def label_variants_heuristics(store: Store, name: str, feature_set: str | Any) -> dict[str, Any]:
    """Label the variants of `name` with the heuristics labeler (a feature set whose features are heuristics,
    e.g. the shipped `heuristics` set), into ``vfeatures_<name>__<set>``."""
    from seal.annotate.features.featureset import FeatureSet, load_feature_set
    from seal.annotate.features.heuristics import HeuristicLabeler, heuristic_recipe

    fs = feature_set if isinstance(feature_set, FeatureSet) else load_feature_set(str(feature_set))

    def label(texts: Sequence[VariantText]) -> list[dict[str, Any]]:
        with HeuristicLabeler(fs) as labeler:
            scope = None
            if labeler.needs_context:
                scope = [_scope_text(t.context, t.response) for t in texts]
                scope = pa.array(scope, pa.large_string())
            values = labeler.label_texts([t.response for t in texts], scope)
        out = []
        for i in range(len(texts)):
            row: dict[str, Any] = {}
            for f in fs.features:
                v = values[f.name][i]
                if f.type == "number":
                    row[f.name] = float(v) if np.isfinite(v) else None
                else:
                    row[f.name] = bool(v)
            out.append(row)
        return out

    params = {"labeler": "heuristics", "heuristics": heuristic_recipe(fs)}
    recipe = vlabel_recipe(store, name, fs, params)
    last = _latest_run(store, "vlabel", recipe.name)
    column = vfeatures_column(name, fs.name)
    if last is not None and last["fingerprint"] == recipe.fingerprint() and column in store.columns():
        return {"column": column, "status": UP_TO_DATE, "pairs": last["rows_written"], "run_id": last["run_id"]}
    return {**label_variants(store, name, fs, label, recipe_params=params), "status": "done"}


def _scope_text(context: Sequence[Mapping[str, str]], response: str) -> str:
    """The whole conversation as the heuristics labeler reads it for conversation-scope features."""
    parts = [f"{m['role']}: {m['content']}" for m in context]
    return "\n\n".join(parts) + ("\n\nassistant: " if parts else "") + response


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
