"""The labeling prompt of the `llm` labeler, its JSON schema, and the hashes that key the response cache.

One request labels one side of a pair: the conversation (context turns + that side's final response)
and the features still missing for that text. Features of scope ``response`` judge the final response
read in the context of the turns before it; features of scope ``conversation`` judge the dialogue as a
whole. The model answers one JSON object with exactly the requested keys.

Hashes (all sha256 of canonical JSON, hex, truncated):
- ``text_hash``: the conversation that one side shows the labeler (roles + contents, final response last);
- ``feature_hash``: what defines a feature's label (name, type, allowed values, instruction, scope);
  role and sign are left out, so re-partitioning targets and spoilers never re-labels anything;
- ``prompt_hash``: the wording below (``PROMPT_VERSION`` and every template) and the generation
  parameters that change answers (temperature, seed). Bump ``PROMPT_VERSION`` when the rendering code
  changes the text a model sees.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from seal.catalog.featuresets import Feature, FeatureSet, InvalidLabel
from seal.recipe import canonical_json

PROMPT_VERSION = 1

SYSTEM_PROMPT = (
    "You are a careful annotator in a study of how reward models judge AI assistants. You will read one "
    "conversation between a human and an AI assistant and answer a fixed list of questions about it. "
    "Judge only what is written; do not continue the conversation and do not explain yourself. "
    "Reply with a single JSON object and nothing else: exactly one key per question, spelled as given, "
    "each with a value of the stated type."
)

USER_TEMPLATE = """\
The conversation below has {turns} turn(s). The last assistant turn is the final response.

<conversation>
{conversation}
</conversation>

Questions. Those marked "final response" are about the last assistant turn, read in the context of the \
turns before it. Those marked "whole conversation" are about the dialogue as a whole.

{questions}

