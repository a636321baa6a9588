"""Plan and run the stages a spec asks for, in order, through one contract.

A stage plans first (what is missing or stale, and why) and then runs only that work. Stages register
with `@register_stage(name, section=..., order=...)`: the builder turns one entry of that spec section
into one stage (or a list of them). The runner knows nothing about any one stage; a section whose stage
is not registered is planned as `unavailable`, and does not fail a run.

The contract, for whoever writes a stage:

- `stage.recipe`: a `Recipe` (what determines the stage's output; its fingerprint marks the column).
- `stage.plan(store) -> Plan`: status `pending` (never computed), `stale` (the recipe changed; list the
  changed recipe fields in `changed`) or `up-to-date`, with a one-line `reason`, `rows_todo` when known,
  the `column` it owns, and an optional `estimate` (e.g. `{"seconds": 120}`). Planning never writes. The
  stage may carry its own description of the work (which rows, which texts) in `plan.work`.
- `stage.run(store, plan, show_progress=False) -> dict`: does the planned work (exactly `plan.work`, when the
  stage made one), resumably, and returns a JSON-able result, or an object with `to_json()` (and optionally
  `summary()`). An optional `summary` key (one human line) is shown by `seal run` and moved out of
  the result. Raise `SealError` for failures the user can fix. A result in which no unit of work
  succeeded (`seal.outcome.nothing_succeeded`: status `failed`, or every variant failed) makes the stage
  `failed` too, with its result kept; `seal run` then exits 3 when no stage failed otherwise.

A builder or `plan` that raises `SealError` gives an `error` plan (the run fails that stage); under `plan` (not
`run`), a builder that needs a model or dataset the Hub cannot give now (seal.errors.HubUnreachable) gives a
`pending` plan that says what must be downloaded. Stages shipped with seal are imported from
BUILTIN_STAGE_MODULES; a plugin (or a test) calls `register_stage` itself.

A `sample: "1%"` in an entry is resolved when the stage is planned, from the pairs in the store then (after
ingest, within `run`): the builder sees the whole number of pairs, rounded up. The output steps `analyses`
and `report` (seal.spec_analyses) register like stages and run last; they read the store and write files.
While the store lacks the pairs a plan needs, `plan` adds offline estimates (seal.spec_forecast): pairs,
texts, LLM requests, tokens and cost, and what would be downloaded.
"""

from __future__ import annotations

import copy
import importlib
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

from seal import spec as spec_module
from seal.errors import HubUnreachable, NothingSucceeded, SealError, store_write_error
from seal.outcome import nothing_succeeded
from seal.recipe import Recipe
from seal.spec import Spec
from seal.store import Store

# Plan statuses.
UP_TO_DATE, PENDING, STALE, UNAVAILABLE, ERROR = "up-to-date", "pending", "stale", "unavailable", "error"
PLAN_STATUSES = (PENDING, STALE, UP_TO_DATE, UNAVAILABLE, ERROR)
# Run statuses of a stage.
DONE, SKIPPED, FAILED, NOT_RUN = "done", "skipped", "failed", "not-run"
RUN_STATUSES = (DONE, SKIPPED, UNAVAILABLE, FAILED, NOT_RUN)
ON_ERROR = ("fail", "keep-going")

# Modules whose import registers the stages shipped with seal (each module uses @register_stage).
BUILTIN_STAGE_MODULES: list[str] = [
    "seal.ingest.stage",
    "seal.annotate.scores",
    "seal.annotate.features.stage",
    "seal.annotate.perturb.stage",
    "seal.annotate.embeddings",
    "seal.annotate.findings_spec",
    "seal.spec_analyses",
]

# The spec sections the experiment schema knows, the stage each is meant to build, and the run order.
# A section whose stage is not registered (not written yet) is reported as `unavailable`.
KNOWN_SECTIONS: dict[str, tuple[str, int]] = {
    "dataset": ("ingest", 0),
    "reward_models": ("score", 10),
    "features": ("label", 20),
    "embeddings": ("embed", 30),
    "perturbations": ("perturb", 40),
    "findings": ("findings", 50),
}
DEFAULT_ORDER = 100


