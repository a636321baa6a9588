"""Ingest throughput: the hh-rlhf harmless rows replicated to 160,800 pairs (the size of hh-rlhf train).

Prints one JSON object: rows/s, seconds and peak RSS of `seal.ingest` on a .jsonl.gz of N rows with
distinct keys, next to the baseline of merely reading and json-decoding the same file in the same run.

    python benchmarks/ingest.py [--rows 160800] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import seal  # noqa: E402


def build_file(source: Path, rows: int, out: Path) -> int:
    """Write `rows` replicated harmless rows; each copy gets a distinct `copy` marker so keys differ."""
    with gzip.open(source, "rt") as handle:
        base = [json.loads(line) for line in handle]
    written = 0
    with gzip.open(out, "wt", compresslevel=1) as handle:
        while written < rows:
            for record in base:
                if written == rows:
                    break
                handle.write(json.dumps({**record, "copy": written // len(base)}) + "\n")
                written += 1
    return written


def read_baseline(path: Path) -> float:
    """Seconds to gunzip and json-decode every line: the floor for any JSON-lines ingest."""
    t0 = time.perf_counter()
    with gzip.open(path, "rb") as handle:
        for line in handle:
            json.loads(line)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=160_800)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    source = Path(args.data) / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    if not source.exists():
        sys.exit(f"missing {source}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hh-replicated.jsonl.gz"
        rows = build_file(source, args.rows, path)
        baseline = read_baseline(path)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        result = seal.ingest(seal.Store(Path(tmp) / "store"), str(path), name="hh-replicated")
        seconds = time.perf_counter() - t0
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "benchmark": "ingest",
                "rows": rows,
                "ingested": result.ingested,
                "quarantined": result.quarantined,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds),
                "baseline_read_json_seconds": round(baseline, 2),
                "ratio_to_read_json": round(seconds / baseline, 2),
                "peak_rss_mib": round(peak_kib / 1024),
                "peak_rss_mib_before_ingest": round(rss_before / 1024),
                "target": {"seconds_max": 30, "peak_rss_mib_max": 2048},
            }
        )
    )


if __name__ == "__main__":
    main()
