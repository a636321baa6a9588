"""The `perturb` stage: one spec `perturbations` entry (or `seal perturb`) -> ``variants_<name>`` plus
``vscore_<name>__<alias>`` for every scored RM (schemas/experiment.schema.json $defs/perturbation), and, when
asked, ``vfeatures_<name>__<set>`` heuristic labels of the variants.

`PerturbStage.plan` finds the work (`seal.annotate.perturb.core.plan_perturb`); `run` does exactly that:
rewrites the planned pairs in chunks (each committed to a checkpoint, so a killed run resumes), writes the
variants column with its run, re-scores the variants with the RMs the plan lists and labels them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from seal.annotate.perturb.core import (
    STAGE,
    WORK_SCHEMA,
    PerturbConfig,
    PerturbPlan,
    PerturbResult,
    perturb_recipe,
    plan_perturb,
)
from seal.annotate.perturb.jobs import Rewriter
from seal.annotate.perturb.labels import heuristic_labels_status, label_variants_heuristics
from seal.annotate.perturb.rescore import RescoreResult, imported_result, rescore_variants, up_to_date_result
from seal.annotate.perturb.similarity import encoder_for, encoder_recipe, store_embedding_spec
from seal.annotate.perturb.variants import make_variants, variant_counts, variants_content_hash
from seal.catalog.perturbations import FAILED, UP_TO_DATE, VARIANTS_TYPE
from seal.errors import SealError
from seal.pipeline import Plan, register_stage, run_stage
from seal.progress import progress_bar
from seal.recipe import Recipe
from seal.spec import Spec
from seal.store import RunRecord, Store, now_utc


class PerturbStage:
    """Make (or resume) one perturbation's variants, then have every scored RM re-score them."""

    def __init__(
        self,
        config: PerturbConfig,
        *,
        rewriter: Rewriter | None = None,
        rescore: bool = True,
        device: str = "auto",
        batch_size: int | str = "auto",
        label_sets: Sequence[str] = (),
    ):
        self.config = config
        self.rewriter: Rewriter = rewriter or config.rewriter()
        self.rescore = rescore
        self.device = device
        self.batch_size = batch_size
        self.label_sets = tuple(label_sets)
        # The embedding model is the store's (resolved when planning); the recipe here assumes the default.
        encoder = encoder_for(store_embedding_spec(None, config.similarity_model))
        self.recipe: Recipe = perturb_recipe(config, self.rewriter, encoder_recipe(encoder))

    # -- plan -------------------------------------------------------------------------------------
    def plan(self, store: Store) -> Plan:
        """The stage's Plan; its `work` is the `PerturbPlan`."""
        work = plan_perturb(store, self.config, self.rewriter, rescore=self.rescore, label_sets=self.label_sets)
        estimate = {"rescore": work.rescore_todo} if work.rescore_todo else {}
        return Plan(
            STAGE,
            work.name,
            work.fingerprint,
            work.status,
            work.reason,
            work.pairs_todo,
            work.column,
            estimate,
            work.changed,
            work=work,
        )

    # -- run --------------------------------------------------------------------------------------
    def _checked_work(self, store: Store, plan: Plan) -> PerturbPlan:
        store.require()
        work = plan.work
        if not isinstance(work, PerturbPlan) or work.recipe is None or work.pairs_version is None:
            raise SealError("this plan was not made by a perturb stage with pairs to perturb", hint="plan again")
        now = store.version()
        if now != work.pairs_version:
            raise SealError(
                f"the store changed since the perturb plan was made (pairs version {work.pairs_version}, now {now})",
                hint="plan again: rerun the command",
            )
        return work

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> PerturbResult:
        """Rewrite the planned pairs, write the variants column, re-score and label as planned. A plan with
        nothing to do gives the up-to-date report."""
        t0 = time.perf_counter()
        work = self._checked_work(store, plan)
        rewriter = self.rewriter
        if hasattr(rewriter, "store"):
            rewriter.store = store  # the LLM rewriter caches its answers in the store
        encoder = encoder_for(work.similarity)
        provenance: dict[str, Any] = {"rewriter": rewriter.provenance(), "similarity_model": encoder.resolved.model}
        values = dict(work.kept)
        run_id = version = None
        rewritten = 0
        if work.write:
            rewritten = self._rewrite(store, work, values, encoder, show_progress)
            version, run_id = self._write_variants(store, work, values, provenance, rewritten)
        final = [values[pid] for pid in work.selected]
        rescored = self._rescore(store, work, show_progress)
        labels = []
        for set_name in work.label_sets:
            current = None if set_name in work.labels_todo else heuristic_labels_status(store, work.name, set_name)
            out = current or label_variants_heuristics(store, work.name, set_name)
            labels.append(
                {
                    "feature_set": out["column"].split("__", 1)[1],
                    "column": out["column"],
                    "status": out["status"],
                    "pairs": out["pairs"],
                    "run_id": out["run_id"],
                }
            )
        from seal.analysis.stats import describe

        sims = [v["similarity"] for vs in final for v in vs if v["status"] != FAILED and v["similarity"] is not None]
        config = self.config
        assert work.recipe is not None
        return PerturbResult(
            name=work.name,
            column=work.column,
            method=rewriter.method,
            kind=rewriter.kind,
            status="done" if work.write else UP_TO_DATE,
            reason=work.reason if work.write else "variants up to date",
            fingerprint=work.fingerprint,
            sides=config.sides,
            target=config.target,
            seed=config.seed,
            sample=config.sample,
            similarity_model=encoder.resolved.model,
            min_similarity=config.min_similarity,
            pairs_total=work.pairs_total,
            pairs_sampled=len(work.selected),
            pairs_rewritten=rewritten,
            variants=variant_counts(final),
            similarity=describe(sims).to_json(),
            rescored=rescored,
            labels=labels,
            run_id=run_id,
            pairs_version=version,
            recipe=work.recipe.to_dict(),
            provenance=provenance,
            seconds=round(time.perf_counter() - t0, 3),
        )

    def _rewrite(
        self, store: Store, work: PerturbPlan, values: dict[str, Any], encoder: Any, show_progress: bool
    ) -> int:
        """Rewrite the planned pairs chunk by chunk, each chunk committed to the checkpoint; returns the pairs."""
        config, rewriter = self.config, self.rewriter
        size = rewriter.chunk_size()
        rewritten = 0
        with progress_bar(show_progress, total=len(work.todo), desc=f"perturb {work.name}", unit="pair") as bar:
            for start in range(0, len(work.todo), size):
                chunk = work.todo[start : start + size]
                rows = make_variants(
                    store,
                    chunk,
                    sides=config.perturbed_sides(),
                    target=config.target,
                    seed=config.seed,
                    min_similarity=config.min_similarity,
                    rewriter=rewriter,
                    encoder=encoder,
                )
                batch = pa.Table.from_pylist(
                    [{"pair_id": pid, "fingerprint": work.fingerprint, "variants": v} for pid, v in rows.items()],
                    schema=WORK_SCHEMA,
                )
                store.work_append(work.column, batch, WORK_SCHEMA)  # the checkpoint of a killed run
                values.update(rows)
                rewritten += len(chunk)
                bar.update(len(chunk))
        return rewritten

    def _write_variants(
        self, store: Store, work: PerturbPlan, values: dict[str, Any], provenance: dict[str, Any], rewritten: int
    ) -> tuple[int, str]:
        """Write the variants column of the sampled pairs with its run; drop the checkpoint."""
        started = now_utc()
        selected = list(work.selected)
        final = [values[pid] for pid in selected]
        table = pa.table({"pair_id": pa.array(selected, pa.string()), work.column: pa.array(final, VARIANTS_TYPE)})
        provenance["counts"] = variant_counts(final)
        provenance["content_hash"] = variants_content_hash(selected, final)
        provenance["rewritten_in_run"] = rewritten
        assert work.recipe is not None
        record = RunRecord.finished(
            STAGE, work.name, work.recipe, provenance, rows_written=len(selected), started_at=started
        )
        version = store.write_column(work.column, table, record)
        store.drop_work_table(work.column)
        return version, record.run_id

    def _rescore(self, store: Store, work: PerturbPlan, show_progress: bool) -> list[RescoreResult]:
        """Every RM's variant scores: re-scored where the plan says so, else up to date (or imported: skipped)."""
        if not self.rescore:
            return []
        out = []
        for alias, info in work.models.items():
            if info["origin"] != "scored":
                out.append(imported_result(work.name, alias))
            elif alias in work.rescore_todo:
                out.append(
                    rescore_variants(
                        store,
                        work.name,
                        alias,
                        device=self.device,
                        batch_size=self.batch_size,
                        show_progress=show_progress,
                    )
                )
            else:
                out.append(up_to_date_result(store, work.name, alias, info))
        return out


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
    label them with the heuristic feature sets in `label_sets` (``vfeatures_<name>__<set>``): build the stage,
    plan it and run that plan (`seal.pipeline.run_stage`)."""
    store.require()
    stage = PerturbStage(
        config, rewriter=rewriter, rescore=rescore, device=device, batch_size=batch_size, label_sets=label_sets
    )
    outcome = run_stage(store, stage, show_progress=show_progress)
    if outcome.result is not None:
        return outcome.result
    return stage.run(store, outcome.plan)  # nothing to do: the report of what is there


@register_stage(STAGE, section="perturbations")
def build_perturb(entry: dict[str, Any], spec: Spec) -> PerturbStage:
    return PerturbStage(PerturbConfig.from_entry(entry))
