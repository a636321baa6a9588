"""Confusing entries (METHOD.md, "Confusing entries"): pairs whose human label carries little or
contradictory signal, and clusters of pairs with each reward model's resistance.

Kinds (`--kind`):

- ``identical``: chosen and rejected are the same text (after collapsing whitespace).
- ``near-identical``: not identical, but chosen ≈ rejected: cosine of ``emb_chosen``/``emb_rejected`` ≥
  `near_identical_threshold` (0.95) or normalised edit similarity ≥ `edit_threshold` (0.9; rapidfuzz Indel
  similarity of lower-cased alphanumeric text, 1 = same).
- ``duplicates``: the same context and responses more than once. *Exact*: an order-insensitive key
  (context, {chosen, rejected} as a set) groups the pairs; members whose chosen is the group's rejected have
  the *opposite* label. *Near*: two pairs whose contexts and responses are near-duplicates (below) and line
  up the same way round (label ``same``; ``ambiguous`` when both ways match equally, e.g. near-identical
  responses).
- ``contradictory``: two pairs whose contexts are near-duplicates and whose responses are near-duplicates
  crossed: A ≻ B in one and B' ≻ A' in the other (exact opposite duplicates included, match ``exact``).
- ``clusters``: k-means (or HDBSCAN) over content embeddings, labelled by class-based TF-IDF terms, with
  each RM's resistance and its excess over the dataset's rate (seal.analysis.clusters).

Near-duplicates are found without a quadratic loop: candidate pairs of pairs come from a threshold search
(seal.analysis.neighbors: blocked matrix products, or an inverted file above 20,000 pairs) on the content
embedding normalize(ê_context + ê_chosen + ê_rejected), which is the same for a pair and its flipped twin;
each candidate is then verified component by component: context cosine ≥ `duplicate_threshold` (0.9) and,
for the responses matched straight (chosen↔chosen, rejected↔rejected) or crossed (chosen↔rejected,
rejected↔chosen), each match with cosine ≥ `duplicate_threshold` or edit similarity ≥ `edit_threshold`. When
the contexts are the same conversation (cosine ≥ 0.97), a looser match also counts if it is unambiguous: both
responses ≥ 1 − 2 × (1 − `duplicate_threshold`) (0.8; max of cosine and edit similarity) one way round and 0.3
less the other way (short responses lose more cosine to a paraphrase than long ones).

The analysis only reads. What it finds per pair (`find_confusing`'s `ConfusingAnnotations`) is stored by the
findings stage (seal.annotate.findings, run by `seal confusing` unless --no-store): the `findings` table (one
row per finding: kind, pair_id, other_pair_id, cluster, score, detail JSON; the rows of the kinds recomputed
are replaced), the pairs column ``confusing`` (struct{identical, near_identical, response_cosine,
response_edit, duplicates: list<pair_id>, contradicts: list<pair_id>}) and the pairs column ``cluster``
(int32; usable as `seal resistance --by cluster`), each recorded in `runs` (stages ``confusing`` and
``cluster``); `stored_findings` reads the table back (contracts in seal.catalog.findings).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc

from seal.analysis import clusters as cl
from seal.analysis.cluster_ranking import rank_clusters
from seal.analysis.confusing_data import ConfusingData, load_confusing_data, snippet, squash
from seal.analysis.confusing_result import ConfusingResult
from seal.analysis.near_duplicates import CANDIDATE_MARGIN, edit_similarity, exact_groups, near_duplicate_edges
from seal.catalog.embeddings import TEXT_FIELDS, content_vectors
from seal.catalog.findings import (
    CLUSTER_COLUMN,
    CONFUSING_COLUMN,
    CONFUSING_TYPE,
    FINDING_KIND,
    FINDINGS,
    FINDINGS_SCHEMA,
)
from seal.errors import SealError, StoreError
from seal.store import Store

KINDS = ("identical", "near-identical", "duplicates", "contradictory", "clusters")
EMBEDDING_KINDS = ("near-identical", "duplicates", "contradictory", "clusters")  # use embeddings where present
NEAR_IDENTICAL_THRESHOLD = 0.95
DUPLICATE_THRESHOLD = 0.9
EDIT_THRESHOLD = 0.9
AMBIGUOUS_MARGIN = 0.02
MAX_NEIGHBORS = 32


def check_kinds(kinds: Sequence[str] | str | None) -> tuple[str, ...]:
    """The kinds asked for (names, a comma-separated string, `all` or None for all), in KINDS order."""
    if kinds is None:
        return KINDS
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    kinds = [k.replace("_", "-") for k in kinds]
    if "all" in kinds:
        return KINDS
    bad = sorted(set(kinds) - set(KINDS))
    if bad or not kinds:
        raise SealError(f"unknown kind(s): {', '.join(bad) or '(none)'}", hint=f"use {', '.join(KINDS)} or all")
    return tuple(k for k in KINDS if k in kinds)


@dataclass(frozen=True)
class ConfusingOptions:
    """How confusing entries are found: every option of `seal confusing` but the kinds and the listing limit.
    `threshold`, when given, sets the cosine threshold of the kinds asked for (near-identical responses and
    near-duplicate pairs)."""

    threshold: float | None = None
    near_identical_threshold: float = NEAR_IDENTICAL_THRESHOLD
    duplicate_threshold: float = DUPLICATE_THRESHOLD
    edit_threshold: float = EDIT_THRESHOLD
    n_clusters: int | None = None
    method: str = "kmeans"
    seed: int = 0
    max_neighbors: int = MAX_NEIGHBORS


@dataclass
class ConfusingAnnotations:
    """What one confusing analysis found per pair (row order of `pair_ids`), for the findings stage to store:
    None where a kind was not computed this time (the stage then keeps the stored value)."""

    pair_ids: list[str]
    kinds: tuple[str, ...]
    thresholds: dict[str, float]
    findings: list[dict[str, Any]]  # kind, pair_id, other_pair_id, cluster, score, detail
    identical: np.ndarray | None
    near_identical: np.ndarray | None
    response_cosine: np.ndarray | None
    response_edit: np.ndarray | None
    duplicates: list[tuple[int, int]] | None  # row pairs
    contradicts: list[tuple[int, int]] | None
    clusters: np.ndarray | None  # label per pair; -2: not clustered (no embeddings)
    cluster_params: dict[str, Any]


def _num(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 6)


def find_confusing(
    store: Store, kinds: Sequence[str] | str | None = None, *, limit: int | None = 50, **options: Any
) -> tuple[ConfusingResult, ConfusingAnnotations]:
    """Find the confusing entries of the store (see the module docstring): the result, and what was found
    per pair for the findings stage to store. Reads only. `options` are the fields of `ConfusingOptions`;
    `limit` bounds the findings listed in the result."""
    opts = ConfusingOptions(**options)
    threshold, near_identical_threshold, duplicate_threshold = (
        opts.threshold,
        opts.near_identical_threshold,
        opts.duplicate_threshold,
    )
    edit_threshold, n_clusters, method, seed, max_neighbors = (
        opts.edit_threshold,
        opts.n_clusters,
        opts.method,
        opts.seed,
        opts.max_neighbors,
    )
    t0 = time.perf_counter()
    store.require()
    kinds_t = check_kinds(kinds)
    if threshold is not None:
        if not 0 < threshold <= 1:
            raise SealError("--threshold must be in (0, 1]")
        if "near-identical" in kinds_t:
            near_identical_threshold = threshold
        if {"duplicates", "contradictory"} & set(kinds_t):
            duplicate_threshold = threshold
    if not 0 < edit_threshold <= 1:
        raise SealError("--edit-threshold must be in (0, 1]")
    timings: dict[str, float] = {}
    need_emb = bool(set(kinds_t) & set(EMBEDDING_KINDS))
    data = load_confusing_data(store, need_emb)
    timings["load"] = time.perf_counter() - t0
    n = len(data.ids)
    skipped: dict[str, str] = {}
    if need_emb and not data.mats:
        if kinds_t == ("clusters",):
            raise StoreError("clusters need embeddings", hint="run `seal embed` first")
        hint = "no embeddings (run `seal embed`)"
        if "clusters" in kinds_t:
            skipped["clusters"] = hint
            kinds_t = tuple(k for k in kinds_t if k != "clusters")
        if "near-identical" in kinds_t:
            skipped["near-identical by cosine"] = f"{hint}: edit similarity only"
        if {"duplicates", "contradictory"} & set(kinds_t):
            skipped["near duplicates and contradictions"] = f"{hint}: exact ones only"
    rows = np.flatnonzero(data.embedded)
    thresholds = {
        "near_identical_cosine": near_identical_threshold,
        "duplicate_cosine": duplicate_threshold,
        "edit_similarity": edit_threshold,
        "candidate_cosine": round(duplicate_threshold - CANDIDATE_MARGIN, 6),
    }
    result = ConfusingResult(
        kinds=list(kinds_t),
        thresholds=thresholds,
        pairs=n,
        pairs_embedded=int(data.embedded.sum()),
        counts={},
        skipped=skipped,
        limit=limit,
    )
    lim = None if not limit else int(limit)
    findings: list[dict[str, Any]] = []
    # per-pair values for the `confusing` column (None: not computed this time)
    identical = near = resp_cos = resp_edit = None
    dup_adj: list[tuple[int, int]] | None = None
    con_adj: list[tuple[int, int]] | None = None

    # identical / near-identical ------------------------------------------------------------------
    if "identical" in kinds_t or "near-identical" in kinds_t:
        t = time.perf_counter()
        identical = np.fromiter(
            (squash(a) == squash(b) for a, b in zip(data.chosen, data.rejected, strict=True)), bool, count=n
        )
        if "identical" in kinds_t:
            idx = np.flatnonzero(identical)
            result.counts["identical"] = len(idx)
            for i in idx.tolist():
                findings.append({"kind": "identical", "pair_id": data.ids[i], "score": 1.0, "detail": {}})
            result.identical = [
                {"pair_id": data.ids[i], "dataset": data.datasets[i], "snippet": snippet(data, i)}
                for i in idx[:lim].tolist()
            ]
        if "near-identical" in kinds_t:
            resp_cos = np.full(n, np.nan, dtype=np.float32)
            if len(rows):
                resp_cos[rows] = np.einsum("ij,ij->i", data.mats["chosen"][rows], data.mats["rejected"][rows])
            resp_edit = edit_similarity(data.chosen, data.rejected)
            near = ~identical & (
                (np.nan_to_num(resp_cos, nan=0) >= near_identical_threshold) | (resp_edit >= edit_threshold)
            )
            idx = np.flatnonzero(near)
            result.counts["near_identical"] = len(idx)
            strength = np.fmax(np.nan_to_num(resp_cos[idx], nan=0), resp_edit[idx])
            idx = idx[np.argsort(-strength, kind="stable")]
            for i in idx.tolist():
                detail = {"response_cosine": _num(resp_cos[i]), "response_edit": _num(resp_edit[i])}
                detail["by"] = [
                    name
                    for name, hit in (
                        ("cosine", bool(resp_cos[i] >= near_identical_threshold)),
                        ("edit", bool(resp_edit[i] >= edit_threshold)),
                    )
                    if hit
                ]
                findings.append(
                    {
                        "kind": "near_identical",
                        "pair_id": data.ids[i],
                        "score": float(np.fmax(np.nan_to_num(resp_cos[i], nan=0), resp_edit[i])),
                        "detail": detail,
                    }
                )
            result.near_identical = [
                {
                    "pair_id": data.ids[i],
                    "dataset": data.datasets[i],
                    "response_cosine": _num(resp_cos[i]),
                    "response_edit": _num(resp_edit[i]),
                    "snippet": snippet(data, i),
                }
                for i in idx[:lim].tolist()
            ]
        timings["identical"] = time.perf_counter() - t

    # duplicates / contradictions -----------------------------------------------------------------
    if "duplicates" in kinds_t or "contradictory" in kinds_t:
        t = time.perf_counter()
        groups = exact_groups(data.context_text, data.chosen, data.rejected)
        timings["exact_duplicates"] = time.perf_counter() - t
        group_of = {}
        for rep, member, _ in groups:
            group_of[member] = rep
            group_of.setdefault(rep, rep)
        dups: list[dict[str, Any]] = []
        cons: list[dict[str, Any]] = []
        for rep, member, same in groups:
            base = {
                "pair_id": data.ids[rep],
                "other_pair_id": data.ids[member],
                "match": "exact",
                "context_similarity": 1.0,
                "response_similarity": 1.0,
                "_i": rep,
                "_j": member,
            }
            dups.append({**base, "label": "same" if same else "opposite"})
            if not same:
                cons.append(dict(base))
        t = time.perf_counter()
        near_stats: dict[str, Any] = {}
        if data.mats and len(rows) > 1:
            edges, near_stats = near_duplicate_edges(
                data, rows, duplicate_threshold, edit_threshold, max_neighbors, seed
            )
            same_group = np.array(
                [
                    group_of.get(a, -1) == group_of.get(b, -2)
                    for a, b in zip(edges.i.tolist(), edges.j.tolist(), strict=False)
                ],
                dtype=bool,
            )
            for e in np.flatnonzero(~same_group).tolist():
                a, b = int(edges.i[e]), int(edges.j[e])
                s_ok, c_ok = bool(edges.straight_ok[e]), bool(edges.crossed_ok[e])
                straight, crossed = float(edges.straight[e]), float(edges.crossed[e])
                both = s_ok and c_ok
                contradiction = c_ok and (not s_ok or crossed > straight + AMBIGUOUS_MARGIN)
                entry = {
                    "pair_id": data.ids[a],
                    "other_pair_id": data.ids[b],
                    "match": "near",
                    "context_similarity": round(float(edges.context[e]), 6),
                    "response_similarity": round(crossed if contradiction else straight, 6),
                    "similarities": {
                        k: {"cosine": _num(edges.cos[k][e]), "edit": _num(edges.edit[k][e])}
                        for k in ("cc", "rr", "cr", "rc")
                    },
                    "_i": a,
                    "_j": b,
                }
                if contradiction:
                    cons.append(entry)
                else:
                    ambiguous = both and abs(straight - crossed) <= AMBIGUOUS_MARGIN
                    dups.append({**entry, "label": "ambiguous" if ambiguous else "same"})
        timings["near_duplicates"] = time.perf_counter() - t
        result.timings.update({f"near_{k}": v for k, v in near_stats.items() if isinstance(v, float)})
        key = lambda r: (-(min(r["context_similarity"], r["response_similarity"])), r["pair_id"])  # noqa: E731
        dups.sort(key=key)
        cons.sort(key=key)
        if "duplicates" in kinds_t:
            dup_adj = [(r["_i"], r["_j"]) for r in dups]
            result.counts["duplicates"] = len(dups)
            result.counts["duplicates_exact"] = sum(r["match"] == "exact" for r in dups)
            result.counts["duplicates_opposite_label"] = sum(r.get("label") == "opposite" for r in dups)
            for r in dups:
                findings.append(_pair_finding("duplicate", r))
            result.duplicates = [_public(r, data) for r in dups[:lim]]
        if "contradictory" in kinds_t:
            con_adj = [(r["_i"], r["_j"]) for r in cons]
            result.counts["contradictory"] = len(cons)
            result.counts["contradictory_exact"] = sum(r["match"] == "exact" for r in cons)
            for r in cons:
                findings.append(_pair_finding("contradictory", r))
            result.contradictory = [_public(r, data) for r in cons[:lim]]
        if near_stats:
            result.counts["candidates_checked"] = int(near_stats.get("candidates", 0))

    # clusters -------------------------------------------------------------------------------------
    labels = None
    cluster_params: dict[str, Any] = {}
    if "clusters" in kinds_t:
        t = time.perf_counter()
        labels = np.full(n, -2, dtype=np.int32)  # -2: not clustered (no embeddings)
        x = content_vectors(*(data.mats[f][rows] for f in TEXT_FIELDS))
        k = n_clusters or cl.default_k(len(rows))
        labels[rows] = cl.cluster_labels(x, method=method, k=k, seed=seed)
        cluster_params = {"method": method, "k": int(k) if method == "kmeans" else None, "seed": seed}
        info = rank_clusters(store, data, rows, labels, dup_adj, con_adj, near)
        info.update({"method": method, "k": len({int(v) for v in labels[rows]})})
        result.clusters = info
        result.counts["clusters"] = info["k"]
        for c in info["clusters"]:
            findings.append(
                {
                    "kind": "cluster",
                    "cluster": c["cluster"],
                    "score": c["excess"] if c["excess"] is not None else 0.0,
                    "detail": c,
                }
            )
        timings["clusters"] = time.perf_counter() - t

    result.seconds = round(time.perf_counter() - t0, 3)
    result.timings.update({k: round(v, 3) for k, v in timings.items()})
    found = ConfusingAnnotations(
        pair_ids=data.ids,
        kinds=kinds_t,
        thresholds=thresholds,
        findings=findings,
        identical=identical,
        near_identical=near,
        response_cosine=resp_cos,
        response_edit=resp_edit,
        duplicates=dup_adj,
        contradicts=con_adj,
        clusters=labels,
        cluster_params=cluster_params,
    )
    return result, found


def confusing(
    store: Store, kinds: Sequence[str] | str | None = None, *, limit: int | None = 50, **options: Any
) -> ConfusingResult:
    """The confusing entries of the store (see `find_confusing`; `options` are the fields of
    `ConfusingOptions`), without storing anything: `seal confusing` stores them through the findings stage
    (seal.annotate.findings)."""
    result, _found = find_confusing(store, kinds, limit=limit, **options)
    return result


def _pair_finding(kind: str, r: dict[str, Any]) -> dict[str, Any]:
    detail = {k: v for k, v in r.items() if not k.startswith("_") and k not in ("pair_id", "other_pair_id")}
    return {
        "kind": kind,
        "pair_id": r["pair_id"],
        "other_pair_id": r["other_pair_id"],
        "score": min(r["context_similarity"], r["response_similarity"]),
        "detail": detail,
    }


def _public(r: dict[str, Any], data: ConfusingData) -> dict[str, Any]:
    out = {k: v for k, v in r.items() if not k.startswith("_")}
    out["snippet"] = snippet(data, r["_i"])
    out["other_snippet"] = snippet(data, r["_j"])
    return out


def stored_findings(store: Store, kind: str | None = None, pair_id: str | None = None) -> list[dict[str, Any]]:
    """Findings stored by the last `confusing` runs, optionally of one kind or involving one pair."""
    flt = None
    if kind is not None:
        flt = pc.field("kind") == FINDING_KIND.get(kind, kind)
    if pair_id is not None:
        involves = (pc.field("pair_id") == pair_id) | (pc.field("other_pair_id") == pair_id)
        flt = involves if flt is None else flt & involves
    table = store.side_read(FINDINGS, where=flt)
    if table is None:
        return []
    rows = table.to_pylist()
    for r in rows:
        r["detail"] = json.loads(r["detail"])
    return rows


__all__ = [
    "CLUSTER_COLUMN",
    "CONFUSING_COLUMN",
    "CONFUSING_TYPE",
    "FINDINGS",
    "FINDINGS_SCHEMA",
    "FINDING_KIND",
    "KINDS",
    "ConfusingAnnotations",
    "ConfusingResult",
    "check_kinds",
    "confusing",
    "edit_similarity",
    "exact_groups",
    "find_confusing",
    "stored_findings",
]