@dataclass(frozen=True)
class Plan:
    """What one stage would do: its status, why, and how much work (rows) remains."""

    stage: str
    name: str
    fingerprint: str | None
    status: str
    reason: str
    rows_todo: int | None = None
    column: str | None = None
    estimate: dict[str, Any] = field(default_factory=dict)
    changed: tuple[str, ...] = ()  # recipe fields that differ from the last run (status `stale`)
    entry: str | None = None  # where the stage comes from in the spec, e.g. `reward_models[1]`
    # The stage's own description of the work (which rows, which texts), made by `plan` for its `run`; not
    # part of the JSON plan.
    work: Any = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "work"}
        out["changed"] = list(self.changed)
        return out

    @property
    def has_work(self) -> bool:
        return self.status in (PENDING, STALE)


class Stage(Protocol):
    """The contract every stage implements. `run` must be resumable and skip finished work."""

    recipe: Recipe

    def plan(self, store: Store) -> Plan: ...

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> dict[str, Any]: ...


StageBuilder = Callable[[dict[str, Any], Spec], "Stage | Sequence[Stage]"]


@dataclass(frozen=True)
class StageKind:
    """A registered stage: its name, the spec section that configures it, and where it runs."""

    name: str
    section: str
    order: int
    build: StageBuilder
    owns_section: bool = False  # the section was registered together with the stage


_REGISTRY: dict[str, StageKind] = {}


def register_stage(
    name: str,
    section: str,
    order: int | None = None,
    section_schema: dict[str, Any] | None = None,
) -> Callable[[StageBuilder], StageBuilder]:
    """Decorator: `build(entry, spec)` makes the stage(s) for one entry of spec `section`.

    One stage per section and unique names. `order` defaults to the section's place in KNOWN_SECTIONS
    (later sections run later). A section the experiment schema does not know needs `section_schema`,
    the JSON Schema of its value (a mapping, or a list of mappings for one stage each); it is then
    accepted and validated in specs until `unregister_stage`.
    """

    def decorate(build: StageBuilder) -> StageBuilder:
        if name in _REGISTRY:
            raise ValueError(f"stage `{name}` is already registered")
        taken = [k.name for k in _REGISTRY.values() if k.section == section]
        if taken:
            raise ValueError(f"spec section `{section}` is already handled by stage `{taken[0]}`")
        known = section in spec_module.known_sections()
        if section_schema is not None:
            spec_module.register_section(section, section_schema)
        elif not known:
            raise ValueError(f"`{section}` is not a spec section; pass section_schema= to add it")
        default = KNOWN_SECTIONS.get(section, (name, DEFAULT_ORDER))[1]
        _REGISTRY[name] = StageKind(
            name, section, default if order is None else order, build, section_schema is not None
        )
        return build

    return decorate


def unregister_stage(name: str) -> None:
    """Remove a registered stage (and the spec section it brought). For tests and plugins."""
    kind = _REGISTRY.pop(name, None)
    if kind is not None and kind.owns_section:
        spec_module.unregister_section(kind.section)


def registered_stages() -> dict[str, StageKind]:
    """Every registered stage, in run order."""
    _load_builtin_stages()
    return dict(sorted(_REGISTRY.items(), key=lambda kv: kv[1].order))


def _load_builtin_stages() -> None:
    # Imported for their @register_stage side effect; built-ins register exactly like plugins would.
    for module in BUILTIN_STAGE_MODULES:
        importlib.import_module(module)


# -- building ---------------------------------------------------------------------------------------
@dataclass
class _Slot:
    """One planned unit: a built stage, one to build when planned (its entry has a percentage sample), or a
    plan that says why there is none (unavailable, error)."""

    entry: str
    stage: Stage | None = None
    fixed: Plan | None = None
    deferred: Callable[[Store], Stage | Sequence[Stage]] | None = None
    label: str = ""
    kind: str = ""
    source: Any = None  # the spec entry the slot comes from
    sized: Callable[[int], Any] | None = None  # a percentage-sampled stage, built for a number of pairs


