"""Format detection and file-level checks on the first records of a source."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from seal.errors import SourceError
from seal.ingest.mapping import (
    DEFAULT_LABELS,
    FORMAT_KEYS,
    FORMATS,
    ITEM_KEYS,
    NUMBERED_RESPONSES,
    REQUIRED_KEYS,
    ColumnMap,
    json_messages,
    label_text,
    label_values,
    lookup_label,
)
from seal.ingest.rated import check_rated, rated_column
from seal.ingest.transcript import has_markers
from seal.ingest.unpaired import check_unpaired, is_unpaired


# -- detection ----------------------------------------------------------------------------------
def detect_format(records: Sequence[Mapping[str, Any]], mapping: ColumnMap) -> tuple[str, str]:
    """Choose a format from the first records of a source (their columns and value types); return
    (format, why). Rows that are themselves broken (a null `chosen`) do not decide."""
    columns: set[str] = set().union(*(set(r) for r in records))
    chosen_col, rejected_col = mapping.col("chosen"), mapping.col("rejected")
    if mapping.label_from:
        return "pairwise", "--label-from is given"
    if not {chosen_col, rejected_col} & columns and is_unpaired(records, mapping):
        return "unpaired", f"one `{mapping.col('completion')}` per row with a true/false `{mapping.col('label')}`"
    if {"a", "b", "label"} & set(mapping.columns):
        return "pairwise", "--map names a/b/label columns"
    if mapping.labels:
        return "pairwise", "--label-map is given"
    if {"a", "b", "label"} <= columns and not {chosen_col, rejected_col} & columns:
        return "pairwise", "columns `a`, `b` and `label`"
    if not {chosen_col, rejected_col} & columns:
        rated = rated_column(records, mapping)
        if rated is not None:
            return "rated", f"`{rated}` holds rated responses"
    missing = [c for c in (chosen_col, rejected_col) if c not in columns]
    if missing:
        numbered = next((n for n in NUMBERED_RESPONSES if {n[0], n[1]} <= columns), None)
        hint = (
            "map them with --map chosen=COL --map rejected=COL, or use --format pairwise with --map a=COL "
            "--map b=COL --map label=COL"
        )
        if numbered is not None:
            hint = (
                f"`{numbered[0]}` and `{numbered[1]}` are two responses: name the column that says which is "
                "preferred with --label-from COL (PKU-SafeRLHF: --label-from better_response_id)"
            )
        raise SourceError(
            f"cannot detect the format: no {' or '.join(f'`{c}`' for c in missing)} column "
            f"(columns: {', '.join(f'`{c}`' for c in sorted(columns))})",
            hint=hint,
        )
    values = [r[chosen_col] for r in records if r.get(chosen_col) is not None]
    if not values:
        raise SourceError(
            f"cannot detect the format: `{chosen_col}` is null in the first {len(records)} rows",
            hint=f"pass --format ({'|'.join(FORMATS)})",
        )
    kinds = Counter("messages" if isinstance(v, list | dict) else type(v).__name__ for v in values)
    kind = kinds.most_common(1)[0][0]
    if kind == "messages":
        return "messages", f"`{chosen_col}` holds messages"
    if kind == "str" and all(isinstance(json_messages(v), list | dict) for v in values):
        return "messages", f"`{chosen_col}` holds messages as JSON text"
    if kind == "str":
        if "prompt" in mapping.templates:
            return "prompt-response", "string responses and a prompt template"
        if mapping.col("prompt") in columns:
            return "prompt-response", f"string responses and a `{mapping.col('prompt')}` column"
        if any(isinstance(v, str) and has_markers(v) for v in values):
            return "transcript", f"`{chosen_col}` holds Human:/Assistant: transcripts"
        raise SourceError(
            "cannot detect the format: string responses with no prompt column and no Human:/Assistant: markers",
            hint="name the prompt column with --map prompt=COL",
        )
    raise SourceError(
        f"cannot detect the format: `{chosen_col}` holds {kind} values, not text or messages",
        hint="map the response columns with --map chosen=COL --map rejected=COL",
    )


def required_columns(fmt: str, mapping: ColumnMap) -> list[str]:
    """Columns that a source of this format must have."""
    keys = REQUIRED_KEYS[fmt]
    if fmt == "pairwise" and mapping.label_from:
        return [mapping.col(k) for k in keys if k != "label"] + list(mapping.label_from)
    return [c for k in keys if k not in mapping.templates for c in mapping.source_columns(k)]


def used_columns(fmt: str, mapping: ColumnMap) -> set[str]:
    """The source columns a format reads under this mapping (the rest is reported when non-empty)."""
    used = {c for key in FORMAT_KEYS[fmt] for c in mapping.source_columns(key)}
    return used | set(mapping.label_from)


def resolve_columns(records: Sequence[Mapping[str, Any]], fmt: str, mapping: ColumnMap) -> tuple[ColumnMap, str]:
    """Fill in what the data implies: pairwise responses numbered `response_0`/`response_1` (PKU-SafeRLHF)
    become a/b with labels 0 -> a, 1 -> b unless --map / --label-map say otherwise. Returns the mapping
    and a note for the format reason ("" when nothing was filled in)."""
    if fmt != "pairwise" or mapping.mapped("a") or mapping.mapped("b"):
        return mapping, ""
    columns = set().union(*(set(r) for r in records))
    if {"a", "b"} <= columns:
        return mapping, ""
    for a_col, b_col, labels in NUMBERED_RESPONSES:
        if {a_col, b_col} <= columns:
            note = f"`{a_col}`/`{b_col}` as a/b"
            if not mapping.labels:
                note += ", labels " + ", ".join(f"{v} -> {k}" for v, k in labels.items())
            resolved = replace(
                mapping, columns={**mapping.columns, "a": a_col, "b": b_col}, labels=mapping.labels or labels
            )
            return resolved, note
    return mapping, ""


def check_mapped_columns(records: Sequence[Mapping[str, Any]], mapping: ColumnMap) -> None:
    """Every --map (and --label-from) names a column that the first records have (checked before detecting
    the format); a template's fields too."""
    columns = set().union(*(set(r) for r in records))
    listed = ", ".join(f"`{c}`" for c in sorted(columns))
    for key, column in mapping.columns.items():
        if key in ITEM_KEYS or (key == "completions" and _flattened(column, columns)):
            continue  # fields of each rated response, checked by seal.ingest.rated
        if column not in columns:
            raise SourceError(f"bad --map {key}={column}: there is no column `{column}`", hint=f"columns: {listed}")
    for key, template in mapping.templates.items():
        for column in template.columns:
            if column not in columns:
                raise SourceError(
                    f"bad --map {key}={template.source}: there is no column `{column}`", hint=f"columns: {listed}"
                )
    for column in mapping.label_from:
        if column not in columns:
            raise SourceError(f"bad --label-from: there is no column `{column}`", hint=f"columns: {listed}")


