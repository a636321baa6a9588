"""The engine options that `seal score|embed|label|perturb` share (`--engine`, `--ray-*`)."""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from seal.errors import SealError

ENGINES = ("local", "ray")
RAY_EXTRA_HINT = "pip install 'seal-audit[ray]'  (ray[data] and lance-ray)"


@dataclass(frozen=True)
class EngineOptions:
    """Where a stage's engine runs. `ray` options (ignored by `local`):

    - `address`: a running Ray cluster (``ray://host:10001`` or ``auto``); None starts a local one;
    - `actors`: actors in the pool (default: the cluster's GPUs x `actors_per_gpu` when it has GPUs, else
      its CPUs less one, over `cpus_per_actor`, at least 1: one CPU stays free for the Lance reads);
    - `actors_per_gpu`: actors sharing one GPU (each asks for 1/`actors_per_gpu` of a GPU);
    - `cpus_per_actor`: CPUs each actor reserves (0.5 lets two actors and the reads share two cores);
    - `batch_rows`: rows per batch handed to an actor (also the checkpoint unit); None: the stage's own.
    """

    kind: str = "local"
    address: str | None = None
    actors: int | None = None
    actors_per_gpu: int = 1
    cpus_per_actor: float = 1.0
    batch_rows: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise SealError(f"unknown engine `{self.kind}`", hint=f"use one of {', '.join(ENGINES)}")
        if self.actors is not None and self.actors < 1:
            raise SealError("--ray-actors must be at least 1")
        if self.actors_per_gpu < 1:
            raise SealError("--ray-actors-per-gpu must be at least 1")
        if self.cpus_per_actor <= 0:
            raise SealError("--ray-cpus-per-actor must be positive")
        if self.batch_rows is not None and self.batch_rows < 1:
            raise SealError("--ray-batch-rows must be at least 1")

    @property
    def is_ray(self) -> bool:
        return self.kind == "ray"

    def to_json(self) -> dict[str, Any]:
        """Provenance (never part of a recipe: the engine does not change the numbers)."""
        return asdict(self) if self.is_ray else {"kind": "local"}


def engine_options(engine: str | EngineOptions | dict[str, Any] | None = None, **ray: Any) -> EngineOptions:
    """EngineOptions from a kind (`local`/`ray`), a mapping (a spec's `engine:`) or options; keyword
    arguments named like the fields (``address=...``, or ``ray_address=...`` as the CLI names them) override.
    Checks that Ray is installed when it is asked for."""
    if isinstance(engine, EngineOptions):
        base: dict[str, Any] = asdict(engine)
    elif isinstance(engine, dict):
        base = {"kind": "local", **engine}
    else:
        base = {"kind": engine or "local"}
    for key, value in ray.items():
        name = key.removeprefix("ray_")
        if value is not None:
            base[name] = value
    known = set(EngineOptions.__dataclass_fields__)
    unknown = sorted(set(base) - known)
    if unknown:
        raise SealError(f"unknown engine option(s): {', '.join(unknown)}", hint=f"use {', '.join(sorted(known))}")
    options = EngineOptions(**base)
    if options.is_ray:
        require_ray()
    return options


def require_ray() -> None:
    """A one-line error when the `ray` extra is not installed."""
    missing = [name for name in ("ray", "lance_ray") if importlib.util.find_spec(name) is None]
    if missing:
        raise SealError(f"--engine ray needs {' and '.join(missing)}, which is not installed", hint=RAY_EXTRA_HINT)


_CURRENT: contextvars.ContextVar[EngineOptions | None] = contextvars.ContextVar("seal_engine", default=None)


@contextlib.contextmanager
def use_engine(options: EngineOptions | None) -> Iterator[None]:
    """Make `options` the engine of the stages run inside the block that are not given one (perturb's
    re-scoring, which `seal perturb --engine ray` reaches through the perturb stage)."""
    token = _CURRENT.set(options)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_engine() -> EngineOptions | None:
    """The engine `use_engine` set (None: local)."""
    return _CURRENT.get()
