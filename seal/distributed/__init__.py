"""Where a stage's engine runs: `local` (in this process, the default) or `ray` (Ray Data actors).

This room knows no store and no stage. A stage hands it what to compute and gets Arrow tables back:

- `EngineOptions` (`--engine`, `--ray-address`, `--ray-actors`, ...): which runner, and how big;
- `runner_for(options)`: None for the local engine, else a `RayRunner`;
- `RayRunner.map(make_fn, dataset)`: ships `make_fn` (a picklable factory holding the same engine object the
  local path uses: the reward model, the text encoder, the labeler) to a pool of Ray actors, each of which
  calls it once and then maps batches of the dataset through the function it returned; the results stream
  back as they finish, so the stage checkpoints them as the local path does;
- `RayRunner.from_arrow(tables)`: a Ray Dataset of tables made on the driver (texts to embed, variants).

The store hands out the Ray Dataset of planned rows (`Store.ray_dataset`, lance-ray) and commits the results
(seal owns the commit: see seal.store.merge). Ray is optional: `import seal` and the local engine never
import it, and asking for `--engine ray` without it installed is a one-line error with the pip command.
"""

from __future__ import annotations

from seal.distributed.options import (
    ENGINES,
    EngineOptions,
    current_engine,
    engine_options,
    require_ray,
    use_engine,
)

__all__ = ["ENGINES", "EngineOptions", "current_engine", "engine_options", "require_ray", "runner_for", "use_engine"]


def runner_for(options: EngineOptions | None):
    """The runner for `options`: None for the local engine, a started `RayRunner` for `ray`."""
    if options is None or options.kind == "local":
        return None
    from seal.distributed.ray_runner import RayRunner

    return RayRunner.start(options)
