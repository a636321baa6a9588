"""The ingest stage: one spec `dataset` entry -> pairs in the store."""

from __future__ import annotations

from typing import Any

from seal.ingest.core import IngestResult, ingest, ingest_recipe
from seal.pipeline import PENDING, STALE, UP_TO_DATE, Plan, register_stage
from seal.recipe import Recipe
from seal.spec import Spec
from seal.store import RunRecord, Store, now_utc


class IngestStage:
    """Ingest one dataset entry of a spec. Up to date once a run with the same recipe is recorded."""

    def __init__(self, entry: dict[str, Any], spec: Spec):
        self.options = dict(entry)
        self.options["source"] = spec.resolve(entry["source"], is_path=entry.get("loader") == "files")
        self.recipe: Recipe = ingest_recipe(**self._recipe_args())

    def _recipe_args(self) -> dict[str, Any]:
        o = self.options
        return {
            "source": o["source"],
            "dataset": o.get("name"),
            "loader": o.get("loader", "auto"),
            "fmt": o.get("format", "auto"),
            "column_map": [f"{k}={v}" for k, v in (o.get("map") or {}).items()],
            "label_map": [f"{k}={v}" for k, v in (o.get("label_map") or {}).items()],
            "split": o.get("split"),
            "subset": o.get("subset"),
            "data_dir": o.get("data_dir"),
            "revision": o.get("revision"),
            "limit": o.get("limit"),
            "sample": o.get("sample"),
            "seed": o.get("seed", 0),
        }

    def plan(self, store: Store) -> Plan:
        fingerprint = self.recipe.fingerprint()
        name = self.recipe.name
        runs = [r for r in store.runs("ingest") if r["name"] == name]
        if any(r["fingerprint"] == fingerprint for r in runs):
            return Plan("ingest", name, fingerprint, UP_TO_DATE, "ingested with this recipe", 0)
        if runs:
            last = runs[-1]["recipe"]["params"]
            keys = sorted(set(last) | set(self.recipe.params))
            changed = tuple(k for k in keys if last.get(k) != self.recipe.params.get(k))
            reason = f"recipe changed since the last ingest: {', '.join(changed) or 'stage version'}"
            return Plan("ingest", name, fingerprint, STALE, reason, changed=changed)
        return Plan("ingest", name, fingerprint, PENDING, "not ingested yet")

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> dict[str, Any]:
        args = self._recipe_args()
        started = now_utc()
        result = ingest(store, args.pop("source"), name=args.pop("dataset"), show_progress=show_progress, **args)
        if result.run_id is None:
            # Nothing new to write (every pair was already there): record the run anyway, so that the
            # plan knows this recipe has been applied and says up-to-date from now on.
            self._record_noop(store, result, started)
        out = result.to_json()
        out["summary"] = summary(result)
        return out

    def _record_noop(self, store: Store, result: IngestResult, started: Any) -> None:
        counts = {k: getattr(result, k) for k in ("read", "ingested", "already_present", "quarantined", "format")}
        provenance = {"counts": counts, "note": "no new pairs or quarantined rows"}
        store.record_run(RunRecord.finished("ingest", self.recipe.name, self.recipe, provenance, started_at=started))


def summary(result: IngestResult) -> str:
    """One line about an ingest, as `seal run` prints it."""
    return (
        f"{result.dataset}: read {result.read:,} rows ({result.format}): {result.ingested:,} new pairs, "
        f"{result.already_present:,} already present, {result.quarantined:,} quarantined"
    )


@register_stage("ingest", section="dataset", order=0)
def build_ingest(entry: dict[str, Any], spec: Spec) -> IngestStage:
    return IngestStage(entry, spec)
