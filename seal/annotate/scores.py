"""The `score` stage: reward-model scores of both responses of every pair, as column ``score_<alias>``.

Contract (seal.annotate.models): the column is struct{chosen: float64, rejected: float64}; each write is
recorded in `runs` with stage ``score``, name = alias, the fingerprinted recipe (what determines the scores:
model and commit, dtype, max_length, truncation, padding side, input format, head index, seal version) and
provenance (role, origin ``scored``, batch size, device, timings, truncation counts).

Resumable: finished chunks are appended to the work table ``work__score_<alias>`` (commit points every
`commit_rows` pairs or `commit_seconds` of work); a killed run resumes with only the pairs that are neither
in the column nor in the work table. At the end the column is written from the kept values plus the work
table in one column-level write, the run is recorded, and the work table is dropped. A different recipe
under the same alias is refused unless `replace`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.annotate.models import ROLES, SCORE_TYPE, check_alias, default_alias, score_column
from seal.annotate.scoring_model import RewardModel, parse_batch_size
from seal.errors import SealError
from seal.pipeline import PENDING, STALE, UP_TO_DATE, Plan, register_stage
from seal.progress import progress_bar
from seal.recipe import Recipe
from seal.spec import Spec
from seal.store import WORK_PREFIX, RunRecord, Store, new_run_id, now_utc

STAGE = "score"
STAGE_VERSION = 1
COMMIT_ROWS = 1000  # commit a chunk to the work table every this many pairs ...
COMMIT_SECONDS = 30.0  # ... or after this much work, whichever comes first
CHUNK_PAIRS = 512  # pairs read and scored together (length-sorted inside the chunk)
FINGERPRINT_COL = "fingerprint"

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
    prefix_sharing: str = ""  # "on: why" / "off: why" (see seal.annotate.shared_prefix)
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
class _State:
    """What the store holds for this alias now."""

    total: int
    pair_ids: pa.Array  # all pair ids, in dataset order
    missing: np.ndarray  # bool per pair: needs a score under this recipe
    work_ids: set[str]  # pairs committed to the work table under this recipe
    foreign_work: bool  # the work table holds rows of another recipe
    has_column: bool
    conflict: str | None  # why the existing column is not this recipe's, if it is not
    changed: tuple[str, ...]  # recipe fields that differ from the last run's
    last_role: str | None

    @property
    def todo(self) -> np.ndarray:
        """Dataset offsets of the pairs still to score."""
        if not self.work_ids:
            return np.flatnonzero(self.missing)
        in_work = pc.is_in(self.pair_ids, value_set=pa.array(sorted(self.work_ids), pa.string()))
        return np.flatnonzero(self.missing & ~np.asarray(in_work.to_numpy(zero_copy_only=False), dtype=bool))


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
    ):
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
    def _runs(self, store: Store) -> list[dict[str, Any]]:
        return [r for r in store.runs(STAGE) if r["name"] == self.alias]

    def _state(self, store: Store) -> _State:
        fingerprint = self.recipe.fingerprint()
        runs = self._runs(store)
        last = runs[-1] if runs else None
        ds = store.pairs().to_lance()
        has_column = self.column in ds.schema.names
        read = ["pair_id", self.column] if has_column else ["pair_id"]
        table = ds.to_table(columns=read)
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
            col = table.column(self.column).combine_chunks()
            chosen, rejected = pc.struct_field(col, "chosen"), pc.struct_field(col, "rejected")
            null = pc.or_(pc.or_(pc.is_null(col), pc.is_null(chosen)), pc.is_null(rejected))
            missing = np.asarray(null.to_numpy(zero_copy_only=False), dtype=bool)
        else:
            missing = np.ones(total, dtype=bool)
        work_ids: set[str] = set()
        foreign = False
        if WORK_PREFIX + self.column in store.table_names():
            work = store.work_table(self.column, _work_schema(self.column)).to_lance()
            rows = work.to_table(columns=["pair_id", FINGERPRINT_COL])
            fps = rows.column(FINGERPRINT_COL).to_pylist()
            foreign = any(fp != fingerprint for fp in fps)
            work_ids = {
                pid for pid, fp in zip(rows.column("pair_id").to_pylist(), fps, strict=True) if fp == fingerprint
            }
        last_role = last["provenance"].get("role") if last else None
        return _State(total, ids, missing, work_ids, foreign, has_column, conflict, changed, last_role)

    def role(self, state: _State | None = None) -> str:
        if self.options.role:
            return self.options.role
        return (state.last_role if state else None) or "other"

    # -- plan ------------------------------------------------------------------------------------
    def plan(self, store: Store) -> Plan:
        fingerprint = self.recipe.fingerprint()
        estimate = {
            "input_format": self.rm.input_format,
            "input_format_reason": self.rm.input_format_reason,
            "max_length": self.rm.max_length,
        }
        if not store.exists():
            return Plan(
                STAGE, self.alias, fingerprint, PENDING, "no pairs in the store yet", None, self.column, estimate
            )
        state = self._state(store)
        todo = len(state.todo)
        estimate.update({"texts": 2 * todo, "pairs_resumable": len(state.work_ids)})
        if state.conflict:
            if self.replace:
                reason = f"{state.conflict}; --replace: rescoring every pair"
            else:
                reason = f"{state.conflict}; pass --replace to rescore every pair"
            return Plan(STAGE, self.alias, fingerprint, STALE, reason, todo, self.column, estimate, state.changed)
        if todo == 0 and not state.work_ids:
            if self.options.role and state.last_role and self.options.role != state.last_role:
                reason = f"role changes from {state.last_role} to {self.options.role} (no rescoring)"
                return Plan(STAGE, self.alias, fingerprint, PENDING, reason, 0, self.column, estimate)
            reason = f"all {state.total:,} pairs scored with this recipe"
            return Plan(STAGE, self.alias, fingerprint, UP_TO_DATE, reason, 0, self.column, estimate)
        parts = [f"{todo:,} of {state.total:,} pairs to score"]
        if state.work_ids:
            parts.append(f"{len(state.work_ids):,} committed by an interrupted run are kept")
        if not state.has_column:
            parts.append("not scored yet" if not state.work_ids else "column not written yet")
        return Plan(STAGE, self.alias, fingerprint, PENDING, "; ".join(parts), todo, self.column, estimate)

    # -- run -------------------------------------------------------------------------------------
    def run(self, store: Store, plan: Plan | None = None, show_progress: bool = False) -> dict[str, Any]:
        result = self.execute(store, show_progress=show_progress)
        return {**result.to_json(), "summary": result.summary()}

    def _result(self, status: str, reason: str, role: str) -> ScoreResult:
        rm = self.rm
        return ScoreResult(
            alias=self.alias,
            column=self.column,
            model=rm.model_id,
            role=role,
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
        )

    def execute(self, store: Store, show_progress: bool = False) -> ScoreResult:
        """Plan and run: score what is missing, commit in chunks, write the column, record the run."""
        store.require()
        started, t0 = now_utc(), time.perf_counter()
        fingerprint = self.recipe.fingerprint()
        state = self._state(store)
        role = self.role(state)
        if state.conflict and not self.replace:
            raise SealError(
                f"{state.conflict}",
                hint=f"pass --replace to rescore every pair under `{self.alias}`, or score under another --alias",
            )
        replacing = bool(state.conflict)
        if state.foreign_work:  # rows of another recipe from an interrupted run: never mixed in
            work = store.work_table(self.column, _work_schema(self.column))
            work.delete(f"{FINGERPRINT_COL} != '{fingerprint}'")
        todo = state.todo
        result = self._result("done", "", role)
        result.pairs_total = state.total
        result.pairs_resumed = len(state.work_ids)
        result.replaced = replacing
        result.pairs_kept = 0 if replacing else int(state.total - state.missing.sum())
        role_change = bool(self.options.role and state.last_role and self.options.role != state.last_role)
        if len(todo) == 0 and not state.work_ids and not role_change:
            result.status = "up-to-date"
            result.reason = f"all {state.total:,} pairs scored with this recipe"
            result.seconds = round(time.perf_counter() - t0, 3)
            return result

        stats_before = dict(asdict(self.rm.stats))
        if len(todo):
            self._score_missing(store, todo, result, show_progress)
        version = self._materialize(store, state, replacing) if (len(todo) or state.work_ids) else None
        stats = asdict(self.rm.stats)
        delta = {k: stats[k] - stats_before[k] for k in stats}
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
        if result.pairs_scored and delta["forward_seconds"] + delta["tokenize_seconds"] > 0:
            result.pairs_per_second = round(
                result.pairs_scored / (delta["forward_seconds"] + delta["tokenize_seconds"]), 2
            )
        result.pairs_version = version
        result.run_id = new_run_id()
        result.reason = (
            f"scored {result.pairs_scored:,} pairs"
            + (f", kept {result.pairs_resumed:,} from an interrupted run" if result.pairs_resumed else "")
            + (" (role update only)" if not len(todo) and not state.work_ids else "")
        )
        written = result.pairs_scored + result.pairs_resumed
        store.record_run(
            RunRecord(
                run_id=result.run_id,
                stage=STAGE,
                name=self.alias,
                fingerprint=fingerprint,
                recipe=self.recipe.to_dict(),
                provenance={
                    "role": role,
                    "origin": "scored",
                    "column": self.column,
                    "batch_size": self.batch_size,
                    "commit_rows": self.commit_rows,
                    "pairs_scored": result.pairs_scored,
                    "pairs_resumed": result.pairs_resumed,
                    "pairs_kept": result.pairs_kept,
                    "replaced": replacing,
                    "texts_truncated": result.texts_truncated,
                    "non_finite": result.non_finite,
                    "batches": result.batches,
                    "commits": result.commits,
                    "pairs_per_second": result.pairs_per_second,
                    "timings": result.timings,
                    "scoring": self.rm.stats.to_json(),
                    **self.rm.provenance(),
                },
                status="done",
                rows_written=written,
                pairs_version=version,
                started_at=started,
                finished_at=now_utc(),
            )
        )
        if version is not None:
            store.drop_work_table(self.column)
        return result

    def _score_missing(self, store: Store, todo: np.ndarray, result: ScoreResult, show_progress: bool) -> None:
        fingerprint = self.recipe.fingerprint()
        work = store.work_table(self.column, _work_schema(self.column))
        ds = store.pairs().to_lance()
        self.rm.load()
        buffer: list[pa.Table] = []
        buffered = 0
        last_commit = time.perf_counter()

        def commit() -> None:
            nonlocal buffer, buffered, last_commit
            if not buffered:
                return
            work.add(pa.concat_tables(buffer))
            result.commits += 1
            result.pairs_scored += buffered
            buffer, buffered, last_commit = [], 0, time.perf_counter()
            if self.after_commit is not None:
                self.after_commit(result.commits, result.pairs_scored)

        with progress_bar(show_progress, total=2 * len(todo), desc=f"Scoring {self.alias}", unit="texts") as bar:
            for start in range(0, len(todo), self.chunk_pairs):
                offsets = todo[start : start + self.chunk_pairs]
                rows = ds.take(offsets.tolist(), columns=["pair_id", "context", "chosen", "rejected"])
                contexts = rows.column("context").to_pylist()
                chosen = rows.column("chosen").to_pylist()
                rejected = rows.column("rejected").to_pylist()
                items = [
                    (ctx or [], text or "") for ctx, text in zip(contexts + contexts, chosen + rejected, strict=True)
                ]
                values = self.rm.score(items, batch_size=self.batch_size, progress=bar.update)
                n = rows.num_rows
                scores = pa.StructArray.from_arrays(
                    [pa.array(values[:n], pa.float64()), pa.array(values[n:], pa.float64())],
                    fields=list(SCORE_TYPE),
                )
                buffer.append(
                    pa.Table.from_arrays(
                        [rows.column("pair_id"), scores, pa.array([fingerprint] * n, pa.string())],
                        schema=_work_schema(self.column),
                    )
                )
                buffered += n
                if buffered >= self.commit_rows or time.perf_counter() - last_commit >= self.commit_seconds:
                    commit()
            commit()

    def _materialize(self, store: Store, state: _State, replacing: bool) -> int:
        """Write the column from the values kept (same recipe) plus the work table, in one write."""
        fingerprint = self.recipe.fingerprint()
        work = store.work_table(self.column, _work_schema(self.column)).to_lance()
        fresh = work.to_table(columns=["pair_id", self.column], filter=pc.field(FINGERPRINT_COL) == fingerprint)
        target = pa.schema([pa.field("pair_id", pa.string()), pa.field(self.column, SCORE_TYPE)])
        parts = []
        if state.has_column and not replacing:
            kept = store.pairs().to_lance().to_table(columns=["pair_id", self.column])
            col = kept.column(self.column).combine_chunks()
            complete = pc.and_(
                pc.is_valid(col),
                pc.and_(pc.is_valid(pc.struct_field(col, "chosen")), pc.is_valid(pc.struct_field(col, "rejected"))),
            )
            parts.append(kept.filter(complete).cast(target))
        parts.append(fresh.cast(target))
        return store.materialize_column(self.column, pa.concat_tables(parts))


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
    replace: bool = False,
    show_progress: bool = False,
    commit_rows: int = COMMIT_ROWS,
    commit_seconds: float = COMMIT_SECONDS,
    after_commit: AfterCommit | None = None,
) -> ScoreResult:
    """Score every pair of the store that lacks `score_<alias>` under this recipe (see `seal score --help`)."""
    store.require()
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
    )
    stage = ScoreStage(
        options, replace=replace, commit_rows=commit_rows, commit_seconds=commit_seconds, after_commit=after_commit
    )
    return stage.execute(store, show_progress=show_progress)


@register_stage(STAGE, section="reward_models", order=10)
def build_score(entry: dict[str, Any], spec: Spec) -> ScoreStage:
    return ScoreStage(ScoreOptions.from_entry(entry, spec))
