"""What ingest does with each raw row, split into the work that needs no other row (the format adapter, the text
checks, the pair id and content hash, the pairs' Arrow columns: `row_actions`, `chunk_pairs`) and the checks
across rows that `Builder.merge` does in order (duplicate keys and contents).

The first kind is most of the CPU of an ingest, and rows do not depend on each other there, so `RowPipeline`
runs it, a chunk of `CHUNK_ROWS` rows at a time, in a pool of worker processes once a source has shown more
than `PARALLEL_AFTER_ROWS` rows: chunks go out in order and come back, as Arrow tables, in order; the main
process merges them exactly as it merges the chunks it made itself for the first rows. The pairs, flags,
quarantine and their order are therefore the same whichever process made them (tests/test_scale_paths.py
ingests with and without the pool and compares the tables). Workers: `SEAL_INGEST_WORKERS` (1: none), else
one per CPU, at most 8. JSON lines reach the workers undecoded (`RawRow.text`). On a machine whose CPUs are
busy with other work the pool can be slower than one process (it costs about 15 % more CPU in all). Unpaired
rows, which wait for their counterparts, are adapted one by one (`apply_actions`).
"""

from __future__ import annotations

import itertools
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from seal import schema
from seal.engines.process_pool import spawn_pool
from seal.ingest.annotators import adapt_votes
from seal.ingest.builder import Builder, Chunk, content_hash, pair_id_for, text_problem
from seal.ingest.formats import ADAPTERS
from seal.ingest.mapping import Canonical, ColumnMap, RowProblem
from seal.ingest.rated import adapt_rated
from seal.ingest.readers import RawRow, decode_row
from seal.ingest.unpaired import Keyed, adapt_unpaired

PARALLEL_AFTER_ROWS = 20_000  # rows adapted in-process before a pool is worth its start-up (about a second)
CHUNK_ROWS = 2_000  # rows per task sent to a worker
MAX_WORKERS = 8
Action = tuple[Any, ...]


@dataclass(frozen=True)
class RowContext:
    """Everything `row_actions` needs besides the row (picklable: it travels to the workers)."""

    dataset: str
    source: str
    run_id: str
    fmt: str
    mapping: ColumnMap
    key_column: str | None
    used: frozenset[str | None]
    check_unused: bool


def _non_empty(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | dict):
        return bool(value)
    return True


def record_adapter(fmt: str, mapping: ColumnMap) -> Callable[[Mapping[str, Any]], Any]:
    """The function that adapts one record of this format (pairs, several or none per record)."""
    if fmt == "unpaired":
        return lambda record: adapt_unpaired(record, mapping)
    if fmt == "pairwise" and mapping.label_from:
        return lambda record: adapt_votes(record, mapping)
    if fmt == "rated":
        return lambda record: adapt_rated(record, mapping)
    adapter = ADAPTERS[fmt]
    return lambda record: adapter(record, mapping)


def pair_action(dataset: str, key: str, canonical: Canonical, problem_key: str, index: int | None = None) -> Action:
    """A pair to add under `key`, with its id and content hash, or the text problem that quarantines it."""
    problem = text_problem(canonical)
    if problem is not None:
        return ("problem", problem[0], problem[1], problem_key)
    digest = content_hash(canonical.context, canonical.chosen, canonical.rejected)
    return ("pair", key, canonical, index, pair_id_for(dataset, key), digest)


def row_actions(row: RawRow, ctx: RowContext, adapt: Callable[[Mapping[str, Any]], Any]) -> list[Action]:
    """What to do with one row, in order: ("unused", names), ("problem", reason, detail, key|None),
    ("pair", key, canonical, index, pair_id, digest), ("skipped", counts), ("wait", key, completion).
    `adapt` is `record_adapter(ctx.fmt, ctx.mapping)`."""
    record = row.record
    if record is None:
        return [("problem", *row.problem, None)]  # type: ignore[misc]
    actions: list[Action] = []
    if ctx.check_unused:
        names = [name for name, value in record.items() if name not in ctx.used and _non_empty(value)]
        if names:
            actions.append(("unused", names))
    try:
        made = adapt(record)
    except RowProblem as problem:
        actions.append(("problem", problem.reason, problem.detail, None))
        return actions
    key = row.key
    if ctx.key_column is not None:
        value = record.get(ctx.key_column)
        if value is None or (isinstance(value, str) and not value.strip()):
            actions.append(("problem", "missing_value", f"the key column `{ctx.key_column}` is empty", None))
            return actions
        key = f"{ctx.key_column}={value}"
    if ctx.fmt == "unpaired":
        actions.append(("wait", key, made))
    elif isinstance(made, Canonical):
        actions.append(pair_action(ctx.dataset, key, made, row.key))
    else:
        actions.append(("skipped", made.skipped))
        for suffix, canonical in made.pairs:
            actions.append(pair_action(ctx.dataset, key + suffix, canonical, row.key + suffix))
    return actions


