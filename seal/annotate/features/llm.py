"""The `llm` labeler: label each side of each pair with an OpenAI-compatible chat-completions endpoint.

One request labels one side: the context turns plus that side's final response, asking for the
features not cached yet for that text (prompts.py). Answers are parsed and checked against the
feature types (FeatureSet.check); an invalid answer is re-asked with the error fed back, then
recorded as a failure with its reason. Requests run concurrently (``concurrency`` workers) through
ChatClient, which backs off on 429/5xx/timeouts. Labels go to the ``llm_cache`` table as they arrive
(the checkpoint of a killed run), and the ``features_<set>`` column is then rebuilt from the cache for
every pair, so a rerun asks for nothing already answered and a widened feature set asks only for its
new features. With ``batch_api`` the requests go through the OpenAI Batch API instead (submit,
poll, collect), with the submissions kept in ``llm_batches`` so that a rerun resumes polling.

The API key is read from the environment variable the spec names (``api_key_env``) when requests
are sent, and is never stored, printed or logged.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa

from seal.annotate.features.featureset import Feature, FeatureSet, InvalidLabel, load_feature_set
from seal.annotate.features.llm_cache import BatchBook, FailureLog, LabelCache
from seal.annotate.features.llm_client import (
    ChatClient,
    ChatResult,
    ClientStats,
    LLMFatalError,
    LLMRequestError,
    chat_body,
    redact_url,
    run_sync,
)
from seal.annotate.features.llm_prices import resolve_price
from seal.annotate.features.prompts import (
    PROMPT_VERSION,
    build_messages,
    conversation,
    default_max_tokens,
    estimate_request_tokens,
    feature_hash,
    parse_answer,
    prompt_hash,
    reask_message,
    response_format,
    text_hash,
)
from seal.annotate.features.stage import sample_pair_ids
from seal.annotate.features.writer import latest_label_run, write_labels
from seal.errors import NothingSucceeded, SealError
from seal.pipeline import PENDING, STALE, UP_TO_DATE, Plan
from seal.progress import progress_bar
from seal.recipe import Recipe, canonical_json
from seal.store import Store, new_run_id, now_utc

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
STRUCTURED_MODES = ("auto", "json_schema", "json_object_schema", "json_object", "none")
# `auto` starts with a JSON schema and steps down when the server rejects the response_format it got.
_DOWNGRADE = {"json_schema": "json_object_schema", "json_object_schema": "json_object", "json_object": "none"}
BATCH_DISCOUNT = 0.5  # the Batch API bills half the synchronous price
STAGE_VERSION = 1
SIDES = ("chosen", "rejected")


@dataclass(frozen=True)
class LLMConfig:
    """How to reach the model and how hard to try. Only `model`, temperature, request_seed and the
    prompt determine the labels (the recipe); the rest is provenance."""

    model: str
    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = DEFAULT_API_KEY_ENV
    concurrency: int = 4
    temperature: float = 0.0
    request_seed: int | None = None  # the API's `seed` (best-effort determinism)
    max_tokens: int | None = None
    timeout: float = 60.0
    max_retries: int = 5
    max_invalid_retries: int = 2
    structured_output: str = "auto"
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    batch_api: bool = False
    batch_wait: float = 0.0
    batch_poll_interval: float = 30.0
    flush_every: int = 200
    max_consecutive_failures: int = 20  # texts in a row failing at the HTTP level stop the run

    def __post_init__(self) -> None:
        if not self.model:
            raise SealError("the llm labeler needs a model", hint="pass --model (e.g. gpt-4o-mini)")
        if not self.base_url.startswith(("http://", "https://")):
            raise SealError(f"--base-url must be an http(s) URL, got `{self.base_url}`")
        if self.structured_output not in STRUCTURED_MODES:
            raise SealError(
                f"unknown structured output mode `{self.structured_output}`", hint=", ".join(STRUCTURED_MODES)
            )
        for name in ("concurrency", "flush_every", "max_consecutive_failures"):
            if int(getattr(self, name)) < 1:
                raise SealError(f"{name} must be at least 1")
        for name in ("max_retries", "max_invalid_retries"):
            if int(getattr(self, name)) < 0:
                raise SealError(f"{name} must be >= 0")
        if self.timeout <= 0:
            raise SealError("timeout must be > 0 seconds")
        if self.temperature < 0:
            raise SealError("temperature must be >= 0")

    @property
    def prompt_hash(self) -> str:
        return prompt_hash(self.temperature, self.request_seed)

    def provenance(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("model")
        out["base_url"] = redact_url(self.base_url)
        return out


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


# -- what to label -----------------------------------------------------------------------------------


@dataclass
class TextItem:
    """One distinct conversation to label (identical sides share one) and the features it lacks."""

    text_hash: str
    turns: list[dict[str, str]] | None
    sides: list[tuple[str, str]] = field(default_factory=list)
    missing: tuple[Feature, ...] = ()


@dataclass
class Work:
    """What a run of one feature set has to do, from the store and the cache (no request is sent)."""

    feature_set: FeatureSet
    config: LLMConfig
    feature_hashes: dict[str, str]
    pair_ids: list[str]  # every pair of the store, in table order (the column covers them all)
    side_hashes: list[tuple[str, str]]  # (chosen, rejected) text hashes, aligned with pair_ids
    scope: int  # pairs in scope (dataset / sample)
    texts: dict[str, TextItem]  # distinct texts in scope
    cached: dict[tuple[str, str], Any]  # (text_hash, feature_hash) -> value, for every pair
    todo: list[TextItem]  # texts in scope with missing features

    @property
    def sides(self) -> int:
        return 2 * self.scope

    @property
    def cache_hits(self) -> int:
        return len(self.texts) - len(self.todo)

    @property
    def cached_labels(self) -> int:
        total = len(self.texts) * len(self.feature_hashes)
        return total - sum(len(t.missing) for t in self.todo)

    def requests_for(self, text: TextItem) -> dict[str, Any]:
        config = self.config
        features = text.missing
        fmt = "json_schema" if config.structured_output == "auto" else config.structured_output
        return chat_body(
            config.model,
            build_messages(text.turns or [], features),
            response_format(fmt, features),
            config.max_tokens or default_max_tokens(features),
            config.temperature,
            config.request_seed,
        )

    def estimate(self, prices: Mapping[str, Any] | None = None, batch: bool | None = None) -> dict[str, Any]:
        """Requests, estimated tokens (about 4 characters a token) and cost for what is left to label."""
        input_tokens = output_tokens = 0
        for text in self.todo:
            i, o = estimate_request_tokens(build_messages(text.turns or [], text.missing), text.missing)
            input_tokens, output_tokens = input_tokens + i, output_tokens + o
        batch = self.config.batch_api if batch is None else batch
        price, source = resolve_price(self.config.model, prices)
        cost = None
        if price is not None:
            cost = (input_tokens * float(price.get("input", 0)) + output_tokens * float(price.get("output", 0))) / 1e6
            cost = round(cost * (BATCH_DISCOUNT if batch else 1.0), 6)
        no_price = (
            f"; no price known for `{self.config.model}`: pass --price-in/--price-out (USD per million tokens), "
            "--prices FILE or a spec `prices` section"
        )
        return {
            "requests": len(self.todo),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost,
            "price_per_million": dict(price) if price is not None else None,
            "price_source": source,
            "batch_discount": BATCH_DISCOUNT if batch else None,
            "note": "token counts are estimates (about 4 characters a token)" + ("" if price is not None else no_price),
        }


def prepare_work(
    store: Store,
    fs: FeatureSet,
    config: LLMConfig,
    *,
    sample: int | None = None,
    seed: int = 0,
    dataset: str | None = None,
) -> Work:
    """Read the pairs, hash every side, look the labels up in the cache; nothing is sent anywhere.

    `sample` labels a seeded sample of N pairs (the `label` stage's `sample_pair_ids`: a larger
    sample contains a smaller one); `dataset` only the pairs of one dataset."""
    store.require()
    rows = store.pairs().to_lance().to_table(columns=["pair_id", "dataset", "context", "chosen", "rejected"])
    pair_ids = rows.column("pair_id").to_pylist()
    datasets = rows.column("dataset").to_pylist()
    contexts = rows.column("context").to_pylist()
    sides_text = {side: rows.column(side).to_pylist() for side in SIDES}
    feature_hashes = {f.name: feature_hash(f) for f in fs.features}

    in_scope = [i for i, d in enumerate(datasets) if dataset is None or d == dataset]
    if sample is not None:
        if sample <= 0:
            raise SealError("--sample must be a positive number of pairs")
        chosen_ids = set(sample_pair_ids(pa.array([pair_ids[i] for i in in_scope]), sample, seed).to_pylist())
        in_scope = [i for i in in_scope if pair_ids[i] in chosen_ids]
    scope_set = set(in_scope)

    side_hashes: list[tuple[str, str]] = []
    texts: dict[str, TextItem] = {}
    for i, pid in enumerate(pair_ids):
        hashes = []
        for side in SIDES:
            turns = conversation(contexts[i], sides_text[side][i] or "")
            h = text_hash(turns)
            hashes.append(h)
            if i in scope_set:
                texts.setdefault(h, TextItem(h, turns)).sides.append((pid, side))
        side_hashes.append((hashes[0], hashes[1]))

    all_texts = {h for pair in side_hashes for h in pair}
    cached = LabelCache(store).lookup(config.model, config.prompt_hash, all_texts, feature_hashes.values())
    todo = []
    for text in texts.values():
        text.missing = tuple(f for f in fs.features if (text.text_hash, feature_hashes[f.name]) not in cached)
        if text.missing:
            todo.append(text)
    return Work(fs, config, feature_hashes, pair_ids, side_hashes, len(in_scope), texts, cached, todo)


# -- results -----------------------------------------------------------------------------------------


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

    def line(self) -> str:
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


class LabelSink:
    """Takes each text's outcome: labels go to the cache in batches, failures to a list."""

    def __init__(self, store: Store, work: Work, run_id: str):
        self.cache = LabelCache(store)
        self.work = work
        self.run_id = run_id
        self.config = work.config
        self.rows: list[dict[str, Any]] = []
        self.pending_texts = 0
        self.last_flush = time.monotonic()
        self.new: dict[tuple[str, str], Any] = {}
        self.failures: list[dict[str, Any]] = []
        self.failure_reasons: Counter[str] = Counter()
        self.labelled = 0
        self.reasks = 0
        self.consecutive_failures = 0  # texts in a row that failed for another reason than their answer

    def label(
        self,
        text: TextItem,
        features: Sequence[Feature],
        labels: Mapping[str, Any],
        response_id: str | None,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        for f in features:
            fh = feature_hash(f)
            self.new[(text.text_hash, fh)] = labels[f.name]
            self.rows.append(
                {
                    "model": self.config.model,
                    "prompt_hash": self.config.prompt_hash,
                    "text_hash": text.text_hash,
                    "feature": f.name,
                    "feature_hash": fh,
                    "value": canonical_json(labels[f.name]),
                    "response_id": response_id,
                    "n_features": len(features),
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "run_id": self.run_id,
                }
            )
        self.labelled += 1
        self.consecutive_failures = 0
        self.pending_texts += 1
        if self.pending_texts >= self.config.flush_every or time.monotonic() - self.last_flush > 30:
            self.flush()

    def fail(self, text: TextItem, features: Sequence[Feature], kind: str, reason: str, attempts: int) -> None:
        self.failure_reasons[kind] += 1
        self.consecutive_failures = 0 if kind == "invalid" else self.consecutive_failures + 1
        for pair_id, side in text.sides or [(None, None)]:
            self.failures.append(
                {
                    "feature_set": self.work.feature_set.name,
                    "model": self.config.model,
                    "prompt_hash": self.config.prompt_hash,
                    "text_hash": text.text_hash,
                    "pair_id": pair_id,
                    "side": side,
                    "features": [f.name for f in features],
                    "kind": kind,
                    "reason": reason[:1000],
                    "attempts": attempts,
                    "run_id": self.run_id,
                }
            )

    @property
    def failed_texts(self) -> int:
        return sum(self.failure_reasons.values())

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        self.pending_texts = 0
        self.last_flush = time.monotonic()
        self.cache.add(rows)


# -- interactive requests ----------------------------------------------------------------------------


class _TooManyFailures(LLMFatalError):
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
                raise _TooManyFailures(
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


def make_client(config: LLMConfig, api_key: str | None) -> ChatClient:
    return ChatClient(
        config.base_url,
        config.model,
        api_key=api_key,
        timeout=config.timeout,
        max_retries=config.max_retries,
        backoff_base=config.backoff_base,
        backoff_max=config.backoff_max,
        max_connections=max(config.concurrency, 4),
    )


async def _run_interactive(work: Work, api_key: str | None, sink: LabelSink, bar: Any) -> tuple[ClientStats, str]:
    config = work.config
    mode = _Mode(config.structured_output)
    queue = deque(work.todo)
    async with make_client(config, api_key) as client:

        async def worker() -> None:
            while queue:
                text = queue.popleft()
                await _label_text(client, text, config, mode, sink)
                bar.update(1)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(config.concurrency, len(queue))):
                    group.create_task(worker())
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None
        return client.stats, mode.current


# -- the run -----------------------------------------------------------------------------------------


def api_key_from_env(config: LLMConfig) -> str | None:
    """The key from `config.api_key_env`; required by api.openai.com, optional for local servers."""
    key = os.environ.get(config.api_key_env) or None
    host = (urlparse(config.base_url).hostname or "").lower()
    if key is None and host.endswith("openai.com"):
        raise SealError(
            f"no API key: the environment variable {config.api_key_env} is not set",
            hint=f"export {config.api_key_env}=... (or name another variable with api_key_env)",
        )
    return key


def _column(work: Work, labels: Mapping[tuple[str, str], Any]) -> tuple[pa.Table, int, int]:
    """The features_<set> column for every pair from the labels at hand; (table, labelled, complete)."""
    fs = work.feature_set
    rows: list[dict[str, Any] | None] = []
    labelled = complete = 0
    hashes = [(f.name, work.feature_hashes[f.name]) for f in fs.features]
    for chosen_hash, rejected_hash in work.side_hashes:
        entry: dict[str, Any] = {}
        present = 0
        for name, fh in hashes:
            c, r = labels.get((chosen_hash, fh)), labels.get((rejected_hash, fh))
            present += (c is not None) + (r is not None)
            entry[name] = None if c is None and r is None else {"chosen": c, "rejected": r}
        rows.append(entry if present else None)
        labelled += present > 0
        complete += present == 2 * len(hashes)
    table = pa.table({"pair_id": pa.array(work.pair_ids, pa.string()), fs.column: pa.array(rows, fs.arrow_type())})
    return table, labelled, complete


def label_llm(
    store: Store,
    feature_set: str | FeatureSet,
    *,
    model: str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    api_key_env: str = DEFAULT_API_KEY_ENV,
    concurrency: int = 4,
    temperature: float = 0.0,
    request_seed: int | None = None,
    max_tokens: int | None = None,
    timeout: float = 60.0,
    max_retries: int = 5,
    max_invalid_retries: int = 2,
    structured_output: str = "auto",
    batch_api: bool = False,
    batch_wait: float = 0.0,
    batch_poll_interval: float = 30.0,
    sample: int | None = None,
    seed: int = 0,
    dataset: str | None = None,
    dry_run: bool = False,
    prices: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    price_in: float | None = None,
    price_out: float | None = None,
    show_progress: bool = False,
    backoff_base: float = 1.0,
    backoff_max: float = 60.0,
    flush_every: int = 200,
    max_consecutive_failures: int = 20,
) -> LLMLabelResult:
    """`seal label --labeler llm`: label the pairs with feature set `feature_set` (a shipped set's name,
    a YAML path or a FeatureSet) through an OpenAI-compatible chat-completions endpoint.

    Only (text, feature) labels missing from the cache are requested. `dry_run` sends nothing and
    returns what would be sent with estimated tokens and cost (`prices`: {model: {input, output}} in
    USD per million tokens, or a YAML/JSON file holding that table or a spec with a `prices`
    section; without one, the list prices of llm_prices.py); `price_in`/`price_out` (USD per million
    input/output tokens) override the price of `model`. `batch_api` submits to the OpenAI Batch API
    and polls for up to `batch_wait` seconds;
    a later call resumes polling and collects. `sample`/`seed` pick a seeded sample of pairs,
    `dataset` one dataset's pairs; `request_seed` is the API's `seed`."""
    fs = feature_set if isinstance(feature_set, FeatureSet) else load_feature_set(feature_set)
    if prices is not None and not isinstance(prices, Mapping):
        prices = load_prices(prices)
    if model and (price_in is not None or price_out is not None):
        price, _ = resolve_price(model, prices, price_in, price_out)
        prices = {**(prices or {}), model: price}
    config = LLMConfig(
        model=model or "",
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        temperature=temperature,
        request_seed=request_seed,
        max_tokens=max_tokens,
        timeout=timeout,
        max_retries=max_retries,
        max_invalid_retries=max_invalid_retries,
        structured_output=structured_output,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        batch_api=batch_api,
        batch_wait=batch_wait,
        batch_poll_interval=batch_poll_interval,
        flush_every=flush_every,
        max_consecutive_failures=max_consecutive_failures,
    )
    return run_llm_labeler(
        store,
        fs,
        config,
        sample=sample,
        seed=seed,
        dataset=dataset,
        dry_run=dry_run,
        prices=prices,
        show_progress=show_progress,
    )


def load_prices(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A price table from a YAML/JSON file: {model: {input, output}} (USD per million tokens), or an
    experiment spec whose `prices` section holds one."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise SealError(f"cannot read the price table {path}: {err}") from None
    if isinstance(document, Mapping) and isinstance(document.get("prices"), Mapping):
        document = document["prices"]
    if not isinstance(document, Mapping) or not all(
        isinstance(v, Mapping) and set(v) <= {"input", "output"} and all(isinstance(x, int | float) for x in v.values())
        for v in document.values()
    ):
        raise SealError(
            f"{path} is not a price table", hint="write {model: {input: USD per 1M tokens, output: USD per 1M tokens}}"
        )
    return {str(k): dict(v) for k, v in document.items()}


def _cost(prices: Mapping[str, Any] | None, config: LLMConfig, prompt: int, completion: int) -> float | None:
    price, _ = resolve_price(config.model, prices)
    if price is None:
        return None
    cost = (prompt * float(price.get("input", 0)) + completion * float(price.get("output", 0))) / 1e6
    return round(cost * (BATCH_DISCOUNT if config.batch_api else 1.0), 6)


def run_llm_labeler(
    store: Store,
    fs: FeatureSet,
    config: LLMConfig,
    *,
    sample: int | None = None,
    seed: int = 0,
    dataset: str | None = None,
    dry_run: bool = False,
    prices: Mapping[str, Any] | None = None,
    show_progress: bool = False,
) -> LLMLabelResult:
    """`label_llm` with a ready LLMConfig (what the `label` stage calls)."""
    t0, started = time.perf_counter(), now_utc()
    recipe = llm_recipe(fs, config)
    work = prepare_work(store, fs, config, sample=sample, seed=seed, dataset=dataset)
    mode = "dry-run" if dry_run else ("batch" if config.batch_api else "interactive")
    result = LLMLabelResult(
        feature_set=fs.name,
        column=fs.column,
        model=config.model,
        base_url=redact_url(config.base_url),
        mode=mode,
        status="dry-run",
        pairs=work.scope,
        sides=work.sides,
        texts=len(work.texts),
        cache_hits=work.cache_hits,
        cached_labels=work.cached_labels,
        to_label=len(work.todo),
        recipe=recipe.to_dict(),
    )
    if dry_run:
        result.estimate = work.estimate(prices)
        result.sample_requests = [work.requests_for(t) for t in work.todo[:2]]
        result.seconds = round(time.perf_counter() - t0, 3)
        return result

    sink = LabelSink(store, work, new_run_id())
    stats, fmt, batch_info = ClientStats(), None, None
    error: BaseException | None = None
    book = BatchBook(store)
    open_batches = book.open(fs.name, config.model, config.prompt_hash) if config.batch_api else []
    try:
        if work.todo or open_batches:
            api_key = api_key_from_env(config)
            if config.batch_api:
                from seal.annotate.features.llm_batch import run_batch

                stats, batch_info = run_sync(run_batch(store, work, api_key, sink))
            else:
                desc = f"Labelling {fs.name}"
                with progress_bar(show_progress, total=len(work.todo), desc=desc, unit="text") as bar:
                    stats, fmt = run_sync(_run_interactive(work, api_key, sink, bar))
    except (SealError, KeyboardInterrupt, asyncio.CancelledError) as err:
        error = err
    finally:
        sink.flush()

    result.requests, result.retries = stats.requests, stats.retries
    result.retry_reasons = dict(sorted(stats.retry_reasons.items()))
    result.reasks, result.labelled, result.failures = sink.reasks, sink.labelled, sink.failed_texts
    result.failure_reasons = dict(sorted(sink.failure_reasons.items()))
    result.tokens = {
        "prompt": stats.prompt_tokens,
        "completion": stats.completion_tokens,
        "total": stats.prompt_tokens + stats.completion_tokens,
    }
    result.cost_usd = _cost(prices, config, stats.prompt_tokens, stats.completion_tokens)
    default_fmt = "json_schema" if config.structured_output == "auto" else config.structured_output
    result.structured_output = fmt or default_fmt
    result.batch = batch_info
    pending = bool(batch_info and batch_info.get("pending"))
    if error is not None:
        result.status = "aborted"
    elif pending:
        result.status = "batch-pending"
    elif not work.todo and not open_batches:
        result.status = "nothing-to-do"
    else:
        result.status = ("failed" if not result.labelled else "partial") if result.failures else "done"

    failures = FailureLog(store)
    if error is None and not pending:
        failures.replace(fs.name, sink.failures)
    elif sink.failures:
        failures.replace(fs.name, [*_unsettled_failures(failures, fs.name, sink), *sink.failures])

    labels = {**work.cached, **sink.new}
    table, result.rows_labelled, result.rows_complete = _column(work, labels)
    last = latest_label_run(store, fs.name)
    stale = last is None or last["fingerprint"] != recipe.fingerprint()
    # Write when labels arrived, or when a finished run must replace another recipe's column; never
    # an empty column (nothing to show, and Lance's merge refuses an empty join).
    refresh = error is None and (stale or fs.column not in store.columns())
    if (sink.new or refresh) and result.rows_labelled:
        provenance = {
            "labeler": "llm",
            "origin": "computed",
            **config.provenance(),
            "structured_output": result.structured_output,
            "sample": sample,
            "seed": seed,
            "dataset": dataset,
            "outcome": result.status,
            "counters": {k: v for k, v in result.to_json().items() if k in _COUNTERS},
            "error": str(error) if error else None,
        }
        write = write_labels(store, fs, table, recipe, provenance, merge=False, started_at=started)
        result.run_id, result.pairs_version, result.column_written = write.run_id, write.pairs_version, True
        LabelCache(store).optimize()
    result.seconds = round(time.perf_counter() - t0, 3)
    if error is not None:
        if isinstance(error, _TooManyFailures) and not result.labelled:
            raise NothingSucceeded(f"{fs.column}: no text labelled: {error.message}", hint=error.hint) from error
        if isinstance(error, SealError):
            raise SealError(
                f"{error.message} (labels received before the error are saved: {result.labelled} text(s))",
                hint=error.hint,
            ) from error
        raise error
    return result


_COUNTERS = (
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


def _unsettled_failures(failures: FailureLog, name: str, sink: LabelSink) -> list[dict[str, Any]]:
    """Failures of earlier runs that this (interrupted or pending) run did not settle."""
    settled = {t for t, _ in sink.new} | {f["text_hash"] for f in sink.failures}
    keep = []
    for row in failures.list(name):
        if row["text_hash"] not in settled:
            row.pop("created_at", None)
            keep.append(row)
    return keep


# -- the `label` stage for specs ---------------------------------------------------------------------


class LLMLabelStage:
    """One `features` entry of a spec with `labeler: llm`."""

    def __init__(
        self,
        feature_set: FeatureSet,
        config: LLMConfig,
        *,
        sample: int | None = None,
        seed: int = 0,
        dataset: str | None = None,
        prices: Mapping[str, Any] | None = None,
    ):
        self.feature_set, self.config = feature_set, config
        self.sample, self.seed, self.dataset = sample, seed, dataset
        self.prices = dict(prices or {})
        self.recipe: Recipe = llm_recipe(feature_set, config)

    @property
    def column(self) -> str:
        return self.feature_set.column

    def plan(self, store: Store) -> Plan:
        return plan_llm(
            store,
            self.feature_set,
            self.config,
            sample=self.sample,
            seed=self.seed,
            dataset=self.dataset,
            prices=self.prices,
        )

    def run(self, store: Store, plan: Plan | None = None, show_progress: bool = False) -> dict[str, Any]:
        return run_llm_labeler(
            store,
            self.feature_set,
            self.config,
            sample=self.sample,
            seed=self.seed,
            dataset=self.dataset,
            prices=self.prices,
            show_progress=show_progress,
        ).to_json()


_ENTRY_KEYS = (
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
    return LLMConfig(**{k: entry[k] for k in _ENTRY_KEYS if entry.get(k) is not None})


def build_llm_stage(entry: Mapping[str, Any], spec: Any) -> LLMLabelStage:
    """The `label` stage of a spec `features` entry with `labeler: llm`; prices from the spec's
    `prices` section, a feature-set path relative to the spec's folder."""
    name = entry.get("feature_set") or "seal-taxonomy"
    if spec is not None:
        name = spec.resolve(name)
    prices = spec.section("prices") if spec is not None else None
    return LLMLabelStage(
        load_feature_set(name),
        config_from_entry(entry),
        sample=entry.get("sample"),
        seed=int(entry.get("seed") or 0),
        dataset=entry.get("dataset"),
        prices=prices,
    )


def plan_llm(
    store: Store,
    fs: FeatureSet,
    config: LLMConfig,
    *,
    sample: int | None = None,
    seed: int = 0,
    dataset: str | None = None,
    prices: Mapping[str, Any] | None = None,
) -> Plan:
    """Pending / stale / up to date for an llm-labelled feature set, with the requests, tokens and
    cost still to pay (cached labels cost nothing). Reads the store only."""
    recipe = llm_recipe(fs, config)
    fingerprint = recipe.fingerprint()
    if not store.exists():
        return Plan("label", fs.name, fingerprint, PENDING, "no pairs in the store yet", None, fs.column)
    work = prepare_work(store, fs, config, sample=sample, seed=seed, dataset=dataset)
    estimate = {**work.estimate(prices), "cache_hits": work.cache_hits, "texts": len(work.texts)}
    last = latest_label_run(store, fs.name)
    has_column = fs.column in store.columns()
    todo = len(work.todo)
    if last is not None and last["fingerprint"] == fingerprint and has_column and todo == 0:
        reason = "every text labelled with this recipe"
        return Plan("label", fs.name, fingerprint, UP_TO_DATE, reason, 0, fs.column, estimate)
    failed = len({f["text_hash"] for f in FailureLog(store).list(fs.name)})
    if todo == 0:
        reason = f"all {len(work.texts)} text(s) cached; the column will be rebuilt with no request"
    else:
        reason = f"{todo} of {len(work.texts)} text(s) to label ({work.cache_hits} cached"
        reason += f", {failed} failed last run)" if failed else ")"
    if last is not None and last["fingerprint"] != fingerprint:
        before = last["recipe"].get("params", {})
        changed = tuple(sorted(k for k in set(before) | set(recipe.params) if before.get(k) != recipe.params.get(k)))
        reason = f"recipe changed ({', '.join(changed) or 'stage version'}); {reason}"
        return Plan("label", fs.name, fingerprint, STALE, reason, todo, fs.column, estimate, changed)
    return Plan("label", fs.name, fingerprint, PENDING, reason, todo, fs.column, estimate)