def _label(entry: Any, section: str) -> str:
    if isinstance(entry, dict):
        for key in ("name", "alias", "model", "method", "feature_set", "labeler", "source"):
            if isinstance(entry.get(key), str):
                return entry[key]
    return section


def _sections(kinds: dict[str, StageKind]) -> list[tuple[str, str, int, StageKind | None]]:
    """(section, stage name, order, kind or None) for every section a stage handles or is planned for."""
    by_section = {kind.section: kind for kind in kinds.values()}
    rows: list[tuple[str, str, int, StageKind | None]] = []
    for section, (stage_name, order) in KNOWN_SECTIONS.items():
        kind = by_section.pop(section, None)
        rows.append((section, kind.name, kind.order, kind) if kind else (section, stage_name, order, None))
    rows += [(kind.section, kind.name, kind.order, kind) for kind in by_section.values()]
    return sorted(rows, key=lambda r: r[2])


# A sample written as a percentage of the store's pairs: `1%`, `0.5%`.
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def percent_sample(entry: Any) -> float | None:
    """The percentage of an entry's `sample: "N%"`, or None when the sample is a count (or absent)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("sample"), str):
        return None
    match = _PERCENT.match(entry["sample"])
    return float(match.group(1)) if match else None


def sample_count(percent: float, pairs: int) -> int:
    """`percent` % of `pairs`, rounded up, at least 1."""
    return max(1, math.ceil(round(percent * pairs / 100, 9)))


def _sized(kind: StageKind, entry: dict[str, Any], spec: Spec, percent: float) -> Callable[[int], Any]:
    def build(pairs: int) -> Any:
        built = kind.build({**entry, "sample": sample_count(percent, pairs)}, spec)
        return built[0] if isinstance(built, list | tuple) else built

    return build


def build_stages(spec: Spec, planning: bool = False) -> list[_Slot]:
    """One slot per stage the spec asks for, in run order. A builder's SealError becomes an `error` plan (with
    `planning`, a model or dataset the Hub cannot give now becomes a `pending` plan naming the download)."""
    slots: list[_Slot] = []
    for section, stage_name, _, kind in _sections(registered_stages()):
        for entry_path, entry in spec.entries(section):
            label = _label(entry, section)
            if kind is None:
                reason = f"the `{stage_name}` stage is not available in this version of seal"
                slots.append(
                    _Slot(entry_path, fixed=Plan(stage_name, label, None, UNAVAILABLE, reason, entry=entry_path))
                )
                continue
            percent = percent_sample(entry)
            if percent is not None:
                sized = _sized(kind, entry, spec, percent)
                deferred = lambda store, sized=sized: sized(store.count() if store.exists() else 0)  # noqa: E731
                slots.append(
                    _Slot(entry_path, deferred=deferred, label=label, kind=kind.name, source=entry, sized=sized)
                )
                continue
            try:
                built = kind.build(entry, spec)
            except HubUnreachable as err:
                status = PENDING if planning else ERROR
                reason = _download_reason(err) if planning else str(err)
                fixed = Plan(kind.name, label, None, status, reason, entry=entry_path)
                slots.append(_Slot(entry_path, fixed=fixed, source=entry))
                continue
            except SealError as err:
                fixed = Plan(kind.name, label, None, ERROR, str(err), entry=entry_path)
                slots.append(_Slot(entry_path, fixed=fixed, source=entry))
                continue
            for stage in built if isinstance(built, list | tuple) else [built]:
                where = getattr(stage, "entry", None) or entry_path
                slots.append(_Slot(where, stage=stage, kind=kind.name, source=entry))
    return slots


def _download_reason(err: HubUnreachable) -> str:
    """`seal plan`'s reason for a stage whose model or dataset must come from the Hub (unreachable now)."""
    named = re.search(r"`([^`]+)`", err.message)
    what = f"`{named.group(1)}`" if named else "its model or data"
    return f"needs a download: {what} is not in the local cache (the Hub is unreachable now)"


