"""The `score` stage: reward-model scores of both responses of every pair, as column ``score_<alias>``.

Contract (seal.catalog.models): the column is struct{chosen: float64, rejected: float64}; each write is
recorded in `runs` with stage ``score``, name = alias, the fingerprinted recipe (what determines the scores:
model and commit, dtype, max_length, truncation, padding side, input format, head index, seal version) and
provenance (role, origin ``scored``, batch size, device, timings, truncation counts).

`plan` finds the pairs that lack a score under this recipe (neither in the column nor in the checkpoint of
an interrupted run); `run` scores exactly those with the engine (seal.engines.scoring), appending finished
chunks to the checkpoint ``work__score_<alias>`` (commit points every `commit_rows` pairs or
`commit_seconds` of work), then writes the column from the kept values plus the checkpoint in one
column-level write together with its run record, and drops the checkpoint. A different recipe under the
same alias is refused unless `replace`. `seal score`, `score()` and `seal run` all go through
`seal.pipeline.run_stage` (`run_score`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.annotate.batch_fns import ScoreBatches, score_rows, score_schema
from seal.catalog.models import ROLES, SCORE_TYPE, check_alias, default_alias, score_column
from seal.distributed import EngineOptions, engine_options, runner_for
from seal.engines.scoring import RewardModel, parse_batch_size
from seal.errors import SealError
from seal.pipeline import DONE, PENDING, STALE, UP_TO_DATE, Plan, register_stage, run_stage
from seal.progress import progress_bar
from seal.recipe import Recipe
from seal.spec import Spec
from seal.store import RunRecord, Store, now_utc

STAGE = "score"
STAGE_VERSION = 1
COMMIT_ROWS = 1000  # commit a chunk to the work table every this many pairs ...
COMMIT_SECONDS = 30.0  # ... or after this much work, whichever comes first
CHUNK_PAIRS = 512  # pairs read and scored together (length-sorted inside the chunk)
FINGERPRINT_COL = "fingerprint"
PAIR_COLUMNS = ["pair_id", "context", "chosen", "rejected"]

AfterCommit = Callable[[int, int], None]  # (commits so far in this run, pairs committed so far)


@dataclass(frozen=True)
class ScoreOptions:
    """What `seal score` and a spec `reward_models` entry say."""

    model: str
    alias: str | None = None
    role: str | None = None  # None: keep the role of the last run of this alias, else "other"
    revision: str | None = None
    batch_size: int | str = "auto"
    max_length: int | None = None
    truncation: str = "left"
    device: str = "auto"
    dtype: str = "auto"
    input_format: str = "auto"
    head_index: int | None = None
    trust_remote_code: bool = False
    share_prefix: str = "auto"  # auto | on | off; provenance, not recipe (same scores)
    compile: bool = False  # torch.compile the forward; provenance, not recipe

    @classmethod
    def from_entry(cls, entry: dict[str, Any], spec: Spec | None = None) -> ScoreOptions:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(entry) - known)
        if unknown:
            raise SealError(f"unknown reward model option(s): {', '.join(unknown)}")
        values = dict(entry)
        if spec is not None:
            values["model"] = spec.resolve(values["model"])
        return cls(**values)


PREFIX_SHARING = {"auto": None, "on": True, "off": False}  # --prefix-sharing -> RewardModel(share_prefix=...)


@dataclass
class ScoreResult:
    """What one `score` call did; `to_json()` is the shape in schemas/cli/score.schema.json."""

    alias: str
    column: str
    model: str
    role: str
    status: str  # done | up-to-date
    reason: str
    fingerprint: str
    recipe: dict[str, Any]
    input_format: str
    input_format_reason: str
    max_length: int
    truncation: str
    head_index: int
    device: str
    batch_size: int | str
    run_id: str | None = None
    replaced: bool = False
    pairs_total: int = 0
    pairs_scored: int = 0  # scored by this call
    pairs_resumed: int = 0  # committed by an interrupted run and kept
    pairs_kept: int = 0  # already in the column with this recipe
    texts_scored: int = 0
    texts_truncated: int = 0
    non_finite: int = 0
    batches: int = 0
    commits: int = 0
    prefix_sharing: str = ""  # "on: why" / "off: why" (see seal.engines.scoring.shared_prefix)
    shared_texts: int = 0
    prefix_tokens_saved: int = 0
    pairs_version: int | None = None
    seconds: float = 0.0
    pairs_per_second: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One human line."""
        if self.status == "up-to-date":
            return f"{self.column}: up to date ({self.reason})"
        line = f"{self.column}: {self.reason} with {self.input_format} input"
        if self.texts_truncated:
            line += f", {self.texts_truncated:,} texts truncated to {self.max_length} tokens"
        return line


