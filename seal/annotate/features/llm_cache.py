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

import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal.store import Store, now_utc

CACHE_TABLE, FAILURES_TABLE, BATCHES_TABLE = "llm_cache", "llm_failures", "llm_batches"
_TS = pa.timestamp("us", tz="UTC")

CACHE_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string()),
        pa.field("model", pa.string()),
        pa.field("prompt_hash", pa.string()),
        pa.field("text_hash", pa.string()),
        pa.field("feature", pa.string()),
        pa.field("feature_hash", pa.string()),
        pa.field("value", pa.string()),  # canonical JSON of the checked value
        pa.field("response_id", pa.string()),
        pa.field("n_features", pa.int32()),  # features answered by the same request
        pa.field("prompt_tokens", pa.int64()),  # of that whole request (re-asks included)
        pa.field("completion_tokens", pa.int64()),
        pa.field("run_id", pa.string()),
        pa.field("created_at", _TS),
    ]
)

FAILURES_SCHEMA = pa.schema(
    [
        pa.field("feature_set", pa.string()),
        pa.field("model", pa.string()),
        pa.field("prompt_hash", pa.string()),
        pa.field("text_hash", pa.string()),
        pa.field("pair_id", pa.string()),
        pa.field("side", pa.string()),
        pa.field("features", pa.list_(pa.string())),
        pa.field("kind", pa.string()),  # invalid, timeout, http_500, rate_limited, truncated, batch_error, ...
        pa.field("reason", pa.string()),
        pa.field("attempts", pa.int32()),
        pa.field("run_id", pa.string()),
        pa.field("created_at", _TS),
    ]
)

BATCHES_SCHEMA = pa.schema(
    [
        pa.field("submission_id", pa.string()),
        pa.field("feature_set", pa.string()),
        pa.field("model", pa.string()),
        pa.field("prompt_hash", pa.string()),
        pa.field("base_url", pa.string()),
        pa.field("features", pa.string()),  # JSON {digest: [feature definitions]} to validate the answers
        pa.field("n_requests", pa.int64()),
        pa.field("input_file_id", pa.string()),
        pa.field("batch_id", pa.string()),
        pa.field("status", pa.string()),  # uploaded, then the batch's status
        pa.field("output_file_id", pa.string()),
        pa.field("error_file_id", pa.string()),
        pa.field("collected", pa.bool_()),
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
    ]
)


def cache_key(model: str, prompt_hash: str, text_hash: str, feature_hash: str) -> str:
    return hashlib.sha256("\x1f".join((model, prompt_hash, text_hash, feature_hash)).encode()).hexdigest()[:32]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _table(store: Store, name: str, schema: pa.Schema, create: bool) -> Any:
    return store.side_table(name, schema, create=create)


class LabelCache:
    """Cached LLM labels of one store."""

    def __init__(self, store: Store):
        self.store = store

    def lookup(self, model: str, prompt_hash: str, text_hashes: Iterable[str], feature_hashes: Iterable[str]) -> dict:
        """{(text_hash, feature_hash): value} for the cached labels among those asked."""
        table = _table(self.store, CACHE_TABLE, CACHE_SCHEMA, create=False)
        if table is None:
            return {}
        wanted_features = pa.array(sorted(set(feature_hashes)), pa.string())
        flt = (
            (pc.field("model") == model)
            & (pc.field("prompt_hash") == prompt_hash)
            & pc.field("feature_hash").isin(wanted_features)
        )
        rows = table.to_lance().to_table(columns=["text_hash", "feature_hash", "value"], filter=flt)
        if not rows.num_rows:
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
        table = _table(self.store, CACHE_TABLE, CACHE_SCHEMA, create=True)
        table.add(pa.Table.from_pylist(rows, schema=CACHE_SCHEMA))

    def count(self) -> int:
        table = _table(self.store, CACHE_TABLE, CACHE_SCHEMA, create=False)
        return 0 if table is None else int(table.count_rows())

    def optimize(self) -> None:
        """Compact the small fragments that batched appends leave behind."""
        table = _table(self.store, CACHE_TABLE, CACHE_SCHEMA, create=False)
        if table is not None:
            with contextlib.suppress(Exception):  # an optimisation: a failure must not lose a run
                table.optimize()


class FailureLog:
    """The texts the latest run of each feature set failed to label, and why."""

    def __init__(self, store: Store):
        self.store = store

    def replace(self, feature_set: str, rows: list[dict[str, Any]]) -> None:
        table = _table(self.store, FAILURES_TABLE, FAILURES_SCHEMA, create=bool(rows))
        if table is None:
            return
        table.delete(f"feature_set = {_quote(feature_set)}")
        if rows:
            stamp = now_utc()
            for row in rows:
                row.setdefault("created_at", stamp)
            table.add(pa.Table.from_pylist(rows, schema=FAILURES_SCHEMA))

    def list(self, feature_set: str | None = None) -> list[dict[str, Any]]:
        table = _table(self.store, FAILURES_TABLE, FAILURES_SCHEMA, create=False)
        if table is None:
            return []
        flt = None if feature_set is None else pc.field("feature_set") == feature_set
        return table.to_lance().to_table(filter=flt).to_pylist()


class BatchBook:
    """Bookkeeping of Batch API submissions: one row per submission, rewritten on every change."""

    def __init__(self, store: Store):
        self.store = store

    def open(self, feature_set: str, model: str, prompt_hash: str) -> list[dict[str, Any]]:
        """Submissions of this feature set, model and prompt whose results are not collected yet."""
        table = _table(self.store, BATCHES_TABLE, BATCHES_SCHEMA, create=False)
        if table is None:
            return []
        flt = (
            (pc.field("feature_set") == feature_set)
            & (pc.field("model") == model)
            & (pc.field("prompt_hash") == prompt_hash)
            & (pc.field("collected") == False)  # noqa: E712 - a pyarrow expression, not a Python comparison
        )
        rows = table.to_lance().to_table(filter=flt).to_pylist()
        return sorted(rows, key=lambda r: r["created_at"])

    def save(self, row: Mapping[str, Any]) -> dict[str, Any]:
        row = {name: row.get(name) for name in BATCHES_SCHEMA.names}
        row["updated_at"] = now_utc()
        row["created_at"] = row["created_at"] or row["updated_at"]
        row["collected"] = bool(row["collected"])
        table = _table(self.store, BATCHES_TABLE, BATCHES_SCHEMA, create=True)
        table.delete(f"submission_id = {_quote(row['submission_id'])}")
        table.add(pa.Table.from_pylist([row], schema=BATCHES_SCHEMA))
        return row

    def list(self, feature_set: str | None = None) -> list[dict[str, Any]]:
        table = _table(self.store, BATCHES_TABLE, BATCHES_SCHEMA, create=False)
        if table is None:
            return []
        flt = None if feature_set is None else pc.field("feature_set") == feature_set
        return sorted(table.to_lance().to_table(filter=flt).to_pylist(), key=lambda r: r["created_at"])
