"""A store the file system will not write to: read-only (a read-only bind mount), not writable for this
user (another user through setpriv) or full (a small tmpfs). Each write command stops with one line
(`Error: the store at PATH is read-only` / `Error: no space left on the device holding PATH`) and exit
code 1; reading commands keep working; nothing is half-written: the store opens at its last version and
a rerun with room to write finishes the work. Real file systems, in a private mount namespace (`unshare
-m`, so no mount outlives the test); skipped where this machine does not allow them (needs root)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import REPO

from seal.errors import StoreWriteError, store_write_error

EXAMPLE = REPO / "examples" / "tiny-hh.jsonl"
DRIVER = REPO / "tests" / "fs_faults.py"


def _can_unshare_mounts() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d && rmdir $d"
    done = subprocess.run(["unshare", "-m", "sh", "-c", probe], capture_output=True, timeout=30)
    return done.returncode == 0


needs_mounts = pytest.mark.skipif(not _can_unshare_mounts(), reason="mount namespaces are not allowed here")


def drive(plan: list[dict], tmp_path: Path, prefix: tuple[str, ...] = ("unshare", "-m")) -> list[dict]:
    """Run the plan's steps in one process (fs_faults.py), under `prefix` (a namespace, another user),
    in the folder `tmp_path`."""
    plan_file = tmp_path / f"plan-{len(list(tmp_path.glob('plan-*')))}.json"
    plan_file.write_text(json.dumps(plan))
    os.chmod(plan_file, 0o644)
    done = subprocess.run(
        [*prefix, sys.executable, str(DRIVER), str(plan_file)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for r in results:
        assert r.get("exception") is None, r  # nothing escapes seal's error handling
    return results


def seal_step(store: Path, *args: str) -> dict:
    return {"seal": ["--store", str(store), *args]}


def one_error_line(result: dict) -> str:
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result["stderr"]
    assert "Traceback" not in result["stderr"] and ".rs:" not in result["stderr"]  # no Rust source path
    return lines[0]


def versions(run_cli, store: Path) -> list[dict]:
    result = run_cli("versions", "--json", store=store)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def other_source(tmp_path: Path) -> Path:
    path = tmp_path / "other.jsonl"
    path.write_text(EXAMPLE.read_text())
    return path


# -- a read-only store ---------------------------------------------------------------------------------
@needs_mounts
def test_read_only_store_refuses_writes_in_one_line_and_keeps_reading(run_cli, store_path, tmp_path):
    assert run_cli("ingest", EXAMPLE, "--silent").exit_code == 0
    before = versions(run_cli, store_path)
    source = other_source(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: 1\ndataset: {source: other.jsonl, name: other}\nfeatures: [{labeler: heuristics}]\n")
    bind = f"mount --bind {store_path} {store_path} && mount -o remount,bind,ro {store_path}"
    results = drive(
        [
            {"sh": bind},
            {"sh": f"touch {store_path}/probe"},
            seal_step(store_path, "ingest", str(source), "--name", "other", "--silent"),
            seal_step(store_path, "label", "--silent"),
            seal_step(store_path, "tag", "before-labels"),
            seal_step(store_path, "run", str(spec), "--silent"),
            seal_step(store_path, "stats", "--json"),
            seal_step(store_path, "query", "--select", "pair_id", "--limit", "0", "--json"),
        ],
        tmp_path,
    )
    mounted, probe, ingest, label, tag, run, stats, query = results
    assert mounted["exit_code"] == 0, mounted
    assert probe["exit_code"] != 0 and "Read-only file system" in probe["stderr"]  # the mount is real
    expected = f"Error: the store at {store_path} is read-only ("
    for refused in (ingest, label, tag):
        assert refused["exit_code"] == 1, refused
        assert one_error_line(refused).startswith(expected)
    assert run["exit_code"] == 1 and "(ingest other) failed: the store at" in one_error_line(run)
    assert f"failed: the store at {store_path} is read-only" in one_error_line(run)
    assert stats["exit_code"] == 0 and json.loads(stats["stdout"])["pairs"] == 8
    assert query["exit_code"] == 0 and len(json.loads(query["stdout"])) == 8
    # Outside the namespace the store is writable again: untouched, and every write works.
    assert versions(run_cli, store_path) == before
    assert not [p.name for p in store_path.iterdir() if p.name.startswith("work__")]
    assert run_cli("ingest", source, "--name", "other", "--silent").exit_code == 0
    assert run_cli("label", "--silent").exit_code == 0


# -- a store this user may not write -------------------------------------------------------------------
def test_store_without_write_permission_refuses_writes_in_one_line(run_cli, tmp_path):
    """As root, permission bits do not stop writes: run the commands as `nobody` (setpriv) instead."""
    as_root = os.geteuid() == 0
    if as_root and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop to another user")
    # A world-traversable folder (pytest's tmp folders are private to their owner).
    root = Path(tempfile.mkdtemp(prefix="seal-perm-", dir="/tmp"))
    try:
        os.chmod(root, 0o755)
        store = root / "store"
        assert run_cli("ingest", EXAMPLE, "--silent", store=store).exit_code == 0
        before = versions(run_cli, store)
        source = other_source(root)
        hf_home = root / "hf-home"
        hf_home.mkdir(mode=0o777)
        os.chmod(hf_home, 0o777)
        for path in [store, *store.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)  # readable by all, writable by the owner only
        plan = [
            seal_step(store, "ingest", str(source), "--name", "other", "--silent"),
            seal_step(store, "label", "--silent"),
            seal_step(store, "stats", "--json"),
        ]
        if as_root:
            prefix = ("env", f"HF_HOME={hf_home}", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
        else:
            for path in [store, *store.rglob("*")]:
                os.chmod(path, 0o555 if path.is_dir() else 0o444)
            prefix = ("env", f"HF_HOME={hf_home}")
        ingest, label, stats = drive(plan, root, prefix)
        expected = f"Error: the store at {store} is read-only for this user (permission denied) ("
        for refused in (ingest, label):
            assert refused["exit_code"] == 1, refused
            assert one_error_line(refused).startswith(expected)
        assert stats["exit_code"] == 0 and json.loads(stats["stdout"])["pairs"] == 8
        if not as_root:
            for path in [store, *store.rglob("*")]:
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
        assert versions(run_cli, store) == before
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- a full disk -----------------------------------------------------------------------------------------
@needs_mounts
def test_full_disk_fails_in_one_line_and_a_rerun_with_room_finishes(tmp_path):
    """A 1 MiB tmpfs holds the store; a filler file takes all but FREE KiB of it. With no room at all the
    label stage fails at its first write; with a little room it fails later (after committing a
    checkpoint, or while writing the column). Either way: one line, the store at its last version,
    and after freeing the space a rerun labels every pair."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    store = mnt / "store"
    plan: list[dict] = []
    frees = (0, 16, 32, 48, 64)
    for free in frees:
        plan += [
            {"sh": f"mount -t tmpfs -o size=1m tmpfs {mnt}"},
            seal_step(store, "ingest", str(EXAMPLE), "--silent"),
            {"sh": f"dd if=/dev/zero of={mnt}/filler bs=4k 2>/dev/null; truncate -s -{free}K {mnt}/filler; sync"},
            seal_step(store, "label", "--silent"),
            seal_step(store, "versions", "--json"),
            seal_step(store, "stats", "--json"),
            {"sh": f"rm {mnt}/filler"},
            seal_step(store, "label", "--silent", "--json"),
            seal_step(store, "stats", "--json"),
            {"sh": f"umount {mnt}"},
        ]
    results = drive(plan, tmp_path)
    failed = 0
    for i, free in enumerate(frees):
        mounted, ingest, _fill, label, after_versions, after_stats, _rm, rerun, final, _umount = results[
            10 * i : 10 * i + 10
        ]
        assert mounted["exit_code"] == 0 and ingest["exit_code"] == 0, (mounted, ingest)
        stats = json.loads(after_stats["stdout"])
        assert stats["pairs"] == 8  # the store still opens and reads
        if label["exit_code"] != 0:
            failed += 1
            assert label["exit_code"] == 1
            assert one_error_line(label).startswith(f"Error: no space left on the device holding {store} (")
            # Lance commits whole versions: the column is absent, or complete when only its run record
            # could not be written (then the rerun replaces it, as a column no run accounts for).
            coverage = {c["column"]: c["non_null"] for c in stats["columns"]}
            assert coverage.get("features_heuristics", 8) == 8, (free, coverage)
            labelled = [v for v in json.loads(after_versions["stdout"]) if v["stage"] == "label"]
            assert labelled == [], labelled  # no run claims a label write that failed
        assert rerun["exit_code"] == 0, (free, rerun)
        assert json.loads(rerun["stdout"])["status"] in ("done", "up-to-date")
        coverage = {c["column"]: c["non_null"] for c in json.loads(final["stdout"])["columns"]}
        assert coverage["features_heuristics"] == 8, (free, coverage)
    assert failed >= 1  # at least the run with no free space at all


# -- the translation itself --------------------------------------------------------------------------------
def test_translation_names_the_store_and_leaves_other_errors_alone(tmp_path):
    store = tmp_path / "store"
    lance = RuntimeError(
        "lance error: LanceError(IO): No space left on device (os error 28), "
        "/root/.cargo/registry/src/lance-file-13.0.0/src/writer/structural.rs:191:9"
    )
    error = store_write_error(lance, store)
    assert isinstance(error, StoreWriteError) and str(error).startswith(f"no space left on the device holding {store}")
    denied = PermissionError(errno.EACCES, "Permission denied", str(store / "pairs.lance" / "data" / "x"))
    assert "read-only for this user" in str(store_write_error(denied, store))
    # An OS error about a file outside the store (a model folder, a cache) is not a store write.
    elsewhere = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "model" / "config.json"))
    assert store_write_error(elsewhere, store) is None
    # The OS error may be the cause of another exception.
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system", str(store))
        except OSError as inner:
            raise ValueError("could not write") from inner
    except ValueError as outer:
        assert str(store_write_error(outer, store)).startswith(f"the store at {store} is read-only (")
    assert store_write_error(ValueError("Table 'x' was not found"), store) is None
