"""The `llm` rewriter: paraphrase texts with an OpenAI-compatible chat endpoint. The endpoint is an
`seal.engines.llm.LLMEndpoint`, the configuration (and client) the LLM labeler uses too.

By default only the final response is rewritten, so both sides keep the identical original context;
with target ``conversation`` the whole dialogue of each side is rewritten, speaker markers kept.
Every answer is cleaned (echoed tags, code fences, a "Here is..." preface) and validated: not empty, not
cut off, changed, no speaker markers added to a response (or, for a dialogue, the same turns with the same
speakers), and a length ratio within bounds. An invalid answer is re-asked with the problem stated, up to
``attempts`` asks; a text still invalid is stored as a failed variant with its reason.

Accepted rewrites go to the store's LLM cache (the labeler's ``llm_cache`` table, feature ``rewrite``),
keyed by model, prompt hash (wording, temperature, seed), the original text and the validation
settings, and are written there as they arrive: a rerun, a resumed run or another perturbation of the
same texts sends no request for them again. Only model, prompt and validation settings determine the
variants (the recipe); endpoint, concurrency and retries are provenance. The API key is read from the
environment variable named by ``api_key_env`` and never stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from seal.annotate.perturb.jobs import Job, Outcome
from seal.annotate.perturb.rules import parse_op
from seal.engines.llm import ChatClient, LLMEndpoint, LLMError, LLMFatalError, LLMRequestError, run_sync
from seal.errors import SealError
from seal.recipe import canonical_json

REWRITE_PROMPT_VERSION = 1
CACHE_FEATURE = "rewrite"

SYSTEM_PROMPT = (
    "You are a copy editor who paraphrases. You rewrite a text so that it says the same thing in other words: "
    "change the vocabulary, the phrasing and the grammar, and nothing else. Keep the meaning, the intent, the "
    "tone and the intensity of every sentence, and about the same length. Keep everything the text says, "
    "including rude, offensive, "
    "harmful or unsafe content: do not soften it, refuse, censor it, add warnings or add anything new. Do not "
    "answer or continue the text. Reply with the rewritten text only, with no preface, quotes or comments."
)
RESPONSE_TEMPLATE = """\
Paraphrase this reply of an AI assistant. Reply with the paraphrase only.

<text>
{text}
</text>"""
CONVERSATION_TEMPLATE = """\
Paraphrase this dialogue between a human and an AI assistant. Paraphrase every turn, keep the {turns} turn(s) \
in the same order, and start each turn on a new line with its speaker marker exactly as given ("Human:" or \
"Assistant:"). Reply with the paraphrased dialogue only.

<dialogue>
{text}
</dialogue>"""
REASK_TEMPLATE = (
    "That answer could not be used: {error}. Paraphrase the original text again, following the instructions; "
    "reply with the paraphrase only."
)

_SPEAKERS = {"user": "Human", "human": "Human", "assistant": "Assistant", "system": "System"}
_MARKER_LINE = re.compile(r"(?m)^\s*(Human|Assistant|System)\s*:")
_PREFACE = re.compile(r"^(?:sure|okay|ok|certainly|here(?:'s| is| are)|rewritten|paraphrase)[^\n]{0,80}:\s*\n", re.I)
_FENCE = re.compile(r"^```[a-z]*\n(.*)\n```$", re.S)
_TAGS = re.compile(r"^<(text|dialogue)>\s*(.*?)\s*</\1>$", re.S)


@dataclass(frozen=True)
class LLMRewriteConfig:
    """The endpoint (`LLMEndpoint`, the same configuration the LLM labeler takes) and how to paraphrase and check
    the answers. Only the model, the prompt (wording, temperature, seed) and the validation settings determine
    the variants."""

    endpoint: LLMEndpoint
    temperature: float = 0.0
    seed: int | None = None
    max_tokens: int | None = None  # default: from the text's length
    attempts: int = 3  # asks per text, re-asks included
    min_ratio: float = 0.5  # length bounds, variant / original characters
    max_ratio: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise SealError("llm attempts must be >= 1")
        if not 0 < self.min_ratio <= 1 <= self.max_ratio:
            raise SealError("llm length bounds need 0 < min_ratio <= 1 <= max_ratio")
        if self.temperature < 0:
            raise SealError("llm temperature must be >= 0")

    @property
    def model(self) -> str:
        return self.endpoint.model

    def prompt_hash(self) -> str:
        material = {
            "version": REWRITE_PROMPT_VERSION,
            "system": SYSTEM_PROMPT,
            "response": RESPONSE_TEMPLATE,
            "conversation": CONVERSATION_TEMPLATE,
            "reask": REASK_TEMPLATE,
            "temperature": self.temperature,
            "seed": self.seed,
        }
        return hashlib.sha256(canonical_json(material).encode()).hexdigest()[:16]


ENDPOINT_FIELDS = frozenset(f.name for f in fields(LLMEndpoint))  # model, base_url, api_key_env, concurrency, ...
REWRITE_FIELDS = frozenset(f.name for f in fields(LLMRewriteConfig)) - {"endpoint"}
_FIELDS = ENDPOINT_FIELDS | REWRITE_FIELDS
_FLOATS = ("temperature", "min_ratio", "max_ratio", "timeout", "backoff_base", "backoff_max")


def endpoint_settings(
    method: str,
    params: Mapping[str, Any] | None,
    given: Mapping[str, Any],
    environment: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The endpoint settings to hand the rewriter of `method` besides its own parameters.

    `given` (e.g. `seal perturb --base-url/--api-key-env/--concurrency/--timeout/--max-retries`) must agree
    with the same keys written in the method (``llm:model=m,base_url=...``) or `params`: a contradiction is
    an error. `environment` (e.g. ``OPENAI_BASE_URL``) only fills in keys that neither names. For a rule
    method, `given` is an error and `environment` is ignored."""
    given = {k: v for k, v in given.items() if v is not None}
    head, inline = parse_op(method.split("+")[0])
    if head != "llm":
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise SealError(f"{flags} configure the llm rewriter; `{head}` is a rule op", hint="drop them")
        return {}
    named = {**inline, **(params or {})}
    _check_agreement(named, given)
    filled = {k: v for k, v in (environment or {}).items() if v is not None and k not in named and k not in given}
    return {**filled, **given}


