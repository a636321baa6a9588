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
IDENTICAL_FLAG = "flags.identical_responses"  # as a nested column name for reads


def has_identical_flag(schema: pa.Schema) -> bool:
    """Whether pairs of this schema carry ``flags.identical_responses`` (a table built by hand may not)."""
    if "flags" not in schema.names:
        return False
    flags = schema.field("flags").type
    return pa.types.is_struct(flags) and flags.get_field_index("identical_responses") >= 0


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

# Written by ingest when a source has several annotators per pair (`--label-from A,B,C`): the share of
# annotators who gave the pair's label, and how many labelled it. Added to `pairs` when first written.
ANNOTATOR_AGREEMENT = pa.field("annotator_agreement", pa.struct([("share", pa.float64()), ("annotators", pa.int64())]))

# Side tables of the LLM labeler and rewriter (seal.annotate.features.llm_cache): the response cache per
# (model, prompt, text, feature), the log of failed requests, and Batch API submissions.
_TIMESTAMP = pa.timestamp("us", tz="UTC")

LLM_CACHE = pa.schema(
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
        pa.field("created_at", _TIMESTAMP),
    ]
)

LLM_FAILURES = pa.schema(
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
        pa.field("created_at", _TIMESTAMP),
    ]
)

LLM_BATCHES = pa.schema(
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
        pa.field("created_at", _TIMESTAMP),
        pa.field("updated_at", _TIMESTAMP),
    ]
)
