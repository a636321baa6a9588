"""Crash safety, measured: `seal run` killed with SIGKILL at random points of scoring, LLM labeling (against a
local OpenAI-compatible server), embedding and perturbing, then rerun to completion, must leave the same store
as one uninterrupted run: the same rows, the same values (≤ 1e-6) in every annotation column, no duplicate
pair ids or cached labels, and no LLM request for work that was already stored when the run was killed.

Design (to fit ~a minute on two cores): each trial's process is forked from a server that imported seal, torch
and transformers once (tests/crash_zygote.py; a forked child dies from SIGKILL like any process); the
checkpoint intervals are lowered so that 24 pairs make several commits per stage. Trials run in 4 chains of
5 kills on fresh stores: a kill, then the rerun, which resumes and is itself killed in the same or a later
stage, ..., and a last run to completion, compared with the uninterrupted run. Delays are seeded; each kill
waits for its target stage to start (the run's stderr says `[k/N] stage name: ...`) and then a random part
of that stage's duration in the uninterrupted run. Where each kill landed is read back from that stderr.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
import yaml
from spec_llm import SpecLLM, write_pairs
from tiny_models import build_deberta_rm

from seal.annotate.features.prompts import conversation, feature_hash, text_hash
from seal.catalog.featuresets import load_feature_set
from seal.recipe import canonical_json
from seal.store import Store

HERE = Path(__file__).resolve().parent
STAGES = ("score", "label", "embed", "perturb")  # where kills are aimed, in run order
PAIRS = 24
INTERVALS = {"commit_rows": 6, "commit_texts": 16, "flush_every": 6, "chunk": 4}
KILLS, KILLS_PER_CHAIN, MAX_CHAINS, SEED = 20, 5, 6, 20240807
LINE = re.compile(r"\[(\d+)/(\d+)\] (\w+) (\S+): ([^\r\n]*)")
TOLERANCE = 1e-6
IGNORED_COLUMNS = {"ingest_run"}  # the run id of the ingest that added the row
IGNORED_FIELDS = {"attempts"}  # requests a variant took: 0 when a resumed run found it in the LLM cache


class Zygote:
    """The fork server (tests/crash_zygote.py): start a command line, get its pid, wait for its exit code."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.log = open(root / "zygote.log", "wb")  # noqa: SIM115 - closed in close()
        command = [sys.executable, str(HERE / "crash_zygote.py"), json.dumps(INTERVALS)]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=root
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.cpu = 0.0  # CPU seconds of the runs
        threading.Thread(target=self._pump, daemon=True).start()

    def wait_ready(self) -> None:
        assert self.read(300).get("ready"), "the fork server did not start"

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put({"ended": True})

    def read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the fork server said nothing for {timeout} s (see {self.log.name})") from None
        if line.get("ended"):
            self.log.flush()
            raise AssertionError(f"the fork server ended: {Path(self.log.name).read_text()[-3000:]}")
        return line

    def start(self, argv: list[str], cwd: Path, out: Path, err: Path) -> int:
        assert self.proc.stdin is not None
        command = {"argv": argv, "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return int(self.read(60)["pid"])

    def wait(self, timeout: float = 120) -> int:
        line = self.read(timeout)
        self.cpu += float(line.get("cpu") or 0)
        return int(line["code"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self.log.close()


@dataclass
class World:
    root: Path
    spec: Path
    llm: SpecLLM
    zygote: Zygote
    runs: int = 0

    def launch(self, store: Path) -> tuple[int, Path]:
        self.runs += 1
        out, err = self.root / f"run{self.runs}.out", self.root / f"run{self.runs}.err"
        pid = self.zygote.start(["--store", str(store), "run", str(self.spec), "--verbose"], self.root, out, err)
        return pid, err


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("crash")
    env = {k: v for k, v in os.environ.items() if k != "SEAL_STORE"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(root / "hf-home"), TQDM_DISABLE="1")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # tiny batches: one thread wastes no CPU spinning
    zygote = Zygote(root, env)  # its imports overlap with building the models
    try:
        pre, post = build_deberta_rm(root / "pre", seed=1), build_deberta_rm(root / "post", seed=2)
        write_pairs(root / "pairs.jsonl", PAIRS)
        with SpecLLM(latency=0.02) as llm:
            endpoint = {"base_url": llm.url, "concurrency": 2, "max_retries": 0}
            spec = {
                "dataset": {"source": "pairs.jsonl", "name": "crash"},
                "reward_models": [
                    {"model": str(pre), "alias": "pre", "role": "control"},
                    {"model": str(post), "alias": "post", "role": "aligned"},
                ],
                "features": [{"labeler": "llm", "feature_set": "seal-taxonomy", "model": "fake-labeler", **endpoint}],
                "embeddings": {"fields": ["chosen", "rejected"]},
                "perturbations": [
                    {"method": "llm", "name": "para", "params": {"model": "fake-rewriter", **endpoint}, "sample": 12}
                ],
            }
            (root / "crash.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
            zygote.wait_ready()
            yield World(root, root / "crash.yaml", llm, zygote)
    finally:
        zygote.close()


# -- reading what a run did ---------------------------------------------------------------------------------
def progress(err: Path) -> list[tuple[str, str, str]]:
    """(stage, name, text) of every `[k/N] stage name: text` line of a run's stderr."""
    text = err.read_text(errors="replace") if err.exists() else ""
    return [(m.group(3), m.group(4), m.group(5)) for m in LINE.finditer(text)]


def landed(err: Path) -> str:
    """The stage a killed run was in: the last stage that started and did not finish (or `after <stage>`)."""
    lines = progress(err)
    if not lines:
        return "startup"
    stage, _, text = lines[-1]
    return f"after {stage}" if text.startswith("finished in") else stage


def stage_seconds(err: Path) -> dict[str, float]:
    """Seconds per stage kind in a finished run (two reward models: their sum)."""
    out: dict[str, float] = {}
    for stage, _, text in progress(err):
        if text.startswith("finished in"):
            out[stage] = out.get(stage, 0.0) + float(text.split()[2])
    return out


def running_stage(err: Path) -> str | None:
    """The stage a run is in now (started, not finished), from its stderr."""
    lines = progress(err)
    if not lines or lines[-1][2].startswith("finished in"):
        return None
    return lines[-1][0]


def wait_for_stage(err: Path, stage: str, pid: int, timeout: float = 120) -> str | None:
    """Wait until the run is in `stage` or a later stage of STAGES (an earlier one may be left to resume);
    that stage, or None when the run ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = running_stage(err)
        if running in STAGES and STAGES.index(running) >= STAGES.index(stage):
            return running
        if not _alive(pid):
            return None
        time.sleep(0.005)
    raise AssertionError(f"stage {stage} did not start within {timeout} s: {err.read_text()[-2000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by the fork server) counts as ended
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def cache_state(store: Store) -> tuple[set[tuple[str, str]], set[str], int, int]:
    """(label keys, rewritten text hashes, rows, distinct keys) of the LLM cache."""
    if not store.side_exists("llm_cache"):
        return set(), set(), 0, 0
    rows = store.side_read("llm_cache", ["key", "text_hash", "feature", "feature_hash"])
    labels, rewrites = set(), set()
    for t, f, fh in zip(*(rows.column(c).to_pylist() for c in ("text_hash", "feature", "feature_hash")), strict=True):
        (rewrites.add(t) if f == "rewrite" else labels.add((t, fh)))
    return labels, rewrites, rows.num_rows, len(set(rows.column("key").to_pylist()))


def rewrite_hash(text: str) -> str:
    """The LLM rewriter's cache key of a response (seal.annotate.perturb.llm_rewriter._task, target response)."""
    return hashlib.sha256(canonical_json({"target": "response", "text": text}).encode()).hexdigest()[:32]


def differences(a: Any, b: Any, where: str) -> list[str]:
    """Where two stored values differ (floats: by more than TOLERANCE)."""
    if isinstance(a, float) and isinstance(b, float):
        same = (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOLERANCE
        return [] if same else [f"{where}: {a} != {b}"]
    if isinstance(a, dict) and isinstance(b, dict):
        keys = (set(a) | set(b)) - IGNORED_FIELDS
        return [d for k in sorted(keys) for d in differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def rows_by_id(store: Store) -> dict[str, dict[str, Any]]:
    rows = store.read().to_pylist()
    return {r["pair_id"]: r for r in rows}


# -- the test -----------------------------------------------------------------------------------------------
@dataclass
class Check:
    """What the LLM cache held when trial `trial` was killed, and which requests the next run sent."""

    trial: int
    labels: set[tuple[str, str]]
    rewritten: set[str]
    asked: tuple[int, int | None]  # slice of SpecLLM.asked
    rewrites: tuple[int, int | None]  # slice of SpecLLM.rewrites


@dataclass
class Trial:
    chain: int
    target: str
    delay: float
    landed: str
    code: int


def test_kill_9_anywhere_then_rerun_gives_the_uninterrupted_store(world: World):
    t_start = time.perf_counter()
    llm = world.llm
    # One uninterrupted run: the reference store, and how long each stage takes.
    base_store = world.root / "base"
    pid, err = world.launch(base_store)
    assert world.zygote.wait() == 0, err.read_text()[-3000:]
    seconds = stage_seconds(err)
    assert set(STAGES) <= set(seconds), seconds
    base = Store(base_store)
    reference = rows_by_id(base)
    assert len(reference) == PAIRS

    # What a request is about: the final response -> its conversation's text hash; feature name -> hash.
    fs = load_feature_set("seal-taxonomy")
    features = {f.name: feature_hash(f) for f in fs.features}
    hashes: dict[str, str] = {}
    for row in reference.values():
        for side in ("chosen", "rejected"):
            hashes[row[side]] = text_hash(conversation(row["context"], row[side]))
    labels_asked = len(llm.asked)
    base_rewrites = len(llm.rewrites)
    assert labels_asked > 0 and base_rewrites > 0

    rng = random.Random(SEED)
    trials: list[Trial] = []
    checks: list[Check] = []  # the LLM cache at each kill, and the requests of the run after it
    repeated: list[str] = []

    def close_check() -> None:
        if checks and checks[-1].asked[1] is None:
            checks[-1].asked = (checks[-1].asked[0], len(llm.asked))
            checks[-1].rewrites = (checks[-1].rewrites[0], len(llm.rewrites))

    chain = 0
    while sum(t.code == -signal.SIGKILL for t in trials) < KILLS and chain < MAX_CHAINS:
        store_path = world.root / f"chain{chain}"
        targets = sorted([*STAGES, *rng.choices(STAGES, k=KILLS_PER_CHAIN - len(STAGES))], key=STAGES.index)
        complete = False
        for target in targets:
            pid, err = world.launch(store_path)
            running = wait_for_stage(err, target, pid)
            if running is None:  # the run ended before reaching the target: nothing was left to do
                code = world.zygote.wait()
                close_check()
                assert code == 0, err.read_text()[-3000:]
                complete = True
                break
            delay = rng.uniform(0.05, 0.8) * seconds[running]
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
            code = world.zygote.wait()
            close_check()
            trials.append(Trial(chain, running, round(delay, 3), landed(err) if code else "finished", code))
            if code == 0:  # finished before the kill
                complete = True
                break
            store = Store(store_path)
            if store.exists():  # the killed run left a readable store without duplicate rows
                ids = store.pair_ids().to_pylist()
                assert len(ids) == len(set(ids)), f"duplicate pair ids after trial {len(trials)}"
            labels, rewrites, rows, keys = cache_state(store) if store.exists() else (set(), set(), 0, 0)
            assert rows == keys, f"duplicate LLM cache rows after trial {len(trials)}"
            checks.append(Check(len(trials), labels, rewrites, (len(llm.asked), None), (len(llm.rewrites), None)))
        if not complete:
            pid, err = world.launch(store_path)
            assert world.zygote.wait() == 0, err.read_text()[-3000:]
            close_check()

        # The chain's store equals the uninterrupted one.
        store = Store(store_path)
        got = rows_by_id(store)
        assert sorted(got) == sorted(reference), f"chain {chain}: other pair ids"
        assert set(next(iter(got.values()))) == set(next(iter(reference.values()))), f"chain {chain}: other columns"
        diffs = [
            d
            for pid_, row in reference.items()
            for column in row
            if column not in IGNORED_COLUMNS
            for d in differences(got[pid_][column], row[column], f"{pid_}.{column}")
        ]
        assert not diffs, f"chain {chain}: {len(diffs)} differences, e.g. {diffs[:5]}"
        assert store.count(pc.field("pair_id").is_valid()) == PAIRS
        leftovers = sorted(t for t in store.table_names() if t.startswith("work"))
        assert not leftovers, f"chain {chain}: checkpoint tables left: {leftovers}"
        _, _, rows, keys = cache_state(store)
        assert rows == keys and rows == cache_state(base)[2], f"chain {chain}: LLM cache has {rows} rows, {keys} keys"
        chain += 1

    # No LLM request for work stored when the run before was killed.
    for check in checks:
        for response, names in llm.asked[slice(*check.asked)]:
            assert response in hashes, f"a request about an unknown text: {response[:60]!r}"
            again = [n for n in names if (hashes[response], features[n]) in check.labels]
            if again:
                repeated.append(f"after kill {check.trial}: {response[:40]!r} asked again for {again}")
        for text in llm.rewrites[slice(*check.rewrites)]:
            if rewrite_hash(text) in check.rewritten:
                repeated.append(f"after kill {check.trial}: rewrite of {text[:40]!r} asked again")
    assert not repeated, "\n".join(repeated[:10])
    assert any(c.labels for c in checks) and any(c.rewritten for c in checks), (
        "no kill found anything in the LLM cache: the repeated-request check would be empty"
    )

    kills = [t for t in trials if t.code == -signal.SIGKILL]
    hit = {t.landed for t in kills}
    summary = ", ".join(f"{t.target}->{t.landed} ({t.delay} s)" for t in trials)
    took = time.perf_counter() - t_start
    print(f"\n{len(kills)} kills of {len(trials)} trials in {chain} chains, {took:.1f} s: {summary}")
    print(f"{world.runs} runs used {world.zygote.cpu:.1f} CPU seconds")
    print("stage seconds (uninterrupted run):", {k: round(v, 2) for k, v in seconds.items()})
    assert len(kills) >= KILLS
    assert set(STAGES) <= hit, f"kills landed in {sorted(hit)}; not in {sorted(set(STAGES) - hit)}"
