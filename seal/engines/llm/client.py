"""An async client for OpenAI-compatible HTTP APIs: chat completions, and the files and batches endpoints.

It retries what is worth retrying (429 and 5xx answers, timeouts, dropped connections, truncated or
unparsable bodies) with exponential backoff and jitter, honouring ``Retry-After`` / ``retry-after-ms``,
and gives up with a typed error otherwise. Each request has a total timeout. Counters (requests sent,
retries and why, tokens) live on ``client.stats``.

The API key is sent in the Authorization header and kept nowhere else: it is not part of any message,
repr, recipe, cache row or log line.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

try:  # huggingface_hub (a seal dependency) brings httpx2; plain httpx has the same API.
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the environment
    import httpx  # type: ignore[no-redef]

from seal import __version__
from seal.errors import SealError

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})
FATAL_STATUSES = frozenset({401, 403, 404})
_REQUEST_INVALID = re.compile(r"validation error|literal_error|not supported|unsupported|unknown parameter", re.I)


def redact_url(url: str) -> str:
    """The URL without credentials or query string (where some gateways put keys)."""
    parts = urlparse(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc, query="", fragment="").geturl()


class LLMError(SealError):
    """An LLM endpoint could not give an answer."""


class LLMRequestError(LLMError):
    """One request failed for good: a non-retryable answer, or retries exhausted. `kind` says why
    (http_<status>, timeout, connection, truncated, bad_body)."""

    def __init__(self, message: str, kind: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.body = body


class LLMFatalError(LLMError):
    """The endpoint refuses every request (bad key, unknown model or URL): stop the run."""


@dataclass
class ChatResult:
    content: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    response_id: str | None = None


@dataclass
class ClientStats:
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    retry_reasons: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    waited_s: float = 0.0  # time spent in backoff

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "retry_reasons": dict(sorted(self.retry_reasons.items())),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "backoff_seconds": round(self.waited_s, 3),
        }


class _Retry(Exception):
    def __init__(self, kind: str, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.kind, self.message, self.retry_after, self.status = kind, message, retry_after, status


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date; None if absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_text(response: Any) -> str:
    """The error message of an API error body (OpenAI shape {"error": {"message"}}), else the raw text."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return " ".join(response.text.split())[:300]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    return json.dumps(body)[:300]


