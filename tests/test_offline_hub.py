"""Without the Hugging Face Hub, seal fails in seconds with one line that suggests a local path, instead of
the 25-30 s that datasets/transformers spend retrying; `seal plan` prints a plan without the network; and
a reward model's recipe says why it pins no commit (`revision_note`). Real endpoints on 127.0.0.1: a
closed port (connection refused) and a server that accepts connections but never answers. The commands
run in subprocesses, because huggingface_hub reads HF_ENDPOINT when it is imported."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REPO
from llm_servers import free_port
from tiny_models import build_deberta_rm

from seal import hub
from seal.engines.scoring import RewardModel

EXAMPLE = REPO / "examples" / "tiny-hh.jsonl"
SLACK = 15.0  # interpreter and seal start-up on a busy 2-core machine; the Hub wait itself is ~0 or 4 s


@contextmanager
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """An endpoint that accepts TCP connections and never answers; yields (url, accepted connections)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        server.close()


def online_env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """The environment of a user with network settings: offline variables unset, the Hub at `endpoint`."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.pop("TRANSFORMERS_OFFLINE", None)
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_XET="1", **extra)
    return env


def seal_cli(env: dict[str, str], *args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )
    return done, time.perf_counter() - t0


def one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("seal: warning")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


# -- ingest from the Hub ---------------------------------------------------------------------------------
def test_ingest_from_an_unreachable_hub_fails_fast_with_a_local_path_hint(tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    done, seconds = seal_cli(
        online_env(tmp_path, endpoint),
        "--store",
        tmp_path / "s",
        "ingest",
        "someorg/somedata",
        "--split",
        "test",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    line = one_error_line(done)
    assert line.startswith("Error: cannot load `someorg/somedata`: the Hugging Face Hub is unreachable (")
    assert f"{endpoint}: connection refused" in line and "ingest a local copy instead" in line
    assert seconds < SLACK, seconds  # datasets alone retried for 25 s here
    assert not (tmp_path / "s").exists()


def test_a_hub_that_never_answers_costs_one_short_probe(tmp_path):
    with silent_server() as (endpoint, accepted):
        env = online_env(tmp_path, endpoint, SEAL_HUB_TIMEOUT="2")
        done, seconds = seal_cli(
            env, "--store", tmp_path / "s", "ingest", "someorg/somedata", "--split", "test", cwd=tmp_path
        )
        assert done.returncode == 1, done.stderr
        assert "unreachable (" + endpoint + ": no answer within 2 s)" in one_error_line(done)
        assert len(accepted) == 1  # the probe, and nothing after it: no retries
    assert 2.0 <= seconds < 2.0 + SLACK, seconds


def test_hf_hub_offline_is_honoured_without_any_request(tmp_path):
    with silent_server() as (endpoint, accepted):
        env = online_env(tmp_path, endpoint, HF_HUB_OFFLINE="1")
        done, seconds = seal_cli(
            env, "--store", tmp_path / "s", "ingest", "someorg/somedata", "--split", "test", cwd=tmp_path
        )
        assert done.returncode == 1 and "unreachable (HF_HUB_OFFLINE=1 is set)" in one_error_line(done)
        assert accepted == []
    assert seconds < SLACK


# -- reward models and seal plan ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_rm(tmp_path_factory) -> Path:
    return build_deberta_rm(tmp_path_factory.mktemp("rm") / "deberta", seed=1)


def test_score_with_a_hub_model_fails_fast_and_suggests_a_local_folder(tmp_path, run_cli, store_path):
    assert run_cli("ingest", EXAMPLE, "--silent").exit_code == 0
    endpoint = f"http://127.0.0.1:{free_port()}"
    done, seconds = seal_cli(
        online_env(tmp_path, endpoint), "--store", store_path, "score", "--model", "someorg/some-rm", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    line = one_error_line(done)
    assert line.startswith("Error: cannot load model `someorg/some-rm`: the Hugging Face Hub is unreachable (")
    assert "pass a local model folder (--model ./path/to/model)" in line
    assert seconds < SLACK, seconds  # transformers alone retried for 28 s here


def test_embed_with_an_uncached_hub_model_fails_fast(tmp_path, run_cli, store_path):
    assert run_cli("ingest", EXAMPLE, "--silent").exit_code == 0
    endpoint = f"http://127.0.0.1:{free_port()}"
    done, seconds = seal_cli(
        online_env(tmp_path, endpoint), "--store", store_path, "embed", "--model", "someorg/some-encoder", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    line = one_error_line(done)
    assert line.startswith(
        f"Error: cannot load the embedding model `someorg/some-encoder`: the Hugging Face Hub is unreachable "
        f"({endpoint}: connection refused)"
    )
    assert "local sentence-transformers folder" in line and seconds < SLACK, seconds


def test_plan_prints_a_plan_without_the_network(tmp_path, local_rm):
    shutil.copy(EXAMPLE, tmp_path / "tiny-hh.jsonl")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\n"
        "dataset: {source: Anthropic/hh-rlhf, data_dir: harmless-base, split: test}\n"
        f"reward_models:\n  - {{model: {local_rm}, alias: local}}\n"
    )
    endpoint = f"http://127.0.0.1:{free_port()}"
    done, seconds = seal_cli(
        online_env(tmp_path, endpoint), "--store", tmp_path / "s", "plan", spec, "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    stages = {s["stage"]: s for s in json.loads(done.stdout)["stages"]}
    assert stages["ingest"]["status"] == "pending" and stages["score"]["status"] == "pending"
    assert seconds < SLACK, seconds

    # A Hub model that is not cached: the plan is still printed, naming the download `seal run` needs, in
    # seconds (issue 13: `seal plan` on the paper's spec works offline).
    spec.write_text(
        "version: 1\ndataset: {source: tiny-hh.jsonl}\nreward_models:\n  - {model: someorg/some-rm, alias: hub}\n"
    )
    done, seconds = seal_cli(
        online_env(tmp_path, endpoint), "--store", tmp_path / "s", "plan", spec, "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    score = next(s for s in json.loads(done.stdout)["stages"] if s["stage"] == "score")
    assert score["status"] == "pending" and "`someorg/some-rm` is not in the local cache" in score["reason"]
    assert score["estimate"]["downloads"] == [{"model": "someorg/some-rm"}]
    assert seconds < SLACK, seconds


# -- what a score recipe pins --------------------------------------------------------------------------------
def test_a_local_folder_records_why_it_has_no_commit(local_rm, run_cli, store):
    assert run_cli("ingest", EXAMPLE, "--silent").exit_code == 0
    result = run_cli("score", "--model", local_rm, "--alias", "local", "--json", "--silent")
    assert result.exit_code == 0, result.output
    (run,) = store.runs("score")
    assert run["recipe"]["params"]["commit"] is None
    assert run["provenance"]["revision_note"] == "a local folder has no commit: files_sha256 pins its files"
    assert "warning" not in result.stderr


def test_a_cached_hub_model_while_offline_pins_its_commit_and_says_where_it_came_from(
    local_rm, tmp_path, monkeypatch, capsys
):
    import huggingface_hub.constants as hub_constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tinyorg--tiny-rm"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for path in local_rm.iterdir():
        shutil.copy(path, repo / "snapshots" / commit / path.name)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    rm = RewardModel("tinyorg/tiny-rm")  # HF_HUB_OFFLINE=1 (conftest): the cache only
    assert rm.commit == commit and rm.recipe_params()["commit"] == commit
    assert rm.provenance()["revision_note"].startswith(
        "resolved from the local cache while the Hub is unreachable (HF_HUB_OFFLINE=1 is set)"
    )
    assert "warning" not in capsys.readouterr().err


def test_a_failed_hub_lookup_is_recorded_and_warned_about(tmp_path):
    """The commit lookup on its own (RewardModel reads the cache its load just filled, so a lookup only
    fails like this when the cache misses): the Hub at a closed port, nothing cached."""
    code = (
        "from seal import hub\n"
        "from seal.engines.scoring import resolve_commit, warn_unpinned\n"
        "commit, note = resolve_commit('someorg/some-rm', 'main', hub.unreachable())\n"
        "print(commit)\nprint(note)\n"
        "warn_unpinned('someorg/some-rm', 'main', note)\n"
    )
    endpoint = f"http://127.0.0.1:{free_port()}"
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=online_env(tmp_path, endpoint), timeout=120
    )
    assert done.returncode == 0, done.stderr
    commit, note = done.stdout.splitlines()
    assert commit == "None" and note.startswith("the Hub lookup of someorg/some-rm@main failed: ")
    warning = done.stderr.strip().splitlines()[-1]
    assert warning.startswith("seal: warning: the commit of `someorg/some-rm` is unknown (the Hub lookup of")
    assert "pins only the revision `main`" in warning
    assert time.perf_counter() - t0 < SLACK


def test_the_probe_says_why_in_a_few_words():
    assert hub.probe(f"http://127.0.0.1:{free_port()}", 1.0) == "connection refused"
    with silent_server() as (endpoint, _):
        assert hub.probe(endpoint, 0.5) == "no answer within 0.5 s"