def _plan_slot(slot: _Slot, store: Store) -> Plan:
    if slot.fixed is not None:
        return slot.fixed
    if slot.deferred is not None:
        try:
            slot.stage = slot.deferred(store)
        except SealError as err:
            return Plan(slot.kind, slot.label, None, ERROR, str(err), entry=slot.entry)
    assert slot.stage is not None
    try:
        planned = slot.stage.plan(store)
    except SealError as err:
        recipe = slot.stage.recipe
        return Plan(recipe.stage, recipe.name, recipe.fingerprint(), ERROR, str(err), entry=slot.entry)
    return replace(planned, entry=slot.entry)


def plan(store: Store, spec: Spec) -> list[Plan]:
    """Plans for every stage of the spec, in run order, without running anything (nor sending anything to the
    Hub or an LLM). Where the store does not hold the pairs yet, each plan carries offline estimates."""
    slots = build_stages(spec, planning=True)
    plans = [_plan_slot(slot, store) for slot in slots]
    waiting = [p for p, s in zip(plans, slots, strict=True) if p.has_work and not _after_stages(s)]
    if waiting:  # output steps read what the stages above will write
        plans = [
            _wait_for(p, len(waiting)) if _after_stages(s) and p.status != UNAVAILABLE else p
            for p, s in zip(plans, slots, strict=True)
        ]
    from seal.spec_forecast import forecast

    return forecast(spec, store, slots, plans)


def _after_stages(slot: _Slot) -> bool:
    return bool(getattr(slot.stage, "after_stages", False))


def _wait_for(planned: Plan, waiting: int) -> Plan:
    reason = f"runs after the {waiting} stage(s) above with work to do"
    return replace(planned, status=PENDING, reason=reason, work=None)


# -- running ----------------------------------------------------------------------------------------
@dataclass
class RunReport:
    """What `run` did, stage by stage. `ok` is false when a stage failed. `empty` lists the stages that
    failed because none of their units succeeded (every request refused, every rewrite failed)."""

    stages: list[dict[str, Any]]
    empty: list[int] = field(default_factory=list)  # indexes into `stages`

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [s for s in self.stages if s["status"] == FAILED]

    @property
    def nothing_succeeded(self) -> bool:
        """True when every failed stage failed because none of its units succeeded (exit code 3)."""
        return bool(self.failures) and len(self.empty) == len(self.failures)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "stages": self.stages}


def _entry(planned: Plan, status: str, **extra: Any) -> dict[str, Any]:
    out = {"plan": planned.to_json(), "status": status, "result": None, "summary": None, "error": None, "seconds": None}
    out.update(extra)
    return out


def run(
    store: Store, spec: Spec, show_progress: bool = False, on_error: str = "fail", announce: bool | None = None
) -> RunReport:
    """Run every stage that is pending or stale, in order; stages already up to date are skipped. `announce`
    writes a line on stderr when each stage starts and ends (`[3/7] label seal_taxonomy: ...`); by default
    with `show_progress` when stderr is a terminal.

    `on_error="fail"` stops at the first failure (later stages are `not-run`, and nothing runs at all
    when a stage cannot even be built); `"keep-going"` runs the remaining stages. Unexpected exceptions
    propagate under `fail` and are recorded as failures under `keep-going`.
    """
    if on_error not in ON_ERROR:
        raise SealError(f"unknown on_error policy `{on_error}`", hint="use fail or keep-going")
    if announce is None:
        announce = show_progress and sys.stderr.isatty()
    slots = build_stages(spec)
    broken = [s for s in slots if s.fixed is not None and s.fixed.status == ERROR]
    stop = on_error == "fail" and bool(broken)
    entries: list[dict[str, Any]] = []
    empty: list[int] = []
    for number, slot in enumerate(slots, 1):
        if slot.fixed is not None and slot.fixed.status == UNAVAILABLE:
            entries.append(_entry(slot.fixed, UNAVAILABLE))
            continue
        if slot.fixed is not None:  # could not be built
            entries.append(_entry(slot.fixed, FAILED, error=slot.fixed.reason))
            continue
        if stop:  # still planned, so the report says what is left to do
            entries.append(_entry(_plan_slot(slot, store), NOT_RUN, error="not run: another stage failed"))
            continue
        where = f"{number}/{len(slots)}" if announce else ""
        entry, none_succeeded = _run_slot(slot, store, show_progress, on_error, where)
        if none_succeeded:
            empty.append(len(entries))
        entries.append(entry)
        if entry["status"] == FAILED and on_error == "fail":
            stop = True
    return RunReport(entries, empty)


