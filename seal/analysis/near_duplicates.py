"""Duplicates without a quadratic loop: exact groups by hashed (context, {chosen, rejected}) keys, and near
duplicates from a threshold search on the content embeddings (seal.analysis.neighbors), each candidate
verified component by component (see seal.analysis.confusing for the rules)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seal.analysis.confusing_data import ConfusingData
from seal.analysis.neighbors import EXACT_BELOW, similar_pairs
from seal.catalog.embeddings import TEXT_FIELDS, content_vectors

CANDIDATE_MARGIN = 0.1  # candidates: content cosine ≥ duplicate_threshold − this
CONTEXT_EDIT_SLACK = 0.1  # context edit similarity is computed where cosine ≥ threshold − this
RESPONSE_EDIT_SLACK = 0.4  # response edit similarity is computed where cosine ≥ threshold − this
ANCHOR_CONTEXT = 0.97  # contexts this similar (cosine) are the same conversation ...
LOOSE_FACTOR = 2.0  # ... and then responses match from 1 - this × (1 - threshold) (0.8 for 0.9) ...
CLEAR_MARGIN = 0.3  # ... when the other way round is at least this much less similar
VERIFY_CHUNK = 65_536


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


def hash_strings(values: Sequence[str]) -> np.ndarray:
    """64-bit hashes of strings (pandas), for grouping equal texts without comparing them."""
    import pandas as pd

    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False).astype(np.uint64)


def exact_groups(context: Sequence[str], chosen: Sequence[str], rejected: Sequence[str]) -> list[tuple[int, int, bool]]:
    """(representative, member, same_orientation) for every pair whose context and {chosen, rejected}
    (as a set) equal an earlier pair's; the representative is the first pair with that content."""
    if not len(context):
        return []
    hc, ha, hb = hash_strings(context), hash_strings(chosen), hash_strings(rejected)
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
class NearEdges:
    """Verified near-duplicate pairs of pairs (rows i, j) with their similarities."""

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
    data: ConfusingData, rows: np.ndarray, threshold: float, edit_threshold: float, max_neighbors: int, seed: int = 0
) -> tuple[NearEdges, dict[str, Any]]:
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
    edges = NearEdges(
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