@dataclass
class ScoreWork:
    """What the store holds for this alias when planned, and so what `run` does (the plan's `work`)."""

    total: int
    todo: pa.Array  # pair ids still to score, in dataset order
    complete: int  # pairs already scored in the column with this recipe
    work_ids: set[str]  # pairs committed to the checkpoint under this recipe
    foreign_work: bool  # the checkpoint holds rows of another recipe
    has_column: bool
    conflict: str | None  # why the existing column is not this recipe's, if it is not
    changed: tuple[str, ...]  # recipe fields that differ from the last run's
    last_role: str | None


def _work_schema(column: str) -> pa.Schema:
    return pa.schema(
        [
            pa.field("pair_id", pa.string()),
            pa.field(column, SCORE_TYPE),
            pa.field(FINGERPRINT_COL, pa.string()),
        ]
    )


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    changes = [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(changes) or "stage version"


def _complete(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """True where a score struct and both its sides are present."""
    chosen, rejected = pc.struct_field(column, "chosen"), pc.struct_field(column, "rejected")
    return pc.and_(pc.is_valid(column), pc.and_(pc.is_valid(chosen), pc.is_valid(rejected)))


class ScoreStage:
    """Score every pair with one reward model; resumable, idempotent, refuses to mix recipes."""

    def __init__(
        self,
        options: ScoreOptions,
        *,
        replace: bool = False,
        commit_rows: int = COMMIT_ROWS,
        commit_seconds: float = COMMIT_SECONDS,
        chunk_pairs: int = CHUNK_PAIRS,
        after_commit: AfterCommit | None = None,
        reward_model: RewardModel | None = None,
        engine: EngineOptions | None = None,
    ):
        """`engine`: where the reward model runs (local, the default, or Ray actors; see seal.distributed)."""
        if options.role is not None and options.role not in ROLES:
            raise SealError(f"unknown role `{options.role}`", hint=f"use one of {', '.join(ROLES)}")
        self.options = options
        self.alias = check_alias(options.alias or default_alias(options.model))
        self.column = score_column(self.alias)
        self.batch_size = parse_batch_size(options.batch_size)
        self.replace = replace
        self.commit_rows = max(1, int(commit_rows))
        self.commit_seconds = float(commit_seconds)
        self.chunk_pairs = max(1, min(int(chunk_pairs), self.commit_rows))
        self.after_commit = after_commit
        self.engine = engine or EngineOptions()
        self.engine_stats: dict[str, Any] = {}
        self.rm = reward_model or RewardModel(
            options.model,
            revision=options.revision,
            dtype=options.dtype,
            max_length=options.max_length,
            truncation=options.truncation,
            input_format=options.input_format,
            head_index=options.head_index,
            trust_remote_code=options.trust_remote_code,
            device=options.device,
            share_prefix=PREFIX_SHARING[options.share_prefix],
            compile=options.compile,
        )
        self.recipe = Recipe(STAGE, self.alias, self.rm.recipe_params(), stage_version=STAGE_VERSION)

    # -- state -----------------------------------------------------------------------------------
    def _state(self, store: Store) -> ScoreWork:
        fingerprint = self.recipe.fingerprint()
        runs = [r for r in store.runs(STAGE) if r["name"] == self.alias]
        last = runs[-1] if runs else None
        has_column = self.column in store.columns()
        table = store.read(["pair_id", self.column] if has_column else ["pair_id"])
        total = table.num_rows
        ids = table.column("pair_id").combine_chunks()
        conflict = None
        changed: tuple[str, ...] = ()
        if has_column:
            if last is None:
                conflict = f"`{self.column}` exists but no run recorded how it was made"
            elif last["fingerprint"] != fingerprint:
                origin = last["provenance"].get("origin", "scored")
                if origin != "scored":
                    conflict = f"`{self.column}` holds {origin} scores ({last['recipe'].get('params', {})})"
                else:
                    old = dict(last["recipe"].get("params", {}))
                    new = dict(self.recipe.params)
                    changed = tuple(sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)))
                    conflict = f"`{self.column}` was scored with another recipe ({_diff(old, new)})"
        if has_column and conflict is None:
            complete = np.asarray(_complete(table.column(self.column).combine_chunks()).to_numpy(zero_copy_only=False))
            missing = ~complete.astype(bool)
        else:
            missing = np.ones(total, dtype=bool)
        work_ids: set[str] = set()
        foreign = False
        committed = store.work_read(self.column, ["pair_id", FINGERPRINT_COL])
        if committed is not None:
            fps = committed.column(FINGERPRINT_COL).to_pylist()
            foreign = any(fp != fingerprint for fp in fps)
            pids = committed.column("pair_id").to_pylist()
            work_ids = {pid for pid, fp in zip(pids, fps, strict=True) if fp == fingerprint}
        todo = missing
        if work_ids:
            in_work = pc.is_in(ids, value_set=pa.array(sorted(work_ids), pa.string()))
            todo = missing & ~np.asarray(in_work.to_numpy(zero_copy_only=False), dtype=bool)
        last_role = last["provenance"].get("role") if last else None
        return ScoreWork(
            total=total,
            todo=ids.filter(pa.array(todo)),
            complete=int(total - missing.sum()),
            work_ids=work_ids,
            foreign_work=foreign,
            has_column=has_column,
            conflict=conflict,
            changed=changed,
            last_role=last_role,
        )

    def role(self, state: ScoreWork | None = None) -> str:
        if self.options.role:
            return self.options.role
        return (state.last_role if state else None) or "other"

    def _role_change(self, state: ScoreWork) -> bool:
        return bool(self.options.role and state.last_role and self.options.role != state.last_role)

    # -- plan ------------------------------------------------------------------------------------
    def plan(self, store: Store) -> Plan:
        """Pending (pairs to score, or a role to record), stale (another recipe holds the column) or up to
        date; the plan's `work` is what `run` will do."""
        fingerprint = self.recipe.fingerprint()
        estimate = {
            "input_format": self.rm.input_format,
            "input_format_reason": self.rm.input_format_reason,
            "max_length": self.rm.max_length,
        }

        def plan(status: str, reason: str, todo: int | None, **extra: Any) -> Plan:
            return Plan(STAGE, self.alias, fingerprint, status, reason, todo, self.column, estimate, **extra)

        if not store.exists():
            return plan(PENDING, "no pairs in the store yet", None)
        state = self._state(store)
        todo = len(state.todo)
        estimate.update({"texts": 2 * todo, "pairs_resumable": len(state.work_ids)})
        if state.conflict:
            if self.replace:
                reason = f"{state.conflict}; --replace: rescoring every pair"
            else:
                reason = f"{state.conflict}; pass --replace to rescore every pair"
            return plan(STALE, reason, todo, changed=state.changed, work=state)
        if todo == 0 and not state.work_ids:
            if self._role_change(state):
                reason = f"role changes from {state.last_role} to {self.options.role} (no rescoring)"
                return plan(PENDING, reason, 0, work=state)
            return plan(UP_TO_DATE, f"all {state.total:,} pairs scored with this recipe", 0, work=state)
        parts = [f"{todo:,} of {state.total:,} pairs to score"]
        if state.work_ids:
            parts.append(f"{len(state.work_ids):,} committed by an interrupted run are kept")
        if not state.has_column:
            parts.append("not scored yet" if not state.work_ids else "column not written yet")
        return plan(PENDING, "; ".join(parts), todo, work=state)

    # -- run -------------------------------------------------------------------------------------
    def _result(self, status: str, reason: str, state: ScoreWork) -> ScoreResult:
        rm = self.rm
        replacing = bool(state.conflict)
        return ScoreResult(
            alias=self.alias,
            column=self.column,
            model=rm.model_id,
            role=self.role(state),
            status=status,
            reason=reason,
            fingerprint=self.recipe.fingerprint(),
            recipe=self.recipe.to_dict(),
            input_format=rm.input_format,
            input_format_reason=rm.input_format_reason,
            max_length=rm.max_length,
            truncation=rm.truncation,
            head_index=rm.head_index,
            device=rm.device,
            batch_size=self.batch_size,
            replaced=replacing,
            pairs_total=state.total,
            pairs_resumed=len(state.work_ids),
            pairs_kept=0 if replacing else state.complete,
        )

    def up_to_date(self, plan: Plan) -> ScoreResult:
        """The result of a plan with nothing to do (what `run_score` returns when the stage was skipped)."""
        state = self._planned(plan)
        return self._result("up-to-date", f"all {state.total:,} pairs scored with this recipe", state)

    def _planned(self, plan: Plan) -> ScoreWork:
        if not isinstance(plan.work, ScoreWork):
            raise SealError(f"this plan was not made by the `{STAGE}` stage of `{self.alias}`")
        return plan.work

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> ScoreResult:
        """Score the planned pairs, commit in chunks, write the column and its run record in one step."""
        store.require()
        started, t0 = now_utc(), time.perf_counter()
        fingerprint = self.recipe.fingerprint()
        state = self._planned(plan)
        if state.conflict and not self.replace:
            raise SealError(
                f"{state.conflict}",
                hint=f"pass --replace to rescore every pair under `{self.alias}`, or score under another --alias",
            )
        if not len(state.todo) and not state.work_ids and not self._role_change(state):
            return self.up_to_date(plan)
        if state.foreign_work:  # rows of another recipe from an interrupted run: never mixed in
            store.work_delete(self.column, f"{FINGERPRINT_COL} != '{fingerprint}'")
        result = self._result("done", "", state)
        stats_before = dict(asdict(self.rm.stats))
        if len(state.todo):
            runner = runner_for(self.engine)
            if runner is None:
                self._score_missing(store, state.todo, result, show_progress)
            else:
                self._score_on_ray(runner, store, state.todo, result)
        stats = asdict(self.rm.stats)
        delta = {k: stats[k] - stats_before[k] for k in stats}
        self._count(result, delta, t0)
        if self.engine.is_ray:  # the engine's counters live in the actors: count what came back
            result.texts_scored = 2 * result.pairs_scored
            result.timings["ray_start"] = self.engine_stats.get("ray_start_seconds", 0.0)
            if result.pairs_scored and result.seconds > 0:
                result.pairs_per_second = round(result.pairs_scored / result.seconds, 2)
        rescored = bool(len(state.todo) or state.work_ids)
        result.reason = (
            f"scored {result.pairs_scored:,} pairs"
            + (f", kept {result.pairs_resumed:,} from an interrupted run" if result.pairs_resumed else "")
            + ("" if rescored else " (role update only)")
        )
        record = RunRecord.finished(
            STAGE,
            self.alias,
            self.recipe,
            self._provenance(result),
            rows_written=result.pairs_scored + result.pairs_resumed,
            started_at=started,
        )
        result.run_id = record.run_id
        if rescored:
            result.pairs_version = store.write_column(self.column, self._column_values(store, state), record)
            store.drop_work_table(self.column)
        else:
            store.record_run(record)
        return result

    def _count(self, result: ScoreResult, delta: dict[str, Any], t0: float) -> None:
        """The engine's counters of this run into the result."""
        result.texts_scored = int(delta["texts"])
        result.texts_truncated = int(delta["truncated"])
        result.non_finite = int(delta["non_finite"])
        result.batches = int(delta["batches"])
        result.prefix_sharing = self.rm.prefix_sharing
        result.shared_texts = int(delta["shared_texts"])
        result.prefix_tokens_saved = int(delta["prefix_tokens_saved"])
        result.seconds = round(time.perf_counter() - t0, 3)
        result.timings = {
            "load": round(delta["load_seconds"], 3),
            "tokenize": round(delta["tokenize_seconds"], 3),
            "forward": round(delta["forward_seconds"], 3),
            "total": result.seconds,
        }
        busy = delta["forward_seconds"] + delta["tokenize_seconds"]
        if result.pairs_scored and busy > 0:
            result.pairs_per_second = round(result.pairs_scored / busy, 2)

    def _provenance(self, result: ScoreResult) -> dict[str, Any]:
        return {
            "role": result.role,
            "origin": "scored",
            "column": self.column,
            "batch_size": self.batch_size,
            "commit_rows": self.commit_rows,
            "pairs_scored": result.pairs_scored,
            "pairs_resumed": result.pairs_resumed,
            "pairs_kept": result.pairs_kept,
            "replaced": result.replaced,
            "texts_truncated": result.texts_truncated,
            "non_finite": result.non_finite,
            "batches": result.batches,
            "commits": result.commits,
            "pairs_per_second": result.pairs_per_second,
            "timings": result.timings,
            "engine": self.engine_stats or self.engine.to_json(),
            "scoring": self.rm.stats.to_json(),
            **self.rm.provenance(),
        }

    def _chunks(self, store: Store, todo: pa.Array) -> Iterator[pa.Table]:
        """The planned pairs' texts, `chunk_pairs` pairs at a time, in one pass over the store."""
        where = pc.field("pair_id").isin(todo)
        pending: list[pa.Table] = []
        held = 0
        for batch in store.scan(PAIR_COLUMNS, where, batch_size=self.chunk_pairs):
            pending.append(pa.Table.from_batches([batch]))
            held += batch.num_rows
            while held >= self.chunk_pairs:
                table = pa.concat_tables(pending)
                yield table.slice(0, self.chunk_pairs)
                rest = table.slice(self.chunk_pairs)
                pending, held = [rest], rest.num_rows
        if held:
            yield pa.concat_tables(pending)

    def _score_missing(self, store: Store, todo: pa.Array, result: ScoreResult, show_progress: bool) -> None:
        fingerprint = self.recipe.fingerprint()
        schema = _work_schema(self.column)
        self.rm.load()
        buffer: list[pa.Table] = []
        buffered = 0
        last_commit = time.perf_counter()

        def commit() -> None:
            nonlocal buffer, buffered, last_commit
            if not buffered:
                return
            store.work_append(self.column, pa.concat_tables(buffer), schema)
            result.commits += 1
            result.pairs_scored += buffered
            buffer, buffered, last_commit = [], 0, time.perf_counter()
            if self.after_commit is not None:
                self.after_commit(result.commits, result.pairs_scored)

        with progress_bar(show_progress, total=2 * len(todo), desc=f"Scoring {self.alias}", unit="texts") as bar:
            for rows in self._chunks(store, todo):
                buffer.append(score_rows(self.rm, rows, self.column, fingerprint, self.batch_size, bar.update))
                buffered += rows.num_rows
                if buffered >= self.commit_rows or time.perf_counter() - last_commit >= self.commit_seconds:
                    commit()
            commit()

    def _score_on_ray(self, runner: Any, store: Store, todo: pa.Array, result: ScoreResult) -> None:
        """Score the planned pairs on Ray actors (each holding this stage's reward model), reading them from
        the store's fragments; each batch that comes back is checkpointed, so a killed run resumes."""
        dataset, _ = store.ray_dataset(PAIR_COLUMNS, todo)
        make = ScoreBatches(self.rm, self.column, self.recipe.fingerprint(), self.batch_size)
        use_gpu = self.options.device in ("auto", "cuda")
        for rows in runner.map(make, dataset, batch_rows=self.chunk_pairs, use_gpu=use_gpu):
            store.work_append(self.column, rows.cast(score_schema(self.column)), _work_schema(self.column))
            result.commits += 1
            result.pairs_scored += rows.num_rows
            if self.after_commit is not None:
                self.after_commit(result.commits, result.pairs_scored)
        self.engine_stats = runner.provenance()

    def _column_values(self, store: Store, state: ScoreWork) -> pa.Table:
        """The column's values: those kept (same recipe) plus the checkpoint's."""
        fingerprint = self.recipe.fingerprint()
        target = pa.schema([pa.field("pair_id", pa.string()), pa.field(self.column, SCORE_TYPE)])
        parts = []
        if state.has_column and not state.conflict and self.column in store.columns():
            kept = store.read(["pair_id", self.column])
            parts.append(kept.filter(_complete(kept.column(self.column))).cast(target))
        fresh = store.work_read(self.column, ["pair_id", self.column], where=pc.field(FINGERPRINT_COL) == fingerprint)
        if fresh is not None:
            parts.append(fresh.cast(target))
        return pa.concat_tables(parts) if parts else target.empty_table()


