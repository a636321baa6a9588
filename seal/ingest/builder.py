"""Collect canonical pairs and quarantined rows into Arrow tables (the pair rows ingest writes)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import Any

import pyarrow as pa

from seal import schema
from seal.ingest.mapping import Canonical
from seal.ingest.readers import SNIPPET_CHARS, RawRow
from seal.schema import ANNOTATOR_AGREEMENT as AGREEMENT

CHUNK_ROWS = 20_000
# Columns ingest owns beyond schema.PAIRS (added to `pairs` when first written).
EXTRA_COLUMNS = (AGREEMENT,)

_SURROGATE = re.compile("[\ud800-\udfff]")


def pair_id_for(dataset: str, key: str) -> str:
    """Stable id of a pair: the dataset name and the row's key in its source."""
    return hashlib.sha256(f"{dataset}\x1f{key}".encode("utf-8", "surrogatepass")).hexdigest()[:24]


def content_hash(context: list[dict[str, str]], chosen: str, rejected: str) -> str:
    payload = json.dumps([context, chosen, rejected], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def text_problem(canonical: Canonical) -> tuple[str, str] | None:
    """A reason to quarantine a pair whose texts cannot be stored or used as text."""
    texts = [canonical.chosen, canonical.rejected, canonical.chosen_raw, canonical.rejected_raw]
    texts += [m["content"] for m in canonical.context]
    if any("\x00" in t for t in texts):
        return "nul_byte", "the text holds NUL (\\x00) characters"
    if any(_SURROGATE.search(t) for t in texts):
        return "invalid_unicode", "the text holds a lone surrogate (e.g. \\ud800), which is not valid Unicode"
    return None


def safe_text(text: str) -> str:
    """Text that can be stored: lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


class Builder:
    """Collects canonical pairs and quarantined rows into Arrow chunks.

    `skipped` counts candidate pairs a row did not give (e.g. tied ratings), by reason."""

    def __init__(self, dataset: str, source: str, fmt: str, run_id: str):
        self.dataset, self.source, self.fmt, self.run_id = dataset, source, fmt, run_id
        self.chunks: list[pa.Table] = []
        self.rows: dict[str, list[Any]] = {name: [] for name in schema.PAIRS.names}
        self.agreement: list[dict[str, Any] | None] = []
        self.quarantine: list[dict[str, Any]] = []
        self.seen_hashes: dict[str, str] = {}  # content hash -> the source row that first gave it
        self.seen_ids: set[str] = set()
        self.skipped: Counter[str] = Counter()

    def add_pair(self, row: RawRow, key: str, canonical: Canonical, index: int | None = None) -> None:
        """Add one pair made from `row` under `key` (the row's key, or it with a suffix when a row makes
        several pairs). Pairs made from one row are not flagged as duplicates of each other."""
        pair_id = pair_id_for(self.dataset, key)
        if pair_id in self.seen_ids:
            self.add_problem(row, "duplicate_key", f"the key `{key}` appears more than once in the source", key=key)
            return
        self.seen_ids.add(pair_id)
        digest = content_hash(canonical.context, canonical.chosen, canonical.rejected)
        first = self.seen_hashes.setdefault(digest, row.key)
        flags = {
            "identical_responses": canonical.chosen == canonical.rejected,
            "context_mismatch": canonical.context_mismatch,
            "duplicate_in_source": first != row.key,
            "empty_response": not canonical.chosen or not canonical.rejected,
        }
        values = {
            "pair_id": pair_id,
            "dataset": self.dataset,
            "source": self.source,
            "source_index": row.index if index is None else index,
            "source_key": key,
            "format": self.fmt,
            "context": canonical.context,
            "chosen": canonical.chosen,
            "rejected": canonical.rejected,
            "chosen_raw": canonical.chosen_raw,
            "rejected_raw": canonical.rejected_raw,
            "content_hash": digest,
            "flags": {**dict.fromkeys(schema.UPDATE_FLAG_NAMES, False), **flags},
            "ingest_run": self.run_id,
        }
        for name, value in values.items():
            self.rows[name].append(value)
        share = canonical.agreement
        self.agreement.append(None if share is None else {"share": share[0], "annotators": share[1]})
        if len(self.rows["pair_id"]) >= CHUNK_ROWS:
            self.flush()

    def add_problem(
        self, row: RawRow, reason: str, detail: str, snippet: str | None = None, key: str | None = None
    ) -> None:
        if snippet is None:
            snippet = row.snippet or (json.dumps(row.record, ensure_ascii=False, default=str) if row.record else "")
        self.quarantine.append(
            {
                "dataset": self.dataset,
                "source": self.source,
                "source_key": safe_text(key or row.key),
                "reason": reason,
                "detail": safe_text(detail),
                "snippet": safe_text(snippet[:SNIPPET_CHARS]),
                "run_id": self.run_id,
            }
        )

    def flush(self) -> None:
        if self.rows["pair_id"]:
            self.chunks.append(pa.Table.from_pydict(self.rows, schema=schema.PAIRS))
            self.rows = {name: [] for name in schema.PAIRS.names}

    def pairs(self) -> pa.Table:
        """Every pair; with an `annotator_agreement` column when any pair has one."""
        self.flush()
        table = pa.concat_tables(self.chunks) if self.chunks else schema.PAIRS.empty_table()
        if any(a is not None for a in self.agreement):
            table = table.append_column(AGREEMENT, pa.array(self.agreement, AGREEMENT.type))
        return table
