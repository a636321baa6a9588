"""The output steps of an experiment spec: the read-only analyses of `analyses:` and the HTML report of `report:`,
which `seal run` makes after the stages (they register like stages, with `after_stages = True`, and run last).

Each analysis entry becomes one step that calls its verb in `seal.api` (resistance, labeler_regime, imprint,
robustness, findings) and saves the result as JSON, the same object its command prints with `--json`, in the
outputs folder (`analyses.out`, default `<store>-outputs` next to the store): `<name>.json`. A resistance entry
with `by: [col, ...]` adds `<name>_by_<col>.json`, one with `labeler_regime: [features]` adds
`<name>_labeler_regime.json`. The report step calls `seal.api.report` (`report.out`, default `report.html` in
the outputs folder).

Steps only read the store. `manifest.json` in the outputs folder records, for every file, the step's
fingerprint (its options) and the store state it read (pairs version and number of runs); a step whose file
is there with the same fingerprint and state is up to date, so a rerun of `seal run` redoes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from seal.errors import SealError, StoreError
from seal.pipeline import PENDING, STALE, UNAVAILABLE, UP_TO_DATE, Plan, register_stage
from seal.recipe import Recipe
from seal.render import dumps
from seal.spec import Spec
from seal.store import Store

STEP_VERSION = 1
MANIFEST = "manifest.json"
ANALYSES = ("resistance", "imprint", "robustness", "confusing")
CONFUSING_LIMIT = 20  # findings listed per kind in confusing.json


def outputs_dir(spec: Spec, store: Store) -> Path:
    """Where a spec's analyses and report go: `analyses.out` (relative to the spec), else `<store>-outputs`
    next to the store (in the current folder for a store that is not a local folder)."""
    out = (spec.section("analyses") or {}).get("out")
    if out:
        return Path(spec.resolve(out, is_path=True))
    text = str(store.path).rstrip("/")
    if "://" in text:
        return Path.cwd() / f"{text.rsplit('/', 1)[-1]}-outputs"
    path = Path(text)
    return path.parent / f"{path.name}-outputs"


def store_state(store: Store) -> dict[str, int]:
    """What an output depends on: the version of `pairs` and the number of recorded runs (a role change
    records a run without a new version)."""
    return {"pairs_version": store.version(), "runs": len(store.runs())}


def read_manifest(folder: Path) -> dict[str, Any]:
    """The outputs folder's manifest ({} when there is none or it cannot be read)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("outputs", {}) if isinstance(data, dict) else {}


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: a killed run leaves the old file or the
    new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_output(folder: Path, name: str, record: Mapping[str, Any]) -> None:
    """Add (or replace) one output's record in the manifest."""
    outputs = read_manifest(folder)
    outputs[name] = dict(record)
    _write_atomic(folder / MANIFEST, json.dumps({"outputs": outputs}, indent=2, sort_keys=True) + "\n")


