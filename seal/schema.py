"""Arrow schemas of the store's tables, kept in one place.

Later stages add top-level columns (``score_<alias>``, ``features_<set>``, ``emb_<field>``,
``variants_<method>``) through schema evolution; the columns below are the ones ingest owns.
"""

from __future__ import annotations

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

FLAG_NAMES = ("identical_responses", "context_mismatch", "duplicate_in_source", "empty_response")
# Set on stored pairs by a later `seal ingest --on-change update` (not by the ingest that adds a pair).
UPDATE_FLAG_NAMES = ("removed_from_source",)
FLAGS = pa.struct([(name, pa.bool_()) for name in FLAG_NAMES + UPDATE_FLAG_NAMES])

PAIRS = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("source_index", pa.int64()),
        pa.field("source_key", pa.string()),
        pa.field("format", pa.string()),
        pa.field("context", pa.list_(MESSAGE)),
        pa.field("chosen", pa.string()),
        pa.field("rejected", pa.string()),
        pa.field("chosen_raw", pa.string()),
        pa.field("rejected_raw", pa.string()),
        pa.field("content_hash", pa.string()),
        pa.field("flags", FLAGS),
        pa.field("ingest_run", pa.string()),
    ]
)

QUARANTINE = pa.schema(
    [
        pa.field("dataset", pa.string()),
        pa.field("source", pa.string()),
        pa.field("source_key", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("snippet", pa.string()),
        pa.field("run_id", pa.string()),
    ]
)

RUNS = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("name", pa.string()),
        pa.field("fingerprint", pa.string()),
        pa.field("recipe", pa.string()),  # canonical JSON of what determines the output
        pa.field("provenance", pa.string()),  # JSON of what does not (timings, batch size, versions)
        pa.field("status", pa.string()),
        pa.field("rows_written", pa.int64()),
        pa.field("pairs_version", pa.int64()),  # version of `pairs` after this run's write
        pa.field("started_at", pa.timestamp("us", tz="UTC")),
        pa.field("finished_at", pa.timestamp("us", tz="UTC")),
    ]
)

INGEST_COLUMNS = tuple(PAIRS.names)
