"""Format adapters: one source record -> one canonical pair, or a RowProblem with a reason code.

Canonical pair: ``context`` (list of ``{role, content}``), ``chosen``/``rejected`` (final responses),
``chosen_raw``/``rejected_raw`` (the source's own texts) and the ``context_mismatch`` flag. Rated lists,
several annotators and unpaired data, which make several pairs (or none) of a record, build on these
(seal.ingest.rated, seal.ingest.annotators, seal.ingest.unpaired); detection is seal.ingest.detect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from seal.ingest.detect import (
    check_columns,
    check_mapped_columns,
    detect_format,
    required_columns,
    resolve_columns,
    used_columns,
)
from seal.ingest.mapping import (
    DEFAULT_LABELS,
    FORMATS,
    MAP_KEYS,
    SHAREGPT_PROMPT,
    Canonical,
    ColumnMap,
    Made,
    RowProblem,
    build_column_map,
    json_messages,
    label_text,
    lookup_label,
    parse_label_map,
    parse_map_options,
)
from seal.ingest.texts import (
    field_text,
    messages,
    prompt_context,
    raw_text,
    response_text,
    split_messages,
    system_context,
)
from seal.ingest.transcript import TranscriptError, split_final_response

__all__ = [
    "ADAPTERS",
    "FORMATS",
    "MAP_KEYS",
    "Canonical",
    "ColumnMap",
    "Made",
    "RowProblem",
    "adapt_messages",
    "adapt_pairwise",
    "adapt_prompt_response",
    "adapt_transcript",
    "build_column_map",
    "check_columns",
    "check_mapped_columns",
    "detect_format",
    "json_messages",
    "label_text",
    "parse_label_map",
    "parse_map_options",
    "required_columns",
    "resolve_columns",
    "used_columns",
]


# -- adapters -----------------------------------------------------------------------------------
def adapt_transcript(record: Mapping[str, Any], mapping: ColumnMap) -> Canonical:
    chosen_raw = field_text(record, mapping.col("chosen"), "chosen")
    rejected_raw = field_text(record, mapping.col("rejected"), "rejected")
    try:
        chosen = split_final_response(chosen_raw)
        rejected = split_final_response(rejected_raw, with_context=False)  # the pair's context is chosen's
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


def adapt_prompt_response(record: Mapping[str, Any], mapping: ColumnMap) -> Canonical:
    if not mapping.has(record, "prompt"):
        raise RowProblem("missing_column", f"no `{mapping.col('prompt')}` column in this row")
    context = system_context(record, mapping) + prompt_context(mapping.value(record, "prompt"), mapping.shown("prompt"))
    chosen_raw = field_text(record, mapping.col("chosen"), "chosen")
    rejected_raw = field_text(record, mapping.col("rejected"), "rejected")
    return Canonical(context, response_text(chosen_raw), response_text(rejected_raw), chosen_raw, rejected_raw)


def adapt_messages(record: Mapping[str, Any], mapping: ColumnMap) -> Canonical:
    chosen_col, rejected_col = mapping.col("chosen"), mapping.col("rejected")
    for col in (chosen_col, rejected_col):
        if col not in record:
            raise RowProblem("missing_column", f"no `{col}` column in this row")
    chosen_msgs = messages(record[chosen_col], chosen_col)
    rejected_msgs = messages(record[rejected_col], rejected_col)
    chosen_prefix, chosen = split_messages(chosen_msgs, chosen_col)
    rejected_prefix, rejected = split_messages(rejected_msgs, rejected_col)
    prompt_col = mapping.columns.get("prompt")
    if prompt_col is None and "prompt" not in mapping.templates:
        prompt_col = next((c for c in ("prompt", SHAREGPT_PROMPT) if c in record), None)
    context = system_context(record, mapping)
    if "prompt" in mapping.templates:
        context += prompt_context(mapping.value(record, "prompt"), mapping.shown("prompt"))
    elif prompt_col is not None:
        if prompt_col not in record:
            raise RowProblem("missing_column", f"no `{prompt_col}` column in this row")
        context += prompt_context(record[prompt_col], prompt_col)
    return Canonical(
        context=context + chosen_prefix,
        chosen=chosen,
        rejected=rejected,
        chosen_raw=raw_text(record[chosen_col]),
        rejected_raw=raw_text(record[rejected_col]),
        context_mismatch=chosen_prefix != rejected_prefix,
    )


def adapt_pairwise(record: Mapping[str, Any], mapping: ColumnMap) -> Canonical:
    """One label column: a, b or tie (ties are quarantined). Several: seal.ingest.annotators."""
    label_col = mapping.col("label")
    if label_col not in record:
        raise RowProblem("missing_column", f"no `{label_col}` column in this row")
    raw_label = record[label_col]
    if raw_label is None:
        raise RowProblem("missing_value", f"the label (`{label_col}`) is null")
    label = lookup_label(mapping.labels or DEFAULT_LABELS, raw_label)
    if label is None:
        raise RowProblem("label_not_mapped", f"label `{label_text(raw_label)}` is not in the label map")
    if label == "tie":
        raise RowProblem("tie", "the label says the two responses tie")
    return pairwise_pair(*pairwise_sides(record, mapping), label)


def pairwise_sides(record: Mapping[str, Any], mapping: ColumnMap) -> tuple[list[dict[str, str]], str, str]:
    """The context and the two responses (a, b) of a pairwise record."""
    a_raw = field_text(record, mapping.col("a"), "response a")
    b_raw = field_text(record, mapping.col("b"), "response b")
    prompt_col = mapping.col("prompt")
    if "prompt" in mapping.columns and prompt_col not in record:
        raise RowProblem("missing_column", f"no `{prompt_col}` column in this row")
    prompt = mapping.value(record, "prompt")
    context = system_context(record, mapping) + (
        prompt_context(prompt, mapping.shown("prompt")) if prompt is not None else []
    )
    return context, a_raw, b_raw


def pairwise_pair(
    context: list[dict[str, str]],
    a_raw: str,
    b_raw: str,
    label: str,
    agreement: tuple[float, int] | None = None,
) -> Canonical:
    """The pair that a label (a or b) makes of two responses."""
    chosen_raw, rejected_raw = (a_raw, b_raw) if label == "a" else (b_raw, a_raw)
    return Canonical(
        context, response_text(chosen_raw), response_text(rejected_raw), chosen_raw, rejected_raw, agreement=agreement
    )


ADAPTERS: dict[str, Callable[[Mapping[str, Any], ColumnMap], Canonical]] = {
    "transcript": adapt_transcript,
    "prompt-response": adapt_prompt_response,
    "messages": adapt_messages,
    "pairwise": adapt_pairwise,
}
