"""The `llm` labeler: label each side of each pair with an OpenAI-compatible chat-completions endpoint.

One request labels one side: the context turns plus that side's final response, asking for the
features not cached yet for that text (prompts.py). Answers are parsed and checked against the
feature types (FeatureSet.check); an invalid answer is re-asked with the error fed back, then
recorded as a failure with its reason. Requests run concurrently (llm_interactive.py) through the
engine's client (seal.engines.llm), which backs off on 429/5xx/timeouts. Labels go to the ``llm_cache``
table as they arrive (the checkpoint of a killed run), and the ``features_<set>`` column is then rebuilt
from the cache for every pair, so a rerun asks for nothing already answered and a widened feature set
asks only for its new features. With ``batch_api`` the requests go through the OpenAI Batch API instead
(llm_batch.py: submit, poll, collect), with the submissions kept in ``llm_batches`` so that a rerun
resumes polling.

`LLMLabelStage.plan` reads the store and the cache (what is left to ask, and its cost); `run` asks exactly
that. `seal label --labeler llm`, `label_llm` and `seal run` all go through `seal.pipeline.run_stage`.
The API key is read from the environment variable the endpoint names (``api_key_env``) when requests are
sent, and is never stored, printed or logged.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any

from seal.annotate.features.llm_batch import run_batch
from seal.annotate.features.llm_cache import FailureLog
from seal.annotate.features.llm_config import LLMConfig, config_from_entry, llm_recipe
from seal.annotate.features.llm_interactive import TooManyFailures, run_interactive
from seal.annotate.features.llm_prices import cost_usd, load_prices, resolve_price
from seal.annotate.features.llm_result import COUNTERS, LLMLabelResult
from seal.annotate.features.llm_sink import LabelSink
from seal.annotate.features.llm_work import Work, prepare_work
from seal.annotate.features.writer import latest_label_run, write_labels
from seal.catalog.features import LABEL_STAGE
from seal.catalog.featuresets import FeatureSet, load_feature_set
from seal.engines.llm import DEFAULT_API_KEY_ENV, DEFAULT_BASE_URL, ClientStats, redact_url, run_sync
from seal.errors import NothingSucceeded, SealError
from seal.pipeline import DONE, PENDING, STALE, UP_TO_DATE, Plan, run_stage
from seal.progress import progress_bar
from seal.recipe import Recipe
from seal.store import Store, new_run_id, now_utc


class LLMLabelStage:
    """Label one feature set with an LLM (a `features` entry of a spec with `labeler: llm`, or `seal label
    --labeler llm`)."""

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

    # -- plan --------------------------------------------------------------------------------------
    def plan(self, store: Store) -> Plan:
        """Pending / stale / up to date, with the requests, tokens and cost still to pay (cached labels cost
        nothing); the plan's `work` is what `run` asks for. Reads the store only."""
        fs, fingerprint = self.feature_set, self.recipe.fingerprint()

        def plan(status: str, reason: str, todo: int | None, **extra: Any) -> Plan:
            return Plan(LABEL_STAGE, fs.name, fingerprint, status, reason, todo, fs.column, **extra)

        if not store.exists():
            return plan(PENDING, "no pairs in the store yet", None)
        work = self.prepare(store)
        estimate = {**work.estimate(self.prices), "cache_hits": work.cache_hits, "texts": len(work.texts)}
        last = latest_label_run(store, fs.name)
        todo = len(work.todo)
        current = last is not None and last["fingerprint"] == fingerprint
        if current and fs.column in store.columns() and todo == 0 and not work.open_batches:
            return plan(UP_TO_DATE, "every text labelled with this recipe", 0, estimate=estimate, work=work)
        failed = len({f["text_hash"] for f in FailureLog(store).list(fs.name)})
        if todo == 0 and work.open_batches:
            reason = f"{len(work.open_batches)} Batch API submission(s) to collect"
        elif todo == 0:
            reason = f"all {len(work.texts)} text(s) cached; the column will be rebuilt with no request"
        else:
            reason = f"{todo} of {len(work.texts)} text(s) to label ({work.cache_hits} cached"
            reason += f", {failed} failed last run)" if failed else ")"
        if last is not None and not current:
            before, now = last["recipe"].get("params", {}), self.recipe.params
            changed = tuple(sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k)))
            reason = f"recipe changed ({', '.join(changed) or 'stage version'}); {reason}"
            return plan(STALE, reason, todo, estimate=estimate, changed=changed, work=work)
        return plan(PENDING, reason, todo, estimate=estimate, work=work)

    def prepare(self, store: Store) -> Work:
        """What is left to ask, from the store and the cache (see `prepare_work`)."""
        return prepare_work(
            store, self.feature_set, self.config, sample=self.sample, seed=self.seed, dataset=self.dataset
        )

    def _planned(self, plan: Plan) -> Work:
        if not isinstance(plan.work, Work):
            raise SealError(f"this plan was not made by the llm label stage of `{self.feature_set.name}`")
        return plan.work

    # -- results without requests ----------------------------------------------------------------------
    def _result(self, work: Work, mode: str, status: str) -> LLMLabelResult:
        config = self.config
        return LLMLabelResult(
            feature_set=self.feature_set.name,
            column=self.column,
            model=config.model,
            base_url=redact_url(config.endpoint.base_url),
            mode=mode,
            status=status,
            pairs=work.scope,
            sides=work.sides,
            texts=len(work.texts),
            cache_hits=work.cache_hits,
            cached_labels=work.cached_labels,
            to_label=len(work.todo),
            recipe=self.recipe.to_dict(),
        )

    def dry_run(self, plan: Plan) -> LLMLabelResult:
        """What `run` would send for this plan: requests, estimated tokens and cost, two sample requests."""
        work = self._planned(plan)
        result = self._result(work, "dry-run", "dry-run")
        result.estimate = work.estimate(self.prices)
        result.sample_requests = [work.requests_for(t) for t in work.todo[:2]]
        return result

    def nothing_to_do(self, plan: Plan) -> LLMLabelResult:
        """The result of an up-to-date plan: every text in scope answered from the cache, no request."""
        work = self._planned(plan)
        result = self._result(work, self._mode(), "nothing-to-do")
        self._finish(result, work, ClientStats(), None, None)
        _, result.rows_labelled, result.rows_complete = work.column(work.cached)
        return result

    def _mode(self) -> str:
        return "batch" if self.config.batch_api else "interactive"

    def _finish(
        self, result: LLMLabelResult, work: Work, stats: ClientStats, fmt: str | None, batch: dict[str, Any] | None
    ) -> None:
        """The client's counters, the cost and the structured-output mode into the result."""
        config = self.config
        result.requests, result.retries = stats.requests, stats.retries
        result.retry_reasons = dict(sorted(stats.retry_reasons.items()))
        result.tokens = {
            "prompt": stats.prompt_tokens,
            "completion": stats.completion_tokens,
            "total": stats.prompt_tokens + stats.completion_tokens,
        }
        price, _ = resolve_price(config.model, self.prices)
        result.cost_usd = cost_usd(price, stats.prompt_tokens, stats.completion_tokens, config.batch_api)
        default_fmt = "json_schema" if config.structured_output == "auto" else config.structured_output
        result.structured_output = fmt or default_fmt
        result.batch = batch

    # -- run ---------------------------------------------------------------------------------------
    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> LLMLabelResult:
        """Ask for exactly the planned texts (or collect the planned batches), then rebuild the column."""
        store.require()
        t0, started = time.perf_counter(), now_utc()
        work = self._planned(plan)
        fs, config = self.feature_set, self.config
        result = self._result(work, self._mode(), "done")
        sink = LabelSink(store, work, new_run_id())
        stats, fmt, batch_info = ClientStats(), None, None
        error: BaseException | None = None
        try:
            if work.todo or work.open_batches:
                api_key = config.endpoint.api_key()
                if config.batch_api:
                    stats, batch_info = run_sync(run_batch(store, work, api_key, sink))
                else:
                    desc = f"Labelling {fs.name}"
                    with progress_bar(show_progress, total=len(work.todo), desc=desc, unit="text") as bar:
                        stats, fmt = run_sync(run_interactive(work, api_key, sink, bar))
        except (SealError, KeyboardInterrupt, asyncio.CancelledError) as err:
            error = err
        finally:
            sink.flush()

        self._finish(result, work, stats, fmt, batch_info)
        result.reasks, result.labelled, result.failures = sink.reasks, sink.labelled, sink.failed_texts
        result.failure_reasons = dict(sorted(sink.failure_reasons.items()))
        pending = bool(batch_info and batch_info.get("pending"))
        if error is not None:
            result.status = "aborted"
        elif pending:
            result.status = "batch-pending"
        elif not work.todo and not work.open_batches:
            result.status = "nothing-to-do"
        else:
            result.status = ("failed" if not result.labelled else "partial") if result.failures else "done"

        failures = FailureLog(store)
        if error is None and not pending:
            failures.replace(fs.name, sink.failures)
        elif sink.failures:
            failures.replace(fs.name, [*_unsettled_failures(failures, fs.name, sink), *sink.failures])

        table, result.rows_labelled, result.rows_complete = work.column({**work.cached, **sink.new})
        last = latest_label_run(store, fs.name)
        stale = last is None or last["fingerprint"] != self.recipe.fingerprint()
        # Write when labels arrived, or when a finished run must replace another recipe's column; never
        # an empty column (nothing to show, and Lance's merge refuses an empty join).
        refresh = error is None and (stale or fs.column not in store.columns())
        if (sink.new or refresh) and result.rows_labelled:
            provenance = {
                "labeler": "llm",
                "origin": "computed",
                **config.provenance(),
                "structured_output": result.structured_output,
                "sample": self.sample,
                "seed": self.seed,
                "dataset": self.dataset,
                "outcome": result.status,
                "counters": {k: v for k, v in result.to_json().items() if k in COUNTERS},
                "error": str(error) if error else None,
            }
            write = write_labels(store, fs, table, self.recipe, provenance, merge=False, started_at=started)
            result.run_id, result.pairs_version, result.column_written = write.run_id, write.pairs_version, True
        result.seconds = round(time.perf_counter() - t0, 3)
        if error is not None:
            if isinstance(error, TooManyFailures) and not result.labelled:
                raise NothingSucceeded(f"{fs.column}: no text labelled: {error.message}", hint=error.hint) from error
            if isinstance(error, SealError):
                raise SealError(
                    f"{error.message} (labels received before the error are saved: {result.labelled} text(s))",
                    hint=error.hint,
                ) from error
            raise error
        return result


