"""Rated lists (UltraFeedback): a prompt with several responses, each rated; ``--pairs`` makes pairs of them.

Shapes read (the list column is `completions` or `responses`, or ``--map completions=COL``):

- a list of objects: ``[{"response": ..., "overall_score": 7.5, "fine-grained_score": 4.25}, ...]``;
- the same as an object of lists, as Hugging Face `datasets` stores a sequence of structs:
  ``{"response": [...], "overall_score": [...]}``;
- flattened into top-level list columns (``Dataset.flatten()``): ``completions.response``,
  ``completions.overall_score``;
- a list of strings with ratings in a parallel list column (`ratings`, `scores`, or ``--map rating=COL``).

The text field is the first of response/text/content/completion/output/answer (``--map response=FIELD``);
the rating is the first of overall_score/fine-grained_score/rating/score (``--map rating=FIELD``).
Ratings may be numbers or numeric strings; a response without one is left out.

``--pairs best-worst`` (default): the best-rated response against the worst (the first of equals);
``best-random``: the best against one of the lower-rated ones, chosen by ``--seed`` and the row's
content (so the choice survives reordering the source); ``all``: every two responses whose ratings differ,
keyed ``<row key>#<better>><worse>`` (positions in the list). Equal ratings never make a pair: a row
whose rated responses all tie is quarantined as ``tie``; under ``all`` each tied couple is counted in
``skipped_pairs``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from seal.errors import SourceError
from seal.ingest.mapping import Canonical, ColumnMap, Made, RowProblem
from seal.ingest.texts import prompt_context, response_text, system_context

LIST_COLUMNS = ("completions", "responses")
TEXT_FIELDS = ("response", "text", "content", "completion", "output", "answer")
RATING_FIELDS = ("overall_score", "fine-grained_score", "rating", "score")
RATING_COLUMNS = ("ratings", "scores")
PROMPT_COLUMNS = ("prompt", "instruction")
RATED_PAIRINGS = ("best-worst", "best-random", "all")
DEFAULT_PAIRING = "best-worst"


def _list_column(record: Mapping[str, Any], mapping: ColumnMap) -> str | None:
    """The column holding the rated responses (or the prefix of its flattened columns)."""
    candidates = (mapping.col("completions"),) if mapping.mapped("completions") else LIST_COLUMNS
    for column in candidates:
        if column in record or any(k.startswith(column + ".") for k in record):
            return column
    return None


def rated_column(records: Sequence[Mapping[str, Any]], mapping: ColumnMap) -> str | None:
    """The rated-list column when the first records read as rated lists (used to detect the format)."""
    for record in records:
        column = _list_column(record, mapping)
        if column is None:
            continue
        try:
            rated_items(record, mapping)
        except RowProblem:
            continue
        return column
    return None


def check_rated(records: Sequence[Mapping[str, Any]], mapping: ColumnMap) -> None:
    """File-level checks: a rated-list column exists, and --pairs is one of the rated pairings."""
    if mapping.pairs is not None and mapping.pairs not in RATED_PAIRINGS:
        raise SourceError(
            f"--pairs {mapping.pairs} applies to unpaired data, and this source holds rated lists",
            hint=f"use --pairs {' or '.join(RATED_PAIRINGS)}",
        )
    if all(_list_column(r, mapping) is None for r in records):
        columns = sorted(set().union(*(set(r) for r in records)))
        raise SourceError(
            f"format rated needs a list of rated responses ({' or '.join(f'`{c}`' for c in LIST_COLUMNS)}), "
            "which the source lacks",
            hint=f"columns: {', '.join(f'`{c}`' for c in columns)}; name it with --map completions=COLUMN",
        )


def _transpose(value: Mapping[str, Any], column: str) -> list[dict[str, Any]]:
    """An object of equally long lists (a `datasets` sequence of structs) as a list of objects."""
    lists = {k: v for k, v in value.items() if isinstance(v, list)}
    if not lists or len({len(v) for v in lists.values()}) != 1:
        raise RowProblem("bad_completions", f"`{column}` is an object but not one of equally long lists")
    size = len(next(iter(lists.values())))
    return [{k: v[i] for k, v in lists.items()} for i in range(size)]


def rated_items(record: Mapping[str, Any], mapping: ColumnMap) -> tuple[list[tuple[Any, Any]], str]:
    """(text, rating) of every response in a record, in list order, and where the ratings come from."""
    column = _list_column(record, mapping)
    if column is None:
        raise RowProblem("missing_column", f"no `{mapping.col('completions')}` column in this row")
    value = record.get(column)
    if value is None:
        prefix = column + "."
        flat = {k[len(prefix) :]: v for k, v in record.items() if k.startswith(prefix)}
        if not flat:
            raise RowProblem("missing_value", f"`{column}` is null")
        value = flat
    if isinstance(value, dict):
        value = _transpose(value, column)
    if not isinstance(value, list):
        raise RowProblem("wrong_type", f"`{column}` is {type(value).__name__}, not a list of responses")
    if all(isinstance(item, dict) for item in value):
        return _object_items(record, value, mapping, column)
    if all(isinstance(item, str) for item in value):
        rating_column = _rating_column(record, mapping)
        if rating_column is None:
            raise RowProblem("missing_column", f"`{column}` holds texts and no ratings column is given")
        ratings = record[rating_column]
        if not isinstance(ratings, list) or len(ratings) != len(value):
            raise RowProblem("bad_completions", f"`{rating_column}` is not a list as long as `{column}`")
        return list(zip(value, ratings, strict=True)), f"`{rating_column}`"
    raise RowProblem("wrong_type", f"`{column}` mixes responses of different types")


def _object_items(
    record: Mapping[str, Any], items: list[dict[str, Any]], mapping: ColumnMap, column: str
) -> tuple[list[tuple[Any, Any]], str]:
    keys = set().union(*(set(item) for item in items)) if items else set()
    text_field = mapping.columns.get("response") or next((f for f in TEXT_FIELDS if f in keys), None)
    if text_field is None or text_field not in keys:
        raise RowProblem("missing_column", f"the responses in `{column}` have no text field ({'/'.join(TEXT_FIELDS)})")
    rating_field = mapping.columns.get("rating") or next((f for f in RATING_FIELDS if f in keys), None)
    if rating_field is not None and rating_field in keys:
        return [(item.get(text_field), item.get(rating_field)) for item in items], f"`{rating_field}`"
    rating_column = _rating_column(record, mapping)
    if rating_column is None:
        raise RowProblem("missing_column", f"the responses in `{column}` have no rating ({'/'.join(RATING_FIELDS)})")
    ratings = record[rating_column]
    if not isinstance(ratings, list) or len(ratings) != len(items):
        raise RowProblem("bad_completions", f"`{rating_column}` is not a list as long as `{column}`")
    return [(item.get(text_field), r) for item, r in zip(items, ratings, strict=True)], f"`{rating_column}`"


def _rating_column(record: Mapping[str, Any], mapping: ColumnMap) -> str | None:
    candidates = (mapping.columns["rating"],) if "rating" in mapping.columns else RATING_COLUMNS
    return next((c for c in candidates if isinstance(record.get(c), list)), None)


def rating_value(value: Any) -> float | None:
    """A rating as a number: numbers and numeric strings; anything else (None, "N/A", NaN) is no rating."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _prompt(record: Mapping[str, Any], mapping: ColumnMap) -> list[dict[str, str]]:
    if mapping.mapped("prompt"):
        if not mapping.has(record, "prompt"):
            raise RowProblem("missing_column", f"no `{mapping.col('prompt')}` column in this row")
        return prompt_context(mapping.value(record, "prompt"), mapping.shown("prompt"))
    column = next((c for c in PROMPT_COLUMNS if c in record), None)
    if column is None:
        raise RowProblem("missing_column", "no `prompt` or `instruction` column in this row")
    return prompt_context(record[column], column)


