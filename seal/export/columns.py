"""Which columns an export holds, and what each one is: its kind, type, a one-line description and the recipe
that made it, read from the store's run records through the catalog (never from a stage).

Every column of `pairs` gets a `ColumnDoc`; the card lists them all and explains each annotation's recipe
(reward-model id and resolved revision, dtype, truncation and input format; labeler, model, prompt hash and
feature set; perturbation method, seed and similarity floor; embedding model; the source and its revision).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from seal.catalog.embeddings import CONTEXT_TEXT, EMB_PREFIX, PAIR_DEFINITION
from seal.catalog.features import LABEL_STAGE
from seal.catalog.featuresets import FEATURES_PREFIX
from seal.catalog.findings import CLUSTER_COLUMN, CONFUSING_COLUMN
from seal.catalog.models import SCORE_PREFIX
from seal.catalog.perturbations import SEPARATOR, VARIANTS_PREFIX, VFEATURES_PREFIX, VSCORE_PREFIX
from seal.errors import SealError
from seal.store import Store

# Columns left out unless asked for by name: the full-text-search copy of the context (the `context` column
# holds the same turns) that `seal embed` adds for its BM25 index.
INTERNAL_COLUMNS = (CONTEXT_TEXT,)

INGEST_DESCRIPTIONS = {
    "pair_id": "Stable id of the pair (a hash of the dataset, the source row key and the content).",
    "dataset": "Name of the dataset the pair was ingested as (one config per dataset).",
    "source": "The file or Hub dataset the pair was read from.",
    "source_index": "Row number of the pair in its source.",
    "source_key": "Key of the source row (its id column, or the row number).",
    "format": "Input layout the source was parsed as (transcript, prompt-response, messages, pairwise, rated, ...).",
    "context": "The conversation before the two responses: a list of {role, content} turns.",
    "chosen": "The response the human label prefers.",
    "rejected": "The response the human label does not prefer.",
    "chosen_raw": "The chosen side as the source held it (e.g. the full hh-rlhf transcript).",
    "rejected_raw": "The rejected side as the source held it.",
    "content_hash": "Hash of the parsed context and both responses.",
    "flags": "Ingest checks: identical responses, context mismatch between the sides, duplicate in the source, "
    "empty response, removed from the source by a later update.",
    "ingest_run": "Run id of the ingest that added the pair (see the provenance section).",
    "annotator_agreement": "Share of the source's annotators who gave the pair's label, and how many labelled it.",
}


@dataclass
class ColumnDoc:
    """One exported column: what it holds and how it was made."""

    name: str
    kind: str  # ingest | score | features | embedding | variants | vscore | vfeatures | findings | other
    type: str
    description: str
    facts: dict[str, Any] = field(default_factory=dict)  # the recipe's key facts, for the card
    recipe: dict[str, Any] | None = None
    run_id: str | None = None
    fingerprint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "type": self.type,
            "description": self.description,
            "facts": self.facts,
            "run_id": self.run_id,
            "fingerprint": self.fingerprint,
        }


def select_columns(schema: pa.Schema, columns: Sequence[str] | None, embeddings: bool) -> list[str]:
    """The top-level columns to export, in store order: `columns` when given (each must exist; `pair_id` and
    `dataset` are always kept), else every column but the internal ones; without `embeddings`, no `emb_*`."""
    names = list(schema.names)
    if columns:
        wanted = [c.strip() for item in columns for c in item.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in names]
        if unknown:
            raise SealError(
                f"no column {', '.join(f'`{c}`' for c in unknown)} in the store",
                hint=f"columns: {', '.join(names)}",
            )
        keep = {"pair_id", "dataset", *wanted}
        selected = [n for n in names if n in keep]
    else:
        selected = [n for n in names if n not in INTERNAL_COLUMNS]
    if not embeddings:
        selected = [n for n in selected if not n.startswith(EMB_PREFIX)]
    return selected


_NAMES = {"bool": "bool", "double": "float64", "float": "float32", "halffloat": "float16", "large_string": "string"}


def type_text(t: pa.DataType) -> str:
    """A short readable Arrow type: `struct{chosen: float64, rejected: float64}`, `float32[384]`, `list<...>`."""
    if pa.types.is_struct(t):
        sides = [f for f in t if pa.types.is_struct(f.type) and [g.name for g in f.type] == ["chosen", "rejected"]]
        if len(t) > 3 and len(sides) == len(t):  # features_<set>: one {chosen, rejected} per feature
            kinds = sorted({type_text(f.type.field("chosen").type) for f in t})
            return f"struct{{{len(t)} features: struct{{chosen, rejected}} of {' or '.join(kinds)}}}"
        return "struct{" + ", ".join(f"{f.name}: {type_text(f.type)}" for f in t) + "}"
    if pa.types.is_fixed_size_list(t):
        return f"{type_text(t.value_type)}[{t.list_size}]"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{type_text(t.value_type)}>"
    return _NAMES.get(str(t), str(t))


def _latest(runs: Sequence[Mapping[str, Any]], stage: str, name: str) -> Mapping[str, Any] | None:
    found = None
    for run in runs:  # oldest first
        if run["stage"] == stage and run["name"] == name and run.get("status", "done") in ("done", "partial"):
            found = run
    return found


def describe_columns(store: Store, names: Sequence[str], runs: Sequence[Mapping[str, Any]]) -> list[ColumnDoc]:
    """A `ColumnDoc` for each of `names`, from the schema and the latest run that wrote the column."""
    schema = store.schema()
    return [_describe(name, schema.field(name).type, runs) for name in names]


def _describe(name: str, arrow: pa.DataType, runs: Sequence[Mapping[str, Any]]) -> ColumnDoc:
    doc = ColumnDoc(name, "other", type_text(arrow), "A column without a recorded recipe.")
    if name in INGEST_DESCRIPTIONS:
        doc.kind, doc.description = "ingest", INGEST_DESCRIPTIONS[name]
        return doc
    kind, run = _column_run(name, runs)
    doc.kind = kind
    if run is not None:
        doc.recipe, doc.run_id, doc.fingerprint = dict(run["recipe"]), run["run_id"], run["fingerprint"] or None
    params = dict((run or {}).get("recipe", {}).get("params", {}))
    provenance = dict((run or {}).get("provenance", {}))
    describe = _DESCRIBERS.get(kind)
    if describe is not None:
        doc.description, doc.facts = describe(name, params, provenance)
    return doc


def _column_run(name: str, runs: Sequence[Mapping[str, Any]]) -> tuple[str, Mapping[str, Any] | None]:
    """The column's kind and the latest run that wrote it."""
    if name.startswith(SCORE_PREFIX):
        return "score", _latest(runs, "score", name[len(SCORE_PREFIX) :])
    if name.startswith(FEATURES_PREFIX):
        return "features", _latest(runs, LABEL_STAGE, name[len(FEATURES_PREFIX) :])
    if name.startswith(EMB_PREFIX):
        return "embedding", _latest(runs, "embed", name[len(EMB_PREFIX) :])
    if name.startswith(VARIANTS_PREFIX):
        return "variants", _latest(runs, "perturb", name[len(VARIANTS_PREFIX) :])
    if name.startswith(VSCORE_PREFIX) and SEPARATOR in name:
        return "vscore", _latest(runs, "vscore", name[len(VSCORE_PREFIX) :])
    if name.startswith(VFEATURES_PREFIX) and SEPARATOR in name:
        return "vfeatures", _latest(runs, "vlabel", name[len(VFEATURES_PREFIX) :])
    if name == CONFUSING_COLUMN:
        return "findings", _latest(runs, "confusing", CONFUSING_COLUMN)
    if name == CLUSTER_COLUMN:
        return "findings", _latest(runs, "cluster", CLUSTER_COLUMN)
    if name == CONTEXT_TEXT:
        return "embedding", None
    return "other", None