class ChatClient:
    """Use as ``async with ChatClient(...) as client: await client.chat(messages)``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        retry_after_max: float = 600.0,
        max_connections: int = 16,
        rng: random.Random | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.retry_after_max = float(retry_after_max)
        self.stats = ClientStats()
        self._rng = rng or random.Random()
        headers = {"User-Agent": f"seal/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 30.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=True,
        )
        self._use_max_completion_tokens = False
        self._key = api_key or ""

    def _redact(self, text: str) -> str:
        """Error text as it may be stored: an endpoint that echoes the key gets it masked."""
        return text.replace(self._key, "***") if self._key else text

    def __repr__(self) -> str:  # never shows the headers
        return f"ChatClient(base_url={self.base_url!r}, model={self.model!r})"

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- chat completions ------------------------------------------------------------------------
    async def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_format: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = 0.0,
        seed: int | None = None,
    ) -> ChatResult:
        body = chat_body(self.model, messages, response_format, max_tokens, temperature, seed)
        if self._use_max_completion_tokens and "max_tokens" in body:
            body["max_completion_tokens"] = body.pop("max_tokens")
        try:
            data = await self.request_json("POST", "chat/completions", json=body)
        except LLMRequestError as err:
            # Newer OpenAI models refuse `max_tokens` and want `max_completion_tokens`.
            if err.status == 400 and "max_tokens" in body and "max_completion_tokens" in err.body:
                self._use_max_completion_tokens = True
                return await self.chat(
                    messages,
                    response_format=response_format,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    seed=seed,
                )
            raise
        return self.parse_completion(data)

    def parse_completion(self, data: Any) -> ChatResult:
        """A chat.completion object -> ChatResult (counting its tokens); LLMRequestError if it is not one."""
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
            content = message.get("content")
            usage = data.get("usage") or {}
            result = ChatResult(
                content=content,
                finish_reason=choice.get("finish_reason"),
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                response_id=data.get("id"),
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            raise LLMRequestError(
                f"not a chat completion: {json.dumps(data)[:200]}", kind="bad_body", body=json.dumps(data)[:2000]
            ) from None
        self.stats.prompt_tokens += result.prompt_tokens
        self.stats.completion_tokens += result.completion_tokens
        return result

    # -- any endpoint ----------------------------------------------------------------------------
    async def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request with retries; the decoded JSON body of a 2xx answer."""
        response = await self._send(method, path, expect_json=True, **kwargs)
        return response[1]

    async def request_bytes(self, method: str, path: str, **kwargs: Any) -> bytes:
        """Send a request with retries; the raw body of a 2xx answer (e.g. a file's content)."""
        response = await self._send(method, path, expect_json=False, **kwargs)
        return response[0]

    async def _send(self, method: str, path: str, expect_json: bool, **kwargs: Any) -> tuple[bytes, Any]:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(method, path, expect_json, **kwargs)
            except _Retry as retry:
                if attempt > self.max_retries:
                    raise LLMRequestError(
                        f"{retry.message} (gave up after {attempt} attempts)", kind=retry.kind, status=retry.status
                    ) from None
                self.stats.retries += 1
                self.stats.retry_reasons[retry.kind] += 1
                delay = self._delay(attempt, retry.retry_after)
                self.stats.waited_s += delay
                await asyncio.sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    async def _attempt(self, method: str, path: str, expect_json: bool, **kwargs: Any) -> tuple[bytes, Any]:
        self.stats.requests += 1
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http.request(method, path.lstrip("/"), **kwargs)
                content = response.content
        except (TimeoutError, httpx.TimeoutException):
            raise _Retry("timeout", f"no complete answer within {self.timeout:g}s") from None
        except httpx.RemoteProtocolError as err:
            raise _Retry("truncated", f"the connection broke mid-answer: {err}") from None
        except httpx.TransportError as err:
            raise _Retry(
                "connection", f"cannot reach {redact_url(self.base_url)}: {type(err).__name__}: {err}"
            ) from None
        status = response.status_code
        text = self._redact(_error_text(response)) if status >= 400 else ""
        if status >= 500 and _REQUEST_INVALID.search(text):
            # Some servers (llama-cpp-python) answer 500 to a request they fail to validate: not transient.
            raise LLMRequestError(f"HTTP {status}: {text}", kind=f"http_{status}", status=status, body=text)
        if status in RETRY_STATUSES:
            kind = "rate_limited" if status == 429 else f"http_{status}"
            raise _Retry(kind, f"HTTP {status}: {text}", parse_retry_after(response.headers), status)
        if status in FATAL_STATUSES:
            raise LLMFatalError(
                f"{redact_url(self.base_url)} answered HTTP {status} to {method} {path}: {text}",
                hint="check --base-url, --model and the API key environment variable",
            )
        if status >= 400:
            raise LLMRequestError(f"HTTP {status}: {text}", kind=f"http_{status}", status=status, body=text)
        if not expect_json:
            return content, None
        try:
            return content, json.loads(content)
        except (ValueError, UnicodeDecodeError):
            raise _Retry("bad_body", f"the answer is not JSON: {content[:80]!r}") from None


def chat_body(
    model: str,
    messages: Sequence[Mapping[str, str]],
    response_format: Mapping[str, Any] | None = None,
    max_tokens: int | None = None,
    temperature: float | None = 0.0,
    seed: int | None = None,
) -> dict[str, Any]:
    """The JSON body of a chat-completions request."""
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = int(max_tokens)
    if seed is not None:
        body["seed"] = int(seed)
    if response_format is not None:
        body["response_format"] = dict(response_format)
    return body


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from code that already runs an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as err:
            box["error"] = err

    thread = threading.Thread(target=target, name="seal-llm-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