def _unsettled_failures(failures: FailureLog, name: str, sink: LabelSink) -> list[dict[str, Any]]:
    """Failures of earlier runs that this (interrupted or pending) run did not settle."""
    settled = {t for t, _ in sink.new} | {f["text_hash"] for f in sink.failures}
    keep = []
    for row in failures.list(name):
        if row["text_hash"] not in settled:
            row.pop("created_at", None)
            keep.append(row)
    return keep


def run_llm_stage(store: Store, stage: LLMLabelStage, show_progress: bool = False) -> LLMLabelResult:
    """Run one llm label stage through the pipeline (plan, then exactly that plan); the result also when
    there was nothing to do."""
    t0 = time.perf_counter()
    outcome = run_stage(store, stage, show_progress=show_progress)
    if outcome.status == DONE:
        return outcome.result
    result = stage.nothing_to_do(outcome.plan)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


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
    config = LLMConfig.from_options(
        {
            "model": model or "",
            "base_url": base_url,
            "api_key_env": api_key_env,
            "concurrency": concurrency,
            "temperature": temperature,
            "request_seed": request_seed,
            "max_tokens": max_tokens,
            "timeout": timeout,
            "max_retries": max_retries,
            "max_invalid_retries": max_invalid_retries,
            "structured_output": structured_output,
            "backoff_base": backoff_base,
            "backoff_max": backoff_max,
            "batch_api": batch_api,
            "batch_wait": batch_wait,
            "batch_poll_interval": batch_poll_interval,
            "flush_every": flush_every,
            "max_consecutive_failures": max_consecutive_failures,
        }
    )
    stage = LLMLabelStage(fs, config, sample=sample, seed=seed, dataset=dataset, prices=prices)
    store.require()
    if not dry_run:
        return run_llm_stage(store, stage, show_progress=show_progress)
    t0 = time.perf_counter()
    result = stage.dry_run(stage.plan(store))
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


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
    """The plan of an llm-labelled feature set (see `LLMLabelStage.plan`). Reads the store only."""
    return LLMLabelStage(fs, config, sample=sample, seed=seed, dataset=dataset, prices=prices).plan(store)


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
