"""Interactive requests of the `llm` labeler: `concurrency` workers ask the endpoint text by text, re-ask an
invalid answer with the error fed back, step the structured-output mode down when the server refuses it,
and stop when `max_consecutive_failures` texts in a row fail at the HTTP level."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from seal.annotate.features.llm_config import LLMConfig
from seal.annotate.features.llm_sink import LabelSink
from seal.annotate.features.llm_work import TextItem, Work
from seal.annotate.features.prompts import (
    build_messages,
    default_max_tokens,
    parse_answer,
    reask_message,
    response_format,
)
from seal.catalog.featuresets import InvalidLabel
from seal.engines.llm import ChatClient, ChatResult, ClientStats, LLMFatalError, LLMRequestError

# `auto` starts with a JSON schema and steps down when the server rejects the response_format it got.
_DOWNGRADE = {"json_schema": "json_object_schema", "json_object_schema": "json_object", "json_object": "none"}


class TooManyFailures(LLMFatalError):
    """`max_consecutive_failures` texts in a row failed: the endpoint is not answering; stop."""


class _Mode:
    """The structured-output mode, shared by the workers: `auto` starts with a JSON schema and falls
    back (json_schema -> json_object_schema -> json_object -> none) when the server rejects the
    `response_format` it was sent; the first worker to see the rejection switches every worker."""

    def __init__(self, requested: str):
        self.auto = requested == "auto"
        self.current = "json_schema" if self.auto else requested

    def downgrade(self, used: str, err: LLMRequestError) -> bool:
        """True if the request should be sent again with another mode."""
        if not self.auto or err.status not in (400, 415, 422, 500) or used not in _DOWNGRADE:
            return False
        body = err.body.lower()
        if not any(word in body for word in ("response_format", "json_schema", "json schema", "schema")):
            return False
        if self.current == used:
            self.current = _DOWNGRADE[used]
        return True


async def _label_text(client: ChatClient, text: TextItem, config: LLMConfig, mode: _Mode, sink: LabelSink) -> None:
    features = text.missing
    messages = build_messages(text.turns or [], features)
    max_tokens = config.max_tokens or default_max_tokens(features)
    asks, prompt_tokens, completion_tokens, last_error = 0, 0, 0, ""
    while asks <= config.max_invalid_retries:
        used = mode.current
        try:
            result: ChatResult = await client.chat(
                messages,
                response_format=response_format(used, features),
                max_tokens=max_tokens,
                temperature=config.temperature,
                seed=config.request_seed,
            )
        except LLMRequestError as err:
            if mode.downgrade(used, err):
                continue
            sink.fail(text, features, err.kind, str(err), asks + 1)
            if sink.consecutive_failures >= config.max_consecutive_failures:
                raise TooManyFailures(
                    f"{sink.consecutive_failures} texts in a row failed, the last with {err}",
                    hint="check the endpoint; a rerun resumes where this run stopped",
                ) from None
            return
        asks += 1
        prompt_tokens += result.prompt_tokens
        completion_tokens += result.completion_tokens
        try:
            labels = parse_answer(result.content, features)
        except InvalidLabel as err:
            last_error = str(err)
            if result.finish_reason == "length":
                last_error += f" (the reply was cut off at max_tokens={max_tokens})"
            if asks <= config.max_invalid_retries:
                sink.reasks += 1
                messages = [
                    *messages,
                    {"role": "assistant", "content": result.content or ""},
                    reask_message(last_error, features),
                ]
            continue
        sink.label(text, features, labels, result.response_id, prompt_tokens, completion_tokens)
        return
    sink.fail(text, features, "invalid", f"no valid answer in {asks} attempt(s): {last_error}", asks)


async def run_interactive(work: Work, api_key: str | None, sink: LabelSink, bar: Any) -> tuple[ClientStats, str]:
    """Label `work.todo` with `concurrency` workers; the client's counters and the structured-output mode used."""
    config = work.config
    mode = _Mode(config.structured_output)
    queue = deque(work.todo)
    async with config.endpoint.client(api_key) as client:

        async def worker() -> None:
            while queue:
                text = queue.popleft()
                await _label_text(client, text, config, mode, sink)
                bar.update(1)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(config.endpoint.concurrency, len(queue))):
                    group.create_task(worker())
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None
        return client.stats, mode.current