Reply with one JSON object with exactly these keys: {keys}."""

TURN_TEMPLATE = "[{speaker}]\n{content}"
FINAL_SPEAKER = "assistant: final response"
QUESTION_TEMPLATE = "- {name} ({kind}; {scope}): {instruction}"
SCOPES = {"response": "final response", "conversation": "whole conversation"}

REASK_TEMPLATE = (
    "That reply could not be used: {error}. Reply again with only the JSON object: exactly the keys "
    "{keys}, each with a value of the stated type."
)

_SPEAKERS = {"user": "human", "human": "human", "assistant": "assistant", "system": "system"}


def _digest(value: Any, length: int) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def conversation(context: Sequence[Mapping[str, Any]] | None, response: str) -> list[dict[str, str]]:
    """One side as the labeler sees it: the context turns, then the final response as an assistant turn."""
    turns = [{"role": str(m.get("role") or "user"), "content": str(m.get("content") or "")} for m in context or []]
    turns.append({"role": "assistant", "content": response})
    return turns


def text_hash(turns: Sequence[Mapping[str, str]]) -> str:
    return _digest([[t["role"], t["content"]] for t in turns], 32)


def feature_hash(feature: Feature) -> str:
    values = feature.values
    if isinstance(values, Mapping):
        values = sorted(values)  # category codes are an encoding, not part of what is asked
    return _digest(
        {
            "name": feature.name,
            "type": feature.type,
            "values": values,
            "instruction": feature.instruction,
            "scope": feature.scope,
        },
        16,
    )


def prompt_hash(temperature: float, seed: int | None) -> str:
    return _digest(
        {
            "version": PROMPT_VERSION,
            "system": SYSTEM_PROMPT,
            "user": USER_TEMPLATE,
            "turn": TURN_TEMPLATE,
            "final": FINAL_SPEAKER,
            "question": QUESTION_TEMPLATE,
            "scopes": SCOPES,
            "reask": REASK_TEMPLATE,
            "speakers": _SPEAKERS,
            "temperature": float(temperature),
            "seed": seed,
        },
        16,
    )


def _kind(feature: Feature) -> str:
    if feature.type == "bool":
        return "true or false"
    if feature.type == "number":
        return "a number"
    if feature.type == "category":
        return "one of " + ", ".join(f'"{v}"' for v in feature.values)
    return "a list drawn from " + ", ".join(f'"{v}"' for v in feature.values) + "; [] when none apply"


def render_conversation(turns: Sequence[Mapping[str, str]]) -> str:
    parts = []
    for i, turn in enumerate(turns):
        last = i == len(turns) - 1
        speaker = FINAL_SPEAKER if last else _SPEAKERS.get(turn["role"], turn["role"])
        parts.append(TURN_TEMPLATE.format(speaker=speaker, content=turn["content"].strip()))
    return "\n\n".join(parts)


def build_messages(turns: Sequence[Mapping[str, str]], features: Sequence[Feature]) -> list[dict[str, str]]:
    """The chat messages asking for `features` of one side."""
    questions = "\n".join(
        QUESTION_TEMPLATE.format(
            name=f.name,
            kind=_kind(f),
            scope=SCOPES.get(f.scope, f.scope),
            instruction=" ".join(f.instruction.split()) or f.name.replace("_", " "),
        )
        for f in features
    )
    user = USER_TEMPLATE.format(
        turns=len(turns),
        conversation=render_conversation(turns),
        questions=questions,
        keys=", ".join(f.name for f in features),
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def reask_message(error: str, features: Sequence[Feature]) -> dict[str, str]:
    return {"role": "user", "content": REASK_TEMPLATE.format(error=error, keys=", ".join(f.name for f in features))}


def _value_schema(feature: Feature) -> dict[str, Any]:
    if feature.type == "bool":
        return {"type": "boolean"}
    if feature.type == "number":
        return {"type": "number"}
    if feature.type == "category":
        return {"type": "string", "enum": list(feature.values)}
    return {"type": "array", "items": {"type": "string", "enum": list(feature.values)}}


def json_schema(features: Sequence[Feature]) -> dict[str, Any]:
    """The answer's JSON Schema, in the subset OpenAI's strict structured outputs accept."""
    return {
        "type": "object",
        "properties": {f.name: _value_schema(f) for f in features},
        "required": [f.name for f in features],
        "additionalProperties": False,
    }


def response_format(mode: str, features: Sequence[Feature]) -> dict[str, Any] | None:
    """The `response_format` request field for a structured-output mode (None: prompt only).

    json_schema: OpenAI structured outputs (also vLLM, Ollama); json_object_schema: JSON mode plus a
    `schema` field (llama-cpp-python's server); json_object: plain JSON mode; none: the prompt alone."""
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "seal_labels", "strict": True, "schema": json_schema(features)},
        }
    if mode == "json_object_schema":  # JSON mode with a schema field: llama.cpp's server turns it into a grammar
        return {"type": "json_object", "schema": json_schema(features)}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_answer(content: str | None, features: Sequence[Feature]) -> dict[str, Any]:
    """The checked labels in a model's reply, or InvalidLabel saying what is wrong (fed back on a re-ask)."""
    if content is None or not content.strip():
        raise InvalidLabel("the reply was empty")
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        try:
            value = json.loads(text[start : end + 1]) if 0 <= start < end else None
        except json.JSONDecodeError:
            value = None
        if value is None:
            raise InvalidLabel(f"the reply is not a JSON object: {_snippet(content)}") from None
    if not isinstance(value, dict):
        raise InvalidLabel(f"the reply is JSON but not an object: {_snippet(content)}")
    return FeatureSet(name="request", features=tuple(features)).check(value)


def _snippet(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "…")


def estimate_tokens(text: str) -> int:
    """A rough token count (about 4 characters a token for English with GPT-style tokenizers)."""
    return math.ceil(len(text) / 4)


def estimate_request_tokens(messages: Sequence[Mapping[str, str]], features: Sequence[Feature]) -> tuple[int, int]:
    """(input, output) token estimates for one request: message text plus a per-message overhead;
    the answer as a JSON object with a typical value per feature."""
    input_tokens = sum(estimate_tokens(m["content"]) + 4 for m in messages) + 3
    typical = {
        f.name: (
            True
            if f.type == "bool"
            else 0.5
            if f.type == "number"
            else max(f.values, key=len)
            if f.type == "category"
            else list(f.values)[:2]
        )
        for f in features
    }
    return input_tokens, estimate_tokens(json.dumps(typical)) + 2


def default_max_tokens(features: Sequence[Feature]) -> int:
    """A reply budget that fits the JSON answer with room to spare (lists may name every value)."""
    budget = 16
    for f in features:
        budget += 12 + (sum(len(v) for v in f.values) // 3 + 2 * len(f.values) if f.type == "list" else 8)
    return budget
