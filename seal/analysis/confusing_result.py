"""The result of the confusing-entries analysis (seal.analysis.confusing): its JSON
(schemas/cli/confusing.schema.json) and text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from seal.catalog.findings import FINDINGS
from seal.render import table


@dataclass
class ConfusingResult:
    kinds: list[str]
    thresholds: dict[str, float]
    pairs: int
    pairs_embedded: int
    counts: dict[str, int]
    identical: list[dict[str, Any]] = field(default_factory=list)
    near_identical: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    contradictory: list[dict[str, Any]] = field(default_factory=list)
    clusters: dict[str, Any] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    stored: dict[str, Any] | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render_text(self) -> str:
        lines = [
            f"{self.pairs:,} pairs ({self.pairs_embedded:,} with embeddings); kinds: {', '.join(self.kinds)}",
            "counts: " + ", ".join(f"{k} {v:,}" for k, v in self.counts.items()),
        ]
        for kind, why in self.skipped.items():
            lines.append(f"skipped {kind}: {why}")
        if self.identical:
            lines += ["", "identical responses"]
            lines.append(table([{"pair_id": r["pair_id"], "response": r["snippet"]["chosen"]} for r in self.identical]))
        if self.near_identical:
            lines += ["", "near-identical responses (chosen ≈ rejected)"]
            rows = [
                {
                    "pair_id": r["pair_id"],
                    "cosine": round(r["response_cosine"], 3),
                    "edit": round(r["response_edit"], 3),
                    "chosen": r["snippet"]["chosen"],
                    "rejected": r["snippet"]["rejected"],
                }
                for r in self.near_identical
            ]
            lines.append(table(rows, width=40))
        for title, items in (("contradictions", self.contradictory), ("duplicates", self.duplicates)):
            if not items:
                continue
            lines += ["", title]
            rows = []
            for r in items:
                row = {
                    "pair_id": r["pair_id"],
                    "other_pair_id": r["other_pair_id"],
                    "match": r["match"],
                    "context": round(r["context_similarity"], 3),
                    "responses": round(r["response_similarity"], 3),
                    "prompt": r["snippet"]["context"],
                }
                if "label" in r:
                    row["label"] = r["label"]
                rows.append(row)
            lines.append(table(rows, width=40))
        if self.clusters and self.clusters.get("clusters"):
            c = self.clusters
            lines += ["", f"clusters ({c['method']}, {c['k']} clusters; ranked by excess resistance of "]
            lines[-1] += f"{c['ranking_model']})" if c.get("ranking_model") else "— no scores: by size)"
            rows = []
            for info in c["clusters"][:20]:
                row: dict[str, Any] = {"rank": info["rank"], "cluster": info["cluster"], "size": info["size"]}
                for alias, s in info["resistance"].items():
                    if s["resistance"] is not None:
                        row[f"resist {alias}"] = (
                            f"{100 * s['resistance']:.1f}% [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}]"
                        )
                if info.get("excess") is not None:
                    row["excess"] = round(100 * info["excess"], 1)
                row["terms"] = ", ".join(info["terms"])
                rows.append(row)
            lines.append(table(rows, width=60))
        if self.stored:
            s = self.stored
            lines += [
                "",
                f"stored: {s['findings']:,} findings in `{FINDINGS}`; columns {', '.join(s['columns'])} "
                f"(pairs version {s['pairs_version']})",
            ]
        return "\n".join(lines)
