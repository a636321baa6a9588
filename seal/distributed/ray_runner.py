"""The Ray runner: a pool of Ray Data actors, each holding one engine, mapping Arrow batches.

What holds on Ray 2.60 (measured on a 2-core machine): token auth is on by default, so a local cluster is
started with ``RAY_AUTH_MODE=disabled``; actors reserve `cpus_per_actor` CPUs and the pool leaves one CPU free
for the Lance reads (a pool that takes every CPU starves its own read tasks); results are streamed back with
`iter_batches` as actors finish them, so the stage checkpoints each batch and a killed run resumes. Ray is
imported only here, and only when the `ray` engine is asked for.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from seal.distributed.options import EngineOptions, require_ray
from seal.errors import SealError

BatchFn = Callable[[pa.Table], pa.Table]
_ORIGINAL = re.compile(r"\n([A-Za-z_][\w.]*(?:Error|Exception)[^\n]*)\n\nThe above exception was the direct cause")
MakeFn = Callable[[], BatchFn]  # picklable; called once per actor


ERROR_COLUMN = "__seal_engine_error__"  # a result batch that carries an engine's SealError back to the driver


class EngineActor:
    """A Ray Data actor: builds its engine function once (`make_fn()`), then maps batches through it. A
    context-manager function (an LLM client) is entered for the actor's life. A `SealError` (a model that does
    not load, a labeler that refuses) comes back as a one-row error batch, which `RayRunner.map` raises as it
    was: Ray's own wrapping would keep only its text."""

    def __init__(self, make_fn: MakeFn):
        self.error: SealError | None = None
        try:
            self.fn = make_fn()
            if hasattr(self.fn, "__enter__"):
                self.fn = self.fn.__enter__()  # type: ignore[union-attr]
        except SealError as err:
            self.error = err

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.error is None:
            try:
                return self.fn(batch)
            except SealError as err:
                self.error = err
        return pa.table({ERROR_COLUMN: [pickle.dumps((type(self.error), self.error.message, self.error.hint))]})


def raise_carried(batch: pa.Table) -> None:
    """Raise the SealError an error batch carries (see EngineActor)."""
    if ERROR_COLUMN in batch.column_names:
        kind, message, hint = pickle.loads(batch.column(ERROR_COLUMN)[0].as_py())
        err = kind.__new__(kind)
        Exception.__init__(err, message)
        err.message, err.hint = message, hint
        raise err


@dataclass
class RayRunner:
    """A connection to a Ray cluster and the actor-pool settings of one stage."""

    options: EngineOptions
    started_here: bool = False
    start_seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, options: EngineOptions) -> RayRunner:
        """Connect to `options.address`, or start a local Ray (token auth off); reuse a running one."""
        require_ray()
        import ray

        t0 = time.perf_counter()
        started = False
        if not ray.is_initialized():
            if options.address is None:
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            try:
                with warnings.catch_warnings():  # Lance warns in each process Ray forks; Ray execs at once
                    warnings.filterwarnings("ignore", message=".*not fork-safe.*")
                    ray.init(address=options.address, include_dashboard=False, log_to_driver=False)
            except Exception as err:  # a bad address, a cluster that refuses us
                raise SealError(
                    f"cannot start or reach Ray{f' at {options.address}' if options.address else ''}: "
                    f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}",
                    hint="check --ray-address (ray://host:10001 or auto), or leave it out for a local Ray",
                ) from None
            started = True
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False
        return cls(options, started, round(time.perf_counter() - t0, 3))

    # -- sizing ---------------------------------------------------------------------------------------
    def resources(self) -> tuple[float, float]:
        """(CPUs, GPUs) of the cluster."""
        import ray

        total = ray.cluster_resources()
        return float(total.get("CPU", 1.0)), float(total.get("GPU", 0.0))

    def actor_plan(self, use_gpu: bool) -> tuple[int, float, float]:
        """(actors, CPUs per actor, GPUs per actor)."""
        cpus, gpus = self.resources()
        o = self.options
        per_gpu = 1.0 / o.actors_per_gpu if use_gpu and gpus > 0 else 0.0
        if o.actors is not None:
            actors = o.actors
        elif per_gpu:
            actors = max(1, int(gpus * o.actors_per_gpu))
        else:
            actors = max(1, math.floor(max(cpus - 1.0, o.cpus_per_actor) / o.cpus_per_actor))
        return actors, o.cpus_per_actor, per_gpu

    # -- running ---------------------------------------------------------------------------------------
    def from_arrow(self, tables: Iterable[pa.Table]) -> Any:
        """A Ray Dataset of tables made on the driver, one block each."""
        import ray

        blocks = [t for t in tables if t.num_rows]
        return ray.data.from_arrow(blocks) if blocks else None

    def map(
        self,
        make_fn: MakeFn,
        dataset: Any,
        *,
        batch_rows: int,
        use_gpu: bool = False,
    ) -> Iterator[pa.Table]:
        """Map `dataset` through `make_fn()` on a pool of actors; yield each result batch as it arrives."""
        from ray.data import ActorPoolStrategy

        if dataset is None:
            return
        actors, cpus, gpus = self.actor_plan(use_gpu)
        rows = int(self.options.batch_rows or batch_rows)
        self.stats.update({"actors": actors, "cpus_per_actor": cpus, "gpus_per_actor": gpus, "batch_rows": rows})
        mapped = dataset.map_batches(
            EngineActor,
            fn_constructor_args=(make_fn,),
            batch_format="pyarrow",
            batch_size=rows,
            compute=ActorPoolStrategy(size=actors),
            num_cpus=cpus,
            num_gpus=gpus or None,
        )
        batches = iter(mapped.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=0))
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as err:  # an engine error on an actor: the engine's own one-line error
                raise engine_error(err) from None
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            raise_carried(table)
            yield table

    def provenance(self) -> dict[str, Any]:
        """What the run used (provenance, never a recipe)."""
        return {**self.options.to_json(), **self.stats, "ray_start_seconds": self.start_seconds}


def engine_error(err: BaseException) -> SealError:
    """The error an actor raised, unwrapped from Ray's wrappers: a `SealError` as it is, anything else as one
    line naming its type."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SealError):
            return current
        current = getattr(current, "cause", None) or current.__cause__
    text = str(err)
    original = _ORIGINAL.search(text)  # the actor's own exception, before Ray's "direct cause" wrapper
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = original.group(1) if original else (lines[-1] if lines else type(err).__name__)
    return SealError(
        f"the Ray engine failed: {last.strip()[:300]}",
        hint="rerun with --engine local to see the engine's own error, or read the Ray logs",
    )
