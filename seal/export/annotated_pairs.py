"""The AnnotatedPairs JSON (format 2.0) of Feedback Forensics, so that seal's results open in that viewer.

One comparison per pair: the prompt (the context as `Role: text` turns), `response_a`/`response_b` (which side is
the chosen one is decided per pair by a hash of its id, so that position carries no label) and annotations from

- the dataset's label (the default annotator, under the id Feedback Forensics uses for it): prefers the chosen
  response;
- one annotator per reward model (`rm-<alias>`): prefers the response it scores higher (none on a tie or a
  missing score);
- one annotator per boolean feature (`feat-<set>-<feature>`, type `principle`, "Select the response that has
  <feature>"): prefers the response where the feature is true when exactly one response has it.

Feedback Forensics' loader (`feedback_forensics.data.loader.get_votes_dict_from_annotated_pairs_json`) reads
it; tests/test_export_annotated_pairs.py checks that with the real package.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from seal.catalog.embeddings import context_texts
from seal.catalog.featuresets import FEATURES_PREFIX
from seal.catalog.models import SCORE_PREFIX
from seal.store import Store

FORMAT_VERSION = "2.0"
# The id Feedback Forensics gives the dataset's own label and compares every other annotator against: the first
# 8 hex digits of the MD5 of its description of that annotator (inverse_cai's annotated_pairs_format).
HUMAN_DESCRIPTION = "Default annotator from original dataset (from column `preferred_text`)"
HUMAN = hashlib.md5(HUMAN_DESCRIPTION.encode()).hexdigest()[:8]
METADATA_KEYS = ("pair_id", "dataset", "chosen_position")


def chosen_is_a(pair_id: str) -> bool:
    """Whether the chosen response is `response_a` for this pair (half the pairs, by a hash of the id)."""
    return hashlib.sha256(pair_id.encode()).digest()[0] % 2 == 0


def _bool_features(schema: pa.Schema, columns: Sequence[str]) -> list[tuple[str, str, str]]:
    """(column, feature set, feature) of every boolean feature among `columns`."""
    out = []
    for name in columns:
        if not name.startswith(FEATURES_PREFIX):
            continue
        for feature in schema.field(name).type:
            if pa.types.is_boolean(feature.type.field("chosen").type):
                out.append((name, name[len(FEATURES_PREFIX) :], feature.name))
    return out


def _pref(chosen_value: Any, rejected_value: Any, chosen_a: bool, higher: bool) -> dict[str, Any]:
    """The annotation for a pair: the side whose value wins (higher score, or the one true flag)."""
    if chosen_value is None or rejected_value is None:
        return {"pref": None, "no_pref_reason": "missing"}
    if isinstance(chosen_value, float) and not (math.isfinite(chosen_value) and math.isfinite(rejected_value)):
        return {"pref": None, "no_pref_reason": "missing"}
    if chosen_value == rejected_value:
        return {"pref": None, "no_pref_reason": "tie" if higher else "not_applicable"}
    chosen_wins = chosen_value > rejected_value
    return {"pref": "a" if chosen_wins == chosen_a else "b"}


def annotated_pairs(
    store: Store,
    columns: Sequence[str],
    where: str | None,
    *,
    dataset_name: str,
    description: str,
    models: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The AnnotatedPairs document of the pairs matching `where`; RM and feature annotators come from the
    `score_*` and `features_*` columns among `columns`."""
    schema = store.schema()
    score_columns = [c for c in columns if c.startswith(SCORE_PREFIX)]
    features = _bool_features(schema, columns)
    annotators: dict[str, dict[str, Any]] = {
        HUMAN: {
            "name": "preferred_text",
            "description": HUMAN_DESCRIPTION + ": the human label, which prefers the chosen response.",
            "type": "human",
        }
    }
    for column in score_columns:
        alias = column[len(SCORE_PREFIX) :]
        role = (models or {}).get(alias, {}).get("role")
        annotators[f"rm-{alias}"] = {
            "name": f"RM {alias}",
            "description": f"Prefers the response reward model `{alias}`"
            + (f" ({role})" if role else "")
            + " scores higher; no preference on a tie.",
            "type": "reward_model",
        }
    for _, set_name, feature in features:
        annotators[f"feat-{set_name}-{feature}"] = {  # no preference when both or neither response has it
            "name": f"{feature} ({set_name})",
            "description": f"Select the response that has {feature} ({set_name} label).",
            "type": "principle",
        }
    read = [
        "pair_id",
        "dataset",
        "context",
        "chosen",
        "rejected",
        *score_columns,
        *dict.fromkeys(c for c, _, _ in features),
    ]
    table = store.read(read, where)
    prompts = context_texts(table.column("context")).to_pylist()
    rows = table.drop_columns(["context"]).to_pylist()
    comparisons = []
    for row, prompt in zip(rows, prompts, strict=True):
        chosen_a = chosen_is_a(row["pair_id"])
        a, b = ("chosen", "rejected") if chosen_a else ("rejected", "chosen")
        annotations: dict[str, dict[str, Any]] = {HUMAN: {"pref": "a" if chosen_a else "b"}}
        for column in score_columns:
            score = row[column] or {}
            annotations[f"rm-{column[len(SCORE_PREFIX) :]}"] = _pref(
                score.get("chosen"), score.get("rejected"), chosen_a, higher=True
            )
        for column, set_name, feature in features:
            value = (row[column] or {}).get(feature) or {}
            annotations[f"feat-{set_name}-{feature}"] = _pref(
                value.get("chosen"), value.get("rejected"), chosen_a, higher=False
            )
        comparisons.append(
            {
                "id": row["pair_id"],
                "prompt": prompt or None,
                "response_a": {"text": row[a], "side": a},
                "response_b": {"text": row[b], "side": b},
                "annotations": annotations,
                "metadata": {
                    "pair_id": row["pair_id"],
                    "dataset": row["dataset"],
                    "chosen_position": "a" if chosen_a else "b",
                },
            }
        )
    return {
        "metadata": {
            "version": FORMAT_VERSION,
            "description": description,
            "dataset_name": dataset_name,
            "default_annotator": HUMAN,
            "available_metadata_keys_per_comparison": list(METADATA_KEYS),
        },
        "annotators": annotators,
        "comparisons": comparisons,
    }


def write_annotated_pairs(document: Mapping[str, Any], path: Path) -> int:
    """Write the document as JSON; returns its size in bytes."""
    path.write_text(json.dumps(document, ensure_ascii=False, allow_nan=False), encoding="utf-8")
    return path.stat().st_size
