"""The `label` stage: fill ``features_<set>`` for the pairs that lack labels made with the current recipe.

`BatchLabelStage` is the resumable stage every computing labeler uses: `plan` finds which pairs of the
target set (all pairs or a seeded sample) have no labels with this recipe's fingerprint, neither in the
column nor in the checkpoint of an interrupted run; `run` labels exactly those in batches, appending each
finished batch to the checkpoint (``work__features_<set>``) so a killed run resumes where it stopped, and
finally writes the column once through `write_labels`. `seal label`, `label_heuristics` and `seal run` go
through `seal.pipeline.run_stage` (`run_label_stage`).

A labeler is anything with ``label_pairs(pairs: pa.Table) -> pa.Table``: it receives the columns it
asked for (``pair_id``, ``chosen``, ``rejected`` and optionally ``context``) and returns
``pair_id`` + ``features_<set>`` for those pairs (a null struct = could not label that pair; it stays
to do). If the object is a context manager, the stage enters it for the run.

Spec entries (``features:`` section) are dispatched on ``labeler``: ``heuristics`` here, ``import`` by
`seal.annotate.features.importer.ImportStage`, ``llm`` by `seal.annotate.features.llm.build_llm_stage`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from seal.annotate.batch_fns import LabelBatches
from seal.annotate.features.sampling import sample_pair_ids
from seal.annotate.features.writer import (
    current_fingerprint,
    latest_label_run,
    read_labels,
    summarize_labels,
    write_labels,
)
from seal.catalog.features import LABEL_STAGE
from seal.catalog.featuresets import FeatureSet, load_feature_set
from seal.distributed import EngineOptions, engine_options, runner_for
from seal.errors import SealError, SpecError
from seal.pipeline import DONE, PENDING, STALE, UP_TO_DATE, Plan, register_stage, run_stage
from seal.progress import progress_bar
from seal.recipe import Recipe
from seal.spec import Spec
from seal.store import Store, now_utc

DEFAULT_BATCH_PAIRS = 20_000
RAY_BATCH_PAIRS = 2_048  # pairs per Ray actor batch (the Ray engine's checkpoint unit), unless --ray-batch-rows
HEURISTICS_STAGE_VERSION = 1
_FINGERPRINT = "__fingerprint"


class PairLabeler(Protocol):
    def label_pairs(self, pairs: pa.Table) -> pa.Table: ...


@dataclass
class LabelResult:
    """What `seal label` (or a `label` stage in `seal run`) did or, with dry_run, would do."""

    feature_set: str
    column: str
    labeler: str
    fingerprint: str
    status: str  # done | up-to-date | dry-run
    reason: str
    pairs_total: int
    pairs_target: int
    pairs_todo: int
    pairs_computed: int = 0
    pairs_resumed: int = 0  # labelled by an earlier, interrupted run (from the checkpoint)
    pairs_unlabelled: int = 0  # the labeler returned no labels (they stay to do)
    pairs_labelled: int = 0  # pairs with labels in the column afterwards
    sample: int | None = None
    seed: int = 0
    run_id: str | None = None
    pairs_version: int | None = None
    seconds: float = 0.0
    estimate: dict[str, Any] = field(default_factory=dict)
    means: dict[str, Any] = field(default_factory=dict)  # per feature and side: labelled pairs and mean

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One human line."""
        if self.status == UP_TO_DATE:
            return f"{self.column}: up to date ({self.pairs_labelled:,} pairs labelled)"
        if self.status == "dry-run":
            return f"{self.column}: would label {self.pairs_todo:,} of {self.pairs_target:,} pairs ({self.reason})"
        resumed = f", {self.pairs_resumed:,} from a checkpoint" if self.pairs_resumed else ""
        missing = f", {self.pairs_unlabelled:,} left unlabelled" if self.pairs_unlabelled else ""
        return (
            f"{self.column}: labelled {self.pairs_computed:,} pairs{resumed}{missing} in {self.seconds:.1f}s; "
            f"{self.pairs_labelled:,} of {self.pairs_total:,} pairs now labelled"
        )