def _flattened(column: str, columns: set[str]) -> bool:
    """True when `column` is the prefix of flattened list columns (`completions.response`, ...)."""
    return any(c.startswith(column + ".") for c in columns)


def check_columns(records: Sequence[Mapping[str, Any]], fmt: str, mapping: ColumnMap) -> None:
    """File-level checks on the first records: every --map key applies to the format and names a column
    that exists, the format's columns exist, and (pairwise) the label map matches some labels.

    A column absent from some rows only is a row-level problem (`missing_column`)."""
    columns = set().union(*(set(r) for r in records))
    listed = ", ".join(f"`{c}`" for c in sorted(columns))
    check_mapped_columns(records, mapping)
    given = {**mapping.columns, **{k: t.source for k, t in mapping.templates.items()}}
    for key, column in given.items():
        if key not in FORMAT_KEYS[fmt]:
            raise SourceError(
                f"bad --map {key}={column}: format {fmt} has no `{key}`",
                hint=f"format {fmt} maps {', '.join(FORMAT_KEYS[fmt])}",
            )
    if mapping.label_from and fmt != "pairwise":
        raise SourceError(f"--label-from applies to pairwise data, and this source is {fmt}")
    if mapping.pairs is not None and fmt not in ("rated", "unpaired"):
        raise SourceError(
            f"--pairs applies to rated lists and unpaired data, and this source is {fmt}", hint="drop --pairs"
        )
    missing = [c for c in required_columns(fmt, mapping) if c not in columns]
    if missing:
        keys = [k for k in REQUIRED_KEYS[fmt] if mapping.col(k) in missing]
        raise SourceError(
            f"format {fmt} needs column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(f'`{c}`' for c in missing)}, which the source lacks",
            hint=f"columns: {listed}; map others with " + " ".join(f"--map {k}=COLUMN" for k in keys),
        )
    if fmt == "pairwise":
        labels = mapping.labels or DEFAULT_LABELS
        label_columns = mapping.label_from or (mapping.col("label"),)
        seen = [v for r in records for c in label_columns for v in label_values(r.get(c))]
        if seen and all(lookup_label(labels, v) is None for v in seen):
            values = sorted({label_text(v) for v in seen})
            shown = ", ".join(f"`{v}`" for v in values[:6]) + (", …" if len(values) > 6 else "")
            raise SourceError(
                f"no label in the first {len(records)} rows is in the label map (labels seen: {shown})",
                hint="map each label value with --label-map VALUE=a|b|tie, e.g. --label-map 1=a --label-map 2=b",
            )
    if fmt == "rated":
        check_rated(records, mapping)
    if fmt == "unpaired":
        check_unpaired(mapping)