def run_score(store: Store, stage: ScoreStage, show_progress: bool = False) -> ScoreResult:
    """Run one score stage through the pipeline (plan, then exactly that plan); the result also when there
    was nothing to do."""
    t0 = time.perf_counter()
    outcome = run_stage(store, stage, show_progress=show_progress)
    if outcome.status == DONE:
        return outcome.result
    result = stage.up_to_date(outcome.plan)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def score(
    store: Store,
    model: str,
    *,
    alias: str | None = None,
    role: str | None = None,
    revision: str | None = None,
    batch_size: int | str = "auto",
    max_length: int | None = None,
    truncation: str = "left",
    device: str = "auto",
    dtype: str = "auto",
    input_format: str = "auto",
    head_index: int | None = None,
    trust_remote_code: bool = False,
    prefix_sharing: str = "auto",
    compile: bool = False,
    replace: bool = False,
    show_progress: bool = False,
    commit_rows: int = COMMIT_ROWS,
    commit_seconds: float = COMMIT_SECONDS,
    after_commit: AfterCommit | None = None,
    on_start: Callable[[ScoreStage], None] | None = None,
    engine: EngineOptions | str | None = None,
) -> ScoreResult:
    """Score every pair of the store that lacks `score_<alias>` under this recipe (see `seal score --help`;
    `prefix_sharing` is auto | on | off, `compile` runs the model through torch.compile; `on_start(stage)` is
    called once the stage is built, before scoring; `engine` is `local` (default), `ray` or `EngineOptions`)."""
    store.require()
    if prefix_sharing not in PREFIX_SHARING:
        raise SealError(f"unknown prefix sharing `{prefix_sharing}`", hint="use auto, on or off")
    options = ScoreOptions(
        model=model,
        alias=alias,
        role=role,
        revision=revision,
        batch_size=batch_size,
        max_length=max_length,
        truncation=truncation,
        device=device,
        dtype=dtype,
        input_format=input_format,
        head_index=head_index,
        trust_remote_code=trust_remote_code,
        share_prefix=prefix_sharing,
        compile=compile,
    )
    stage = ScoreStage(
        options,
        replace=replace,
        commit_rows=commit_rows,
        commit_seconds=commit_seconds,
        after_commit=after_commit,
        engine=engine_options(engine),
    )
    if on_start is not None:
        on_start(stage)
    return run_score(store, stage, show_progress=show_progress)


@register_stage(STAGE, section="reward_models", order=10)
def build_score(entry: dict[str, Any], spec: Spec) -> ScoreStage:
    entry = dict(entry)
    engine = entry.pop("engine", None) or spec.document.get("engine")
    return ScoreStage(ScoreOptions.from_entry(entry, spec), engine=engine_options(engine))
