"""What a run of the `llm` labeler has to do, read from the store and the label cache without sending a request
(the `work` of its plan), and the ``features_<set>`` column built from the labels at hand.

One request labels one distinct conversation (the context turns plus one side's final response; identical
sides share one), asking only for the features the cache lacks for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from seal.annotate.features.llm_cache import BatchBook, LabelCache
from seal.annotate.features.llm_config import LLMConfig
from seal.annotate.features.llm_prices import BATCH_DISCOUNT, cost_usd, resolve_price
from seal.annotate.features.prompts import (
    build_messages,
    conversation,
    default_max_tokens,
    estimate_request_tokens,
    feature_hash,
    response_format,
    text_hash,
)
from seal.annotate.features.sampling import sample_pair_ids
from seal.catalog.featuresets import Feature, FeatureSet
from seal.engines.llm import chat_body
from seal.errors import SealError
from seal.store import Store

SIDES = ("chosen", "rejected")


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
    open_batches: list[dict[str, Any]] = field(default_factory=list)  # Batch API submissions to collect

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
        no_price = (
            f"; no price known for `{self.config.model}`: pass --price-in/--price-out (USD per million tokens), "
            "--prices FILE or a spec `prices` section"
        )
        return {
            "requests": len(self.todo),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost_usd(price, input_tokens, output_tokens, batch),
            "price_per_million": dict(price) if price is not None else None,
            "price_source": source,
            "batch_discount": BATCH_DISCOUNT if batch else None,
            "note": "token counts are estimates (about 4 characters a token)" + ("" if price is not None else no_price),
        }

    def column(self, labels: Mapping[tuple[str, str], Any]) -> tuple[pa.Table, int, int]:
        """The features_<set> column for every pair from the labels at hand; (table, labelled, complete)."""
        fs = self.feature_set
        rows: list[dict[str, Any] | None] = []
        labelled = complete = 0
        hashes = [(f.name, self.feature_hashes[f.name]) for f in fs.features]
        for chosen_hash, rejected_hash in self.side_hashes:
            entry: dict[str, Any] = {}
            present = 0
            for name, fh in hashes:
                c, r = labels.get((chosen_hash, fh)), labels.get((rejected_hash, fh))
                present += (c is not None) + (r is not None)
                entry[name] = None if c is None and r is None else {"chosen": c, "rejected": r}
            rows.append(entry if present else None)
            labelled += present > 0
            complete += present == 2 * len(hashes)
        table = pa.table({"pair_id": pa.array(self.pair_ids, pa.string()), fs.column: pa.array(rows, fs.arrow_type())})
        return table, labelled, complete


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

    `sample` labels a seeded sample of N pairs (`sample_pair_ids`: a larger sample contains a smaller one);
    `dataset` only the pairs of one dataset. With the Batch API, the submissions still to collect."""
    store.require()
    rows = store.read(["pair_id", "dataset", "context", "chosen", "rejected"])
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
    open_batches: list[dict[str, Any]] = []
    if config.batch_api:
        open_batches = BatchBook(store).open(fs.name, config.model, config.prompt_hash)
    return Work(fs, config, feature_hashes, pair_ids, side_hashes, len(in_scope), texts, cached, todo, open_batches)
