"""Clusters of pairs ranked by each reward model's excess resistance (seal.analysis.confusing, kind
``clusters``): per cluster its size, class-based TF-IDF terms, every RM's resistance with a Wilson interval
and its excess over the dataset's rate, feature means and how many confusing pairs it holds."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa

from seal.analysis import clusters as cl
from seal.analysis.confusing_data import ConfusingData
from seal.catalog import models as catalog_models
from seal.store import Store


def rank_clusters(
    store: Store,
    data: ConfusingData,
    rows: np.ndarray,
    labels: np.ndarray,
    dup_adj: list[tuple[int, int]] | None,
    con_adj: list[tuple[int, int]] | None,
    near: np.ndarray | None,
) -> dict[str, Any]:
    """The clusters of the embedded pairs `rows` (labels per pair), ranked by the excess resistance of the RM
    with role aligned (else the first scored RM; by size without scores), with the counts of duplicate,
    contradictory and near-identical pairs (`dup_adj`, `con_adj`, `near`) in each."""
    lab = labels[rows]
    texts = [f"{data.context_text[i]}\n{data.chosen[i]}\n{data.rejected[i]}" for i in rows.tolist()]
    terms = cl.ctfidf_terms(texts, lab)
    tbl = data.table.take(pa.array(rows))
    score_cols = [c for c in tbl.column_names if c.startswith("score_")]
    feat_cols = [c for c in tbl.column_names if c.startswith("features_")]
    identical = np.fromiter((data.chosen[i] == data.rejected[i] for i in rows.tolist()), dtype=bool, count=len(rows))
    # No fallback: ranking clusters on a silently missing role would change the ranking without a word.
    roles = {alias: info["role"] for alias, info in catalog_models.list_models(store).items()}
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
