"""A store on an object store: the stages (label, score, embed) run on a `file://` folder and on `s3://` (moto,
in-process, with conditional PUTs like S3) and give the same values; credentials are never written to the
store, the runs or an error message; the writer lock of a remote store is a local file; seal's own column
commit keeps a concurrent writer's column where lance-ray's retry does not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import REPO
from s3_server import SECRET_KEY, objects, s3_server  # noqa: F401 (fixture)
from tiny_models import build_deberta_rm

import seal
from seal.errors import SealError, StoreError
from seal.store import location

EXAMPLE = REPO / "examples" / "tiny-hh.jsonl"
BACKENDS = ("file", "s3")


@pytest.fixture(scope="module")
def rm_path(tmp_path_factory) -> Path:
    return build_deberta_rm(tmp_path_factory.mktemp("rm") / "deberta", seed=1)


def open_backend(kind: str, server, folder: Path) -> seal.Store:
    if kind == "file":
        return seal.Store(f"file://{folder}")
    return seal.Store(server.uri(), storage_options=server.options)


@pytest.fixture(scope="module")
def annotated(s3_server, rm_path, tmp_path_factory) -> dict[str, seal.Store]:  # noqa: F811
    """The 8 example pairs, labelled (heuristics), scored (tiny DeBERTa RM) and embedded (MiniLM, chosen and
    rejected), once on each backend."""
    stores = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("SEAL_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
        for kind in BACKENDS:
            store = open_backend(kind, s3_server, tmp_path_factory.mktemp(kind) / "store")
            seal.ingest(store, str(EXAMPLE), name="hh")
            seal.label(store)
            seal.score(store, str(rm_path), alias="tiny", role="aligned")
            seal.embed(store, fields="chosen,rejected", index=False)
            stores[kind] = store
    return stores


def by_pair(store: seal.Store, column: str) -> dict[str, object]:
    table = store.read(["pair_id", column])
    return dict(zip(table.column("pair_id").to_pylist(), table.column(column).to_pylist(), strict=True))


@pytest.mark.parametrize("kind", BACKENDS)
def test_stages_write_every_column(annotated, kind):
    store = annotated[kind]
    assert store.remote == (kind == "s3")
    assert store.count() == 8
    for column in ("features_heuristics", "score_tiny", "emb_chosen", "emb_rejected"):
        values = by_pair(store, column)
        assert len(values) == 8 and all(v is not None for v in values.values()), column
    assert {r["stage"] for r in store.runs()} >= {"ingest", "label", "score", "embed"}
    assert set(store.table_names()) >= {"pairs", "runs"}
    assert not any(name.startswith("work__") for name in store.table_names())  # checkpoints dropped


@pytest.mark.parametrize("column", ["features_heuristics", "score_tiny", "emb_chosen"])
def test_file_and_s3_give_the_same_values(annotated, column):
    local, remote = by_pair(annotated["file"], column), by_pair(annotated["s3"], column)
    assert local.keys() == remote.keys()
    for pid, value in local.items():
        if column == "features_heuristics":
            assert value == remote[pid]
        elif column == "score_tiny":
            assert value["chosen"] == pytest.approx(remote[pid]["chosen"], abs=1e-6)
            assert value["rejected"] == pytest.approx(remote[pid]["rejected"], abs=1e-6)
        else:
            assert np.allclose(value, remote[pid], atol=1e-6)


def test_credentials_are_never_written(annotated, s3_server):  # noqa: F811
    store = annotated["s3"]
    prefix = str(store.path).split("/", 3)[3]
    stored = objects(s3_server, prefix)
    assert stored and any(key.endswith(".manifest") for key in stored)
    assert not [key for key, body in stored.items() if SECRET_KEY.encode() in body]
    runs = json.dumps(store.runs(), default=str)
    assert SECRET_KEY not in runs and s3_server.options["aws_access_key_id"] not in runs
    assert str(store.path) == store.path and "://" in str(store.path) and SECRET_KEY not in str(store.path)


def test_an_unreachable_store_is_one_line_without_secrets(s3_server):  # noqa: F811
    options = {**s3_server.options, "aws_endpoint": "http://127.0.0.1:9"}  # nothing listens there
    store = seal.Store(s3_server.uri(), storage_options={**options, "client_max_retries": "0"})
    with pytest.raises(StoreError) as err:
        store.read(["pair_id"], table="runs")
    assert SECRET_KEY not in str(err.value) and "\n" not in str(err.value).strip()
    assert store.redact(f"x {SECRET_KEY} y") == "x *** y"


def test_a_missing_remote_store_says_what_to_do(s3_server):  # noqa: F811
    store = seal.Store(s3_server.uri("nothing-here"), storage_options=s3_server.options)
    assert not store.exists() and store.count() == 0 and store.runs() == []
    with pytest.raises(StoreError, match="no seal store"):
        store.require()


def test_remote_writes_take_a_local_lock(tmp_path, monkeypatch, s3_server):  # noqa: F811
    monkeypatch.setenv("SEAL_LOCK_DIR", str(tmp_path / "locks"))
    store = seal.Store(s3_server.uri("locked"), storage_options=s3_server.options)
    with store.writing():
        lock = tmp_path / "locks" / location.lock_key(str(store.path))
        assert lock.read_text().strip().isdigit()
    assert list((tmp_path / "locks").iterdir()) == [lock]


def test_storage_options_come_from_the_environment_and_flags(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    options = location.storage_options(["aws_secret_access_key=from-flag", "AWS_REGION=us-east-2"])
    assert options == {
        "aws_endpoint": "http://127.0.0.1:4566",
        "aws_secret_access_key": "from-flag",
        "aws_region": "us-east-2",
        "allow_http": "true",
    }
    with pytest.raises(SealError, match="KEY=VALUE"):
        location.parse_storage_options(["no-equals-sign"])
    with pytest.raises(SealError, match="cannot open a store"):
        seal.Store("ftp://host/store")
    assert seal.Store("file:///tmp/x").path == Path("/tmp/x")
    assert seal.Store(str(Path("/tmp/x"))).remote is False


def test_the_cli_opens_an_s3_store(run_cli, s3_server, annotated):  # noqa: F811
    store = annotated["s3"]
    flags = [f"--storage-option={k}={v}" for k, v in s3_server.options.items()]
    done = run_cli("--store", str(store.path), *flags, "models", "--json", store=None)
    assert done.exit_code == 0, done.output
    payload = json.loads(done.stdout)
    assert payload["store"] == str(store.path) and [m["alias"] for m in payload["models"]] == ["tiny"]
    assert SECRET_KEY not in done.stdout + done.stderr


# -- seal owns the commit -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", BACKENDS)
def test_two_merges_prepared_from_one_version_both_land(kind, s3_server, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SEAL_LOCK_DIR", str(tmp_path / "locks"))
    store = open_backend(kind, s3_server, tmp_path / "store")
    seal.ingest(store, str(EXAMPLE), name="hh")
    ids = store.pair_ids().to_pylist()
    values_a = pa.table({"pair_id": ids, "score_a": [float(i) for i in range(len(ids))]})
    values_b = pa.table({"pair_id": ids[:5], "score_b": [10.0 + i for i in range(5)]})
    first = store.prepare_column("score_a", values_a)
    second = store.prepare_column("score_b", values_b)
    assert first.read_version == second.read_version  # two stages prepared from one version
    store.commit_column(first)
    version = store.commit_column(second)
    assert second.redone == 1  # redone against the version the first commit made
    assert version == store.version()
    got_a, got_b = by_pair(store, "score_a"), by_pair(store, "score_b")
    assert got_a == dict(zip(ids, values_a.column("score_a").to_pylist(), strict=True))
    assert got_b == {**dict.fromkeys(ids), **dict(zip(ids[:5], values_b.column("score_b").to_pylist(), strict=True))}


def test_lance_ray_retry_does_not_keep_both_columns(tmp_path):
    """The same two merges through lance-ray 0.5's commit retry (what `merge_columns_from` ends with): the retry
    re-commits the second Merge with a newer read_version but the old fragment list, so the table cannot have both
    columns (older Lance drops the first column silently; Lance 13 refuses the commit after three tries)."""
    lance_io = pytest.importorskip("lance_ray.io", reason="lance-ray is not installed")
    import lance

    store = seal.Store(tmp_path / "store")
    seal.ingest(store, str(EXAMPLE), name="hh")
    ids = store.pair_ids().to_pylist()
    first = store.prepare_column("score_a", pa.table({"pair_id": ids, "score_a": [1.0] * len(ids)}))
    second = store.prepare_column("score_b", pa.table({"pair_id": ids, "score_b": [2.0] * len(ids)}))
    store.commit_column(first)
    uri = str(tmp_path / "store" / "pairs.lance")
    fragments = {f.metadata.id for f in lance.dataset(uri, version=second.read_version).get_fragments()}
    monkey = pytest.MonkeyPatch()
    monkey.setattr(lance_io, "_COMMIT_RETRY_DELAY_S", 0.0)
    try:
        lance_io._commit_with_retry(uri, second.operation, second.read_version, None, {}, fragments)
    except Exception as err:
        assert "field id" in str(err) or "onflict" in str(err)
    finally:
        monkey.undo()
    names = lance.dataset(uri).schema.names
    assert not {"score_a", "score_b"} <= set(names)  # one of the two stages lost its column
