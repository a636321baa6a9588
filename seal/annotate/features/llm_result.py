"""What one run of the `llm` labeler did: `seal label --labeler llm --json`
(schemas/cli/label.schema.json#/$defs/llm)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The counters a run records in its provenance.
COUNTERS = (
    "requests",
    "cache_hits",
    "cached_labels",
    "retries",
    "reasks",
    "labelled",
    "failures",
    "tokens",
    "cost_usd",
)


@dataclass
class LLMLabelResult:
    """What a `label_llm` call did. `requests` counts every HTTP request sent (retries and re-asks
    included): a rerun over labelled rows shows requests 0 and cache_hits = texts."""

    feature_set: str
    column: str
    model: str
    base_url: str
    mode: str  # interactive | batch | dry-run
    # done | partial (some failures) | failed (every text sent failed) | batch-pending | dry-run | nothing-to-do
    status: str
    pairs: int
    sides: int
    texts: int  # distinct conversations among the sides
    cache_hits: int  # texts whose every feature came from the cache (no request)
    cached_labels: int  # (text, feature) labels served by the cache
    to_label: int  # texts that needed a request
    requests: int = 0
    retries: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)
    reasks: int = 0  # invalid answers asked again with the error fed back
    labelled: int = 0  # texts labelled in this run
    failures: int = 0  # texts that ended without a valid answer
    failure_reasons: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0, "total": 0})
    cost_usd: float | None = None
    structured_output: str | None = None
    rows_labelled: int = 0  # pairs with at least one label in the column
    rows_complete: int = 0  # pairs with every feature on both sides
    column_written: bool = False
    run_id: str | None = None
    pairs_version: int | None = None
    seconds: float = 0.0
    estimate: dict[str, Any] | None = None
    sample_requests: list[dict[str, Any]] | None = None
    batch: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None
    labeler: str = "llm"

    def to_json(self) -> dict[str, Any]:
        """Every field, always present (null where it does not apply): schemas/cli/label.schema.json#/$defs/llm."""
        return asdict(self)

    def summary(self) -> str:
        """One human line."""
        if self.mode == "dry-run":
            e = self.estimate or {}
            if e.get("cost_usd") is None:
                cost = "no price for this model (pass --price-in/--price-out, USD per million tokens)"
            else:
                per = e.get("price_per_million") or {}
                cost = (
                    f"about ${e['cost_usd']:,.4f} (${per.get('input', 0):g}/${per.get('output', 0):g} per million "
                    f"input/output tokens: {e.get('price_source')})"
                )
            return (
                f"{self.column}: would send {e.get('requests', 0):,} request(s) for {self.texts:,} text(s) "
                f"({self.cache_hits:,} cached), about {e.get('input_tokens', 0):,} input + "
                f"{e.get('output_tokens', 0):,} output tokens, {cost}"
            )
        parts = [
            f"{self.column}: {self.status}",
            f"{self.labelled:,} text(s) labelled",
            f"{self.cache_hits:,} from the cache",
            f"{self.failures:,} failed",
            f"{self.requests:,} request(s) ({self.retries:,} retries, {self.reasks:,} re-asks)",
            f"{self.tokens['total']:,} tokens",
        ]
        if self.cost_usd is not None:
            parts.append(f"${self.cost_usd:,.4f}")
        if self.batch and self.batch.get("pending"):
            parts.append(f"{self.batch['pending']} batch(es) pending: run again to collect")
        return "; ".join(parts) + f"; {self.rows_complete:,} pair(s) fully labelled"
