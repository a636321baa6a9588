"""The `llm` labeler's configuration: the endpoint (seal.engines.llm.LLMEndpoint, shared with the LLM rewriter)
plus how the labeler asks (temperature, seed, reply budget, structured output, re-asks, Batch API), and the
recipe those settings give. Only the model, the prompt (wording, temperature, seed) and each feature's
definition determine the labels; the rest is provenance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from seal.annotate.features.prompts import PROMPT_VERSION, feature_hash, prompt_hash
from seal.catalog.featuresets import FeatureSet
from seal.engines.llm import LLMEndpoint
from seal.errors import SealError
from seal.recipe import Recipe

STRUCTURED_MODES = ("auto", "json_schema", "json_object_schema", "json_object", "none")
STAGE_VERSION = 1


@dataclass(frozen=True)
class LLMConfig:
    """The endpoint to ask and how the labeler asks it."""

    endpoint: LLMEndpoint
    temperature: float = 0.0
    request_seed: int | None = None  # the API's `seed` (best-effort determinism)
    max_tokens: int | None = None
    max_invalid_retries: int = 2
    structured_output: str = "auto"
    batch_api: bool = False
    batch_wait: float = 0.0
    batch_poll_interval: float = 30.0
    flush_every: int = 200
    max_consecutive_failures: int = 20  # texts in a row failing at the HTTP level stop the run

    def __post_init__(self) -> None:
        if self.structured_output not in STRUCTURED_MODES:
            raise SealError(
                f"unknown structured output mode `{self.structured_output}`", hint=", ".join(STRUCTURED_MODES)
            )
        for name in ("flush_every", "max_consecutive_failures"):
            if int(getattr(self, name)) < 1:
                raise SealError(f"{name} must be at least 1")
        if int(self.max_invalid_retries) < 0:
            raise SealError("max_invalid_retries must be >= 0")
        if self.temperature < 0:
            raise SealError("temperature must be >= 0")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> LLMConfig:
        """A config from flat options (`seal label` flags, a spec `features` entry, `label_llm` keywords):
        the endpoint's keys make the endpoint, the others the labeler's settings; None means the default."""
        given = {k: v for k, v in options.items() if v is not None}
        if not given.get("model"):
            raise SealError("the llm labeler needs a model", hint="pass --model (e.g. gpt-4o-mini)")
        own = {f.name for f in fields(cls)} - {"endpoint"}
        unknown = sorted(set(given) - own - set(LLMEndpoint.field_names()))
        if unknown:
            raise SealError(f"unknown llm labeler option(s): {', '.join(unknown)}")
        return cls(LLMEndpoint.from_options(given), **{k: v for k, v in given.items() if k in own})

    @property
    def model(self) -> str:
        return self.endpoint.model

    @property
    def prompt_hash(self) -> str:
        return prompt_hash(self.temperature, self.request_seed)

    def provenance(self) -> dict[str, Any]:
        """Everything but the model (the endpoint's URL redacted): recorded with the labels, not fingerprinted."""
        out = asdict(self)
        out.pop("endpoint")
        return {**self.endpoint.provenance(), **out}


def llm_recipe(fs: FeatureSet, config: LLMConfig) -> Recipe:
    """What determines the labels: model, prompt (wording + temperature + seed) and each feature's
    definition. Endpoint, concurrency, retries and the key stay out."""
    return Recipe(
        stage="label",
        name=fs.name,
        stage_version=STAGE_VERSION,
        params={
            "labeler": "llm",
            "model": config.model,
            "prompt_version": PROMPT_VERSION,
            "prompt_hash": config.prompt_hash,
            "temperature": config.temperature,
            "request_seed": config.request_seed,
            "feature_set_version": fs.version,
            "features": {f.name: feature_hash(f) for f in fs.features},
        },
    )


# The keys of a spec `features` entry with `labeler: llm` that configure the labeler.
ENTRY_KEYS = (
    "model",
    "base_url",
    "api_key_env",
    "concurrency",
    "temperature",
    "request_seed",
    "max_tokens",
    "timeout",
    "max_retries",
    "max_invalid_retries",
    "structured_output",
    "batch_api",
    "batch_wait",
    "batch_poll_interval",
    "max_consecutive_failures",
)


def config_from_entry(entry: Mapping[str, Any]) -> LLMConfig:
    """An LLMConfig from a spec `features` entry (keys the schema allows; absent ones take defaults)."""
    return LLMConfig.from_options({k: entry[k] for k in ENTRY_KEYS if entry.get(k) is not None})
