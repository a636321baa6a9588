"""`seal publish` against a local Hub (tests/hub_server.py) with the real huggingface_hub and datasets clients.

The end-to-end path runs the `seal` CLI and `datasets.load_dataset(REPO_ID)` in subprocesses with HF_ENDPOINT
set before huggingface_hub is imported; the other tests call `seal.publish` in this process, where
huggingface_hub was imported under tests/conftest.py's HF_HUB_OFFLINE=1 (its module constants are switched back
for the test: offline mode off, Xet off so uploads take the LFS path the local Hub speaks).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hub_server import LocalHub
from test_export import assert_same_rows, build_annotated_store

WRITE, READ = "hf_seal_test_write", "hf_seal_test_read"
USER_CARD = """---
license: mit
pretty_name: Harmless audit
annotations_creators:
- expert-generated
tags:
- mine
configs:
- config_name: raw
  data_files: raw/*.csv
---
# Harmless audit

Written by me: *keep this paragraph*.

## Notes

Also mine.
"""
USER_FILES = {"README.md": USER_CARD.encode(), "notes.txt": b"mine\n", "raw/x.csv": b"a,b\n1,2\n"}


@pytest.fixture(scope="session")
def publish_store(tmp_path_factory) -> Path:
    """A copy of the shared annotated store (tests here add annotations to it)."""
    source = build_annotated_store(tmp_path_factory.getbasetemp() / "annotated")
    copy = tmp_path_factory.getbasetemp() / "publish-store"
    shutil.copytree(source, copy)
    return copy


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with LocalHub(tmp_path_factory.mktemp("hub")) as server:
        yield server


def client_env(hub: LocalHub, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a client process pointed at the local Hub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SEAL_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(home), HF_TOKEN=WRITE, **extra)
    return env


@pytest.fixture
def online(hub, monkeypatch):
    """This process talks to the local Hub: env as a user sets it, huggingface_hub's import-time constants fixed."""
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", WRITE)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    return hub


@pytest.fixture(scope="module")
def cli_round_trip(hub, tmp_path_factory):
    """`seal publish` (the CLI) onto a repo holding a user's card, then `load_dataset(REPO_ID)` of each config
    through the same Hub, written to parquet: two processes in a row, with HF_ENDPOINT set before anything is
    imported. Started at once and left to run beside the other tests (it reads the shared store, which no test
    writes); the last test of the module collects it."""
    hub.add_repo("seal-tester/audit", USER_FILES)
    store = build_annotated_store(tmp_path_factory.getbasetemp() / "annotated")
    work = tmp_path_factory.mktemp("first")
    load = (
        "import sys, datasets, pyarrow.parquet as pq\n"
        "for config in ('hh', 'hh-b'):\n"
        "    ds = datasets.load_dataset('seal-tester/audit', config, split='train')\n"
        "    pq.write_table(ds.data.table, f'{sys.argv[1]}/{config}.parquet')\n"
    )
    python = shlex.quote(sys.executable)
    script = (
        f"{python} -m seal --store {shlex.quote(str(store))} publish seal-tester/audit --max-shard-size 12KB "
        f"--json > {shlex.quote(str(work / 'published.json'))} && {python} -c {shlex.quote(load)} "
        f"{shlex.quote(str(work))}"
    )
    env = client_env(hub, work / "hf")
    proc = subprocess.Popen(["bash", "-c", script], env=env, stderr=subprocess.PIPE, text=True)
    yield proc, work, store
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def card_of(hub: LocalHub, repo: str, revision: str = "main") -> tuple[dict, str]:
    text = hub.files(repo, revision)["README.md"].decode()
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def test_a_second_publish_updates_data_and_card_in_one_commit(cli_round_trip, online, publish_store, tmp_path):
    # (cli_round_trip first: its processes start now and run beside this module's tests)
    import seal

    store = seal.Store(publish_store)
    repo = "seal-tester/twice"
    online.add_repo(repo, USER_FILES)
    first = seal.publish(store, repo, max_shard_size="12KB")
    assert first.changed and online.commit_count(repo) == 2
    before = online.files(repo)
    old_shards = {p for p in before if p.startswith("data/")}
    assert len(old_shards) > 2
    ids = store.read(["pair_id"]).column("pair_id").to_pylist()
    scores = pa.table({"pair_id": ids, "chosen": [2.0] * len(ids), "rejected": [1.0] * len(ids)})
    pq.write_table(scores, tmp_path / "extra.parquet")
    seal.import_scores(store, str(tmp_path / "extra.parquet"), "extra")  # a new annotation

    result = seal.publish(store, repo)
    assert result.changed and online.commit_count(repo) == 3  # data and card: one commit
    after = online.files(repo)
    new_shards = {p for p in after if p.startswith("data/")}
    assert sorted(result.deleted) == sorted(old_shards - new_shards) and len(new_shards) == 2  # one shard each now
    assert after["notes.txt"] == before["notes.txt"] and after["raw/x.csv"] == before["raw/x.csv"]
    meta, body = card_of(online, repo)
    assert "### `score_extra`" in body and "Written by me: *keep this paragraph*." in body
    assert {f["name"] for f in meta["dataset_info"][0]["features"]} >= {"score_extra", "score_post"}
    assert meta["pretty_name"] == "Harmless audit" and "raw" in [c["config_name"] for c in meta["configs"]]
    table = pq.read_table(pa.BufferReader(after["data/hh/train-00000-of-00001.parquet"]))
    assert table.column("score_extra").to_pylist()[0] == {"chosen": 2.0, "rejected": 1.0}

    again = seal.publish(store, repo)  # nothing new: no empty commit
    assert not again.changed and again.commit_oid == result.commit_oid
    assert online.commit_count(repo) == 3


def test_dry_run_says_what_would_change_and_pushes_nothing(online, publish_store):
    import seal

    store = seal.Store(publish_store)
    seal.publish(store, "seal-tester/dry")
    start = len(online.requests)
    fresh = seal.publish(store, "seal-tester/new-audit", dry_run=True)
    assert {f["action"] for f in fresh.files} == {"add"} and fresh.card_diff.startswith("--- /dev/null")
    assert ("dataset", "seal-tester/new-audit") not in online.repos
    asked = [method for method, path in online.requests[start:] if "new-audit" in path]  # (others run beside)
    assert asked and set(asked) <= {"GET", "HEAD"}
    same = seal.publish(store, "seal-tester/dry", dry_run=True)
    assert {f["action"] for f in same.files} == {"unchanged"} and same.card_diff == "" and not same.changed


def test_an_interrupted_push_leaves_the_branch_as_it_was_and_a_rerun_completes_it(online, publish_store):
    import seal
    from seal.errors import SealError

    store = seal.Store(publish_store)
    repo = "seal-tester/cut"
    head = online.add_repo(repo, {"README.md": USER_CARD.encode()})
    for fault, message in (
        ("commit_500", "the Hub answered 500"),
        ("drop_commit", "the connection to the Hub dropped"),
    ):
        online.faults[f"{fault}:{repo}"] = 1  # this repo only: the CLI round trip runs beside
        with pytest.raises(SealError, match=message) as err:
            seal.publish(store, repo, where="dataset = 'hh'" if fault == "commit_500" else None)
        assert "rerun the same command" in (err.value.hint or "")
        assert online.repo(repo).branches["main"] == head and online.commit_count(repo) == 1  # nothing half-written
    start = len(online.requests)
    result = seal.publish(store, repo)
    assert result.changed and online.commit_count(repo) == 2
    uploaded = {path.rsplit("/", 1)[-1] for method, path in online.requests[start:] if method == "PUT"}
    shards = {b.sha256 for p, b in online.repo(repo).commits[result.commit_oid].files.items() if p.startswith("data/")}
    assert len(shards) == 2 and not shards & uploaded  # the shards uploaded before were reused
    assert sorted(p for p in online.files(repo) if p.startswith("data/")) == [
        "data/hh-b/train-00000-of-00001.parquet",
        "data/hh/train-00000-of-00001.parquet",
    ]


def test_branch_pull_request_and_report(online, publish_store, tmp_path):
    import seal
    from seal.errors import SealError

    store = seal.Store(publish_store)
    repo = "seal-tester/branches"
    main = online.add_repo(repo, {"README.md": USER_CARD.encode()})
    branch = seal.publish(store, repo, revision="seal-update")
    assert branch.created_branch and online.repo(repo).branches["main"] == main
    assert "data/hh/train-00000-of-00001.parquet" in online.files(repo, "seal-update")
    with pytest.raises(SealError, match="has no `nope`"):
        seal.publish(store, repo, revision="nope", create_pr=True)
    report = tmp_path / "report.html"
    report.write_text("<html><body>the report</body></html>")
    pr = seal.publish(store, repo, create_pr=True, report=report)
    assert pr.pull_request_url.endswith("/discussions/1") and online.repo(repo).branches["main"] == main
    proposed = online.files(repo, "refs/pr/1")
    assert proposed["report.html"] == report.read_bytes()
    assert "[report.html](report.html)" in proposed["README.md"].decode()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_publish_errors_are_one_line_with_a_fix(online, publish_store, run_cli, monkeypatch):
    def publish(*args: str) -> str:
        done = run_cli("publish", *args, store=publish_store)
        assert done.exit_code == 1, done.output
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
        return lines[0]

    assert "names a model repo" in publish("models/seal-tester/x")
    assert "address of a model repo" in publish(f"{online.url}/seal-tester/x")
    assert "is not a Hub repo id" in publish("not a repo")
    assert "is not a Hub repo id" in publish("a/b/c")
    assert "--token-env MY_TOKEN: that environment variable is not set" in publish(
        "seal-tester/x", "--token-env", "MY_TOKEN"
    )
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_token_of_this_hub")
    assert "refused the token from HF_TOKEN (401 Unauthorized)" in publish("seal-tester/x")
    monkeypatch.setenv("HF_TOKEN", WRITE)
    monkeypatch.setenv("MY_TOKEN", READ)
    line = publish("seal-tester/x", "--token-env", "MY_TOKEN")
    assert "the token from MY_TOKEN may not write to seal-tester/x (403 Forbidden)" in line
    monkeypatch.delenv("HF_TOKEN")
    assert "no Hugging Face token to publish with (set HF_TOKEN" in publish("seal-tester/x")
    monkeypatch.setenv("HF_TOKEN", WRITE)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert "cannot reach the Hub at http://127.0.0.1:" in publish("seal-tester/x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "cannot publish: HF_HUB_OFFLINE=1 is set (unset it" in publish("seal-tester/x")
    assert ("dataset", "seal-tester/x") not in online.repos


def test_publish_round_trips_through_load_dataset_and_keeps_the_users_card(cli_round_trip, hub):
    import seal
    from seal.cli_schemas import validate_output

    proc, work, store_path = cli_round_trip
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    result = json.loads((work / "published.json").read_text())
    validate_output("publish", result)
    assert result["changed"] and not result["created_repo"] and result["commit_oid"]
    assert hub.commit_count("seal-tester/audit") == 2  # the user's commit and ONE commit of seal's
    store = seal.Store(store_path)
    columns = [c for c in store.columns() if c != "context_text"]
    for config in ("hh", "hh-b"):
        assert_same_rows(store, pq.read_table(work / f"{config}.parquet"), config, columns)
    files = hub.files("seal-tester/audit")
    assert files["notes.txt"] == b"mine\n" and files["raw/x.csv"] == b"a,b\n1,2\n"
    commit = hub.repo("seal-tester/audit").commits[result["commit_oid"]]
    shards = sorted(p for p in files if p.startswith("data/hh/"))
    assert len(shards) > 1 and all(commit.files[p].lfs for p in shards)
    meta, body = card_of(hub, "seal-tester/audit")
    assert meta["pretty_name"] == "Harmless audit" and meta["annotations_creators"] == ["expert-generated"]
    assert meta["tags"][0] == "mine" and [c["config_name"] for c in meta["configs"]] == ["hh", "hh-b", "raw"]
    assert body.lstrip("\n").startswith("# Harmless audit\n\nWritten by me: *keep this paragraph*.\n\n## Notes\n")
    assert 'load_dataset("seal-tester/audit", "hh", split="train")' in body
