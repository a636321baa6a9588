"""The LLM engine: an async client for OpenAI-compatible APIs (`client`) and the one endpoint configuration
that the LLM labeler and the LLM rewriter share (`endpoint`). Texts in, answers out; no store."""

from seal.engines.llm.client import (
    ChatClient,
    ChatResult,
    ClientStats,
    LLMError,
    LLMFatalError,
    LLMRequestError,
    chat_body,
    redact_url,
    run_sync,
)
from seal.engines.llm.endpoint import DEFAULT_API_KEY_ENV, DEFAULT_BASE_URL, LLMEndpoint

__all__ = [
    "DEFAULT_API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "ChatClient",
    "ChatResult",
    "ClientStats",
    "LLMEndpoint",
    "LLMError",
    "LLMFatalError",
    "LLMRequestError",
    "chat_body",
    "redact_url",
    "run_sync",
]
