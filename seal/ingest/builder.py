"""Collect canonical pairs and quarantined rows into Arrow tables (the pair rows ingest writes)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from seal import schema
from seal.ingest.mapping import Canonical
from seal.ingest.readers import SNIPPET_CHARS, RawRow, decode_row
from seal.schema import ANNOTATOR_AGREEMENT as AGREEMENT

CHUNK_ROWS = 20_000
# Columns ingest owns beyond schema.PAIRS (added to `pairs` when first written).
EXTRA_COLUMNS = (AGREEMENT,)

_SURROGATE = re.compile("[\ud800-\udfff]")


def pair_id_for(dataset: str, key: str) -> str:
    """Stable id of a pair: the dataset name and the row's key in its source."""
    return hashlib.sha256(f"{dataset}\x1f{key}".encode("utf-8", "surrogatepass")).hexdigest()[:24]


# json.dumps(..., ensure_ascii=False, separators=(",", ":")) builds this same encoder on every call
_HASH_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def content_hash(context: list[dict[str, str]], chosen: str, rejected: str) -> str:
    payload = _HASH_JSON.encode([context, chosen, rejected])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _has_surrogate(text: str) -> bool:
    """True when `text` holds a lone surrogate: the only code points strict UTF-8 cannot encode."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def text_problem(canonical: Canonical) -> tuple[str, str] | None:
    """A reason to quarantine a pair whose texts cannot be stored or used as text."""
    texts = [canonical.chosen, canonical.rejected, canonical.chosen_raw, canonical.rejected_raw]
    texts += [m["content"] for m in canonical.context]
    joined = "".join(texts)  # one scan of all the texts (C speed) instead of a regex per text
    if "\x00" in joined:
        return "nul_byte", "the text holds NUL (\\x00) characters"
    if _has_surrogate(joined):
        return "invalid_unicode", "the text holds a lone surrogate (e.g. \\ud800), which is not valid Unicode"
    return None


def safe_text(text: str) -> str:
    """Text that can be stored: lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _has_surrogate(text) else text


_FLAG_FIELDS = list(schema.FLAGS)
_CONSTANT = ("dataset", "source", "format", "ingest_run")  # the same for every pair of one ingest
_PER_PAIR = tuple(n for n in schema.PAIRS.names if n not in _CONSTANT and n != "flags")