def _check_agreement(named: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    for key, value in given.items():
        if key in named and str(named[key]) != str(value) and named[key] != value:
            raise SealError(
                f"--{key.replace('_', '-')} {value} contradicts {key}={named[key]} in the llm method",
                hint="give each endpoint setting once: as a flag, or in --method llm:...",
            )


class LLMRewriter:
    """Paraphrase with an OpenAI-compatible chat model; answers are validated, re-asked and cached."""

    kind = "llm"

    def __init__(self, config: LLMRewriteConfig, store: Any = None):
        self.config = config
        self.method = f"llm:model={config.model}"
        self.store = store  # set by the perturb stage for the cache; None: no cache
        self.stats: dict[str, Any] = {"requests": 0, "cache_hits": 0, "reasks": 0, "failed": 0, "tokens": {}}

    @classmethod
    def from_method(
        cls, method: str, params: Mapping[str, Any] | None = None, endpoint: Mapping[str, Any] | None = None
    ) -> LLMRewriter:
        """From ``llm:model=ID[,key=value...]``, the spec's `params` (these win over the method's) and
        `endpoint`: endpoint settings given apart from the method (see `endpoint_settings`), which must agree
        with the method and params."""
        if "+" in method:
            raise SealError("the llm rewriter cannot be chained with other ops")
        _, inline = parse_op(method)
        values = {**inline, **(params or {})}
        _check_agreement(values, endpoint or {})
        values.update({k: v for k, v in (endpoint or {}).items() if v is not None})
        unknown = sorted(set(values) - _FIELDS)
        if unknown:
            raise SealError(
                f"unknown llm parameter(s): {', '.join(unknown)}", hint=f"known: {', '.join(sorted(_FIELDS))}"
            )
        if "model" not in values:
            raise SealError("the llm rewriter needs a model", hint="e.g. --method llm:model=gpt-4o-mini")
        values["model"] = str(values["model"])
        for key in ("base_url", "api_key_env"):
            if key in values:
                values[key] = str(values[key])
        for key in _FLOATS:
            if key in values:
                values[key] = float(values[key])
        endpoint_values = {k: v for k, v in values.items() if k in ENDPOINT_FIELDS}
        rewrite_values = {k: v for k, v in values.items() if k in REWRITE_FIELDS}
        return cls(LLMRewriteConfig(LLMEndpoint(**endpoint_values), **rewrite_values))

    def default_name(self) -> str:
        return "llm"

    def recipe_params(self) -> dict[str, Any]:
        c = self.config
        return {
            "kind": self.kind,
            "model": c.model,
            "prompt_version": REWRITE_PROMPT_VERSION,
            "prompt_hash": c.prompt_hash(),
            "temperature": c.temperature,
            "seed": c.seed,
            "attempts": c.attempts,
            "min_ratio": c.min_ratio,
            "max_ratio": c.max_ratio,
            "max_tokens": c.max_tokens,
        }

    def provenance(self) -> dict[str, Any]:
        """The endpoint (no credentials) and the request counters."""
        return {**self.config.endpoint.provenance(), "stats": self.stats}

    def chunk_size(self) -> int:
        return max(16, 8 * self.config.endpoint.concurrency)

    # -- rewriting ----------------------------------------------------------------------------------
    def validation_hash(self, target: str) -> str:
        c = self.config
        material = {"target": target, "min_ratio": c.min_ratio, "max_ratio": c.max_ratio, "attempts": c.attempts}
        return hashlib.sha256(canonical_json(material).encode()).hexdigest()[:16]

    def rewrite(self, jobs: Sequence[Job]) -> list[Outcome]:
        return run_sync(self._rewrite_all(list(jobs)))

    async def _rewrite_all(self, jobs: list[Job]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(jobs)
        tasks = [_task(job) for job in jobs]
        cache = self._cache()
        prompt_hash = self.config.prompt_hash()
        if cache is not None and jobs:
            found = cache.lookup(
                self.config.model,
                prompt_hash,
                [t.text_hash for t in tasks],
                {self.validation_hash(j.target) for j in jobs},
            )
            for i, (job, task) in enumerate(zip(jobs, tasks, strict=True)):
                hit = found.get((task.text_hash, self.validation_hash(job.target)))
                if hit is not None:
                    outcomes[i] = Outcome(hit["response"], hit.get("context"), attempts=0, cached=1)
                    self.stats["cache_hits"] += 1
        todo = [i for i, o in enumerate(outcomes) if o is None]
        if not todo:
            return [o for o in outcomes if o is not None]
        endpoint = self.config.endpoint
        queue = list(reversed(todo))
        new_rows: list[dict[str, Any]] = []
        async with endpoint.client(endpoint.api_key()) as client:

            async def worker() -> None:
                while queue:
                    i = queue.pop()
                    outcome, row = await self._rewrite_one(client, jobs[i], tasks[i])
                    outcomes[i] = outcome
                    if row is not None:
                        new_rows.append(row)

            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(endpoint.concurrency, len(todo))):
                        group.create_task(worker())
            except BaseExceptionGroup as errors:
                fatal = [e for e in errors.exceptions if isinstance(e, LLMFatalError)]
                raise (fatal or list(errors.exceptions))[0] from None
            finally:
                if cache is not None and new_rows:
                    cache.add(new_rows)
                tokens = client.stats.to_json()
                self.stats["tokens"] = {
                    "prompt": self.stats["tokens"].get("prompt", 0) + tokens["prompt_tokens"],
                    "completion": self.stats["tokens"].get("completion", 0) + tokens["completion_tokens"],
                }
                self.stats["http_retries"] = self.stats.get("http_retries", 0) + tokens["retries"]
        return [o if o is not None else Outcome(None, error="not attempted") for o in outcomes]

    async def _rewrite_one(self, client: ChatClient, job: Job, task: _Task) -> tuple[Outcome, dict | None]:
        c = self.config
        messages: list[dict[str, str]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": task.prompt},
        ]
        max_tokens = c.max_tokens or min(4096, 64 + len(task.original) // 2)
        error = "no answer"
        prompt_tokens = completion_tokens = 0
        for attempt in range(1, c.attempts + 1):
            try:
                result = await client.chat(messages, max_tokens=max_tokens, temperature=c.temperature, seed=c.seed)
            except LLMRequestError as err:
                self.stats["failed"] += 1
                return Outcome(None, error=f"{err.kind}: {err}", attempts=attempt), None
            self.stats["requests"] += 1
            prompt_tokens += result.prompt_tokens
            completion_tokens += result.completion_tokens
            answer = clean_answer(result.content or "")
            try:
                if result.finish_reason == "length":
                    raise ValueError(f"the answer was cut off at max_tokens={max_tokens}")
                outcome = self._validate(job, task, answer)
            except ValueError as err:
                error = str(err)
                if attempt < c.attempts:
                    self.stats["reasks"] += 1
                    messages = [
                        *messages,
                        {"role": "assistant", "content": result.content or ""},
                        {"role": "user", "content": REASK_TEMPLATE.format(error=error)},
                    ]
                continue
            outcome.attempts = attempt
            row = {
                "model": c.model,
                "prompt_hash": c.prompt_hash(),
                "text_hash": task.text_hash,
                "feature": CACHE_FEATURE,
                "feature_hash": self.validation_hash(job.target),
                "value": json.dumps({"response": outcome.response, "context": outcome.context}, ensure_ascii=False),
                "response_id": result.response_id,
                "n_features": 1,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "run_id": None,
            }
            return outcome, row
        self.stats["failed"] += 1
        return Outcome(None, error=f"invalid after {c.attempts} attempt(s): {error}", attempts=c.attempts), None

    def _validate(self, job: Job, task: _Task, answer: str) -> Outcome:
        if not answer.strip():
            raise ValueError("the answer is empty")
        if _normal(answer) == _normal(task.original):
            raise ValueError("the text is unchanged")
        if re.search(r"</?(text|dialogue)>", answer):
            raise ValueError("the answer contains the <text>/<dialogue> tags of the request")
        ratio = (len(answer) + 10) / (len(task.original) + 10)
        if not self.config.min_ratio <= ratio <= self.config.max_ratio:
            raise ValueError(
                f"the paraphrase is {ratio:.2f} times as long as the original "
                f"(allowed {self.config.min_ratio:g}-{self.config.max_ratio:g})"
            )
        if job.target == "response":
            text = re.sub(r"^\s*Assistant\s*:\s*", "", answer)
            if _MARKER_LINE.search(text) and not _MARKER_LINE.search(job.response):
                raise ValueError("the answer adds speaker markers (Human:/Assistant:); rewrite the reply only")
            return Outcome(text.strip())
        from seal.ingest.transcript import parse_turns

        turns = parse_turns("\n\n" + answer.strip())
        roles = [t["role"] for t in turns]
        expected = [*(str(m["role"]) for m in job.context), "assistant"]
        if [_SPEAKERS.get(r, r) for r in roles] != [_SPEAKERS.get(r, r) for r in expected]:
            want = " ".join(_SPEAKERS.get(r, r) + ":" for r in expected)
            raise ValueError(f"expected {len(expected)} turns with the markers {want} in this order, got {len(turns)}")
        if any(not t["content"].strip() for t in turns):
            raise ValueError("a turn is empty")
        context = [{"role": str(m["role"]), "content": t["content"]} for m, t in zip(job.context, turns, strict=False)]
        return Outcome(turns[-1]["content"], context)

    def _cache(self) -> Any:
        if self.store is None:
            return None
        from seal.annotate.features.llm_cache import LabelCache

        return LabelCache(self.store)


@dataclass(frozen=True)
class _Task:
    original: str  # what is rewritten: the response, or the rendered dialogue
    prompt: str
    text_hash: str


def render_dialogue(messages: Sequence[Mapping[str, Any]]) -> str:
    """``Human: …`` / ``Assistant: …`` turns separated by blank lines (no leading newlines)."""
    return "\n\n".join(
        f"{_SPEAKERS.get(str(m['role']), str(m['role']).capitalize())}: {m['content']}" for m in messages
    )


def _task(job: Job) -> _Task:
    if job.target == "conversation":
        turns = [*job.context, {"role": "assistant", "content": job.response}]
        original = render_dialogue(turns)
        prompt = CONVERSATION_TEMPLATE.format(text=original, turns=len(turns))
        material: Any = {"target": "conversation", "turns": [[str(m["role"]), str(m["content"])] for m in turns]}
    else:
        original = job.response
        prompt = RESPONSE_TEMPLATE.format(text=original)
        material = {"target": "response", "text": original}
    return _Task(original, prompt, hashlib.sha256(canonical_json(material).encode()).hexdigest()[:32])


def clean_answer(text: str) -> str:
    """Strip what models wrap a paraphrase in: code fences, echoed tags, a "Here is…:" line, quotes."""
    out = text.strip()
    fence = _FENCE.match(out)
    if fence:
        out = fence.group(1).strip()
    out = _PREFACE.sub("", out, count=1).strip()
    tags = _TAGS.match(out)
    if tags:
        out = tags.group(2).strip()
    out = re.sub(r"^<(text|dialogue)>\s*|\s*</(text|dialogue)>$", "", out).strip()
    if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'“”" and out.count(out[0]) == 2:
        out = out[1:-1].strip()
    return out


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


__all__ = ["LLMError", "LLMRewriteConfig", "LLMRewriter", "clean_answer", "render_dialogue"]
