"""The `llm` labeler's tables in the store: response cache, current failures, Batch API bookkeeping.

``llm_cache``: one row per (model, prompt_hash, text_hash, feature_hash) with the checked value as
JSON. A feature's label is cached on its own even though one request asks for several features at
once, so a rerun asks for nothing already answered and a widened feature set asks only for the new
features (see prompts.py for what each hash covers). Rows are appended in batches while a run goes
on: the cache is also the checkpoint of a killed run.

``llm_failures``: the texts the last run of a feature set could not label, with the reason; replaced
at the end of each run (a rerun retries exactly these, plus anything new).

``llm_batches``: one row per OpenAI Batch API submission, so a rerun resumes polling an open batch
instead of submitting the same requests again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal.schema import LLM_BATCHES as BATCHES_SCHEMA
from seal.schema import LLM_CACHE as CACHE_SCHEMA
from seal.schema import LLM_FAILURES as FAILURES_SCHEMA
from seal.store import Store, now_utc

CACHE_TABLE, FAILURES_TABLE, BATCHES_TABLE = "llm_cache", "llm_failures", "llm_batches"


def cache_key(model: str, prompt_hash: str, text_hash: str, feature_hash: str) -> str:
    return hashlib.sha256("\x1f".join((model, prompt_hash, text_hash, feature_hash)).encode()).hexdigest()[:32]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class LabelCache:
    """Cached LLM labels of one store."""

    def __init__(self, store: Store):
        self.store = store

    def lookup(self, model: str, prompt_hash: str, text_hashes: Iterable[str], feature_hashes: Iterable[str]) -> dict:
        """{(text_hash, feature_hash): value} for the cached labels among those asked."""
        if not self.store.side_exists(CACHE_TABLE):
            return {}
        wanted_features = pa.array(sorted(set(feature_hashes)), pa.string())
        flt = (
            (pc.field("model") == model)
            & (pc.field("prompt_hash") == prompt_hash)
            & pc.field("feature_hash").isin(wanted_features)
        )
        rows = self.store.side_read(CACHE_TABLE, ["text_hash", "feature_hash", "value"], where=flt)
        if rows is None or not rows.num_rows:
            return {}
        wanted_texts = pa.array(sorted(set(text_hashes)), pa.string())
        rows = rows.filter(pc.is_in(rows.column("text_hash"), value_set=wanted_texts))
        return {
            (t, f): json.loads(v)
            for t, f, v in zip(
                rows.column("text_hash").to_pylist(),
                rows.column("feature_hash").to_pylist(),
                rows.column("value").to_pylist(),
                strict=True,
            )
        }

    def add(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        stamp = now_utc()
        for row in rows:
            row.setdefault("created_at", stamp)
            row["key"] = cache_key(row["model"], row["prompt_hash"], row["text_hash"], row["feature_hash"])
        self.store.side_append(CACHE_TABLE, pa.Table.from_pylist(rows, schema=CACHE_SCHEMA), CACHE_SCHEMA)

    def count(self) -> int:
        return self.store.side_count(CACHE_TABLE)


class FailureLog:
    """The texts the latest run of each feature set failed to label, and why."""

    def __init__(self, store: Store):
        self.store = store

    def replace(self, feature_set: str, rows: list[dict[str, Any]]) -> None:
        """Make `rows` the failures of `feature_set` (none: forget its failures)."""
        if not rows and not self.store.side_exists(FAILURES_TABLE):
            return
        self.store.side_delete(FAILURES_TABLE, f"feature_set = {_quote(feature_set)}")
        if rows:
            stamp = now_utc()
            for row in rows:
                row.setdefault("created_at", stamp)
            self.store.side_append(FAILURES_TABLE, pa.Table.from_pylist(rows, schema=FAILURES_SCHEMA), FAILURES_SCHEMA)

    def list(self, feature_set: str | None = None) -> list[dict[str, Any]]:
        flt = None if feature_set is None else pc.field("feature_set") == feature_set
        rows = self.store.side_read(FAILURES_TABLE, where=flt)
        return [] if rows is None else rows.to_pylist()


class BatchBook:
    """Bookkeeping of Batch API submissions: one row per submission, rewritten on every change."""

    def __init__(self, store: Store):
        self.store = store

    def open(self, feature_set: str, model: str, prompt_hash: str) -> list[dict[str, Any]]:
        """Submissions of this feature set, model and prompt whose results are not collected yet."""
        flt = (
            (pc.field("feature_set") == feature_set)
            & (pc.field("model") == model)
            & (pc.field("prompt_hash") == prompt_hash)
            & (pc.field("collected") == False)  # noqa: E712 - a pyarrow expression, not a Python comparison
        )
        rows = self.store.side_read(BATCHES_TABLE, where=flt)
        return [] if rows is None else sorted(rows.to_pylist(), key=lambda r: r["created_at"])

    def save(self, row: Mapping[str, Any]) -> dict[str, Any]:
        row = {name: row.get(name) for name in BATCHES_SCHEMA.names}
        row["updated_at"] = now_utc()
        row["created_at"] = row["created_at"] or row["updated_at"]
        row["collected"] = bool(row["collected"])
        table = pa.Table.from_pylist([row], schema=BATCHES_SCHEMA)
        self.store.side_upsert(BATCHES_TABLE, table, BATCHES_SCHEMA, key="submission_id")
        return row

    def list(self, feature_set: str | None = None) -> list[dict[str, Any]]:
        flt = None if feature_set is None else pc.field("feature_set") == feature_set
        rows = self.store.side_read(BATCHES_TABLE, where=flt)
        return [] if rows is None else sorted(rows.to_pylist(), key=lambda r: r["created_at"])