@dataclass
class LabelWork:
    """What the store holds for a feature set when planned, and so what `run` labels (the plan's `work`)."""

    fingerprint: str
    current: str | None  # the fingerprint of the labels in the column (None: no column or no run)
    has_column: bool
    total: int  # pairs in the store
    targets: pa.Array  # pair ids in scope (all, or the seeded sample)
    todo: pa.Array  # target pair ids neither labelled with this recipe nor checkpointed
    checkpoint: int  # pairs in the checkpoint under this recipe
    resumed: int  # of them, target pairs


class BatchLabelStage:
    """A resumable label stage over batches of pairs (see the module docstring)."""

    def __init__(
        self,
        feature_set: FeatureSet,
        recipe: Recipe,
        make_labeler: Callable[[], PairLabeler],
        *,
        labeler: str,
        columns: Sequence[str] = ("pair_id", "chosen", "rejected"),
        sample: int | None = None,
        seed: int = 0,
        batch_size: int = DEFAULT_BATCH_PAIRS,
        provenance: Mapping[str, Any] | None = None,
        estimate: Callable[[int], dict[str, Any]] | None = None,
        engine: EngineOptions | None = None,
    ):
        """`engine`: where the labeler runs (local, or Ray actors each building it with `make_labeler`)."""
        if recipe.stage != LABEL_STAGE or recipe.name != feature_set.name:
            raise SealError(f"a label stage needs a `label` recipe named `{feature_set.name}`")
        if sample is not None and sample <= 0:
            raise SealError("--sample must be a positive number of pairs")
        self.feature_set = feature_set
        self.recipe = recipe
        self.make_labeler = make_labeler
        self.labeler = labeler
        self.columns = list(dict.fromkeys(["pair_id", *columns]))
        self.sample, self.seed, self.batch_size = sample, seed, batch_size
        self.provenance = dict(provenance or {})
        self.estimate = estimate
        self.engine = engine or EngineOptions()

    @property
    def column(self) -> str:
        return self.feature_set.column

    # -- state -------------------------------------------------------------------------------------
    def _checkpoint_schema(self) -> pa.Schema:
        return pa.schema(
            [("pair_id", pa.string()), (_FINGERPRINT, pa.string()), (self.column, self.feature_set.arrow_type())]
        )

    def _checkpoint_ids(self, store: Store, fingerprint: str) -> pa.Array:
        if store.work_schema(self.column) != self._checkpoint_schema():
            return pa.array([], pa.string())
        rows = store.work_read(self.column, ["pair_id"], where=pc.field(_FINGERPRINT) == fingerprint)
        if rows is None or not rows.num_rows:
            return pa.array([], pa.string())
        return pc.unique(rows.column("pair_id").combine_chunks())

    def _state(self, store: Store) -> LabelWork:
        fingerprint = self.recipe.fingerprint()
        all_ids = store.pair_ids()
        targets = sample_pair_ids(all_ids, self.sample, self.seed)
        current = current_fingerprint(store, self.feature_set.name)
        labelled = pa.array([], pa.string())
        if current == fingerprint:
            labelled = read_labels(store, self.feature_set.name, non_null=True).column("pair_id").combine_chunks()
        checkpoint = self._checkpoint_ids(store, fingerprint)
        done = pa.concat_arrays([labelled, checkpoint]) if len(checkpoint) else labelled
        todo = targets.filter(pc.invert(pc.is_in(targets, value_set=done))) if len(done) else targets
        resumed = pc.sum(pc.is_in(checkpoint, value_set=targets)).as_py() or 0 if len(checkpoint) else 0
        return LabelWork(
            fingerprint=fingerprint,
            current=current,
            has_column=self.column in store.columns(),
            total=len(all_ids),
            targets=targets,
            todo=todo,
            checkpoint=len(checkpoint),
            resumed=int(resumed),
        )

    # -- plan --------------------------------------------------------------------------------------
    def plan(self, store: Store) -> Plan:
        """Pending / stale / up to date for the target pairs; the plan's `work` says which pairs `run` labels."""
        fingerprint = self.recipe.fingerprint()
        name = self.feature_set.name

        def plan(status: str, reason: str, todo: int | None, **extra: Any) -> Plan:
            return Plan(LABEL_STAGE, name, fingerprint, status, reason, todo, self.column, **extra)

        if not store.exists():
            return plan(PENDING, "no pairs in the store yet", None)
        state = self._state(store)
        todo = len(state.todo)
        estimate = {"pairs_total": state.total, "pairs_target": len(state.targets), "pairs_todo": todo}
        estimate["checkpointed"] = state.checkpoint
        if self.estimate is not None and todo:
            estimate.update(self.estimate(todo))
        if state.current is not None and state.current != fingerprint:
            reason, changed = self._stale_reason(store)
            return plan(STALE, reason, todo, estimate=estimate, changed=changed, work=state)
        if state.current is None and state.has_column:
            reason = f"{self.column} has no recorded label run: it will be replaced"
            return plan(STALE, reason, todo, estimate=estimate, work=state)
        if todo == 0 and state.checkpoint == 0:
            scope = f"all {len(state.targets):,} target pairs" if self.sample else "every pair"
            return plan(UP_TO_DATE, f"{scope} labelled with this recipe", 0, estimate=estimate, work=state)
        if todo == 0:
            reason = f"{state.checkpoint:,} checkpointed pairs to write"
        else:
            reason = f"{todo:,} of {len(state.targets):,} target pairs not labelled with this recipe"
        return plan(PENDING, reason, todo, estimate=estimate, work=state)

    def _stale_reason(self, store: Store) -> tuple[str, tuple[str, ...]]:
        last = latest_label_run(store, self.feature_set.name)
        if last is None:
            return "no earlier label run", ()
        before, now = last["recipe"].get("params", {}), dict(self.recipe.params)
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        if last["recipe"].get("stage_version") != self.recipe.stage_version:
            changed.append("stage_version")
        what = ", ".join(changed) or "recipe"
        reason = f"labels were made with another recipe (changed: {what}); all target pairs are relabelled"
        return reason, tuple(changed)

    def _planned(self, plan: Plan) -> LabelWork:
        if not isinstance(plan.work, LabelWork):
            raise SealError(f"this plan was not made by the label stage of `{self.feature_set.name}`")
        return plan.work

    # -- results without labelling -------------------------------------------------------------------
    def _result(self, plan: Plan, status: str) -> LabelResult:
        state = self._planned(plan)
        return LabelResult(
            feature_set=self.feature_set.name,
            column=self.column,
            labeler=self.labeler,
            fingerprint=state.fingerprint,
            status=status,
            reason=plan.reason,
            pairs_total=state.total,
            pairs_target=len(state.targets),
            pairs_todo=len(state.todo),
            sample=self.sample,
            seed=self.seed,
            estimate=dict(plan.estimate),
        )

    def dry_run(self, store: Store, plan: Plan) -> LabelResult:
        """What `run` would label for this plan (nothing is written)."""
        result = self._result(plan, "dry-run")
        if plan.status == UP_TO_DATE:
            result.pairs_labelled = len(read_labels(store, self.feature_set.name, non_null=True))
        return result

    def up_to_date(self, store: Store, plan: Plan) -> LabelResult:
        """The result of a plan with nothing to do."""
        result = self._result(plan, UP_TO_DATE)
        result.pairs_labelled = len(read_labels(store, self.feature_set.name, non_null=True))
        return result

    # -- run ---------------------------------------------------------------------------------------
    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> LabelResult:
        """Label the planned pairs batch by batch (each batch checkpointed), then write the column once."""
        t0 = time.perf_counter()
        started = now_utc()
        store.require()
        state = self._planned(plan)
        result = self._result(plan, "done")
        fingerprint = state.fingerprint
        self._open_checkpoint(store, fingerprint)
        computed = unlabelled = 0
        runner = runner_for(self.engine) if len(state.todo) else None
        if runner is not None:
            computed, unlabelled = self._label_on_ray(runner, store, state.todo, fingerprint)
        elif len(state.todo):
            pairs = store.read(self.columns, pc.field("pair_id").isin(state.todo))
            with (
                ExitStack() as stack,
                progress_bar(
                    show_progress, total=pairs.num_rows, desc=f"label {self.feature_set.name}", unit="pair"
                ) as bar,
            ):
                labeler = self.make_labeler()
                if hasattr(labeler, "__enter__"):
                    labeler = stack.enter_context(labeler)  # type: ignore[arg-type]
                for start in range(0, pairs.num_rows, self.batch_size):
                    batch = pairs.slice(start, self.batch_size)
                    labels = labeler.label_pairs(batch)
                    done, missing = self._checkpoint(store, labels, batch.num_rows, fingerprint)
                    computed += done
                    unlabelled += missing
                    bar.update(batch.num_rows)
        rows = store.work_read(self.column, ["pair_id", self.column], where=pc.field(_FINGERPRINT) == fingerprint)
        if rows is None:
            rows = self._checkpoint_schema().empty_table().select(["pair_id", self.column])
        provenance = {
            "labeler": self.labeler,
            "origin": "computed",
            "sample": self.sample,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "pairs_computed": computed,
            "pairs_resumed": state.resumed,
            "pairs_unlabelled": unlabelled,
            "seconds": round(time.perf_counter() - t0, 3),
            **self.provenance,
            "engine": runner.provenance() if runner is not None else self.engine.to_json(),
        }
        write = write_labels(
            store,
            self.feature_set,
            rows,
            self.recipe,
            provenance,
            merge=state.current == fingerprint,
            started_at=started,
        )
        store.drop_work_table(self.column)
        final = read_labels(store, self.feature_set.name, non_null=True)
        result.pairs_computed = computed
        result.pairs_resumed = state.resumed
        result.pairs_unlabelled = unlabelled
        result.pairs_labelled = final.num_rows
        result.run_id = write.run_id
        result.pairs_version = write.pairs_version
        result.means = summarize_labels(self.feature_set, final)
        result.seconds = round(time.perf_counter() - t0, 3)
        return result

    def _checkpoint(self, store: Store, labels: pa.Table, asked: int, fingerprint: str) -> tuple[int, int]:
        """Checkpoint the valid labels of a batch of `asked` pairs: (pairs labelled, pairs left unlabelled)."""
        if labels.column_names != ["pair_id", self.column]:
            raise SealError(f"the {self.labeler} labeler returned columns {labels.column_names}")
        valid = labels.filter(pc.is_valid(labels.column(self.column)))
        if valid.num_rows:
            store.work_append(self.column, self._checkpoint_rows(valid, fingerprint), self._checkpoint_schema())
        return valid.num_rows, labels.num_rows - valid.num_rows + asked - labels.num_rows

    def _label_on_ray(self, runner: Any, store: Store, todo: pa.Array, fingerprint: str) -> tuple[int, int]:
        """Label the planned pairs on Ray actors (each builds the labeler once), checkpointing each batch."""
        dataset, _ = store.ray_dataset(self.columns, todo)
        computed = unlabelled = 0
        rows = min(self.batch_size, RAY_BATCH_PAIRS)  # several batches per actor, not one batch for the pool
        for labels in runner.map(LabelBatches(self.make_labeler), dataset, batch_rows=rows):
            done, missing = self._checkpoint(store, labels, labels.num_rows, fingerprint)
            computed += done
            unlabelled += missing
        return computed, unlabelled

    def _open_checkpoint(self, store: Store, fingerprint: str) -> None:
        """Keep only this recipe's rows in the checkpoint (a checkpoint of another layout is dropped)."""
        schema = store.work_schema(self.column)
        if schema is None:
            return
        if schema != self._checkpoint_schema():
            store.drop_work_table(self.column)
        elif store.work_count(self.column, f"`{_FINGERPRINT}` != '{fingerprint}'") > 0:
            store.work_delete(self.column, f"`{_FINGERPRINT}` != '{fingerprint}'")

    def _checkpoint_rows(self, labels: pa.Table, fingerprint: str) -> pa.Table:
        return pa.table(
            {
                "pair_id": labels.column("pair_id"),
                _FINGERPRINT: pa.array([fingerprint] * labels.num_rows, pa.string()),
                self.column: labels.column(self.column),
            },
            schema=self._checkpoint_schema(),
        )


