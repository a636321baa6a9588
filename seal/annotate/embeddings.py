"""The `embed` stage: sentence-transformers embeddings of every pair, as ``emb_<field>`` columns.

Columns (each a fixed_size_list<float32, d>, L2-normalised, one top-level column per field):

- ``emb_context``: the conversation before the final response, rendered as ``<Role>: <content>`` turns
  joined by blank lines and truncated from the *left* (the latest turns are kept). The rendered text is
  also stored as the string column ``context_text`` (for full-text search).
- ``emb_chosen`` / ``emb_rejected``: the two final responses as stored, truncated from the right.
- ``emb_pair`` = normalize(ê_context + ê_chosen − ê_rejected) with ê the unit embeddings above. The
  difference term carries the preference direction: two near-duplicate pairs with the same label are
  close (cosine ≈ 1) while the same pair with its label flipped moves the ê_chosen − ê_rejected term to
  the other side (cosine ≈ (1 − |ê_c − ê_r|²)/(1 + |ê_c − ê_r|²), near 0 for distinct responses).
  Order-insensitive comparisons (contradiction search, clusters) use the *content* embedding
  normalize(ê_context + ê_chosen + ê_rejected) computed from the three stored columns (`content_vectors`),
  and decide orientation by matching responses (chosen↔chosen vs chosen↔rejected).

Each column's recipe (model id and weights hash or Hub commit, dtype, max_seq_length, text rendering,
truncation side; for ``pair`` its definition) is recorded in `runs` (stage ``embed``, name = field); a
column whose recipe changed is recomputed, never mixed. Batch size, device and timings are provenance.

`EmbedStage.plan` finds the pairs that lack a requested column under this recipe (and, when nothing is to
embed, the indexes that need a refresh); `run` embeds exactly those pairs: the encoder is
`seal.engines.encoder.TextEncoder`, texts are deduplicated and checkpointed (`seal.annotate.embed_texts`),
each column is written with one column-level write, the runs recorded, the work table dropped and the indexes
refreshed (`seal.annotate.embed_indexes`: exact search below `INDEX_THRESHOLD` rows, IVF-PQ at or above it,
full-text indexes on ``chosen``, ``rejected`` and ``context_text``, a B-tree on ``pair_id``, then `optimize()`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.annotate.embed_indexes import INDEX_THRESHOLD, index_report, refresh_indexes, stale_indexes
from seal.annotate.embed_texts import (
    COMMIT_SECONDS,
    COMMIT_TEXTS,
    TRUNCATION,
    WORK_COLUMN,
    AfterCommit,
    TextVectors,
)
from seal.catalog.embeddings import (
    CONTEXT_TEXT,
    FIELDS,
    PAIR_DEFINITION,
    STAGE,
    TEXT_FIELDS,
    context_texts,
    emb_column,
    latest_runs,
    pair_vectors,
    vectors_array,
)
from seal.distributed import EngineOptions, engine_options, runner_for
from seal.engines.encoder import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, ResolvedModel, TextEncoder, resolve_model
from seal.errors import SealError
from seal.pipeline import PENDING, STALE, UP_TO_DATE, Plan, register_stage, run_stage
from seal.recipe import Recipe
from seal.spec import Spec
from seal.store import RunRecord, Store, now_utc

STAGE_VERSION = 1

__all__ = [
    "DEFAULT_MODEL",
    "INDEX_THRESHOLD",
    "WORK_COLUMN",
    "EmbedOptions",
    "EmbedResult",
    "EmbedStage",
    "EmbedWork",
    "ResolvedModel",
    "TextEncoder",
    "build_embed",
    "check_fields",
    "embed",
    "refresh_indexes",
    "resolve_model",
]


def check_fields(fields: Sequence[str] | str | None) -> tuple[str, ...]:
    """Validated fields in canonical order; a comma-separated string is accepted."""
    if fields is None:
        return FIELDS
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown or not fields:
        raise SealError(
            f"unknown embedding field(s): {', '.join(unknown) or '(none given)'}", hint=f"use {', '.join(FIELDS)}"
        )
    return tuple(f for f in FIELDS if f in fields)


# -- options, plan and result ------------------------------------------------------------------------
@dataclass(frozen=True)
class EmbedOptions:
    """What `seal embed` and a spec `embeddings` entry say."""

    model: str = DEFAULT_MODEL
    fields: tuple[str, ...] = FIELDS
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str = "auto"
    dtype: str = "auto"
    max_seq_length: int | None = None

    @classmethod
    def from_entry(cls, entry: dict[str, Any], spec: Spec | None = None) -> EmbedOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(entry) - known)
        if unknown:
            raise SealError(f"unknown embeddings option(s): {', '.join(unknown)}")
        values = dict(entry)
        if "model" in values and spec is not None:
            values["model"] = spec.resolve(values["model"])
        if "fields" in values:
            values["fields"] = check_fields(values["fields"])
        return cls(**values)


@dataclass(frozen=True)
class EmbedWork:
    """What `EmbedStage.plan` found to do (the `work` of its Plan), done exactly by `EmbedStage.run`."""

    pairs_version: int  # the version of `pairs` the plan read
    total: int  # pairs in the store
    todo_ids: pa.Array  # pairs lacking some requested column under this recipe, in table order
    fresh: Mapping[str, bool]  # field -> its column holds this recipe (its vectors are kept)
    rows: Mapping[str, int]  # requested field -> rows this run computes for it
    stale: Mapping[str, str]  # requested field -> why its column is replaced
    changed: tuple[str, ...]  # recipe params that differ from the last runs of stale columns
    context_text: bool  # `context_text` is to be (re)written
    indexes: tuple[str, ...] = ()  # index changes, when nothing is to embed

    @property
    def todo(self) -> int:
        return len(self.todo_ids)


@dataclass
class EmbedResult:
    """What one `embed` call did; `to_json()` is the shape in schemas/cli/embed.schema.json."""

    status: str  # done | up-to-date
    reason: str
    model: str
    model_source: str
    fields: list[str]
    columns: dict[str, dict[str, Any]]  # field -> {column, fingerprint, status, rows_written}
    device: str
    dtype: str
    batch_size: int
    dim: int | None = None
    max_seq_length: int | None = None
    pairs_total: int = 0
    pairs_embedded: int = 0  # pairs (re)computed by this call
    pairs_kept: int = 0  # already in every requested column with this recipe
    texts_needed: int = 0  # texts of the pairs to embed (before deduplication)
    texts_unique: int = 0
    texts_reused: int = 0  # taken from a fresh stored column (no encoding)
    texts_resumed: int = 0  # encoded by an interrupted run and kept
    texts_encoded: int = 0
    texts_truncated: int = 0
    commits: int = 0
    pairs_version: int | None = None
    run_ids: list[str] = field(default_factory=list)
    indexes: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    texts_per_second: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.status == "up-to-date":
            return f"embeddings up to date ({self.reason})"
        return (
            f"embedded {self.pairs_embedded:,} pairs with {self.model}: {self.texts_encoded:,} texts encoded "
            f"({self.texts_unique:,} unique of {self.texts_needed:,}, {self.texts_resumed:,} resumed, "
            f"{self.texts_reused:,} reused) in {self.seconds:.1f}s"
        )


# -- the stage ----------------------------------------------------------------------------------------
class EmbedStage:
    """Embed every pair's context, responses and the pair; resumable, idempotent, never mixes recipes."""

    def __init__(
        self,
        options: EmbedOptions | None = None,
        *,
        index: bool = True,
        index_threshold: int = INDEX_THRESHOLD,
        commit_texts: int = COMMIT_TEXTS,
        commit_seconds: float = COMMIT_SECONDS,
        after_commit: AfterCommit | None = None,
        encoder: TextEncoder | None = None,
        engine: EngineOptions | None = None,
    ):
        """`engine`: where the encoder runs (local, the default, or Ray actors each holding this encoder)."""
        self.options = options or EmbedOptions()
        self.engine = engine or EngineOptions()
        self.engine_stats: dict[str, Any] = {}
        self.fields = check_fields(self.options.fields)
        self.index = index
        self.index_threshold = int(index_threshold)
        self.commit_texts = max(1, int(commit_texts))
        self.commit_seconds = float(commit_seconds)
        self.after_commit = after_commit
        self.encoder = encoder or TextEncoder(
            self.options.model,
            device=self.options.device,
            dtype=self.options.dtype,
            batch_size=self.options.batch_size,
            max_seq_length=self.options.max_seq_length,
        )
        name = Path(self.encoder.resolved.model).name or self.encoder.resolved.model
        self.recipe = Recipe(
            STAGE,
            name,
            {"fields": list(self.fields), **{f: self.field_recipe(f).to_dict() for f in self.fields}},
            STAGE_VERSION,
        )

    # -- recipes ----------------------------------------------------------------------------------
    def field_recipe(self, field_name: str) -> Recipe:
        params = dict(self.encoder.recipe_params())
        params["field"] = field_name
        if field_name == "pair":
            params["definition"] = PAIR_DEFINITION
            params["components"] = {f: TRUNCATION[f] for f in TEXT_FIELDS}
        else:
            params["truncation"] = TRUNCATION[field_name]
        return Recipe(STAGE, field_name, params, STAGE_VERSION)

    def _needed_text_fields(self) -> tuple[str, ...]:
        if "pair" in self.fields:
            return TEXT_FIELDS
        return tuple(f for f in TEXT_FIELDS if f in self.fields)

    # -- plan -------------------------------------------------------------------------------------
    def find_work(self, store: Store) -> EmbedWork:
        """Which pairs lack which requested column under this recipe (and which columns are stale)."""
        version = store.version()
        names = set(store.schema().names)
        runs = latest_runs(store)
        fresh: dict[str, bool] = {}
        stale: dict[str, str] = {}
        all_changed: set[str] = set()
        for f in dict.fromkeys((*self.fields, *self._needed_text_fields())):
            requested = f in self.fields
            col = emb_column(f)
            run = runs.get(f)
            expected = self.field_recipe(f)
            if col not in names:
                fresh[f] = False
            elif run is None:
                fresh[f] = False
                if requested:
                    stale[f] = f"`{col}` exists but no run recorded how it was made"
            elif run["fingerprint"] != expected.fingerprint():
                fresh[f] = False
                if requested:
                    old = dict(run["recipe"].get("params", {}))
                    new = dict(expected.params)
                    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                    all_changed.update(changed)
                    what = ", ".join(changed) or "stage version"
                    stale[f] = f"`{col}` was made with another recipe (changed: {what})"
            else:
                fresh[f] = True
        read = ["pair_id"] + [emb_column(f) for f in self.fields if fresh[f]]
        if CONTEXT_TEXT in names:
            read.append(CONTEXT_TEXT)
        table = store.read(read, version=version)
        total = table.num_rows
        todo = np.zeros(total, dtype=bool)
        rows: dict[str, int] = {}
        for f in self.fields:
            if fresh[f]:
                missing = ~np.asarray(table.column(emb_column(f)).is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            else:
                missing = np.ones(total, dtype=bool)
            rows[f] = int(missing.sum())
            todo |= missing
        ctx_missing = int(table.column(CONTEXT_TEXT).null_count) if CONTEXT_TEXT in names else total
        todo_ids = table.column("pair_id").combine_chunks().filter(pa.array(todo))
        context_text = "context" in self.fields and (ctx_missing > 0 or len(todo_ids) > 0)
        return EmbedWork(version, total, todo_ids, fresh, rows, stale, tuple(sorted(all_changed)), context_text)

    def plan(self, store: Store) -> Plan:
        """Pending (pairs to embed, or indexes to refresh), stale (another recipe made a column) or up to date;
        the Plan's `work` is the `EmbedWork` that `run` does."""
        fingerprint = self.recipe.fingerprint()
        name = self.recipe.name
        columns = ", ".join(emb_column(f) for f in self.fields)
        estimate: dict[str, Any] = {"fields": list(self.fields), "model": self.encoder.resolved.model}
        if not store.exists():
            return Plan(STAGE, name, fingerprint, PENDING, "no pairs in the store yet", None, columns, estimate)
        work = self.find_work(store)
        todo = work.todo
        estimate["texts"] = todo * len(self._needed_text_fields())
        estimate["index"] = "ivf_pq" if work.total >= self.index_threshold else "exact"
        if work.stale:
            reason = "; ".join(work.stale.values()) + f": re-embedding {todo:,} pairs"
            return Plan(STAGE, name, fingerprint, STALE, reason, todo, columns, estimate, work.changed, work=work)
        if todo == 0 and not work.context_text:
            reason = f"all {work.total:,} pairs embedded with this recipe"
            indexes = tuple(stale_indexes(store, self.index_threshold)) if self.index else ()
            if indexes:
                work = replace(work, indexes=indexes)
                reason += f"; indexes to refresh: {', '.join(indexes)}"
                return Plan(STAGE, name, fingerprint, PENDING, reason, 0, columns, estimate, work=work)
            return Plan(STAGE, name, fingerprint, UP_TO_DATE, reason, 0, columns, estimate, work=work)
        parts = [f"{todo:,} of {work.total:,} pairs to embed"]
        new = [emb_column(f) for f in self.fields if not work.fresh[f]]
        if new:
            parts.append(f"not embedded yet: {', '.join(new)}")
        return Plan(STAGE, name, fingerprint, PENDING, "; ".join(parts), todo, columns, estimate, work=work)

    # -- run --------------------------------------------------------------------------------------
    def _checked_work(self, store: Store, plan: Plan) -> EmbedWork:
        store.require()
        work = plan.work
        if not isinstance(work, EmbedWork) or plan.fingerprint != self.recipe.fingerprint():
            raise SealError("this plan was not made by this embed stage", hint="plan again")
        now = store.version()
        if now != work.pairs_version:
            raise SealError(
                f"the store changed since the embed plan was made (pairs version {work.pairs_version}, now {now})",
                hint="plan again: rerun the command",
            )
        return work

    def _new_result(self, work: EmbedWork | None, status: str, reason: str) -> EmbedResult:
        """The result of a run that embeds `work` (filled in as it goes), or of one with nothing to do."""
        enc = self.encoder
        total = work.total if work is not None else 0
        return EmbedResult(
            status=status,
            reason=reason,
            model=enc.resolved.model,
            model_source=enc.resolved.source,
            fields=list(self.fields),
            columns={},
            device=enc.device,
            dtype=enc.dtype,
            batch_size=enc.batch_size,
            max_seq_length=enc.max_seq_length,
            pairs_total=total,
            pairs_kept=total - (work.todo if work is not None else 0),
        )

    def up_to_date(self, store: Store, plan: Plan) -> EmbedResult:
        """The result when the plan has nothing to do: every column current, the indexes as they are."""
        t0 = time.perf_counter()
        work = plan.work if isinstance(plan.work, EmbedWork) else None
        result = self._new_result(work, "up-to-date", plan.reason)
        for f in self.fields:
            result.columns[f] = self._column_status(f, "up-to-date", 0)
        if self.index and store.exists():
            result.indexes = index_report(store, self.index_threshold)
        result.seconds = round(time.perf_counter() - t0, 3)
        return result

    def _column_status(self, field_name: str, status: str, rows: int) -> dict[str, Any]:
        fingerprint = self.field_recipe(field_name).fingerprint()
        return {"column": emb_column(field_name), "fingerprint": fingerprint, "status": status, "rows_written": rows}

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> EmbedResult:
        """Embed the pairs of the plan, checkpoint encoded texts, write the columns, record the runs, index."""
        work = self._checked_work(store, plan)
        started, t0 = now_utc(), time.perf_counter()
        if work.todo == 0 and not work.context_text:  # only the indexes need a refresh
            result = self._new_result(work, "up-to-date", f"all {work.total:,} pairs embedded with this recipe")
            for f in self.fields:
                result.columns[f] = self._column_status(f, "up-to-date", 0)
            if self.index:
                result.indexes = refresh_indexes(store, self.index_threshold, rebuild=False)
            result.seconds = round(time.perf_counter() - t0, 3)
            return result

        enc = self.encoder
        stats0, load0, encode0 = dict(enc.stats), enc.load_seconds, enc.encode_seconds  # an encoder may be reused
        result = self._new_result(work, "done", "")
        timings: dict[str, float] = {}
        vectors: dict[str, np.ndarray] = {}
        rows = None
        runner = runner_for(self.engine) if work.todo else None
        texts = TextVectors(
            store,
            enc,
            commit_texts=self.commit_texts,
            commit_seconds=self.commit_seconds,
            after_commit=self.after_commit,
            runner=runner,
        )
        if work.todo:
            t_read = time.perf_counter()
            rows = self._read_rows(store, work)
            timings["read"] = time.perf_counter() - t_read
            vectors = texts.vectors(rows, self._needed_text_fields(), work.fresh, show_progress)
            timings["encode_wall"] = texts.encode_wall
            counts = texts.counts
            result.texts_needed, result.texts_unique = counts.needed, counts.unique
            result.texts_reused, result.texts_resumed, result.commits = counts.reused, counts.resumed, counts.commits
        t_write = time.perf_counter()
        version = self._write_columns(store, work, rows, vectors)
        timings["write"] = time.perf_counter() - t_write
        result.pairs_version = version
        result.pairs_embedded = work.todo
        result.dim = next(iter(vectors.values())).shape[1] if vectors else None
        if runner is not None:
            self.engine_stats = runner.provenance()
            timings["ray_start"] = runner.start_seconds
        result.texts_encoded = int(enc.stats["texts"] - stats0["texts"])
        if runner is not None:  # the encoder's counters live in the actors
            result.texts_encoded = result.texts_unique - result.texts_resumed
        result.texts_truncated = int(enc.stats["truncated"] - stats0["truncated"])
        encode = enc.encode_seconds - encode0
        timings["load_model"] = enc.load_seconds - load0
        timings["encode"] = encode
        if result.texts_encoded and encode > 0:
            result.texts_per_second = round(result.texts_encoded / encode, 2)
        self._record_runs(
            store, work, result, version, started, {k: v - stats0.get(k, 0) for k, v in enc.stats.items()}
        )
        store.drop_work_table(WORK_COLUMN)
        if self.index:
            t_idx = time.perf_counter()
            result.indexes = refresh_indexes(
                store, self.index_threshold, rebuild=False
            )  # rewritten columns lost theirs
            timings["index"] = time.perf_counter() - t_idx
        result.seconds = round(time.perf_counter() - t0, 3)
        timings["total"] = result.seconds
        result.timings = {k: round(v, 3) for k, v in timings.items()}
        result.reason = f"embedded {result.pairs_embedded:,} pairs" + (
            f" (replacing {', '.join(emb_column(f) for f in work.stale)})" if work.stale else ""
        )
        return result

    def _read_rows(self, store: Store, work: EmbedWork) -> pa.Table:
        """The texts of the planned pairs (and the vectors of fresh text fields), in table order."""
        columns = ["pair_id", "context", "chosen", "rejected"]
        columns += [emb_column(f) for f in self._needed_text_fields() if work.fresh.get(f)]
        rows = store.read(columns, pc.field("pair_id").isin(work.todo_ids))
        if rows.num_rows != work.todo:
            raise SealError(
                f"the store changed since the embed plan was made ({work.todo:,} pairs planned, "
                f"{rows.num_rows:,} found)",
                hint="plan again: rerun the command",
            )
        return rows

    def _write_columns(
        self, store: Store, work: EmbedWork, rows: pa.Table | None, vectors: dict[str, np.ndarray]
    ) -> int | None:
        """Write each requested column from the values kept (same recipe) plus the new ones, then
        `context_text`. Returns the version of `pairs` after the last write."""
        version = None
        if rows is not None:
            todo_ids = rows.column("pair_id").combine_chunks()
            if "pair" in self.fields:
                vectors["pair"] = pair_vectors(vectors["context"], vectors["chosen"], vectors["rejected"])
            for f in self.fields:
                col = emb_column(f)
                new = pa.table({"pair_id": todo_ids, col: vectors_array(vectors[f])})
                parts = []
                if work.fresh[f] and work.todo < work.total:
                    kept = store.read(["pair_id", col])
                    keep = pc.and_(
                        pc.is_valid(kept.column(col)), pc.invert(pc.is_in(kept.column("pair_id"), value_set=todo_ids))
                    )
                    parts.append(kept.filter(keep).cast(new.schema))
                parts.append(new)
                version = store.materialize_column(col, pa.concat_tables(parts))
        if work.context_text:
            full = store.read(["pair_id", "context"])
            values = pa.table({"pair_id": full.column("pair_id"), CONTEXT_TEXT: context_texts(full.column("context"))})
            version = store.materialize_column(CONTEXT_TEXT, values)
        return version

    def _record_runs(
        self,
        store: Store,
        work: EmbedWork,
        result: EmbedResult,
        version: int | None,
        started: Any,
        encoding: dict[str, int],
    ) -> None:
        """One run per requested field, each with the version after the stage's last write (the columns were
        written together)."""
        provenance = {
            **self.encoder.provenance(),
            "engine": self.engine_stats or self.engine.to_json(),
            "pairs_embedded": result.pairs_embedded,
            "texts_needed": result.texts_needed,
            "texts_unique": result.texts_unique,
            "texts_encoded": result.texts_encoded,
            "texts_resumed": result.texts_resumed,
            "texts_reused": result.texts_reused,
            "texts_truncated": result.texts_truncated,
            "commits": result.commits,
            "encoding": encoding,
        }
        for f in self.fields:
            if not work.todo:  # only context_text was filled in: the vectors did not change
                result.columns[f] = self._column_status(f, "up-to-date", 0)
                continue
            replaced = f in work.stale
            record = RunRecord.finished(
                STAGE,
                f,
                self.field_recipe(f),
                {**provenance, "column": emb_column(f), "replaced": replaced},
                rows_written=work.rows[f],
                pairs_version=version,
                started_at=started,
            )
            store.record_run(record)
            result.run_ids.append(record.run_id)
            result.columns[f] = self._column_status(f, "replaced" if replaced else "written", work.rows[f])


def embed(
    store: Store,
    model: str | None = None,
    *,
    fields: Sequence[str] | str | None = None,
    batch_size: int | str = DEFAULT_BATCH_SIZE,
    device: str = "auto",
    dtype: str = "auto",
    max_seq_length: int | None = None,
    index: bool = True,
    index_threshold: int = INDEX_THRESHOLD,
    show_progress: bool = False,
    commit_texts: int = COMMIT_TEXTS,
    commit_seconds: float = COMMIT_SECONDS,
    after_commit: AfterCommit | None = None,
    encoder: TextEncoder | None = None,
    engine: EngineOptions | str | None = None,
) -> EmbedResult:
    """Embed every pair that lacks the ``emb_<field>`` columns under this recipe (see `seal embed --help`;
    `batch_size` "auto" is 64 texts): build the stage, plan it and run that plan (`seal.pipeline.run_stage`)."""
    store.require()
    options = EmbedOptions(
        model=model or DEFAULT_MODEL,
        fields=check_fields(fields),
        batch_size=DEFAULT_BATCH_SIZE if batch_size == "auto" else int(batch_size),
        device=device,
        dtype=dtype,
        max_seq_length=max_seq_length,
    )
    stage = EmbedStage(
        options,
        index=index,
        index_threshold=index_threshold,
        commit_texts=commit_texts,
        commit_seconds=commit_seconds,
        after_commit=after_commit,
        encoder=encoder,
        engine=engine_options(engine),
    )
    outcome = run_stage(store, stage, show_progress=show_progress)
    return outcome.result if outcome.result is not None else stage.up_to_date(store, outcome.plan)


@register_stage(STAGE, section="embeddings", order=30)
def build_embed(entry: dict[str, Any], spec: Spec) -> EmbedStage:
    entry = dict(entry)
    engine = engine_options(entry.pop("engine", None) or spec.document.get("engine"))
    return EmbedStage(EmbedOptions.from_entry(entry, spec), engine=engine)