def chunk_pairs(rows: list[RawRow], ctx: RowContext) -> Chunk:
    """The pairs and problems of a chunk of rows (what a worker process runs), for `Builder.merge`: the pairs'
    columns built here, as Arrow (cheap to send back), their duplicate checks left to the merge."""
    adapt = record_adapter(ctx.fmt, ctx.mapping)
    rows = [decode_row(row) for row in rows]  # JSON lines read undecoded are decoded here
    local = Builder(ctx.dataset, ctx.source, ctx.fmt, ctx.run_id)
    chunk = Chunk(schema.PAIRS.empty_table(), [], [], [])
    for pos, row in enumerate(rows):
        for action in row_actions(row, ctx, adapt):
            kind = action[0]
            if kind == "pair":
                _, key, canonical, index, pair_id, digest = action
                chunk.events.append((pos, len(chunk.pair_ids), key))
                chunk.pair_ids.append(pair_id)
                chunk.digests.append(digest)
                local.append_pair(row, key, canonical, index, pair_id, digest, False)
            elif kind == "problem":
                _, reason, detail, key = action
                chunk.events.append((pos, None, local.problem_row(row, reason, detail, key=key)))
            elif kind == "unused":
                chunk.unused.update(action[1])
            elif kind == "skipped":
                chunk.skipped.update(action[1])
            else:  # pragma: no cover - unpaired rows never come here
                raise ValueError(f"unexpected row action {kind}")
    chunk.table, chunk.agreement = local.table(), local.agreement
    return chunk


def apply_actions(
    builder: Builder, row: RawRow, actions: list[Action], unused: Counter[str] | None, waiting: list[Keyed]
) -> None:
    """Carry out one row's actions on the builder, in order."""
    for action in actions:
        kind = action[0]
        if kind == "pair":
            _, key, canonical, index, pair_id, digest = action
            builder.add_pair(row, key, canonical, index=index, pair_id=pair_id, digest=digest)
        elif kind == "problem":
            _, reason, detail, key = action
            builder.add_problem(row, reason, detail, key=key)
        elif kind == "unused":
            if unused is not None:
                unused.update(action[1])
        elif kind == "skipped":
            builder.skipped.update(action[1])
        else:  # wait: an unpaired row, paired by prompt once every row is read
            waiting.append(Keyed(action[1], row.index, action[2], row))


def ingest_workers() -> int:
    """Worker processes for the row work: $SEAL_INGEST_WORKERS, else one per CPU (at most MAX_WORKERS); a
    pool needs two. The main process, which reads the source and merges the chunks, needs about a third of
    a worker's CPU, so on two CPUs the pool still pays (18 s against 26 s at 160,800 pairs, quiet machine)."""
    given = os.environ.get("SEAL_INGEST_WORKERS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


class RowPipeline:
    """`chunk_pairs` of consecutive chunks of rows, in order: in-process for the first `PARALLEL_AFTER_ROWS`
    rows, then (when `parallel` and more than one worker is allowed) in a spawn process pool, a few chunks
    ahead of the one being merged. Use as a context manager (the pool is shut down on exit)."""

    def __init__(self, ctx: RowContext, parallel: bool = True, workers: int | None = None):
        self.ctx = ctx
        self.adapt = record_adapter(ctx.fmt, ctx.mapping)
        self.workers = ingest_workers() if workers is None else workers
        self.parallel = parallel and self.workers > 1
        self._pool: ProcessPoolExecutor | None = None
        self.chunks_in_workers = 0

    def __enter__(self) -> RowPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, rows: Iterable[RawRow]) -> Iterator[tuple[list[RawRow], Chunk]]:
        """(rows, their Chunk) for consecutive chunks of `rows`, in order."""
        it = iter(rows)
        inline = 0
        pending: deque[tuple[list[RawRow], Future[Chunk] | None]] = deque()
        while True:
            chunk = list(itertools.islice(it, CHUNK_ROWS))
            if chunk:
                in_pool = self.parallel and inline >= PARALLEL_AFTER_ROWS
                inline += 0 if in_pool else len(chunk)
                pending.append((chunk, self._submit(chunk) if in_pool else None))
            while pending and (not chunk or pending[0][1] is None or len(pending) > 2 * self.workers):
                done, future = pending.popleft()
                yield done, self._result(done, future)
            if not chunk:
                return

    def _submit(self, chunk: list[RawRow]) -> Future[Chunk] | None:
        """The chunk's work in the pool (started on first use), or None to do it in-process."""
        if not self.parallel:
            return None
        try:
            if self._pool is None:
                self._pool = spawn_pool(self.workers)
            return self._pool.submit(chunk_pairs, chunk, self.ctx)
        except (OSError, RuntimeError, BrokenProcessPool):  # no processes here: carry on in-process
            self.parallel = False
            return None

    def _result(self, chunk: list[RawRow], future: Future[Chunk] | None) -> Chunk:
        if future is not None:
            try:
                result = future.result()
                self.chunks_in_workers += 1
                return result
            except BrokenProcessPool:  # a worker died (killed, out of memory): redo its work here
                self.parallel = False
        return chunk_pairs(chunk, self.ctx)
