"""The implementations that seal's scale speed-ups replaced (benchmarks/scale.py, issue #14), kept verbatim as
the reference the fast paths must equal (tests/test_scale_paths.py) and as the benchmark's baseline.

- ingest: the gzip reader without its buffer, the transcript parser with the one-regex marker search that
  parsed both sides' contexts, the per-text NUL and surrogate regexes, `json.dumps` per content hash, the
  row-dict `Builder` and the adapt loop that did all the row work in one process;
- heuristics: token counts by `Tokenizer.encode_batch` of every text, and VADER by vaderSentiment's own
  analyzer (`seal.annotate.features.heuristic_tools.FAST_VADER = False`).

Nothing in seal imports this module.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from seal import schema
from seal.errors import SourceError
from seal.ingest.adapt import DETECT_ROWS, Adapted, _head  # noqa: F401
from seal.ingest.annotators import adapt_votes
from seal.ingest.builder import pair_id_for, safe_text
from seal.ingest.detect import check_columns, check_mapped_columns, detect_format, resolve_columns, used_columns
from seal.ingest.formats import ADAPTERS, field_text
from seal.ingest.mapping import CHECK_UNUSED, Canonical, ColumnMap, RowProblem
from seal.ingest.rated import DEFAULT_PAIRING, adapt_rated
from seal.ingest.readers import SNIPPET_CHARS, RawRow
from seal.ingest.transcript import SplitTranscript, TranscriptError
from seal.ingest.unpaired import Keyed, adapt_unpaired, pair_by_prompt
from seal.schema import ANNOTATOR_AGREEMENT as AGREEMENT

# -- ingest ---------------------------------------------------------------------------------------------
_MARKER = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")
_ROLE = {"Human": "user", "Assistant": "assistant"}
_FINAL_MARKER = "\n\nAssistant:"
_SURROGATE = re.compile("[\ud800-\udfff]")
CHUNK_ROWS = 20_000


def open_binary(path: Any, gz: bool) -> Any:
    """A source file for reading (the reader's, before its 1 MiB buffer over gzip)."""
    import gzip

    return gzip.open(path, "rb") if gz else open(path, "rb")


def parse_turns(text: str, leading_role: str = "user") -> list[dict[str, str]]:
    """Split a transcript into ``{role, content}`` turns.

    Text before the first marker (if any) becomes a turn of ``leading_role``: prompts such as
    HHH's start with the human's words and only mark later turns.
    """
    turns: list[dict[str, str]] = []
    matches = list(_MARKER.finditer(text))
    head = text[: matches[0].start()] if matches else text
    if head.strip():
        turns.append({"role": leading_role, "content": head.strip()})
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        turns.append({"role": _ROLE[m.group(1)], "content": text[m.end() : end].strip()})
    return turns


def split_final_response(text: str) -> SplitTranscript:
    """Cut a transcript into the context before the final Assistant turn and that turn's text."""
    if not text.strip():
        raise TranscriptError("empty_text", "the transcript is empty")
    cut = text.rfind(_FINAL_MARKER)
    if cut < 0:
        if text.startswith("Assistant:"):
            cut = 0
        else:
            raise TranscriptError("no_assistant_turn", "the transcript has no Assistant turn")
    prefix = text[:cut]
    tail = text[cut:]
    tail_turns = parse_turns(tail)
    if len(tail_turns) != 1 or tail_turns[0]["role"] != "assistant":
        raise TranscriptError("final_turn_not_assistant", "a Human turn follows the last Assistant turn")
    return SplitTranscript(prefix=prefix, context=parse_turns(prefix), response=tail_turns[0]["content"])


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


def adapt_transcript(record: Mapping[str, Any], mapping: ColumnMap) -> Canonical:
    chosen_raw = field_text(record, mapping.col("chosen"), "chosen")
    rejected_raw = field_text(record, mapping.col("rejected"), "rejected")
    try:
        chosen = split_final_response(chosen_raw)
        rejected = split_final_response(rejected_raw)
    except TranscriptError as err:
        raise RowProblem(err.reason, str(err)) from None
    return Canonical(
        context=chosen.context,
        chosen=chosen.response,
        rejected=rejected.response,
        chosen_raw=chosen_raw,
        rejected_raw=rejected_raw,
        context_mismatch=chosen.prefix != rejected.prefix,
    )


# the adapt loop before seal.ingest.row_work, with the adapters above (transcript: the reference one)
REFERENCE_ADAPTERS = {**ADAPTERS, "transcript": adapt_transcript}


def _producer(fmt: str, mapping: ColumnMap) -> Callable[[Mapping[str, Any]], Any] | None:
    """The adapter of formats that make any number of pairs per row (None: one pair per row)."""
    if fmt == "pairwise" and mapping.label_from:
        return lambda record: adapt_votes(record, mapping)
    if fmt == "rated":
        return lambda record: adapt_rated(record, mapping)
    return None


def _non_empty(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | dict):
        return bool(value)
    return True


def adapt_all(
    rows: Iterable[RawRow],
    dataset: str,
    source: str,
    fmt: str,
    mapping: ColumnMap,
    run_id: str,
    shown: str | None = None,
) -> Adapted:
    """Adapt every raw row; the format is detected (and --map checked) on the first decodable records.

    `source` is recorded with quarantined rows; `shown` (the source as the user wrote it) names it in errors.
    """
    shown = shown or source
    head, records, rest = _head(rows, shown)
    reason = "given with --format"
    try:
        check_mapped_columns(records, mapping)
        if fmt == "auto":
            fmt, reason = detect_format(records, mapping)
        mapping, note = resolve_columns(records, fmt, mapping)
        check_columns(records, fmt, mapping)
    except SourceError as err:
        raise SourceError(f"{shown}: {err.message}", hint=err.hint) from None
    if note:
        reason += f"; {note}"
    if fmt == "rated":
        reason += f"; pairs {mapping.pairs or DEFAULT_PAIRING}"
    adapter, produce = REFERENCE_ADAPTERS.get(fmt), _producer(fmt, mapping)
    builder = Builder(dataset, source, fmt, run_id)
    key_column = mapping.columns.get("key")
    used = used_columns(fmt, mapping) | {key_column}
    unused: Counter[str] | None = Counter() if fmt in CHECK_UNUSED else None
    waiting: list[Keyed] = []
    read = 0
    for row in itertools.chain(head, rest):
        read += 1
        record = row.record
        if record is None:
            builder.add_problem(row, *row.problem)  # type: ignore[misc]
            continue
        if unused is not None:
            unused.update(name for name, value in record.items() if name not in used and _non_empty(value))
        try:
            if fmt == "unpaired":
                made: Any = adapt_unpaired(record, mapping)
            elif produce is not None:
                made = produce(record)
            else:
                made = adapter(record, mapping)  # type: ignore[misc]
        except RowProblem as problem:
            builder.add_problem(row, problem.reason, problem.detail)
            continue
        key = row.key
        if key_column is not None:
            value = record.get(key_column)
            if value is None or (isinstance(value, str) and not value.strip()):
                builder.add_problem(row, "missing_value", f"the key column `{key_column}` is empty")
                continue
            key = f"{key_column}={value}"
        if fmt == "unpaired":
            waiting.append(Keyed(key, row.index, made, row))
        elif isinstance(made, Canonical):
            _add(builder, row, key, made, row.key)
        else:
            builder.skipped.update(made.skipped)
            for suffix, canonical in made.pairs:
                _add(builder, row, key + suffix, canonical, row.key + suffix)
    if fmt == "unpaired":
        pairs, alone = pair_by_prompt(waiting)
        for item, detail in alone:
            builder.add_problem(item.row, "no_counterpart", detail, key=item.key)
        for good, bad, canonical in pairs:
            key = f"{good.key}+{bad.key}"
            _add(builder, good.row, key, canonical, key, index=min(good.index, bad.index))
    return Adapted(builder, read, fmt, reason, dict(sorted(unused.items())) if unused else {})


def adapt_all_decoding(rows: Iterable[RawRow], *args: Any, **kwargs: Any) -> Any:
    """The old `adapt_all` on rows read as it read them: JSON lines decoded first."""
    from seal.ingest.readers import decode_row

    return adapt_all((decode_row(row) for row in rows), *args, **kwargs)


def _add(
    builder: Builder, row: RawRow, key: str, canonical: Canonical, problem_key: str, index: int | None = None
) -> None:
    """Add a pair, or quarantine it under `problem_key` when its texts cannot be stored."""
    problem = text_problem(canonical)
    if problem is not None:
        builder.add_problem(row, *problem, key=problem_key)
        return
    builder.add_pair(row, key, canonical, index=index)


# -- heuristics ----------------------------------------------------------------------------------------
def count_tokens(texts: list[str], tokenizer: Any) -> np.ndarray:
    """Tokens per text by encoding each distinct text (the count before seal.annotate.features.wordpiece)."""
    from seal.annotate.features.heuristic_tools import _tokenizer

    tok, _counter = _tokenizer(tokenizer)
    unique = list(dict.fromkeys(texts))
    counts = {t: len(e) for t, e in zip(unique, tok.encode_batch(unique, add_special_tokens=False), strict=True)}
    return np.fromiter((counts[t] for t in texts), dtype=np.float64, count=len(texts))
