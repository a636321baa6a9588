"""CLI start-up time: how long `seal` takes to answer cheap commands, next to `python -c pass`.

Prints one JSON object. Every command runs in a fresh process (the console script `seal` next to this
Python, else `python cli.py`), `--repeats` times, alternating with the `python -c pass` baseline so that
a drifting machine affects both alike; medians are reported in seconds and as a ratio to the baseline,
with the CPU time (user + system) of the same runs, which a busy machine disturbs less than wall time.
`stats` and `query` read a store holding the 2,312 hh-rlhf harmless test pairs, built first.

    python benchmarks/cli_startup.py [--repeats 7] [--data ../shared/data] [--seal "python OTHER/cli.py"]

`--seal` times another checkout (e.g. an export of the last commit) with the same harness.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

BASELINE = "python -c pass"
# name -> (arguments after `seal`, target in seconds); `{store}` is replaced by the store path.
COMMANDS: dict[str, tuple[list[str], float]] = {
    "seal --version": (["--version"], 0.3),
    "seal --help": (["--help"], 0.3),
    "seal stats": (["--store", "{store}", "stats"], 1.0),
    "seal query --limit 10": (["--store", "{store}", "query", "--limit", "10"], 1.0),
}


def seal_executable(command: str | None = None) -> list[str]:
    """`command` split into words; by default the console script installed next to this Python, else
    `python cli.py` (the same entry point)."""
    if command:
        return shlex.split(command)
    script = Path(sys.executable).parent / "seal"
    return [str(script)] if script.is_file() else [sys.executable, str(REPO / "cli.py")]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SEAL_STORE", "SEAL_DEBUG"}}
    return {**env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `argv` in a fresh process; fails loudly unless it exits 0."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if done.returncode != 0:
        sys.exit(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()}")
    return seconds, cpu


def build_store(seal: list[str], source: Path, store: Path, env: dict[str, str]) -> None:
    argv = [*seal, "--store", str(store), "ingest", str(source), "--silent"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"ingest failed: {done.stderr.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7, help="runs of each command; medians are reported")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--seal", help="command that runs seal (default: the console script of this Python)")
    args = parser.parse_args()
    source = Path(args.data) / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    if not source.exists():
        sys.exit(f"missing {source}")
    env = clean_env()
    seal = seal_executable(args.seal)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        build_store(seal, source, store, env)
        runs = {
            name: [*seal, *(a.replace("{store}", str(store)) for a in argv)] for name, (argv, _) in COMMANDS.items()
        }
        baseline = [sys.executable, "-c", "pass"]
        wall: dict[str, list[float]] = {name: [] for name in [BASELINE, *runs]}
        cpu: dict[str, list[float]] = {name: [] for name in wall}
        for argv in runs.values():  # one warm-up run each, so that a cold page cache is not measured
            time_once(argv, env)
        for _ in range(args.repeats):
            for name, argv in [(BASELINE, baseline), *runs.items()]:
                seconds, cpu_seconds = time_once(argv, env)
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
    base = statistics.median(wall[BASELINE])
    commands = {}
    for name, (_, target) in COMMANDS.items():
        median = statistics.median(wall[name])
        commands[name] = {
            "median_s": round(median, 3),
            "min_s": round(min(wall[name]), 3),
            "cpu_median_s": round(statistics.median(cpu[name]), 3),
            "ratio_to_python": round(median / base, 1),
            "target_s_max": target,
            "meets_target": median <= target,
        }
    report = {
        "benchmark": "cli_startup",
        "pairs": 2312,
        "repeats": args.repeats,
        "seal": " ".join(seal),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "python_pass": {"median_s": round(base, 3), "cpu_median_s": round(statistics.median(cpu[BASELINE]), 3)},
        "commands": commands,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
