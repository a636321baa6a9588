"""Plan and run the stages a spec asks for, in dependency order, through one contract.

A stage plans first (what is missing or stale, and why) and then runs only that work. Stages
register themselves with `@register_stage`; the runner knows nothing about any one of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from seal.errors import SealError
from seal.recipe import Recipe
from seal.spec import Spec
from seal.store import Store

UP_TO_DATE, PENDING, STALE, UNAVAILABLE = "up-to-date", "pending", "stale", "unavailable"


@dataclass(frozen=True)
class Plan:
    """What one stage would do: its status, why, and how much work (rows) remains."""

    stage: str
    name: str
    fingerprint: str
    status: str
    reason: str
    rows_todo: int | None = None
    column: str | None = None
    estimate: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Stage(Protocol):
    """The contract every stage implements. `run` must be resumable and skip finished work."""

    recipe: Recipe

    def plan(self, store: Store) -> Plan: ...

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> dict[str, Any]: ...


StageBuilder = Callable[[dict[str, Any], Spec], Stage]


@dataclass(frozen=True)
class StageKind:
    name: str
    section: str  # the spec section whose entries build this stage
    order: int  # stages run in increasing order (ingest first)
    build: StageBuilder


_REGISTRY: dict[str, StageKind] = {}

# Spec sections and the stage each will build, in run order; a section whose stage is not
# registered in this version is planned as "unavailable".
SECTION_STAGES = {
    "dataset": "ingest",
    "reward_models": "score",
    "features": "label",
    "embeddings": "embed",
    "perturbations": "perturb",
}


def register_stage(name: str, section: str, order: int) -> Callable[[StageBuilder], StageBuilder]:
    """Decorator registering a stage builder for a spec section. Names must be unique."""

    def decorate(build: StageBuilder) -> StageBuilder:
        if name in _REGISTRY:
            raise ValueError(f"stage `{name}` is already registered")
        _REGISTRY[name] = StageKind(name, section, order, build)
        return build

    return decorate


def registered_stages() -> dict[str, StageKind]:
    _load_builtin_stages()
    return dict(sorted(_REGISTRY.items(), key=lambda kv: kv[1].order))


def _load_builtin_stages() -> None:
    # Imported for their @register_stage side effect; built-ins register exactly like plugins would.
    import seal.ingest.stage  # noqa: F401


def _entries(spec: Spec, section: str) -> list[dict[str, Any]]:
    value = spec.section(section)
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def build_stages(spec: Spec) -> tuple[list[Stage], list[Plan]]:
    """Stages for every spec entry, in run order, plus plans for sections no stage handles yet."""
    kinds = registered_stages()
    by_section = {kind.section: kind for kind in kinds.values()}
    stages: list[Stage] = []
    unavailable: list[Plan] = []
    for section, stage_name in SECTION_STAGES.items():
        for i, entry in enumerate(_entries(spec, section)):
            kind = by_section.get(section)
            if kind is None:
                label = entry.get("alias") or entry.get("model") or entry.get("method") or entry.get("labeler") or ""
                unavailable.append(
                    Plan(
                        stage_name,
                        str(label or f"{section}[{i}]"),
                        "",
                        UNAVAILABLE,
                        f"the `{stage_name}` stage is not available in this version of seal",
                    )
                )
                continue
            stages.append(kind.build(entry, spec))
    return stages, unavailable


def plan(store: Store, spec: Spec) -> list[Plan]:
    """Plans for every stage of the spec, without running anything."""
    stages, unavailable = build_stages(spec)
    return [stage.plan(store) for stage in stages] + unavailable


def run(store: Store, spec: Spec, show_progress: bool = False, on_error: str = "fail") -> list[dict[str, Any]]:
    """Run every stage that is pending or stale; stages already up to date are skipped."""
    if on_error not in ("fail", "keep-going"):
        raise SealError(f"unknown on_error policy `{on_error}`", hint="use fail or keep-going")
    stages, unavailable = build_stages(spec)
    results: list[dict[str, Any]] = []
    for stage in stages:
        current = stage.plan(store)
        entry: dict[str, Any] = {"plan": current.to_json(), "status": "skipped", "result": None, "error": None}
        if current.status in (PENDING, STALE):
            t0 = time.perf_counter()
            try:
                entry["result"] = stage.run(store, current, show_progress=show_progress)
                entry["status"] = "done"
            except SealError as err:
                entry["status"], entry["error"] = "failed", str(err)
                if on_error == "fail":
                    results.append(entry)
                    raise SealError(f"stage {current.stage}:{current.name} failed: {err}") from err
            entry["seconds"] = round(time.perf_counter() - t0, 3)
        results.append(entry)
    for missing in unavailable:
        results.append({"plan": missing.to_json(), "status": "unavailable", "result": None, "error": None})
    return results
