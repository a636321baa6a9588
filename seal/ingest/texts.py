"""Text helpers the format adapters share: a column as text, messages and roles, a prompt as context."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from seal.ingest.mapping import ColumnMap, RowProblem, json_messages
from seal.ingest.transcript import has_markers, parse_turns

_ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
}


def field_text(record: Mapping[str, Any], column: str, what: str) -> str:
    """A column that must hold text; `what` names it in the problem."""
    if column not in record:
        raise RowProblem("missing_column", f"no `{column}` column in this row")
    value = record[column]
    if value is None:
        raise RowProblem("missing_value", f"{what} (`{column}`) is null")
    if not isinstance(value, str):
        raise RowProblem("wrong_type", f"{what} (`{column}`) is {type(value).__name__}, not text")
    return value


def message(item: Any) -> dict[str, str]:
    """One `{role, content}` (or ShareGPT `{from, value}`) message, with its role normalised."""
    if not isinstance(item, dict):
        raise RowProblem("bad_message", f"a message is {type(item).__name__}, not an object")
    role = item.get("role", item.get("from"))
    content = item.get("content", item.get("value"))
    if not isinstance(role, str):
        raise RowProblem("bad_message", "a message has no role/from")
    normalised = _ROLES.get(role.strip().lower())
    if normalised is None:
        raise RowProblem("unknown_role", f"unknown message role `{role}`")
    if isinstance(content, list):  # OpenAI-style content parts
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) != len(content) or not all(isinstance(p, str) for p in parts):
            raise RowProblem("unsupported_content", "a message has non-text content parts")
        content = "\n".join(parts)
    if content is None:
        raise RowProblem("missing_value", f"a `{role}` message has no content")
    if not isinstance(content, str):
        raise RowProblem("wrong_type", f"a `{role}` message content is {type(content).__name__}")
    return {"role": normalised, "content": content.strip()}


def messages(value: Any, column: str) -> list[dict[str, str]]:
    """A message list (also one message, or messages saved as JSON text)."""
    if value is None:
        raise RowProblem("missing_value", f"`{column}` is null")
    value = json_messages(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowProblem("wrong_type", f"`{column}` is {type(value).__name__}, not a message list")
    return [message(m) for m in value]


def prompt_context(value: Any, column: str) -> list[dict[str, str]]:
    """A prompt given as text (possibly an embedded Human/Assistant dialogue) or as messages."""
    if value is None:
        raise RowProblem("missing_value", f"the prompt (`{column}`) is null")
    value = json_messages(value)
    if isinstance(value, str):
        if has_markers(value):
            turns = parse_turns(value)
            if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
                turns.pop()  # a prompt ending in an empty "Assistant:" cue
            return turns
        return [{"role": "user", "content": value.strip()}] if value.strip() else []
    if isinstance(value, list | dict):
        return messages(value, column)
    raise RowProblem("wrong_type", f"the prompt (`{column}`) is {type(value).__name__}")


def response_text(value: str) -> str:
    """A response without surrounding whitespace or a leading `Assistant:` marker."""
    stripped = value.strip()
    return stripped[len("Assistant:") :].strip() if stripped.startswith("Assistant:") else stripped


def system_context(record: Mapping[str, Any], mapping: ColumnMap) -> list[dict[str, str]]:
    """The system message (column or template), as context; none when empty."""
    value = mapping.value(record, "system")
    if isinstance(value, str) and value.strip():
        return [{"role": "system", "content": value.strip()}]
    return []


def raw_text(value: Any) -> str:
    """A source value as stored in chosen_raw/rejected_raw: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def split_messages(msgs: list[dict[str, str]], column: str) -> tuple[list[dict[str, str]], str]:
    """The messages before the final assistant message, and its text."""
    if not msgs:
        raise RowProblem("empty_messages", f"`{column}` has no messages")
    if msgs[-1]["role"] != "assistant":
        raise RowProblem("final_turn_not_assistant", f"the last message of `{column}` is not the assistant's")
    return msgs[:-1], msgs[-1]["content"]