class OutputStep:
    """One output file made from the store after the stages: plan says whether it is current, run makes it."""

    after_stages = True
    stage = "analysis"

    def __init__(self, name: str, options: Mapping[str, Any], spec: Spec, entry: str, suffix: str = ".json"):
        self.name, self.options, self.spec, self.entry = name, dict(options), spec, entry
        self.suffix = suffix
        self.recipe = Recipe(self.stage, name, {"kind": self.kind, "options": self.options}, STEP_VERSION)

    kind = "output"

    def path(self, store: Store) -> Path:
        return outputs_dir(self.spec, store) / f"{self.name}{self.suffix}"

    def available(self) -> str | None:
        """Why this step cannot run in this version of seal (None when it can)."""
        return None

    def plan(self, store: Store) -> Plan:
        fingerprint = self.recipe.fingerprint()

        def plan(status: str, reason: str, **extra: Any) -> Plan:
            return Plan(self.stage, self.name, fingerprint, status, reason, None, None, {"out": str(path)}, **extra)

        path = self.path(store)
        missing = self.available()
        if missing:
            return plan(UNAVAILABLE, missing)
        if not store.exists():
            return plan(PENDING, "no pairs in the store yet")
        state = store_state(store)
        record = read_manifest(path.parent).get(self.name)
        work = {"path": path, "state": state}
        if record is None or not path.exists():
            return plan(PENDING, f"{path.name} not made yet", work=work)
        if record.get("fingerprint") != fingerprint:
            before = record.get("options") or {}
            changed = tuple(sorted(k for k in set(before) | set(self.options) if before.get(k) != self.options.get(k)))
            return plan(STALE, f"options changed: {', '.join(changed) or 'step version'}", changed=changed, work=work)
        if record.get("state") != state:
            return plan(PENDING, f"the store changed since {path.name} was made", work=work)
        return plan(UP_TO_DATE, f"{path.name} is current", work=work)

    def compute(self, store: Store, path: Path) -> tuple[str, str]:
        """Make the output: (text to write, one-line summary). Subclasses say how."""
        raise NotImplementedError

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> dict[str, Any]:
        """Make the output file from the store as it is now, and record it in the manifest."""
        t0 = time.perf_counter()
        store.require()
        state = store_state(store)
        path = self.path(store)
        text, summary = self.compute(store, path)
        if text:
            _write_atomic(path, text)
        record_output(
            path.parent,
            self.name,
            {
                "file": path.name,
                "kind": self.kind,
                "fingerprint": self.recipe.fingerprint(),
                "options": self.options,
                "state": state,
                "made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": round(time.perf_counter() - t0, 3),
            },
        )
        return {"out": str(path), "kind": self.kind, **state, "summary": f"{summary} -> {path}"}


def _api() -> Any:
    from seal import api

    return api


def _json(result: Any) -> str:
    value = result.to_json() if hasattr(result, "to_json") else result
    return dumps(value, pretty=True) + "\n"


class AnalysisStep(OutputStep):
    """One read-only analysis saved as JSON (its command's `--json` output)."""

    def __init__(self, kind: str, name: str, options: Mapping[str, Any], spec: Spec, entry: str):
        self.kind = kind
        super().__init__(name, options, spec, entry)

    def compute(self, store: Store, path: Path) -> tuple[str, str]:
        api, o = _api(), dict(self.options)
        if self.kind == "resistance":
            result = api.resistance(store, o.pop("model", None), o.pop("control", None), **o)
        elif self.kind == "resistance-by":
            by = o.pop("by")
            result = api.resistance(store, o.pop("model", None), o.pop("control", None), by=by, **o)
        elif self.kind == "labeler-regime":
            result = api.labeler_regime(store, o.pop("model", None), o.pop("control", None), o.pop("features"), **o)
        elif self.kind == "imprint":
            result = api.imprint(store, o.pop("model", None), **o)
        elif self.kind == "robustness":
            result = api.robustness(store, o.pop("model", None), o.pop("method", None), **o)
        elif self.kind == "confusing":
            return _json(_confusing(store, o.get("kind"), int(o.get("limit") or CONFUSING_LIMIT))), self.kind
        else:  # pragma: no cover - the builder makes only the kinds above
            raise SealError(f"unknown analysis `{self.kind}`")
        return _json(result), self.kind


def _confusing(store: Store, kind: str | None, limit: int) -> dict[str, Any]:
    """The stored findings: how many per kind, and the strongest `limit` of each."""
    rows = _api().findings(store, kind)
    if not rows and not _has_findings(store):
        raise StoreError(
            "no confusing entries are stored",
            hint="add a `findings:` section to the spec (or run `seal confusing`) before this analysis",
        )
    counts: dict[str, int] = {}
    listed: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
        if len(listed.setdefault(row["kind"], [])) < limit:
            listed[row["kind"]].append(row)
    return {"kind": kind, "limit": limit, "counts": counts, "findings": listed}


def _has_findings(store: Store) -> bool:
    return any(r["stage"] in ("confusing", "cluster") for r in store.runs())


