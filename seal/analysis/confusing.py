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

Stored results (`write=True`): the `findings` table (one row per finding: kind, pair_id, other_pair_id,
cluster, score, detail JSON; the rows of the kinds recomputed are replaced), the pairs column ``confusing``
(struct{identical, near_identical, response_cosine, response_edit, duplicates: list<pair_id>,
contradicts: list<pair_id>}) and the pairs column ``cluster`` (int32; usable as `seal resistance --by
cluster`), each recorded in `runs` (stages ``confusing`` and ``cluster``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.analysis import clusters as cl
from seal.analysis.neighbors import EXACT_BELOW, similar_pairs
from seal.annotate.embeddings import (
    CONTEXT_TEXT,
    TEXT_FIELDS,
    _vectors,
    content_vectors,
    context_texts,
    emb_column,
    latest_runs,
)
from seal.errors import SealError, StoreError
from seal.recipe import Recipe
from seal.render import table
from seal.store import RunRecord, Store, new_run_id, now_utc

KINDS = ("identical", "near-identical", "duplicates", "contradictory", "clusters")
EMBEDDING_KINDS = ("near-identical", "duplicates", "contradictory", "clusters")  # use embeddings where present
NEAR_IDENTICAL_THRESHOLD = 0.95
DUPLICATE_THRESHOLD = 0.9
EDIT_THRESHOLD = 0.9
CANDIDATE_MARGIN = 0.1  # candidates: content cosine ≥ duplicate_threshold − this
CONTEXT_EDIT_SLACK = 0.1  # context edit similarity is computed where cosine ≥ threshold − this
RESPONSE_EDIT_SLACK = 0.4  # response edit similarity is computed where cosine ≥ threshold − this
AMBIGUOUS_MARGIN = 0.02
ANCHOR_CONTEXT = 0.97  # contexts this similar (cosine) are the same conversation ...
LOOSE_FACTOR = 2.0  # ... and then responses match from 1 - this × (1 - threshold) (0.8 for 0.9) ...
CLEAR_MARGIN = 0.3  # ... when the other way round is at least this much less similar
MAX_NEIGHBORS = 32
VERIFY_CHUNK = 65_536
FINDINGS = "findings"
CONFUSING_COLUMN = "confusing"
CLUSTER_COLUMN = "cluster"
STAGE_VERSION = 1
SNIPPET = 80

FINDINGS_SCHEMA = pa.schema(
    [
        pa.field("finding_id", pa.string()),
        pa.field("kind", pa.string()),  # identical | near_identical | duplicate | contradictory | cluster
        pa.field("pair_id", pa.string()),
        pa.field("other_pair_id", pa.string()),
        pa.field("cluster", pa.int32()),
        pa.field("score", pa.float64()),
        pa.field("detail", pa.string()),  # JSON
        pa.field("run_id", pa.string()),
        pa.field("pairs_version", pa.int64()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
CONFUSING_TYPE = pa.struct(
    [
        pa.field("identical", pa.bool_()),
        pa.field("near_identical", pa.bool_()),
        pa.field("response_cosine", pa.float32()),
        pa.field("response_edit", pa.float32()),
        pa.field("duplicates", pa.list_(pa.string())),
        pa.field("contradicts", pa.list_(pa.string())),
    ]
)
FINDING_KIND = {
    "identical": "identical",
    "near-identical": "near_identical",
    "duplicates": "duplicate",
    "contradictory": "contradictory",
    "clusters": "cluster",
}


def check_kinds(kinds: Sequence[str] | str | None) -> tuple[str, ...]:
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


# -- text helpers -----------------------------------------------------------------------------------
def _squash(text: str | None) -> str:
    return " ".join((text or "").split())


def edit_similarity(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Normalised Indel similarity (1 − distance / total length) of lower-cased alphanumeric text, pairwise."""
    if len(a) == 0:
        return np.zeros(0, dtype=np.float32)
    from rapidfuzz import process, utils
    from rapidfuzz.distance import Indel

    sims = process.cpdist(
        list(a), list(b), scorer=Indel.normalized_similarity, processor=utils.default_process, workers=-1
    )
    return np.asarray(sims, dtype=np.float32)


def _hash_strings(values: Sequence[str]) -> np.ndarray:
    import pandas as pd

    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False).astype(np.uint64)


def _snip(text: str | None, width: int = SNIPPET) -> str:
    text = _squash(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _last_user(context: list[dict[str, str]] | None) -> str:
    for m in reversed(context or []):
        if m.get("role") == "user":
            return m.get("content") or ""
    return ""


def _fid(*parts: Any) -> str:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=12).hexdigest()


# -- result ---------------------------------------------------------------------------------------
@dataclass
class ConfusingResult:
    kinds: list[str]
    thresholds: dict[str, float]
    pairs: int
    pairs_embedded: int
    counts: dict[str, int]
    identical: list[dict[str, Any]] = field(default_factory=list)
    near_identical: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    contradictory: list[dict[str, Any]] = field(default_factory=list)
    clusters: dict[str, Any] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    stored: dict[str, Any] | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render_text(self) -> str:
        lines = [
            f"{self.pairs:,} pairs ({self.pairs_embedded:,} with embeddings); kinds: {', '.join(self.kinds)}",
            "counts: " + ", ".join(f"{k} {v:,}" for k, v in self.counts.items()),
        ]
        for kind, why in self.skipped.items():
            lines.append(f"skipped {kind}: {why}")
        if self.identical:
            lines += ["", "identical responses"]
            lines.append(table([{"pair_id": r["pair_id"], "response": r["snippet"]["chosen"]} for r in self.identical]))
        if self.near_identical:
            lines += ["", "near-identical responses (chosen ≈ rejected)"]
            rows = [
                {
                    "pair_id": r["pair_id"],
                    "cosine": round(r["response_cosine"], 3),
                    "edit": round(r["response_edit"], 3),
                    "chosen": r["snippet"]["chosen"],
                    "rejected": r["snippet"]["rejected"],
                }
                for r in self.near_identical
            ]
            lines.append(table(rows, width=40))
        for title, items in (("contradictions", self.contradictory), ("duplicates", self.duplicates)):
            if not items:
                continue
            lines += ["", title]
            rows = []
            for r in items:
                row = {
                    "pair_id": r["pair_id"],
                    "other_pair_id": r["other_pair_id"],
                    "match": r["match"],
                    "context": round(r["context_similarity"], 3),
                    "responses": round(r["response_similarity"], 3),
                    "prompt": r["snippet"]["context"],
                }
                if "label" in r:
                    row["label"] = r["label"]
                rows.append(row)
            lines.append(table(rows, width=40))
        if self.clusters and self.clusters.get("clusters"):
            c = self.clusters
            lines += ["", f"clusters ({c['method']}, {c['k']} clusters; ranked by excess resistance of "]
            lines[-1] += f"{c['ranking_model']})" if c.get("ranking_model") else "— no scores: by size)"
            rows = []
            for info in c["clusters"][:20]:
                row: dict[str, Any] = {"rank": info["rank"], "cluster": info["cluster"], "size": info["size"]}
                for alias, s in info["resistance"].items():
                    if s["resistance"] is not None:
                        row[f"resist {alias}"] = (
                            f"{100 * s['resistance']:.1f}% [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}]"
                        )
                if info.get("excess") is not None:
                    row["excess"] = round(100 * info["excess"], 1)
                row["terms"] = ", ".join(info["terms"])
                rows.append(row)
            lines.append(table(rows, width=60))
        if self.stored:
            s = self.stored
            lines += [
                "",
                f"stored: {s['findings']:,} findings in `{FINDINGS}`; columns {', '.join(s['columns'])} "
                f"(pairs version {s['pairs_version']})",
            ]
        return "\n".join(lines)


# -- the analysis ---------------------------------------------------------------------------------
@dataclass
class _Data:
    ids: list[str]
    datasets: list[str]
    contexts: list[Any]
    context_text: list[str]
    chosen: list[str]
    rejected: list[str]
    mats: dict[str, np.ndarray]
    embedded: np.ndarray  # bool per pair: all three text embeddings present
    table: pa.Table  # pair_id + score/features columns


def _load(store: Store, need_embeddings: bool) -> _Data:
    ds = store.pairs().to_lance()
    names = ds.schema.names
    scores = [n for n in names if n.startswith("score_") and pa.types.is_struct(ds.schema.field(n).type)]
    feats = [n for n in names if n.startswith("features_") and pa.types.is_struct(ds.schema.field(n).type)]
    cols = ["pair_id", "dataset", "context", "chosen", "rejected", *scores, *feats]
    have_emb = all(emb_column(f) in names for f in TEXT_FIELDS)
    if need_embeddings and have_emb:
        cols += [emb_column(f) for f in TEXT_FIELDS]
    if CONTEXT_TEXT in names:
        cols.append(CONTEXT_TEXT)
    tbl = ds.to_table(columns=cols)
    n = tbl.num_rows
    if CONTEXT_TEXT in names:
        ctx_arr = tbl.column(CONTEXT_TEXT).combine_chunks()
        if ctx_arr.null_count:
            ctx_arr = pc.if_else(pc.is_valid(ctx_arr), ctx_arr, context_texts(tbl.column("context")))
    else:
        ctx_arr = context_texts(tbl.column("context"))
    mats: dict[str, np.ndarray] = {}
    embedded = np.zeros(n, dtype=bool)
    if need_embeddings and have_emb:
        embedded[:] = True
        for f in TEXT_FIELDS:
            mat, valid = _vectors(tbl.column(emb_column(f)))
            mats[f] = mat
            embedded &= valid
    return _Data(
        ids=tbl.column("pair_id").to_pylist(),
        datasets=tbl.column("dataset").to_pylist(),
        contexts=tbl.column("context"),  # arrow; converted lazily for snippets
        context_text=ctx_arr.to_pylist(),
        chosen=[t or "" for t in tbl.column("chosen").to_pylist()],
        rejected=[t or "" for t in tbl.column("rejected").to_pylist()],
        mats=mats,
        embedded=embedded,
        table=tbl.select(["pair_id", *scores, *feats]),
    )


def _snippet(data: _Data, i: int) -> dict[str, str]:
    ctx = data.contexts[i].as_py() if hasattr(data.contexts, "__getitem__") else None
    return {"context": _snip(_last_user(ctx)), "chosen": _snip(data.chosen[i]), "rejected": _snip(data.rejected[i])}


def exact_groups(context: Sequence[str], chosen: Sequence[str], rejected: Sequence[str]) -> list[tuple[int, int, bool]]:
    """(representative, member, same_orientation) for every pair whose context and {chosen, rejected}
    (as a set) equal an earlier pair's; the representative is the first pair with that content."""
    if not len(context):
        return []
    hc, ha, hb = _hash_strings(context), _hash_strings(chosen), _hash_strings(rejected)
    lo, hi = np.minimum(ha, hb), np.maximum(ha, hb)
    order = np.lexsort((np.arange(len(hc)), hi, lo, hc))
    keys = np.stack([hc[order], lo[order], hi[order]], axis=1)
    new_group = np.r_[True, np.any(keys[1:] != keys[:-1], axis=1)]
    group = np.cumsum(new_group) - 1
    first = order[np.flatnonzero(new_group)][group]
    out = []
    for pos in np.flatnonzero(~new_group).tolist():
        member, rep = int(order[pos]), int(first[pos])
        if context[member] != context[rep] or {chosen[member], rejected[member]} != {chosen[rep], rejected[rep]}:
            continue  # a hash collision
        out.append((rep, member, chosen[member] == chosen[rep]))
    return out


@dataclass
class _Edges:
    i: np.ndarray
    j: np.ndarray
    context: np.ndarray
    straight: np.ndarray
    crossed: np.ndarray
    sims: dict[str, np.ndarray]  # cc, rr, cr, rc: max(cosine, edit)
    cos: dict[str, np.ndarray]
    edit: dict[str, np.ndarray]
    straight_ok: np.ndarray
    crossed_ok: np.ndarray


def near_duplicate_edges(
    data: _Data, rows: np.ndarray, threshold: float, edit_threshold: float, max_neighbors: int, seed: int = 0
) -> tuple[_Edges, dict[str, Any]]:
    """Candidate pairs of pairs by content-embedding threshold search, verified component by component."""
    t0 = time.perf_counter()
    c, ch, rj = (data.mats[f][rows] for f in TEXT_FIELDS)
    content = content_vectors(c, ch, rj)
    ci, cj, _ = similar_pairs(content, threshold - CANDIDATE_MARGIN, max_neighbors=max_neighbors, seed=seed)
    stats: dict[str, Any] = {"candidates": len(ci), "search_seconds": round(time.perf_counter() - t0, 3)}
    stats["search"] = "exact" if len(rows) < EXACT_BELOW else "ivf"
    t1 = time.perf_counter()
    keep_i, keep_j, ctx_all = [], [], []
    for start in range(0, len(ci), VERIFY_CHUNK):
        a, b = ci[start : start + VERIFY_CHUNK], cj[start : start + VERIFY_CHUNK]
        ctx = np.einsum("ij,ij->i", c[a], c[b])
        ok = ctx >= threshold
        maybe = ~ok & (ctx >= threshold - CONTEXT_EDIT_SLACK)
        if maybe.any():
            ga, gb = rows[a[maybe]], rows[b[maybe]]
            e = edit_similarity([data.context_text[x] for x in ga], [data.context_text[x] for x in gb])
            ok[np.flatnonzero(maybe)] = e >= edit_threshold
        keep_i.append(a[ok])
        keep_j.append(b[ok])
        ctx_all.append(ctx[ok])
    i = np.concatenate(keep_i) if keep_i else np.zeros(0, np.int64)
    j = np.concatenate(keep_j) if keep_j else np.zeros(0, np.int64)
    ctx = np.concatenate(ctx_all) if ctx_all else np.zeros(0, np.float32)
    pairs = {"cc": (ch, ch, "chosen", "chosen"), "rr": (rj, rj, "rejected", "rejected")}
    pairs |= {"cr": (ch, rj, "chosen", "rejected"), "rc": (rj, ch, "rejected", "chosen")}
    cos, edit, sims, match = {}, {}, {}, {}
    texts = {"chosen": data.chosen, "rejected": data.rejected}
    for key, (left, right, lname, rname) in pairs.items():
        cval = np.einsum("ij,ij->i", left[i], right[j]) if len(i) else np.zeros(0, np.float32)
        eval_ = np.full(len(i), np.nan, dtype=np.float32)
        need = (cval < threshold) & (cval >= threshold - RESPONSE_EDIT_SLACK)
        if need.any():
            ga, gb = rows[i[need]], rows[j[need]]
            eval_[need] = edit_similarity([texts[lname][x] for x in ga], [texts[rname][x] for x in gb])
        cos[key], edit[key] = cval, eval_
        sims[key] = np.fmax(cval, np.nan_to_num(eval_, nan=-1.0))
        match[key] = (cval >= threshold) | (np.nan_to_num(eval_, nan=0.0) >= edit_threshold)
    straight = np.minimum(sims["cc"], sims["rr"])
    crossed = np.minimum(sims["cr"], sims["rc"])
    straight_ok = match["cc"] & match["rr"]
    crossed_ok = match["cr"] & match["rc"]
    # Anchored by a near-identical conversation, a looser response match counts when it is unambiguous: both
    # responses at least 1 - LOOSE_FACTOR × (1 - threshold) similar one way round, clearly less the other way.
    anchored = ctx >= ANCHOR_CONTEXT
    loose = 1.0 - LOOSE_FACTOR * (1.0 - threshold)
    straight_ok |= anchored & (straight >= loose) & (straight - np.maximum(sims["cr"], sims["rc"]) >= CLEAR_MARGIN)
    crossed_ok |= anchored & (crossed >= loose) & (crossed - np.maximum(sims["cc"], sims["rr"]) >= CLEAR_MARGIN)
    keep = straight_ok | crossed_ok
    stats["verify_seconds"] = round(time.perf_counter() - t1, 3)
    sel = np.flatnonzero(keep)
    edges = _Edges(
        i=rows[i[sel]],
        j=rows[j[sel]],
        context=ctx[sel],
        straight=straight[sel],
        crossed=crossed[sel],
        sims={k: v[sel] for k, v in sims.items()},
        cos={k: v[sel] for k, v in cos.items()},
        edit={k: v[sel] for k, v in edit.items()},
        straight_ok=straight_ok[sel],
        crossed_ok=crossed_ok[sel],
    )
    stats["verified"] = len(sel)
    return edges, stats


def _num(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 6)


def confusing(
    store: Store,
    kinds: Sequence[str] | str | None = None,
    *,
    threshold: float | None = None,
    near_identical_threshold: float = NEAR_IDENTICAL_THRESHOLD,
    duplicate_threshold: float = DUPLICATE_THRESHOLD,
    edit_threshold: float = EDIT_THRESHOLD,
    n_clusters: int | None = None,
    method: str = "kmeans",
    seed: int = 0,
    max_neighbors: int = MAX_NEIGHBORS,
    limit: int | None = 50,
    write: bool = True,
) -> ConfusingResult:
    """Find the confusing entries of the store (see the module docstring); store them when `write`.

    `threshold`, when given, sets the cosine threshold of the kinds asked for: near-identical responses
    and near-duplicate pairs (duplicates, contradictions)."""
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
    data = _load(store, need_emb)
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
            (_squash(a) == _squash(b) for a, b in zip(data.chosen, data.rejected, strict=True)), bool, count=n
        )
        if "identical" in kinds_t:
            idx = np.flatnonzero(identical)
            result.counts["identical"] = len(idx)
            for i in idx.tolist():
                findings.append({"kind": "identical", "pair_id": data.ids[i], "score": 1.0, "detail": {}})
            result.identical = [
                {"pair_id": data.ids[i], "dataset": data.datasets[i], "snippet": _snippet(data, i)}
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
                    "snippet": _snippet(data, i),
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
        info = _cluster_table(store, data, rows, labels, dup_adj, con_adj, near, lim)
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

    if write and kinds_t:
        t = time.perf_counter()
        result.stored = _store(
            store,
            data,
            kinds_t,
            findings,
            thresholds,
            cluster_params,
            labels,
            identical,
            near,
            resp_cos,
            resp_edit,
            dup_adj,
            con_adj,
        )
        timings["store"] = time.perf_counter() - t
    result.seconds = round(time.perf_counter() - t0, 3)
    result.timings.update({k: round(v, 3) for k, v in timings.items()})
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


def _public(r: dict[str, Any], data: _Data) -> dict[str, Any]:
    out = {k: v for k, v in r.items() if not k.startswith("_")}
    out["snippet"] = _snippet(data, r["_i"])
    out["other_snippet"] = _snippet(data, r["_j"])
    return out


def _cluster_table(
    store: Store,
    data: _Data,
    rows: np.ndarray,
    labels: np.ndarray,
    dup_adj: list[tuple[int, int]] | None,
    con_adj: list[tuple[int, int]] | None,
    near: np.ndarray | None,
    lim: int | None,
) -> dict[str, Any]:
    lab = labels[rows]
    texts = [f"{data.context_text[i]}\n{data.chosen[i]}\n{data.rejected[i]}" for i in rows.tolist()]
    terms = cl.ctfidf_terms(texts, lab)
    tbl = data.table.take(pa.array(rows))
    score_cols = [c for c in tbl.column_names if c.startswith("score_")]
    feat_cols = [c for c in tbl.column_names if c.startswith("features_")]
    identical = np.fromiter((data.chosen[i] == data.rejected[i] for i in rows.tolist()), dtype=bool, count=len(rows))
    from seal.annotate.models import list_models

    # No fallback: ranking clusters on a silently missing role would change the ranking without a word.
    roles = {alias: info["role"] for alias, info in list_models(store).items()}
    aliases = [c.removeprefix("score_") for c in score_cols]
    ranking = next((a for a in aliases if roles.get(a) == "aligned"), aliases[0] if aliases else None)
    arrays = {a: cl.score_arrays(tbl, f"score_{a}") for a in aliases}
    dataset = {a: cl.rm_stats(ch, rj, identical) for a, (ch, rj) in arrays.items()}
    feats = cl.feature_means(tbl, feat_cols, lab) if feat_cols else {}
    involved: dict[str, np.ndarray] = {}
    pos = np.full(len(labels), -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    for name, adj in (("duplicates", dup_adj), ("contradictory", con_adj)):
        if adj is None:
            continue
        mask = np.zeros(len(rows), dtype=bool)
        for a, b in adj:
            for v in (a, b):
                if pos[v] >= 0:
                    mask[pos[v]] = True
        involved[name] = mask
    if near is not None:
        involved["near_identical"] = near[rows]
    infos = []
    for c in sorted({int(v) for v in lab}):
        mask = lab == c
        info = cl.ClusterInfo(cluster=c, size=int(mask.sum()), terms=terms.get(c, []))
        for a, (ch, rj) in arrays.items():
            s = cl.rm_stats(ch[mask], rj[mask], identical[mask])
            base = dataset[a].resistance
            s.excess = None if s.resistance is None or base is None else s.resistance - base
            info.resistance[a] = s
        if ranking is not None:
            info.excess = info.resistance[ranking].excess
        info.features = feats.get(c, {})
        info.confusing = {name: int(m[mask].sum()) for name, m in involved.items()}
        infos.append(info)
    infos.sort(key=lambda i: (-(i.excess if i.excess is not None else -np.inf), -i.size, i.cluster))
    for r, info in enumerate(infos, 1):
        info.rank = r
    return {
        "ranking_model": ranking,
        "dataset": {a: asdict(s) for a, s in dataset.items()},
        "clusters": [i.to_json() for i in infos],
    }


def _adjacency(n: int, edges: list[tuple[int, int]] | None, ids: list[str]) -> pa.Array | None:
    if edges is None:
        return None
    if not edges:
        return pa.array([[] for _ in range(n)], pa.list_(pa.string()))
    e = np.asarray(edges, dtype=np.int64)
    src = np.r_[e[:, 0], e[:, 1]]
    dst = np.r_[e[:, 1], e[:, 0]]
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    offsets = np.r_[0, np.cumsum(np.bincount(src, minlength=n))].astype(np.int32)
    values = pa.array(ids).take(pa.array(dst))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _store(
    store: Store,
    data: _Data,
    kinds: tuple[str, ...],
    findings: list[dict[str, Any]],
    thresholds: dict[str, float],
    cluster_params: dict[str, Any],
    labels: np.ndarray | None,
    identical: np.ndarray | None,
    near: np.ndarray | None,
    resp_cos: np.ndarray | None,
    resp_edit: np.ndarray | None,
    dup_adj: list[tuple[int, int]] | None,
    con_adj: list[tuple[int, int]] | None,
) -> dict[str, Any]:
    started = now_utc()
    run_id = new_run_id()
    n = len(data.ids)
    ids = pa.array(data.ids, pa.string())
    emb_fps = {f: r["fingerprint"] for f, r in latest_runs(store).items() if f in TEXT_FIELDS}
    columns: list[str] = []
    version = None
    table_ = store.pairs()
    existing = None
    if CONFUSING_COLUMN in table_.schema.names:
        old = table_.to_lance().to_table(columns=["pair_id", CONFUSING_COLUMN])
        pos = {pid: i for i, pid in enumerate(old.column("pair_id").to_pylist())}
        take = pa.array([pos.get(pid) for pid in data.ids], pa.int64())
        existing = old.column(CONFUSING_COLUMN).combine_chunks().take(take)
    field_values: dict[str, pa.Array | None] = {
        "identical": pa.array(identical, pa.bool_()) if identical is not None and "identical" in kinds else None,
        "near_identical": pa.array(near, pa.bool_()) if near is not None else None,
        "response_cosine": pa.array(resp_cos, pa.float32(), from_pandas=True) if resp_cos is not None else None,
        "response_edit": pa.array(resp_edit, pa.float32()) if resp_edit is not None else None,
        "duplicates": _adjacency(n, dup_adj, data.ids),
        "contradicts": _adjacency(n, con_adj, data.ids),
    }
    if "identical" not in kinds and identical is not None and near is not None:
        field_values["identical"] = pa.array(identical, pa.bool_())
    if any(v is not None for v in field_values.values()):
        arrays = []
        for f in CONFUSING_TYPE:
            value = field_values[f.name]
            if value is None:
                value = existing.field(f.name) if existing is not None else pa.nulls(n, f.type)
                if existing is not None and existing.null_count:
                    value = pc.if_else(pc.is_valid(existing), value, pa.nulls(n, f.type))
            arrays.append(value.cast(f.type))
        struct = pa.StructArray.from_arrays(arrays, fields=list(CONFUSING_TYPE))
        version = store.materialize_column(CONFUSING_COLUMN, pa.table({"pair_id": ids, CONFUSING_COLUMN: struct}))
        columns.append(CONFUSING_COLUMN)
        recipe = Recipe(
            "confusing",
            CONFUSING_COLUMN,
            {"kinds": [k for k in kinds if k != "clusters"], "thresholds": thresholds, "embeddings": emb_fps},
            STAGE_VERSION,
        )
        store.record_run(
            RunRecord(
                run_id=run_id,
                stage="confusing",
                name=CONFUSING_COLUMN,
                fingerprint=recipe.fingerprint(),
                recipe=recipe.to_dict(),
                provenance={"findings": len(findings)},
                status="done",
                rows_written=n,
                pairs_version=version,
                started_at=started,
                finished_at=now_utc(),
            )
        )
    if labels is not None:
        values = pa.array(np.where(labels >= -1, labels, 0), pa.int32(), mask=labels < -1)
        version = store.materialize_column(CLUSTER_COLUMN, pa.table({"pair_id": ids, CLUSTER_COLUMN: values}))
        columns.append(CLUSTER_COLUMN)
        recipe = Recipe("cluster", CLUSTER_COLUMN, {**cluster_params, "embeddings": emb_fps}, STAGE_VERSION)
        store.record_run(
            RunRecord(
                run_id=run_id,
                stage="cluster",
                name=CLUSTER_COLUMN,
                fingerprint=recipe.fingerprint(),
                recipe=recipe.to_dict(),
                provenance={"clusters": len(np.unique(labels[labels >= -1]))},
                status="done",
                rows_written=int((labels >= -1).sum()),
                pairs_version=version,
                started_at=started,
                finished_at=now_utc(),
            )
        )
    if version is None:
        version = int(store.pairs().version)
    # findings: replace the rows of the kinds recomputed
    created = now_utc()
    rows = [
        {
            "finding_id": _fid(f["kind"], f.get("pair_id"), f.get("other_pair_id"), f.get("cluster")),
            "kind": f["kind"],
            "pair_id": f.get("pair_id"),
            "other_pair_id": f.get("other_pair_id"),
            "cluster": f.get("cluster"),
            "score": float(f.get("score") or 0.0),
            "detail": json.dumps(f.get("detail") or {}, sort_keys=True, default=_json_default),
            "run_id": run_id,
            "pairs_version": version,
            "created_at": created,
        }
        for f in findings
    ]
    tbl = findings_table(store)
    replaced = ", ".join(f"'{FINDING_KIND[k]}'" for k in kinds)
    tbl.delete(f"kind IN ({replaced})")
    if rows:
        tbl.add(pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA))
    return {
        "findings_table": FINDINGS,
        "findings": len(rows),
        "columns": columns,
        "pairs_version": version,
        "run_id": run_id,
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "to_json"):
        return value.to_json()
    return str(value)


def findings_table(store: Store) -> Any:
    """The `findings` table (created empty on first use)."""
    return store.side_table(FINDINGS, FINDINGS_SCHEMA)


def stored_findings(store: Store, kind: str | None = None, pair_id: str | None = None) -> list[dict[str, Any]]:
    """Findings stored by the last `confusing` runs, optionally of one kind or involving one pair."""
    if FINDINGS not in store.table_names():
        return []
    ds = store.db.open_table(FINDINGS).to_lance()
    flt = None
    if kind is not None:
        flt = pc.field("kind") == FINDING_KIND.get(kind, kind)
    if pair_id is not None:
        involves = (pc.field("pair_id") == pair_id) | (pc.field("other_pair_id") == pair_id)
        flt = involves if flt is None else flt & involves
    rows = ds.to_table(filter=flt).to_pylist()
    for r in rows:
        r["detail"] = json.loads(r["detail"])
    return rows