class Builder:
    """Collects canonical pairs and quarantined rows into Arrow chunks: pair by pair (`add_pair`, in order)
    or a chunk at a time (`merge`: the pairs and problems that `seal.ingest.row_work` made of a chunk of rows,
    possibly in another process; the same pairs, flags and quarantine as adding them one by one).

    `skipped` counts candidate pairs a row did not give (e.g. tied ratings), by reason."""

    def __init__(self, dataset: str, source: str, fmt: str, run_id: str):
        self.dataset, self.source, self.fmt, self.run_id = dataset, source, fmt, run_id
        self.chunks: list[pa.Table] = []
        self.rows: dict[str, list[Any]] = {name: [] for name in _PER_PAIR}
        self.flags: dict[str, list[bool]] = {f.name: [] for f in _FLAG_FIELDS}
        self.agreement: list[dict[str, Any] | None] = []
        self.quarantine: list[dict[str, Any]] = []
        self.seen_hashes: dict[str, str] = {}  # content hash -> the source row that first gave it
        self.seen_ids: set[str] = set()
        self.skipped: Counter[str] = Counter()

    def add_pair(
        self,
        row: RawRow,
        key: str,
        canonical: Canonical,
        index: int | None = None,
        pair_id: str | None = None,
        digest: str | None = None,
    ) -> None:
        """Add one pair made from `row` under `key` (the row's key, or it with a suffix when a row makes
        several pairs). Pairs made from one row are not flagged as duplicates of each other. `pair_id` and
        `digest` (the content hash), when given, were computed already (seal.ingest.row_work)."""
        pair_id = pair_id or pair_id_for(self.dataset, key)
        if pair_id in self.seen_ids:
            self.add_problem(row, "duplicate_key", duplicate_key_detail(key), key=key)
            return
        self.seen_ids.add(pair_id)
        digest = digest or content_hash(canonical.context, canonical.chosen, canonical.rejected)
        first = self.seen_hashes.setdefault(digest, row.key)
        self.append_pair(row, key, canonical, index, pair_id, digest, first != row.key)

    def append_pair(
        self,
        row: RawRow,
        key: str,
        canonical: Canonical,
        index: int | None,
        pair_id: str,
        digest: str,
        duplicate_in_source: bool,
    ) -> None:
        """Append a pair's values as they are (`add_pair` without its duplicate checks)."""
        rows, flags = self.rows, self.flags
        chosen, rejected = canonical.chosen, canonical.rejected
        rows["pair_id"].append(pair_id)
        rows["source_index"].append(row.index if index is None else index)
        rows["source_key"].append(key)
        rows["context"].append(canonical.context)
        rows["chosen"].append(chosen)
        rows["rejected"].append(rejected)
        rows["chosen_raw"].append(canonical.chosen_raw)
        rows["rejected_raw"].append(canonical.rejected_raw)
        rows["content_hash"].append(digest)
        flags["identical_responses"].append(chosen == rejected)
        flags["context_mismatch"].append(bool(canonical.context_mismatch))
        flags["duplicate_in_source"].append(duplicate_in_source)
        flags["empty_response"].append(not chosen or not rejected)
        for name in schema.UPDATE_FLAG_NAMES:
            flags[name].append(False)
        share = canonical.agreement
        self.agreement.append(None if share is None else {"share": share[0], "annotators": share[1]})
        if len(rows["pair_id"]) >= CHUNK_ROWS:
            self.flush()

    def add_problem(
        self, row: RawRow, reason: str, detail: str, snippet: str | None = None, key: str | None = None
    ) -> None:
        self.quarantine.append(self.problem_row(row, reason, detail, snippet, key))

    def problem_row(
        self, row: RawRow, reason: str, detail: str, snippet: str | None = None, key: str | None = None
    ) -> dict[str, Any]:
        """The quarantine row of a problem with `row`."""
        if snippet is None:
            snippet = row.snippet or (json.dumps(row.record, ensure_ascii=False, default=str) if row.record else "")
        return {
            "dataset": self.dataset,
            "source": self.source,
            "source_key": safe_text(key or row.key),
            "reason": reason,
            "detail": safe_text(detail),
            "snippet": safe_text(snippet[:SNIPPET_CHARS]),
            "run_id": self.run_id,
        }

    def merge(self, rows: list[RawRow], chunk: Chunk) -> None:
        """Add what `seal.ingest.row_work` made of `rows` (the next rows of the source), in order: its
        problems, and its pairs with the duplicate checks that need every earlier row (duplicate keys are
        quarantined, `duplicate_in_source` set), exactly as `add_pair`/`add_problem` one by one would."""
        self.flush()
        keep = np.ones(len(chunk.pair_ids), dtype=bool)
        duplicate = np.zeros(len(chunk.pair_ids), dtype=bool)
        seen_ids, seen_hashes = self.seen_ids, self.seen_hashes
        for pos, j, value in chunk.events:
            if j is None:
                self.quarantine.append(value)
                continue
            pair_id, row = chunk.pair_ids[j], rows[pos]
            if pair_id in seen_ids:  # the row as read (its snippet comes from the decoded record)
                self.add_problem(decode_row(row), "duplicate_key", duplicate_key_detail(value), key=value)
                keep[j] = False
                continue
            seen_ids.add(pair_id)
            duplicate[j] = seen_hashes.setdefault(chunk.digests[j], row.key) != row.key
        self.skipped.update(chunk.skipped)
        if not len(keep):
            return
        table = chunk.table
        flags = table.column("flags").combine_chunks()
        children = [
            pa.array(duplicate) if f.name == "duplicate_in_source" else flags.field(f.name) for f in _FLAG_FIELDS
        ]
        table = table.set_column(
            table.schema.get_field_index("flags"), "flags", pa.StructArray.from_arrays(children, fields=_FLAG_FIELDS)
        )
        self.chunks.append(table if keep.all() else table.filter(pa.array(keep)))
        self.agreement.extend(a for a, k in zip(chunk.agreement, keep.tolist(), strict=True) if k)

    def flush(self) -> None:
        n = len(self.rows["pair_id"])
        if not n:
            return
        constant = {"dataset": self.dataset, "source": self.source, "format": self.fmt, "ingest_run": self.run_id}
        flags = pa.StructArray.from_arrays(
            [pa.array(self.flags[f.name], f.type) for f in _FLAG_FIELDS], fields=_FLAG_FIELDS
        )
        columns = []
        for f in schema.PAIRS:
            if f.name in constant:
                columns.append(pa.array([constant[f.name]] * n, f.type))
            elif f.name == "flags":
                columns.append(flags)
            else:
                columns.append(pa.array(self.rows[f.name], f.type))
        self.chunks.append(pa.Table.from_arrays(columns, schema=schema.PAIRS))
        self.rows = {name: [] for name in _PER_PAIR}
        self.flags = {f.name: [] for f in _FLAG_FIELDS}

    def table(self) -> pa.Table:
        """Every pair added so far, in schema.PAIRS (no agreement column)."""
        self.flush()
        return pa.concat_tables(self.chunks) if self.chunks else schema.PAIRS.empty_table()

    def pairs(self) -> pa.Table:
        """Every pair; with an `annotator_agreement` column when any pair has one."""
        table = self.table()
        if any(a is not None for a in self.agreement):
            table = table.append_column(AGREEMENT, pa.array(self.agreement, AGREEMENT.type))
        return table


def duplicate_key_detail(key: str) -> str:
    return f"the key `{key}` appears more than once in the source"


@dataclass
class Chunk:
    """What `seal.ingest.row_work` made of a chunk of rows, for `Builder.merge`: the candidate pairs (`table`,
    with `duplicate_in_source` not yet set, and each pair's id, content hash and agreement), and `events` in row
    order: (row position, pair number, key) for a pair, (row position, None, quarantine row) for a problem."""

    table: pa.Table
    pair_ids: list[str]
    digests: list[str]
    agreement: list[dict[str, Any] | None]
    events: list[tuple[int, int | None, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    unused: Counter[str] = field(default_factory=Counter)