def adapt_rated(record: Mapping[str, Any], mapping: ColumnMap) -> Made:
    """The pairs a rated list makes under ``mapping.pairs``."""
    items, source = rated_items(record, mapping)
    for i, (text, _) in enumerate(items):
        if not isinstance(text, str):
            raise RowProblem("wrong_type", f"response {i} is {type(text).__name__}, not text")
    rated = [(i, text, r) for i, (text, raw) in enumerate(items) if (r := rating_value(raw)) is not None]
    if len(rated) < 2:
        raise RowProblem("too_few_rated", f"{len(rated)} of {len(items)} responses have a rating ({source})")
    context = system_context(record, mapping) + _prompt(record, mapping)

    def pair(better: tuple[int, str, float], worse: tuple[int, str, float]) -> Canonical:
        return Canonical(context, response_text(better[1]), response_text(worse[1]), better[1], worse[1])

    ratings = [r for _, _, r in rated]
    if max(ratings) == min(ratings):
        raise RowProblem("tie", f"all {len(rated)} rated responses have the same rating {ratings[0]:g} ({source})")
    how = mapping.pairs or DEFAULT_PAIRING
    if how == "all":
        pairs, ties = [], 0
        for x, y in itertools.combinations(rated, 2):
            if x[2] == y[2]:
                ties += 1
                continue
            better, worse = (x, y) if x[2] > y[2] else (y, x)
            pairs.append((f"#{better[0]}>{worse[0]}", pair(better, worse)))
        return Made(pairs, {"tie": ties} if ties else {})
    best = next(item for item in rated if item[2] == max(ratings))
    if how == "best-worst":
        worse = next(item for item in rated if item[2] == min(ratings))
    else:  # best-random: seeded by --seed and the row's content, not its position
        lower = [item for item in rated if item[2] < best[2]]
        content = json.dumps([context, [t for _, t, _ in rated]], ensure_ascii=False)
        digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
        worse = random.Random(f"{mapping.seed}\x1f{digest}").choice(lower)
    return Made([("", pair(best, worse))])
