"""Two seal processes writing one store both succeed: 20 rounds in which two processes, released together by a
barrier, each write their own annotation column (with its run record) onto the same `pairs` version. Without the
store's writer lock, Lance's optimistic commits failed about 3 times in 16 such races, and a retried Merge could
drop the other writer's column; with it, every column is present and equal to what a serial run writes."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pyarrow as pa

ROUNDS = 20
N = 64


def _values(worker: int, round_: int, ids: list[str]) -> pa.Table:
    rng = np.random.default_rng(1000 * worker + round_)
    chosen, rejected = rng.normal(size=len(ids)), rng.normal(size=len(ids))
    struct = pa.StructArray.from_arrays([pa.array(chosen), pa.array(rejected)], names=["chosen", "rejected"])
    column = f"score_w{worker}r{round_}"
    return pa.table({"pair_id": pa.array(ids, pa.string()), column: struct})


def _writer(path: str, worker: int, ids: list[str], barrier, errors) -> None:
    from seal.recipe import Recipe
    from seal.store import RunRecord, Store

    store = Store(path)
    for round_ in range(ROUNDS):
        values = _values(worker, round_, ids)
        column = values.column_names[1]
        barrier.wait(timeout=120)  # both writers start their commit at the same moment
        try:
            recipe = Recipe("score", column, {})
            run = RunRecord.finished("score", column.removeprefix("score_"), recipe, {"role": "other"})
            store.write_column(column, values, run)
        except Exception as err:  # reported to the parent: the test fails with the message
            errors.put(f"worker {worker} round {round_}: {type(err).__name__}: {err}")


def test_twenty_rounds_of_two_concurrent_writers_keep_every_column(store, tmp_path):
    ids = [f"p{i:03d}" for i in range(N)]
    store.add_pairs(pa.table({"pair_id": ids, "dataset": ["d"] * N}))
    ctx = mp.get_context("spawn")
    barrier, errors = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_writer, args=(str(store.path), w, ids, barrier, errors)) for w in (0, 1)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=600)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, "\n".join(problems)
    assert all(p.exitcode == 0 for p in workers)

    columns = store.columns()
    expected = [f"score_w{w}r{r}" for r in range(ROUNDS) for w in (0, 1)]
    assert sorted(c for c in columns if c.startswith("score_w")) == sorted(expected)
    table = store.read(["pair_id", *expected]).sort_by("pair_id")
    for w in (0, 1):
        for r in range(ROUNDS):
            serial = _values(w, r, ids).sort_by("pair_id")
            column = f"score_w{w}r{r}"
            assert table.column(column).to_pylist() == serial.column(column).to_pylist()
    runs = {run["name"] for run in store.runs("score")}
    assert runs == {c.removeprefix("score_") for c in expected}
    # every write recorded the version it made, and the versions are all distinct
    versions = [run["pairs_version"] for run in store.runs("score")]
    assert len(set(versions)) == len(versions) == 2 * ROUNDS


def test_the_lock_is_reentrant_and_says_who_holds_it(store, tmp_path, capfd):
    import threading
    import time

    from seal.store.lock import LOCK_FILE, writer_lock

    path = tmp_path / "locked"
    with writer_lock(path), writer_lock(path):  # nested in one process: no deadlock
        assert (path / LOCK_FILE).read_text().strip().isdigit()

    ctx = mp.get_context("spawn")
    holding, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(path), holding, release))
    holder.start()
    assert holding.wait(60)
    threading.Timer(1.0, release.set).start()
    t0 = time.monotonic()
    with writer_lock(path):
        waited = time.monotonic() - t0
    holder.join(30)
    assert waited >= 0.9
    assert f"pid {holder.pid}" in capfd.readouterr().err


def _hold(path: str, holding, release) -> None:
    from pathlib import Path

    from seal.store.lock import writer_lock

    with writer_lock(Path(path)):
        holding.set()
        release.wait(60)
