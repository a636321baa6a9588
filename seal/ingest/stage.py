"""The ingest stage: one spec `dataset` entry -> pairs in the store."""

from __future__ import annotations

from typing import Any

from seal.ingest.core import ingest, ingest_recipe
from seal.pipeline import PENDING, STALE, UP_TO_DATE, Plan, register_stage
from seal.recipe import Recipe
from seal.spec import Spec
from seal.store import Store


class IngestStage:
    """Ingest one dataset entry of a spec."""

    def __init__(self, entry: dict[str, Any], spec: Spec):
        self.options = dict(entry)
        self.options["source"] = spec.resolve(entry["source"])
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
        runs = [r for r in store.runs("ingest") if r["name"] == self.recipe.name] if store.path.is_dir() else []
        if any(r["fingerprint"] == fingerprint for r in runs):
            return Plan("ingest", self.recipe.name, fingerprint, UP_TO_DATE, "ingested with this recipe", 0, None)
        if runs:
            last = runs[-1]["recipe"]["params"]
            changed = sorted(k for k, v in self.recipe.params.items() if last.get(k) != v)
            return Plan(
                "ingest",
                self.recipe.name,
                fingerprint,
                STALE,
                f"recipe changed since the last ingest: {', '.join(changed)}",
                None,
                None,
            )
        return Plan("ingest", self.recipe.name, fingerprint, PENDING, "not ingested yet", None, None)

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> dict[str, Any]:
        args = self._recipe_args()
        result = ingest(
            store,
            args.pop("source"),
            name=args.pop("dataset"),
            show_progress=show_progress,
            **args,
        )
        return result.to_json()


@register_stage("ingest", section="dataset", order=0)
def build_ingest(entry: dict[str, Any], spec: Spec) -> IngestStage:
    return IngestStage(entry, spec)
