"""Imprint speed at hh-rlhf scale: text level, cluster-robust SEs, 20 features, 160,800 pairs.

The real hh-rlhf harmless rows are replicated to N pairs (each copy's responses get a distinct marker so
no two texts are equal), 20 synthetic features (12 bool, 6 number, 1 category, 1 list) and synthetic
scores with a pair effect are written through the normal column writers, then

- `seal.analysis.imprint.imprint(store, ...)` is timed end to end (reading the columns included), and
- statsmodels' formula API (`smf.ols(...).fit(cov_type="cluster", cov_kwds={"groups": pair})`) is timed on
  the same design in a pandas frame (fit only, the frame prepared beforehand),

and the largest differences in β and SE between the two are reported. With `--heuristics` it also times
the heuristics labeler (`seal label --labeler heuristics`) on all N pairs.

Prints one JSON object per line.

    python benchmarks/imprint.py [--pairs 160800] [--repeats 3] [--heuristics] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

import seal  # noqa: E402
from seal.analysis.imprint import imprint, load_pair_data, resolve_features  # noqa: E402
from seal.annotate.features.writer import labels_from_arrays, write_labels  # noqa: E402
from seal.catalog.features import stored_feature_sets  # noqa: E402
from seal.catalog.featuresets import Feature, FeatureSet  # noqa: E402
from seal.catalog.models import SCORE_TYPE  # noqa: E402
from seal.recipe import Recipe  # noqa: E402
from seal.store import RunRecord, new_run_id, now_utc  # noqa: E402


def build_store(folder: Path, source: Path, pairs: int) -> seal.Store:
    """Ingest the real rows once, then add replicated copies with new pair ids and marked responses."""
    base_store = seal.Store(folder / "base")
    seal.ingest(base_store, str(source), name="hh-harmless")
    base = base_store.read()
    copies, copy = [], 0
    while sum(t.num_rows for t in copies) < pairs:
        take = min(base.num_rows, pairs - sum(t.num_rows for t in copies))
        part = base.slice(0, take)
        marker = f" [{copy}]"
        ids = pc.binary_join_element_wise(part.column("pair_id"), pa.scalar(f"-{copy}"), "")
        part = part.set_column(part.schema.get_field_index("pair_id"), "pair_id", ids)
        for side in ("chosen", "rejected"):
            marked = pc.binary_join_element_wise(part.column(side), pa.scalar(marker), "")
            part = part.set_column(part.schema.get_field_index(side), side, marked)
        copies.append(part)
        copy += 1
    store = seal.Store(folder / "store")
    store.add_pairs(pa.concat_tables(copies))
    return store


def feature_set() -> FeatureSet:
    features = [Feature(f"flag_{i}", "bool", role="target" if i < 4 else "spoiler") for i in range(12)]
    features += [Feature(f"num_{i}", "number", role="spoiler") for i in range(6)]
    features += [Feature("tone", "category", values={"negative": -1, "neutral": 0, "positive": 1}, role="spoiler")]
    features += [Feature("topics", "list", values=["science", "sport", "art", "music"])]
    return FeatureSet("bench", tuple(features))


def add_labels_and_scores(store: seal.Store, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ids = store.pair_ids().to_pylist()
    n = len(ids)
    fs = feature_set()
    sides = {}
    for side in ("chosen", "rejected"):
        values = {f"flag_{i}": rng.random(n) < 0.3 + 0.03 * i for i in range(12)}
        values.update({f"num_{i}": rng.gamma(2.0, 10.0 * (i + 1), n) for i in range(6)})
        values["tone"] = np.array(["negative", "neutral", "positive"])[rng.integers(0, 3, n)].tolist()
        topics = rng.random((n, 4)) < 0.2
        values["topics"] = [
            [t for t, on in zip(("science", "sport", "art", "music"), row, strict=True) if on] for row in topics
        ]
        sides[side] = values
    labels = labels_from_arrays(fs, ids, sides["chosen"], sides["rejected"])
    write_labels(store, fs, labels, Recipe("label", "bench", {"labeler": "synthetic"}), {"labeler": "synthetic"})
    pair_effect = rng.normal(0, 1, n)
    out = []
    for side in ("chosen", "rejected"):
        v = sides[side]
        r = sum(0.2 * (i % 3 - 1) * v[f"flag_{i}"] for i in range(12)) + sum(0.01 * v[f"num_{i}"] for i in range(6))
        out.append(r + pair_effect + rng.normal(0, 0.5, n))
    struct = pa.StructArray.from_arrays([pa.array(out[0]), pa.array(out[1])], fields=list(SCORE_TYPE))
    version = store.materialize_column("score_post", pa.table({"pair_id": ids, "score_post": struct}))
    store.record_run(
        RunRecord(
            new_run_id(),
            "score",
            "post",
            "0" * 16,
            {"stage": "score", "name": "post"},
            {"role": "aligned", "origin": "imported"},
            "done",
            n,
            version,
            now_utc(),
            now_utc(),
        )
    )


def statsmodels_frame(store: seal.Store):
    """The same text-level design as a pandas frame (what a user of the formula API would build)."""
    import pandas as pd

    sets = stored_feature_sets(store)
    data = load_pair_data(store, ["post"], resolve_features(sets, "bench"), sets, "ordinal", 30)
    names = [r.name.replace("=", "_") for r in data.regressors]
    X = np.stack([data.chosen, data.rejected], axis=1).reshape(-1, len(names))
    frame = pd.DataFrame(X, columns=names)
    frame["y"] = data.scores["post"].reshape(-1)
    frame["pair"] = np.repeat(np.arange(len(data.pair_ids)), 2)
    return frame, names


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=160_800)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--heuristics", action="store_true", help="also time the heuristics labeler")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    source = Path(args.data) / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    if not source.exists():
        sys.exit(f"missing {source}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = build_store(Path(tmp), source, args.pairs)
        add_labels_and_scores(store)
        setup = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = imprint(store, "post", features="bench", level="text", cov="cluster")
            times.append(time.perf_counter() - t0)
        reg = result.regressions[0]
        import statsmodels.formula.api as smf

        frame, names = statsmodels_frame(store)
        formula = "y ~ " + " + ".join(names)
        sm_times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ref = smf.ols(formula, frame).fit(cov_type="cluster", cov_kwds={"groups": frame["pair"]})
            sm_times.append(time.perf_counter() - t0)
        ours = {c["name"].replace("=", "_"): c for c in reg.coefficients}
        d_beta = max(abs(ours[k]["beta"] - ref.params[k]) for k in ref.params.index)
        d_se = max(abs(ours[k]["se"] - ref.bse[k]) for k in ref.params.index)
        seconds = statistics.median(times)
        sm_seconds = statistics.median(sm_times)
        print(
            json.dumps(
                {
                    "benchmark": "imprint_text_cluster",
                    "pairs": args.pairs,
                    "rows": reg.n,
                    "features": len(result.features),
                    "coefficients": reg.k,
                    "seconds": round(seconds, 3),
                    "seconds_runs": [round(t, 3) for t in times],
                    "statsmodels_formula_fit_seconds": round(sm_seconds, 3),
                    "ratio_statsmodels_to_seal": round(sm_seconds / seconds, 2),
                    "max_abs_diff_beta": d_beta,
                    "max_abs_diff_se": d_se,
                    "setup_seconds": round(setup, 1),
                    "target": {"seconds_max": 10},
                }
            )
        )
        if args.heuristics:
            from seal.annotate.features.stage import label_heuristics

            t0 = time.perf_counter()
            labelled = label_heuristics(store)
            seconds = time.perf_counter() - t0
            print(
                json.dumps(
                    {
                        "benchmark": "label_heuristics",
                        "pairs": labelled.pairs_computed,
                        "texts": 2 * labelled.pairs_computed,
                        "seconds": round(seconds, 1),
                        "pairs_per_s": round(labelled.pairs_computed / seconds),
                    }
                )
            )


if __name__ == "__main__":
    main()