def _compact(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if v not in (None, "", {}, [])}


def _score(name: str, params: dict[str, Any], provenance: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    alias = name[len(SCORE_PREFIX) :]
    if params.get("origin") == "imported" or provenance.get("origin") == "imported":
        facts = {
            "origin": "imported (scores computed elsewhere)",
            "role": provenance.get("role"),
            "file_sha256": params.get("file_sha256"),
            "column_map": params.get("column_map"),
        }
        return f"Reward of RM `{alias}` for each response: {{chosen, rejected}} (imported).", _compact(facts)
    facts = {
        "model": params.get("model"),
        "revision": params.get("revision"),
        "resolved_commit": params.get("commit"),
        "weights_sha256": params.get("files_sha256"),
        "role": provenance.get("role"),
        "architecture": provenance.get("architecture"),
        "input_format": params.get("input_format"),
        "renderer": params.get("renderer"),
        "dtype": params.get("dtype"),
        "max_length": params.get("max_length"),
        "truncation": params.get("truncation"),
        "head_index": params.get("head_index"),
        "seal_version": params.get("seal_version"),
    }
    return f"Reward of RM `{alias}` for each response: {{chosen, rejected}} (higher = preferred).", _compact(facts)


def _features(name: str, params: dict[str, Any], provenance: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    set_name = name[len(FEATURES_PREFIX) :]
    definition = provenance.get("feature_set") or params.get("feature_set") or {}
    features = [f"{f['name']} ({f['type']})" for f in definition.get("features", []) if "name" in f]
    labeler = params.get("labeler", "unknown")
    facts = {
        "labeler": labeler,
        "model": params.get("model"),
        "prompt_version": params.get("prompt_version"),
        "prompt_hash": params.get("prompt_hash"),
        "temperature": params.get("temperature"),
        "request_seed": params.get("request_seed"),
        "feature_set": set_name,
        "feature_set_version": params.get("feature_set_version") or definition.get("version"),
        "features": ", ".join(features),
        "file_sha256": params.get("file_sha256"),
        "vader": params.get("vader"),
        "syllables": params.get("syllables"),
    }
    text = f"Labels of feature set `{set_name}` for each response: {{feature: {{chosen, rejected}}}} ({labeler})."
    return text, _compact(facts)


def _embedding(name: str, params: dict[str, Any], provenance: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    fld = name[len(EMB_PREFIX) :]
    what = {
        "context": "the conversation before the responses",
        "chosen": "the chosen response",
        "rejected": "the rejected response",
        "pair": f"the pair, {PAIR_DEFINITION}",
    }.get(fld, fld)
    facts = {
        "model": params.get("model"),
        "revision": params.get("revision"),
        "weights_sha256": params.get("weights"),
        "dtype": params.get("dtype"),
        "max_seq_length": params.get("max_seq_length"),
        "truncation": params.get("truncation") or params.get("components"),
        "normalize": params.get("normalize"),
        "definition": params.get("definition"),
    }
    return f"Sentence embedding of {what}.", _compact(facts)


def _variants(name: str, params: dict[str, Any], provenance: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    similarity = params.get("similarity") or {}
    facts = {
        "method": params.get("method"),
        "rewriter": (params.get("rewriter") or {}).get("kind"),
        "sample": params.get("sample"),
        "seed": params.get("seed"),
        "sides": params.get("sides"),
        "target": params.get("target"),
        "min_similarity": params.get("min_similarity"),
        "similarity_model": similarity.get("model"),
        "variants": provenance.get("counts"),
    }
    text = (
        f"Meaning-preserving rewrites `{name[len(VARIANTS_PREFIX) :]}`: a list of variants per perturbed side "
        "(text, similarity to the original, status); null for pairs outside the sample."
    )
    return text, _compact(facts)


def _vscore(name: str, params: dict[str, Any], provenance: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    perturbation, _, alias = name[len(VSCORE_PREFIX) :].partition(SEPARATOR)
    facts = {"perturbation": perturbation, "model": alias, "score_fingerprint": params.get("score")}
    text = f"Reward of RM `{alias}` for the `{perturbation}` variant of each side (null: no usable variant)."
    return text, _compact(facts)


def _vfeatures(name: str, params: dict[str, Any], provenance: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    perturbation, _, set_name = name[len(VFEATURES_PREFIX) :].partition(SEPARATOR)
    facts = {"perturbation": perturbation, "feature_set": set_name, "labeler": params.get("labeler")}
    return f"Labels of feature set `{set_name}` for the `{perturbation}` variants.", _compact(facts)


def _findings(name: str, params: dict[str, Any], provenance: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if name == CLUSTER_COLUMN:
        facts = {"method": params.get("method"), "k": params.get("k"), "seed": params.get("seed")}
        return "Cluster of the pair's content embedding (seal confusing; -1 = noise under hdbscan).", _compact(facts)
    facts = {"kinds": ", ".join(params.get("kinds") or []), "thresholds": params.get("thresholds")}
    text = (
        "Confusing-entry flags (seal confusing): identical and near-identical responses, response cosine and "
        "edit similarity, ids of near-duplicate pairs and of contradicting pairs (same content, opposite label)."
    )
    return text, _compact(facts)


_DESCRIBERS = {
    "score": _score,
    "features": _features,
    "embedding": _embedding,
    "variants": _variants,
    "vscore": _vscore,
    "vfeatures": _vfeatures,
    "findings": _findings,
}


def config_name(dataset: str) -> str:
    """A Hub config name for a dataset name (letters, digits, `-`, `_`, `.`)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset).strip("-.")
    return name or "default"
