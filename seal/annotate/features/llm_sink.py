"""Where the `llm` labeler's answers go as they arrive: labels to the cache in batches (the checkpoint of a
killed run), failures to a list with their reason."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from seal.annotate.features.llm_cache import LabelCache
from seal.annotate.features.llm_work import TextItem, Work
from seal.annotate.features.prompts import feature_hash
from seal.catalog.featuresets import Feature
from seal.recipe import canonical_json
from seal.store import Store


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