# -- the heuristics labeler as a stage ---------------------------------------------------------------
def heuristics_recipe(feature_set: FeatureSet) -> Recipe:
    """The recipe of heuristic labels: the measures (with their patterns and tokenizer hash) and the
    set's types. Roles, signs and descriptions are analysis configuration: editing them does not
    make labels stale."""
    from seal.annotate.features.heuristics import heuristic_recipe

    definition = {
        "name": feature_set.name,
        "features": [
            {k: v for k, v in (("name", f.name), ("type", f.type), ("values", f.values)) if v is not None}
            for f in feature_set.features
        ],
    }
    return Recipe(
        LABEL_STAGE,
        feature_set.name,
        {"labeler": "heuristics", "feature_set": definition, **heuristic_recipe(feature_set)},
        stage_version=HEURISTICS_STAGE_VERSION,
    )


def heuristics_stage(
    feature_set: str | FeatureSet = "heuristics",
    sample: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_PAIRS,
    engine: EngineOptions | None = None,
) -> BatchLabelStage:
    """A label stage computing a heuristic feature set (default: the shipped `heuristics` set), on the local
    engine or on Ray (`engine`)."""
    from seal.annotate.features.heuristics import HeuristicLabeler, check_heuristic_set

    fs = load_feature_set(feature_set) if isinstance(feature_set, str) else feature_set
    check_heuristic_set(fs)
    if engine is not None and engine.is_ray and workers is None:
        workers = 1  # on Ray the actors are the parallelism: no process pool inside an actor
    needs_context = any(f.scope == "conversation" for f in fs.features)
    columns = ["pair_id", "chosen", "rejected"] + (["context"] if needs_context else [])
    return BatchLabelStage(
        fs,
        heuristics_recipe(fs),
        lambda: HeuristicLabeler(fs, workers=workers),
        labeler="heuristics",
        columns=columns,
        sample=sample,
        seed=seed,
        batch_size=batch_size,
        provenance={"workers": workers, "feature_set_source": fs.source},
        engine=engine,
    )