def _say(number: str, line: str) -> None:
    """A progress line on stderr (`[3/7] ...`; none without a number): which stage starts, and how it ended."""
    if number:
        print(f"[{number}] {line}", file=sys.stderr, flush=True)


def _run_slot(
    slot: _Slot, store: Store, show_progress: bool, on_error: str, number: str = ""
) -> tuple[dict[str, Any], bool]:
    """Run one slot: its report entry, and whether it failed because none of its units succeeded."""
    current = _plan_slot(slot, store)
    stage = slot.stage
    if current.status == ERROR:
        return _entry(current, FAILED, error=current.reason), False
    if current.status == UNAVAILABLE:
        return _entry(current, UNAVAILABLE), False
    if not current.has_work:
        return _entry(current, SKIPPED), False
    assert stage is not None
    _say(number, f"{current.stage} {current.name}: {current.reason}")
    t0 = time.perf_counter()
    try:
        result = stage.run(store, current, show_progress=show_progress)
    except SealError as err:
        failed = _entry(current, FAILED, error=str(err), seconds=round(time.perf_counter() - t0, 3))
        return failed, isinstance(err, NothingSucceeded)
    except Exception as err:
        refused = store_write_error(err, store.path)  # read-only store, full disk: one line, either policy
        if refused is None and on_error == "fail":
            raise
        message = str(refused) if refused is not None else f"unexpected {type(err).__name__}: {err}"
        return _entry(current, FAILED, error=message, seconds=round(time.perf_counter() - t0, 3)), False
    line = result.summary() if callable(getattr(result, "summary", None)) else None  # a typed result's one line
    result = result.to_json() if hasattr(result, "to_json") else dict(result or {})
    summary = result.pop("summary", line)
    seconds = round(time.perf_counter() - t0, 3)
    _say(number, f"{current.stage} {current.name}: finished in {seconds:.1f} s")
    empty = nothing_succeeded(result)
    if empty is not None:
        return _entry(current, FAILED, result=result, summary=summary, error=empty, seconds=seconds), True
    return _entry(current, DONE, result=result, summary=summary, seconds=seconds), False


# -- one stage, for the commands and the Python API --------------------------------------------------------
@dataclass
class StageOutcome:
    """What `run_stage` did: the plan it followed, `done` or `skipped` (nothing to do), the stage's own result
    (None when skipped) and the seconds it took."""

    plan: Plan
    status: str
    result: Any
    seconds: float

    def to_json(self) -> dict[str, Any]:
        result = self.result.to_json() if hasattr(self.result, "to_json") else self.result
        return {"plan": self.plan.to_json(), "status": self.status, "result": result, "seconds": self.seconds}


def run_stage(store: Store, stage: Stage, show_progress: bool = False) -> StageOutcome:
    """Plan one stage and run exactly that plan (the path `seal score|label|embed|perturb` and the Python API
    take, the same as `seal run` takes for each stage of a spec). A plan with an error raises it."""
    planned = stage.plan(store)
    if planned.status == ERROR:
        raise SealError(planned.reason)
    if not planned.has_work:
        return StageOutcome(planned, SKIPPED, None, 0.0)
    t0 = time.perf_counter()
    result = stage.run(store, planned, show_progress=show_progress)
    return StageOutcome(planned, DONE, result, round(time.perf_counter() - t0, 3))
