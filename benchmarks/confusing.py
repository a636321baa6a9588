"""Confusing-entry detection: validation on real data, contradiction search at 160,800 pairs, and
`seal similar` latency at 160,800 pairs. One JSON line per figure.

1. `validation`: N real hh-rlhf harmless rows (default 400) plus planted paraphrase-like near-duplicates and
   contradictions (tests/test_confusing.py `plant`), embedded with all-MiniLM-L6-v2; recall and precision of
   `confusing(kinds=duplicates, contradictory)` against the planted truth.
2. `contradictions_160k`: those rows' embeddings replicated to 160,800 pairs with Gaussian noise (per
   component, σ = 0.042 per dimension: a replica has cosine ≈ 0.6 to its source, so replicas are related but
   not duplicates) and given the texts of another real row (and a copy marker), plus `--plant` near-duplicate
   and `--plant` contradiction twins of random rows (their vectors copied with σ = 0.002 noise, chosen and
   rejected swapped for contradictions). Time of the whole `confusing(["duplicates", "contradictory"])` call
   on the store (reading the columns, exact-duplicate hashing, the candidate search, verification, storing
   findings and columns), recall of the planted twins; baseline: exact blocked all-pairs matrix products
   timed on 20,000 rows and scaled by (160,800 / 20,000)² (what a brute-force search would cost here).
   Target ≤ 120 s.
3. `similar_160k`: `seal.similarity.similar` p50/p95 over 50 random pairs, exact (no index) then IVF-PQ (the
   index `refresh_indexes` builds at this size; its build time reported), and recall@10 of IVF-PQ against
   exact. Target p50 ≤ 20 ms.

    python benchmarks/confusing.py [--real 400] [--plant 500] [--rows 160800] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from test_confusing import load_hh, plant, score_findings  # noqa: E402

import seal  # noqa: E402
from seal import schema  # noqa: E402
from seal.analysis import confusing as C  # noqa: E402
from seal.analysis.neighbors import similar_pairs  # noqa: E402
from seal.annotate import embeddings as E  # noqa: E402
from seal.catalog import embeddings as EC  # noqa: E402
from seal.similarity import similar  # noqa: E402


def emit(**fields) -> None:
    print(json.dumps({"benchmark": "confusing", **fields}), flush=True)


def validation(tmp: Path, source: Path, n_real: int, n_plant: int) -> tuple[seal.Store, dict]:
    rows, truth = plant(load_hh(source), n_real=n_real, n_dup=n_plant, n_con=n_plant, seed=1)
    path = tmp / "planted.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = seal.Store(tmp / "real")
    seal.ingest(store, str(path))
    t0 = time.perf_counter()
    E.embed(store, fields="context,chosen,rejected,pair", index=False)
    embed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = C.confusing(store, ["duplicates", "contradictory"], limit=0)
    seconds = time.perf_counter() - t0
    ids = store.read(["pair_id", "source_index"]).to_pylist()
    recall, precision, wrong, missed = score_findings(result, {r["pair_id"]: r["source_index"] for r in ids}, truth)
    emit(
        figure="validation",
        pairs=len(rows),
        planted_duplicates=n_plant,
        planted_contradictions=n_plant,
        recall=round(recall, 4),
        precision=round(precision, 4),
        missed=len(missed),
        wrong=len(wrong),
        embed_seconds=round(embed_s, 1),
        confusing_seconds=round(seconds, 2),
        target={"recall_min": 0.95, "precision_min": 0.9},
    )
    return store, truth


def build_large(tmp: Path, real: seal.Store, real_truth: dict, rows: int, n_plant: int, seed: int = 0):
    """A store of `rows` pairs from the real store's rows and embeddings (see the module docstring)."""
    rng = np.random.default_rng(seed)
    cols = ["source_index", "context", "chosen", "rejected", "emb_context", "emb_chosen", "emb_rejected"]
    base = real.read(cols)
    m = base.num_rows
    mats = {f: EC.vector_matrix(base.column(EC.emb_column(f)))[0] for f in EC.TEXT_FIELDS}
    n_rep = rows - 2 * n_plant
    src = np.arange(n_rep) % m
    sigma = 0.042
    vec = {}
    for f in EC.TEXT_FIELDS:
        noisy = mats[f][src] + sigma * rng.standard_normal((n_rep, mats[f].shape[1]), dtype=np.float32)
        noisy[:m] = mats[f]  # the first copy is the real row
        vec[f] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    twins_of = rng.choice(n_rep, size=2 * n_plant, replace=False)
    for f in EC.TEXT_FIELDS:
        other = {"chosen": "rejected", "rejected": "chosen"}.get(f, f)
        dup = vec[f][twins_of[:n_plant]]
        con = vec[other][twins_of[n_plant:]]  # contradictions: chosen and rejected swapped
        extra = np.concatenate([dup, con]) + 0.002 * rng.standard_normal((2 * n_plant, dup.shape[1]), dtype=np.float32)
        vec[f] = np.concatenate([vec[f], extra / np.linalg.norm(extra, axis=1, keepdims=True)]).astype(np.float32)
    # texts: a replica gets the texts of another real row (a fresh permutation per copy; the first copy keeps
    # its own), so that replicas are not near-duplicate texts of each other; a twin gets its row's texts
    copy = np.arange(n_rep) // m
    perms = np.stack([np.arange(m)] + [rng.permutation(m) for _ in range(int(copy.max()))])
    rep_text = perms[copy, src]
    text_src = np.concatenate([rep_text, rep_text[twins_of]])
    marker = np.concatenate([np.arange(n_rep) // m, np.full(2 * n_plant, -1)])
    chosen = base.column("chosen").to_pylist()
    rejected = base.column("rejected").to_pylist()
    contexts = base.column("context").to_pylist()
    out_chosen, out_rejected, out_context = [], [], []
    for k, (s, mk) in enumerate(zip(text_src.tolist(), marker.tolist(), strict=True)):
        swap = k >= n_rep + n_plant
        tag = f" (copy {mk})" if mk > 0 else (f" (twin {k})" if mk < 0 else "")
        ctx = [dict(t) for t in contexts[s]]
        if ctx:
            ctx[-1]["content"] = ctx[-1]["content"] + tag
        out_context.append(ctx)
        a, b = (rejected[s], chosen[s]) if swap else (chosen[s], rejected[s])
        out_chosen.append(a + tag)
        out_rejected.append(b + tag)
    n = len(out_chosen)
    ids = [f"p{i:08d}" for i in range(n)]
    table = pa.table(
        {
            "pair_id": ids,
            "dataset": ["bench"] * n,
            "source_index": np.arange(n),
            "context": pa.array(out_context, schema.PAIRS.field("context").type),
            "chosen": out_chosen,
            "rejected": out_rejected,
        }
    )
    store = seal.Store(tmp / "large")
    store.add_pairs(table)
    id_arr = pa.array(ids)
    for f in EC.TEXT_FIELDS:
        store.materialize_column(
            EC.emb_column(f), pa.table({"pair_id": id_arr, EC.emb_column(f): EC.vectors_array(vec[f])})
        )
    pair = EC.pair_vectors(vec["context"], vec["chosen"], vec["rejected"])
    store.materialize_column("emb_pair", pa.table({"pair_id": id_arr, "emb_pair": EC.vectors_array(pair)}))
    # the real rows (first copies) keep the validation's planted pairs: part of the truth too
    position = {s: i for i, s in enumerate(base.column("source_index").to_pylist())}
    planted = {tuple(sorted((position[a], position[b]))): kind for (a, b), kind in real_truth.items()}
    for k, s in enumerate(twins_of.tolist()):
        planted[tuple(sorted((s, n_rep + k)))] = "duplicate" if k < n_plant else "contradictory"
    return store, vec, planted


def contradictions(store: seal.Store, vec: dict, planted: dict, rows: int) -> None:
    t0 = time.perf_counter()
    result = C.confusing(store, ["duplicates", "contradictory"], limit=0)
    seconds = time.perf_counter() - t0
    index_of = {f"p{i:08d}": i for i in range(rows)}
    recall, precision, _wrong, _missed = score_findings(result, index_of, planted)
    # baseline: exact all-pairs by blocked matrix products on 20,000 rows, scaled quadratically
    content = EC.content_vectors(vec["context"], vec["chosen"], vec["rejected"])
    sub = content[:20_000]
    t0 = time.perf_counter()
    similar_pairs(sub, 0.8, exact_below=10**9)
    exact_20k = time.perf_counter() - t0
    baseline = exact_20k * (rows / 20_000) ** 2
    emit(
        figure="contradictions_160k",
        pairs=rows,
        seconds=round(seconds, 1),
        timings=result.timings,
        candidates=result.counts.get("candidates_checked"),
        contradictions=result.counts.get("contradictory"),
        duplicates=result.counts.get("duplicates"),
        planted_recall=round(recall, 4),
        planted_precision=round(precision, 4),
        baseline_exact_20k_seconds=round(exact_20k, 1),
        baseline_exact_extrapolated_seconds=round(baseline, 1),
        speedup_vs_exact=round(baseline / seconds, 1),
        target={"seconds_max": 120},
    )


def similar_latency(store: seal.Store, rows: int, queries: int = 50) -> None:
    rng = np.random.default_rng(3)
    picks = [f"p{i:08d}" for i in rng.choice(rows, size=queries, replace=False)]

    def run() -> tuple[list[float], list[list[str]]]:
        times, hits = [], []
        for pid in picks:
            t0 = time.perf_counter()
            res = similar(store, pid, k=10)
            times.append(time.perf_counter() - t0)
            hits.append([h.pair_id for h in res.hits])
        return times, hits

    similar(store, picks[0], k=10)  # warm caches
    exact_t, exact_hits = run()
    t0 = time.perf_counter()
    report = E.refresh_indexes(store, threshold=E.INDEX_THRESHOLD)
    build = time.perf_counter() - t0
    similar(store, picks[0], k=10)
    ivf_t, ivf_hits = run()
    recall = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(exact_hits, ivf_hits, strict=True)])
    emit(
        figure="similar_160k",
        pairs=rows,
        exact_p50_ms=round(1000 * float(np.median(exact_t)), 2),
        ivf_pq_p50_ms=round(1000 * float(np.median(ivf_t)), 2),
        ivf_pq_p95_ms=round(1000 * float(np.percentile(ivf_t, 95)), 2),
        speedup_vs_exact=round(float(np.median(exact_t) / np.median(ivf_t)), 1),
        recall_at_10_vs_exact=round(float(recall), 4),
        index=report["vector"].get("emb_pair"),
        index_build_seconds_all_columns=round(build, 1),
        target={"p50_ms_max": 20},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real", type=int, default=400, help="real rows embedded (validation and replication)")
    parser.add_argument("--plant", type=int, default=500, help="planted twins of each kind at 160,800 rows")
    parser.add_argument("--validate-plant", type=int, default=40, help="planted twins of each kind in validation")
    parser.add_argument("--rows", type=int, default=160_800)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--skip-similar", action="store_true", help="skip the similar latency figure")
    parser.add_argument("--keep", help="build the stores in this folder and keep them (default: a temporary one)")
    args = parser.parse_args()
    source = Path(args.data) / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    if not source.exists():
        sys.exit(f"missing {source}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(args.keep or tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        real, truth = validation(tmp, source, args.real, args.validate_plant)
        store, vec, planted = build_large(tmp, real, truth, args.rows, args.plant)
        contradictions(store, vec, planted, args.rows)
        if not args.skip_similar:
            similar_latency(store, args.rows)


if __name__ == "__main__":
    main()
