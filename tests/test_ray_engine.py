"""The Ray engine (`--engine ray`): the same engine objects as the local path, shipped to Ray Data actors, give the
same values (joined by pair_id, within 1e-6) for score (on an s3:// store, through `seal score --engine ray`), label
and embed; a killed Ray run resumes without recomputing what it committed; `import seal` and the local engine
need no Ray; asking for Ray without it is one line with the pip command.

One Ray for the session (2 CPUs, token auth off, its temp dir in the session's tmp), actors of 0.5 CPU. The tests
skip only when Ray is not installed and CI is unset; CI installs the `ray` extra, so there they must run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from s3_server import SECRET_KEY, s3_server  # noqa: F401 (fixture)
from test_scores import pair_rows, write_jsonl
from tiny_models import build_deberta_rm

import seal
from seal.errors import SealError

EXAMPLE = REPO / "examples" / "tiny-hh.jsonl"
HAS_RAY = all(
    __import__("importlib").util.find_spec(name) is not None for name in ("ray", "lance_ray")
)  # checked without importing Ray
if not HAS_RAY and not os.environ.get("CI"):
    pytest.skip("ray and lance-ray are not installed (pip install -e '.[ray]')", allow_module_level=True)

RAY = {"kind": "ray", "actors": 1, "cpus_per_actor": 0.5}


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A local Ray of 2 CPUs for the whole session (token auth off; temp files under the session's tmp)."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray

    temp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(temp))
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def rm_path(tmp_path_factory) -> Path:
    return build_deberta_rm(tmp_path_factory.mktemp("rm") / "deberta", seed=1)


def by_pair(store: seal.Store, column: str) -> dict[str, object]:
    table = store.read(["pair_id", column])
    return dict(zip(table.column("pair_id").to_pylist(), table.column(column).to_pylist(), strict=True))


def assert_scores_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for pid, value in a.items():
        for side in ("chosen", "rejected"):
            assert abs(value[side] - b[pid][side]) <= 1e-6, (pid, side)


def test_seal_score_engine_ray_on_s3_equals_local(ray_cluster, s3_server, rm_path, run_cli, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SEAL_LOCK_DIR", str(tmp_path / "locks"))
    store = seal.Store(s3_server.uri(), storage_options=s3_server.options)
    seal.ingest(store, str(write_jsonl(tmp_path / "pairs.jsonl", pair_rows(40))), name="gen")
    seal.score(store, str(rm_path), alias="local")
    flags = [f"--storage-option={k}={v}" for k, v in s3_server.options.items()]
    ray_flags = ["--engine", "ray", "--ray-actors", "1", "--ray-cpus-per-actor", "0.5"]  # batches as local
    args = ["--store", str(store.path), *flags, "score", "--model", str(rm_path), "--alias", "ray", *ray_flags]
    done = run_cli(*args, "--json", "--silent", store=None)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["pairs_scored"] == 40 and result["texts_scored"] == 80 and result["commits"] >= 1
    assert_scores_equal(by_pair(store, "score_local"), by_pair(store, "score_ray"))
    run = [r for r in store.runs("score") if r["name"] == "ray"][-1]
    assert run["provenance"]["engine"]["kind"] == "ray" and run["provenance"]["engine"]["actors"] == 1
    local_run = [r for r in store.runs("score") if r["name"] == "local"][-1]
    assert run["recipe"]["params"] == local_run["recipe"]["params"]  # the engine is not part of the recipe
    assert SECRET_KEY not in json.dumps(store.runs(), default=str) + done.stdout + done.stderr


def test_label_on_ray_equals_local(ray_cluster, tmp_path):
    local, remote = seal.Store(tmp_path / "local"), seal.Store(tmp_path / "ray")
    for store in (local, remote):
        seal.ingest(store, str(EXAMPLE), name="hh")
    seal.label(local)
    result = seal.label(remote, engine=seal.engine_options(**RAY))
    assert result.pairs_computed == 8 and result.pairs_labelled == 8
    # pair ids are content hashes: the same pairs in both stores
    assert by_pair(local, "features_heuristics") == by_pair(remote, "features_heuristics")


def test_embed_on_ray_equals_local(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    local, remote = seal.Store(tmp_path / "local"), seal.Store(tmp_path / "ray")
    for store in (local, remote):
        seal.ingest(store, str(EXAMPLE), name="hh")
    seal.embed(local, fields="chosen", index=False)
    result = seal.embed(remote, fields="chosen", index=False, engine=seal.engine_options(**RAY))
    assert result.pairs_embedded == 8 and result.texts_encoded == result.texts_unique > 0
    a, b = by_pair(local, "emb_chosen"), by_pair(remote, "emb_chosen")
    assert a.keys() == b.keys()
    for pid in a:
        assert np.allclose(a[pid], b[pid], atol=1e-6)


class Crash(Exception):
    pass


def counting_rm(model: str, log: str):
    """A RewardModel that appends the number of texts of each `score` call to `log` (from the Ray actors)."""
    from seal.engines.scoring import RewardModel

    class CountingRM(RewardModel):
        def score(self, items, **kwargs):  # type: ignore[no-untyped-def]
            with open(log, "a") as f:
                f.write(f"{len(items)}\n")
            return super().score(items, **kwargs)

    return CountingRM(model)


def test_a_killed_ray_run_resumes_without_recomputing(ray_cluster, rm_path, tmp_path):
    """Kill a Ray scoring run after its first checkpoint; the rerun scores exactly the pairs not committed (each
    text the reward models saw is logged by the actors to a file)."""
    from seal.annotate.scores import ScoreOptions, ScoreStage, run_score
    from seal.distributed import EngineOptions

    store = seal.Store(tmp_path / "store")
    for part in range(3):  # three ingests: three fragments
        rows = pair_rows(20, start=20 * part)
        seal.ingest(store, str(write_jsonl(tmp_path / f"p{part}.jsonl", rows)), name="gen")
    log = tmp_path / "calls.log"
    engine = EngineOptions("ray", actors=1, cpus_per_actor=0.5, batch_rows=10)

    def stage(after_commit=None) -> ScoreStage:
        rm = counting_rm(str(rm_path), str(log))
        return ScoreStage(
            ScoreOptions(str(rm_path), alias="r"), reward_model=rm, engine=engine, after_commit=after_commit
        )

    def crash(commits: int, rows: int) -> None:
        raise Crash(f"killed after {rows} pairs")

    with pytest.raises(Crash):
        run_score(store, stage(crash))
    committed = store.work_count("score_r")
    assert 0 < committed < 60
    log.write_text("")
    result = run_score(store, stage())
    assert result.pairs_resumed == committed and result.pairs_scored == 60 - committed
    texts = sum(int(n) for n in log.read_text().split())
    assert texts == 2 * (60 - committed)  # nothing committed was recomputed
    scores = by_pair(store, "score_r")
    assert len(scores) == 60 and all(v["chosen"] is not None and v["rejected"] is not None for v in scores.values())


def test_ray_missing_is_one_line_and_local_needs_no_ray(monkeypatch):
    import seal.distributed.options as options

    monkeypatch.setattr(options.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SealError) as err:
        seal.engine_options("ray")
    assert "pip install" in err.value.hint and "ray" in str(err.value)
    assert seal.engine_options().kind == "local"
    code = (
        "import sys, seal, seal.api, seal.store, seal.distributed; "
        "seal.engine_options('local'); assert 'ray' not in sys.modules and 'lance_ray' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_runner_room_imports_no_store_and_no_stage():
    import ast

    offenders = []
    for path in (REPO / "seal" / "distributed").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("lance", "lancedb", "lance_ray") or name.startswith(
                    ("seal.store", "seal.annotate", "seal.ingest", "seal.pipeline")
                ):
                    offenders.append(f"{path.name}: {name}")
    assert not offenders


def test_perturb_rescoring_on_ray_matches_the_reward_model(ray_cluster, rm_path, tmp_path):
    from seal.engines.scoring import RewardModel

    store = seal.Store(tmp_path / "store")
    seal.ingest(store, str(write_jsonl(tmp_path / "pairs.jsonl", pair_rows(12))), name="gen")
    seal.score(store, str(rm_path), alias="a")
    result = seal.perturb(store, "contractions+punctuation:mode=strip", sample=8, engine=seal.engine_options(**RAY))
    (rescored,) = result.rescored
    assert rescored.status == "done" and rescored.texts_scored > 0
    run = [r for r in store.runs("vscore")][-1]
    assert run["provenance"]["engine"]["kind"] == "ray"
    variants, vscores = by_pair(store, "variants_contractions_punctuation"), by_pair(store, rescored.column)
    contexts = {r["pair_id"]: r["context"] for r in store.read(["pair_id", "context"]).to_pylist()}
    items, keys = [], []
    for pid, vs in variants.items():
        for v in vs or []:
            if v["status"] != "unchanged" and v["text"] is not None:
                items.append((v["context"] if v["context"] is not None else contexts[pid], v["text"]))
                keys.append((pid, v["side"]))
    expected = RewardModel(str(rm_path)).score(items)
    got = [vscores[pid][side] for pid, side in keys]
    np.testing.assert_allclose(got, expected, atol=1e-5)  # batches differ from the local path's: float32 noise


def test_an_engine_error_on_an_actor_is_its_own_one_line_error(ray_cluster, tmp_path):
    from seal.annotate.features.stage import heuristics_stage, run_label_stage

    store = seal.Store(tmp_path / "store")
    seal.ingest(store, str(EXAMPLE), name="hh")
    stage = heuristics_stage(engine=seal.engine_options(**RAY))

    def broken():
        class Broken:
            def label_pairs(self, pairs):  # type: ignore[no-untyped-def]
                raise SealError("the labeler refused these pairs", hint="fix the labeler")

        return Broken()

    stage.make_labeler = broken
    with pytest.raises(SealError, match="the labeler refused these pairs") as err:
        run_label_stage(store, stage)
    assert err.value.hint == "fix the labeler"
    assert "features_heuristics" not in store.columns()  # nothing half-written