class ReportStep(OutputStep):
    """The HTML report (`seal.api.report`)."""

    stage = "report"
    kind = "report"

    def __init__(self, options: Mapping[str, Any], spec: Spec):
        super().__init__("report", options, spec, "report", suffix=".html")

    def path(self, store: Store) -> Path:
        out = self.options.get("out")
        return Path(self.spec.resolve(out, is_path=True)) if out else super().path(store)

    def available(self) -> str | None:
        if not callable(getattr(_api(), "report", None)):
            return "the HTML report is not available in this version of seal"
        return None

    def compute(self, store: Store, path: Path) -> tuple[str, str]:
        options = {k: v for k, v in self.options.items() if k != "out"}
        made = _api().report(store, out=str(path), **options)
        written = Path(made["path"]) if isinstance(made, Mapping) and made.get("path") else path
        if written.resolve() != path.resolve():
            raise SealError(f"the report was written to {written}, not {path}")
        sections = made.get("sections") or [] if isinstance(made, Mapping) else []
        empty = [s.get("name") for s in sections if isinstance(s, Mapping) and s.get("status") == "empty"]
        summary = f"report: {len(sections)} sections" + (f", empty: {', '.join(map(str, empty))}" if empty else "")
        return "", summary


# -- the spec's sections -------------------------------------------------------------------------------------
_Builder = Callable[[str, dict[str, Any], Spec, str], list[OutputStep]]


def _resistance_steps(name: str, options: dict[str, Any], spec: Spec, entry: str) -> list[OutputStep]:
    by = options.pop("by", None)
    gamma = options.pop("labeler_regime", None)
    steps: list[OutputStep] = [AnalysisStep("resistance", name, options, spec, entry)]
    for column in [by] if isinstance(by, str) else by or []:
        safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in column)
        steps.append(AnalysisStep("resistance-by", f"{name}_by_{safe}", {**options, "by": column}, spec, entry))
    if gamma:
        regime = {k: v for k, v in options.items() if k in ("model", "control", "confidence", "ties")}
        regime["features"] = list(gamma)
        steps.append(AnalysisStep("labeler-regime", f"{name}_labeler_regime", regime, spec, entry))
    return steps


def _simple(kind: str) -> _Builder:
    def build(name: str, options: dict[str, Any], spec: Spec, entry: str) -> list[OutputStep]:
        return [AnalysisStep(kind, name, options, spec, entry)]

    return build


BUILDERS: dict[str, _Builder] = {
    "resistance": _resistance_steps,
    "imprint": _simple("imprint"),
    "robustness": _simple("robustness"),
    "confusing": _simple("confusing"),
}


@register_stage("analysis", section="analyses", order=60)
def build_analyses(section: dict[str, Any], spec: Spec) -> list[OutputStep]:
    """The `analyses:` section -> one step per analysis entry (and per `by` column / labeler regime)."""
    steps: list[OutputStep] = []
    names: set[str] = set()
    key = "analyses" if "analyses" in spec.document else "analysis"
    for analysis in ANALYSES:
        value = section.get(analysis)
        if value is None:
            continue
        entries = value if isinstance(value, list) else [value]
        for i, options in enumerate(entries):
            options = dict(options or {})
            name = options.pop("name", None) or (analysis if len(entries) == 1 else f"{analysis}_{i + 1}")
            entry = f"{key}.{analysis}" + (f"[{i}]" if isinstance(value, list) else "")
            for step in BUILDERS[analysis](name, options, spec, entry):
                if step.name in names:
                    raise SealError(f"{entry}: two analyses write {step.name}.json", hint="give each a distinct `name`")
                names.add(step.name)
                steps.append(step)
    return steps


@register_stage("report", section="report", order=70)
def build_report(section: dict[str, Any], spec: Spec) -> ReportStep:
    """The `report:` section -> the report step."""
    return ReportStep(section or {}, spec)