def run_label_stage(
    store: Store, stage: BatchLabelStage, dry_run: bool = False, show_progress: bool = False
) -> LabelResult:
    """Run one label stage through the pipeline (plan, then exactly that plan) and return its result, also
    when there was nothing to do; with `dry_run`, only plan and say what would be labelled."""
    t0 = time.perf_counter()
    store.require()
    if dry_run:
        result = stage.dry_run(store, stage.plan(store))
    else:
        outcome = run_stage(store, stage, show_progress=show_progress)
        if outcome.status == DONE:
            return outcome.result
        result = stage.up_to_date(store, outcome.plan)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def label_heuristics(
    store: Store,
    feature_set: str | FeatureSet = "heuristics",
    sample: int | None = None,
    seed: int = 0,
    dry_run: bool = False,
    workers: int | None = None,
    show_progress: bool = False,
    batch_size: int = DEFAULT_BATCH_PAIRS,
    engine: EngineOptions | str | None = None,
) -> LabelResult:
    """`seal label --labeler heuristics`: label the pairs that lack heuristic labels with this recipe
    (`engine`: local, the default, or ray)."""
    store.require()
    stage = heuristics_stage(
        feature_set, sample=sample, seed=seed, workers=workers, batch_size=batch_size, engine=engine_options(engine)
    )
    return run_label_stage(store, stage, dry_run=dry_run, show_progress=show_progress)


# -- the pipeline's `label` stage -----------------------------------------------------------------------
@register_stage("label", section="features", order=20)
def build_label_stage(entry: dict[str, Any], spec: Spec) -> Any:
    """One `features:` entry of a spec -> a stage, dispatched on `labeler`."""
    labeler = entry.get("labeler")
    if labeler == "heuristics":
        engine = engine_options(entry.get("engine") or spec.document.get("engine"))
        fs = spec.resolve(entry.get("feature_set", "heuristics"))
        return heuristics_stage(fs, sample=entry.get("sample"), engine=engine)
    if labeler == "import":
        from seal.annotate.features.importer import ImportStage

        if not entry.get("file") or not entry.get("feature_set"):
            raise SpecError("features: an `import` entry needs `file` and `feature_set`")
        return ImportStage(spec.resolve(entry["file"]), spec.resolve(entry["feature_set"]))
    if labeler == "llm":
        from seal.annotate.features.llm import build_llm_stage  # written by the LLM labeler

        return build_llm_stage(entry, spec)
    raise SpecError(f"features: unknown labeler `{labeler}`", hint="use heuristics, llm or import")
