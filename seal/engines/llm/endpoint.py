"""One OpenAI-compatible endpoint: which model, where, with which key, and how hard to try. The LLM labeler and
the LLM rewriter both take an `LLMEndpoint` (the CLI fills it from the shared `llm_endpoint_options`, a spec
from the same keys), so the two cannot drift apart.

Only `model` can change what the endpoint answers; the rest (URL, key variable, concurrency, timeout, retries,
backoff) is provenance. The API key is read from the environment variable `api_key_env` when a client is
made, and is never stored, printed or logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any
from urllib.parse import urlparse

from seal.engines.llm.client import ChatClient, redact_url
from seal.errors import SealError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


@dataclass(frozen=True)
class LLMEndpoint:
    """How to reach a chat-completions model, and how hard to try."""

    model: str
    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = DEFAULT_API_KEY_ENV
    concurrency: int = 4  # requests in flight at once
    timeout: float = 60.0  # seconds per request
    max_retries: int = 5  # retries per request on 429, 5xx, timeouts and broken answers
    backoff_base: float = 1.0
    backoff_max: float = 60.0

    def __post_init__(self) -> None:
        if not self.model:
            raise SealError("an LLM endpoint needs a model", hint="name one, e.g. gpt-4o-mini")
        if not str(self.base_url).startswith(("http://", "https://")):
            raise SealError(f"--base-url must be an http(s) URL, got `{self.base_url}`")
        if int(self.concurrency) < 1:
            raise SealError("concurrency must be at least 1")
        if int(self.max_retries) < 0:
            raise SealError("max_retries must be >= 0")
        if self.timeout <= 0:
            raise SealError("timeout must be > 0 seconds")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> LLMEndpoint:
        """An endpoint from the keys of `options` that name its fields (None or absent: the default)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names and v is not None})

    @staticmethod
    def field_names() -> tuple[str, ...]:
        return tuple(f.name for f in fields(LLMEndpoint))

    def api_key(self) -> str | None:
        """The key from `api_key_env`; required by api.openai.com, optional for local servers."""
        key = os.environ.get(self.api_key_env) or None
        host = (urlparse(self.base_url).hostname or "").lower()
        if key is None and host.endswith("openai.com"):
            raise SealError(
                f"no API key: the environment variable {self.api_key_env} is not set",
                hint=f"export {self.api_key_env}=... (or name another variable with api_key_env)",
            )
        return key

    def client(self, api_key: str | None) -> ChatClient:
        """A `ChatClient` for this endpoint (use as `async with endpoint.client(key) as client`)."""
        return ChatClient(
            self.base_url,
            self.model,
            api_key=api_key,
            timeout=self.timeout,
            max_retries=self.max_retries,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            max_connections=max(self.concurrency, 4),
        )

    def provenance(self) -> dict[str, Any]:
        """Everything but the model, with credentials and query strings cut from the URL."""
        out = asdict(self)
        out.pop("model")
        out["base_url"] = redact_url(self.base_url)
        return out
