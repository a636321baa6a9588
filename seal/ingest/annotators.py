"""Pairwise rows labelled by several annotators: ``--label-from COL1,COL2,COL3 --label-agg majority|unanimous|each``.

Each label column is one annotator; a column holding a list (``["a", "b", "a"]``) or an object
(``{"ann1": 1, "ann2": 2}``) holds several annotators' votes. Every vote goes through the label map
(``--label-map``, default a/b/tie); a null vote is an annotator who did not label the row.

- ``majority``: the label most annotators gave; no single most common label (e.g. 1 a / 1 b) quarantines
  the row as ``no_majority``, a majority for tie as ``tie``.
- ``unanimous``: every annotator gave the same label, else the row is quarantined as ``not_unanimous``.
- ``each``: one pair per annotator who preferred a side, keyed ``<row key>#<annotator>``; tie votes are
  counted in ``skipped_pairs``.

The pair's ``annotator_agreement`` is the share of annotators who gave its label, and their number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from seal.ingest.formats import pairwise_pair, pairwise_sides
from seal.ingest.mapping import DEFAULT_LABELS, LABELS, ColumnMap, Made, RowProblem, label_text, lookup_label


def votes(record: Mapping[str, Any], mapping: ColumnMap) -> tuple[list[tuple[str, str]], bool]:
    """Every (annotator, label) of a row, and whether the row can have several annotators (then its
    agreement is stored)."""
    labels = mapping.labels or DEFAULT_LABELS
    several = len(mapping.label_from) > 1
    cast: list[tuple[str, str]] = []
    for column in mapping.label_from:
        if column not in record:
            raise RowProblem("missing_column", f"no `{column}` column in this row")
        value = record[column]
        if isinstance(value, list):
            several, named = True, [(f"{column}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, dict):
            several, named = True, [(f"{column}.{k}", v) for k, v in value.items()]
        else:
            named = [(column, value)]
        for name, vote in named:
            if vote is None:
                continue
            label = lookup_label(labels, vote)
            if label is None:
                raise RowProblem("label_not_mapped", f"label `{label_text(vote)}` of `{name}` is not in the label map")
            cast.append((name, label))
    if not cast:
        raise RowProblem("missing_value", "no annotator labelled this row (every label column is null)")
    return cast, several


def adapt_votes(record: Mapping[str, Any], mapping: ColumnMap) -> Made:
    """The pair(s) a row's votes make under ``mapping.label_agg``."""
    cast, several = votes(record, mapping)
    counts = Counter(label for _, label in cast)
    n = len(cast)
    split = " / ".join(f"{counts[label]} {label}" for label in LABELS if counts[label])

    def agreement(label: str) -> tuple[float, int] | None:
        return (counts[label] / n, n) if several else None

    if mapping.label_agg == "each":
        context, a_raw, b_raw = pairwise_sides(record, mapping)
        pairs = [
            (f"#{name}", pairwise_pair(context, a_raw, b_raw, label, agreement(label)))
            for name, label in cast
            if label != "tie"
        ]
        if not pairs:
            raise RowProblem("tie", f"every annotator says the two responses tie ({split})")
        ties = n - len(pairs)
        return Made(pairs, {"tie": ties} if ties else {})
    if mapping.label_agg == "unanimous" and len(counts) > 1:
        raise RowProblem("not_unanimous", f"the annotators disagree ({split})")
    (top, k), *others = counts.most_common()
    if others and others[0][1] == k:
        raise RowProblem("no_majority", f"no majority among {n} annotators ({split})")
    if top == "tie":
        detail = f"the annotators say the two responses tie ({split})" if several else "the label says they tie"
        raise RowProblem("tie", detail)
    context, a_raw, b_raw = pairwise_sides(record, mapping)
    return Made([("", pairwise_pair(context, a_raw, b_raw, top, agreement(top)))])
