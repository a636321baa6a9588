"""Re-scoring of variants: each scored RM, rebuilt from the recipe of its `score` run, scores the variants of a
perturbation into ``vscore_<name>__<alias>`` (stage ``vscore``). Unchanged variants reuse the original score;
work is checkpointed per chunk of pairs, so a killed run resumes."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seal.annotate.perturb.reading import messages, read_pairs
from seal.catalog.models import list_models, score_column
from seal.catalog.perturbations import (
    FAILED,
    UNCHANGED,
    UP_TO_DATE,
    VSCORE_TYPE,
    _latest_run,
    _vscore_recipe,
    variants_column,
    variants_key,
    vscore_column,
    vscore_status,
)
from seal.distributed import EngineOptions, current_engine, runner_for
from seal.errors import SealError, StoreError
from seal.progress import progress_bar
from seal.store import RunRecord, Store, now_utc

RMLoader = Callable[[Mapping[str, Any], str], Any]
CHUNK_PAIRS = 512  # pairs per checkpoint commit
WORK_SCHEMA = pa.schema([("pair_id", pa.string()), ("fingerprint", pa.string()), ("value", VSCORE_TYPE)])


@dataclass
class RescoreResult:
    """What re-scoring the variants with one RM did."""

    alias: str
    column: str
    status: str  # done | up-to-date | skipped
    reason: str
    texts_scored: int = 0
    texts_reused: int = 0
    fingerprint: str | None = None
    run_id: str | None = None
    pairs_version: int | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_rm_for_rescoring(info: Mapping[str, Any], device: str = "auto") -> Any:
    """The RM of a `score` run, rebuilt from its recipe (model, revision, dtype, max_length, truncation,
    input format, head), checked to reproduce that recipe: variants are scored exactly as the originals."""
    from seal.engines.scoring import RewardModel

    params = dict(info["recipe"].get("params", {}))
    provenance = info.get("provenance", {}) or {}
    if "model" not in params:
        raise SealError(
            f"the score run of `{info['alias']}` does not say which model produced it",
            hint="re-score it with `seal score`",
        )
    rm = RewardModel(
        params["model"],
        revision=params.get("commit") or params.get("revision"),
        dtype=params.get("dtype", "auto"),
        max_length=params.get("max_length"),
        truncation=params.get("truncation", "left"),
        input_format=params.get("input_format", "auto"),
        head_index=params.get("head_index"),
        trust_remote_code=bool(provenance.get("trust_remote_code", False)),
        device=device,
    )
    now = rm.recipe_params()
    ignore = {"seal_version"}
    changed = [k for k in sorted(set(params) & set(now)) if k not in ignore and params[k] != now[k]]
    if changed:
        raise SealError(
            f"`{info['alias']}` no longer loads as it was scored (changed: {', '.join(changed)})",
            hint=f"re-score the originals first: `seal score {params['model']} --alias {info['alias']}`",
        )
    return rm


def imported_result(name: str, alias: str) -> RescoreResult:
    """An RM whose scores were imported: there is no model to re-score the variants with."""
    return RescoreResult(alias, vscore_column(name, alias), "skipped", "imported scores: no model to re-score with")


def up_to_date_result(store: Store, name: str, alias: str, info: Mapping[str, Any]) -> RescoreResult:
    """The result for an RM whose variant scores are current (nothing to do)."""
    vrun = _latest_run(store, "perturb", name)
    fingerprint = None
    if vrun is not None:
        fingerprint = _vscore_recipe(name, variants_key(vrun), alias, info["fingerprint"]).fingerprint()
    _, reason = vscore_status(store, name, alias, info)
    return RescoreResult(alias, vscore_column(name, alias), UP_TO_DATE, reason, fingerprint=fingerprint)


def rescore_variants(
    store: Store,
    name: str,
    alias: str,
    *,
    device: str = "auto",
    batch_size: int | str = "auto",
    show_progress: bool = False,
    loader: RMLoader | None = None,
    engine: EngineOptions | None = None,
) -> RescoreResult:
    """Score the variants of perturbation `name` with RM `alias` (same recipe as its `score` run) into
    ``vscore_<name>__<alias>``. Up-to-date columns are left alone; unchanged variants reuse the original score.
    `engine` (default: the one `seal.distributed.use_engine` set, else local) says where the RM runs."""
    t0 = time.perf_counter()
    started = now_utc()
    models = list_models(store)
    column = vscore_column(name, alias)
    if alias not in models:
        raise StoreError(f"no scored reward model `{alias}`", hint="see `seal stats`; score it with `seal score`")
    info = models[alias]
    if info["origin"] != "scored":
        return imported_result(name, alias)
    vrun = _latest_run(store, "perturb", name)
    vcol = variants_column(name)
    if vrun is None or vcol not in store.columns():
        raise StoreError(f"no variants `{name}`", hint=f"run `seal perturb --method ... --name {name}` first")
    recipe = _vscore_recipe(name, variants_key(vrun), alias, info["fingerprint"])
    fp = recipe.fingerprint()
    status, reason = vscore_status(store, name, alias, info)
    if status == UP_TO_DATE:
        return RescoreResult(alias, column, UP_TO_DATE, reason, fingerprint=fp, seconds=0.0)

    tab = read_pairs(store, ["pair_id", vcol, score_column(alias)])
    tab = tab.filter(pc.is_valid(tab.column(vcol)))
    contexts: dict[str, Any] = {}
    if tab.num_rows:  # contexts of the perturbed pairs only
        ctx = read_pairs(store, ["pair_id", "context"], tab.column("pair_id").to_pylist())
        contexts = dict(zip(ctx.column("pair_id").to_pylist(), ctx.column("context").to_pylist(), strict=True))
    checkpoint = store.work_read(column, ["pair_id", "value"], pc.field("fingerprint") == fp)
    done: dict[str, Any] = {}
    if checkpoint is not None:
        done = dict(zip(checkpoint.column("pair_id").to_pylist(), checkpoint.column("value").to_pylist(), strict=True))

    rows = sorted((r for r in tab.to_pylist() if r["pair_id"] not in done), key=lambda r: r["pair_id"])
    rm = None
    runner = runner_for(engine if engine is not None else current_engine()) if rows else None
    load = functools.partial(loader or load_rm_for_rescoring, info, device)
    if runner is not None:
        reused, scored = _rescore_on_ray(runner, store, rows, vcol, alias, contexts, load, batch_size, column, fp, done)
    else:
        reused = scored = 0
        with progress_bar(show_progress, total=len(rows), desc=f"score {name} with {alias}", unit="pair") as bar:
            for start in range(0, len(rows), CHUNK_PAIRS):
                chunk = rows[start : start + CHUNK_PAIRS]
                items, where, values, chunk_reused = _chunk_items(chunk, vcol, alias, contexts)
                reused += chunk_reused
                if items:
                    if rm is None:
                        rm = load()
                    from seal.engines.scoring import score_texts

                    out = score_texts(rm, items, batch_size=batch_size)
                    for (pid, side), s in zip(where, out.tolist(), strict=True):
                        values[pid][side] = float(s) if np.isfinite(s) else None
                    scored += len(items)
                _checkpoint(store, column, fp, values)
                done.update(values)
                bar.update(len(chunk))
    ids = sorted(done)
    values_table = pa.table(
        {"pair_id": pa.array(ids, pa.string()), column: pa.array([done[i] for i in ids], VSCORE_TYPE)}
    )
    provenance = {
        "engine": runner.provenance() if runner is not None else {"kind": "local"},
        "score_recipe": info["recipe"],
        "texts_scored": scored,
        "texts_reused": reused,
        "device": getattr(rm, "device", None),
        "batch_size": batch_size,
        "scoring": rm.stats.to_json() if rm is not None and hasattr(rm, "stats") else None,
    }
    record = RunRecord.finished("vscore", recipe.name, recipe, provenance, rows_written=len(ids), started_at=started)
    version = store.write_column(column, values_table, record)
    store.drop_work_table(column)
    return RescoreResult(
        alias,
        column,
        "done",
        reason,
        texts_scored=scored,
        texts_reused=reused,
        fingerprint=fp,
        run_id=record.run_id,
        pairs_version=version,
        seconds=round(time.perf_counter() - t0, 3),
    )


def _chunk_items(
    chunk: list[dict[str, Any]], vcol: str, alias: str, contexts: Mapping[str, Any]
) -> tuple[list[tuple[Any, str]], list[tuple[str, str]], dict[str, dict[str, float | None]], int]:
    """(items to score, their (pair_id, side), the values so far per pair, variants reused) of some pairs."""
    items: list[tuple[Any, str]] = []
    where: list[tuple[str, str]] = []
    values: dict[str, dict[str, float | None]] = {}
    reused = 0
    for row in chunk:
        value: dict[str, float | None] = {"chosen": None, "rejected": None}
        original = row[score_column(alias)] or {}
        for v in row[vcol]:
            if v["status"] == FAILED or v["text"] is None:
                continue
            if v["status"] == UNCHANGED and original.get(v["side"]) is not None:
                value[v["side"]] = original[v["side"]]
                reused += 1
                continue
            context = v["context"] if v["context"] is not None else contexts[row["pair_id"]]
            items.append((messages(context), v["text"]))
            where.append((row["pair_id"], v["side"]))
        values[row["pair_id"]] = value
    return items, where, values, reused


def _checkpoint(store: Store, column: str, fp: str, values: Mapping[str, Any]) -> None:
    batch = pa.Table.from_pylist(
        [{"pair_id": pid, "fingerprint": fp, "value": v} for pid, v in values.items()], schema=WORK_SCHEMA
    )
    store.work_append(column, batch, WORK_SCHEMA)


def _rescore_on_ray(
    runner: Any,
    store: Store,
    rows: list[dict[str, Any]],
    vcol: str,
    alias: str,
    contexts: Mapping[str, Any],
    load: Callable[[], Any],
    batch_size: int | str,
    column: str,
    fp: str,
    done: dict[str, Any],
) -> tuple[int, int]:
    """Score the variants on Ray actors (each loads the RM with `load`); a pair is checkpointed as soon as all
    of its variants are scored. Returns (variants reused, variants scored)."""
    from collections import Counter

    from seal.annotate.batch_fns import RescoreBatches

    items, where, values, reused = _chunk_items(rows, vcol, alias, contexts)
    waiting = Counter(pid for pid, _ in where)
    ready = {pid: v for pid, v in values.items() if not waiting[pid]}
    if ready:
        _checkpoint(store, column, fp, ready)
        done.update(ready)
    blocks = [
        pa.table(
            {
                "index": pa.array(range(start, min(start + CHUNK_PAIRS, len(items))), pa.int64()),
                "messages": pa.array([json.dumps(m) for m, _ in items[start : start + CHUNK_PAIRS]], pa.string()),
                "text": pa.array([t for _, t in items[start : start + CHUNK_PAIRS]], pa.string()),
            }
        )
        for start in range(0, len(items), CHUNK_PAIRS)
    ]
    dataset = runner.from_arrow(blocks)
    use_gpu = True  # an actor asks for a GPU only where the cluster has one
    for out in runner.map(RescoreBatches(load, batch_size), dataset, batch_rows=CHUNK_PAIRS, use_gpu=use_gpu):
        finished: dict[str, Any] = {}
        for index, s in zip(out.column("index").to_pylist(), out.column("score").to_pylist(), strict=True):
            pid, side = where[index]
            values[pid][side] = float(s) if s is not None and np.isfinite(s) else None
            waiting[pid] -= 1
            if not waiting[pid]:
                finished[pid] = values[pid]
        if finished:
            _checkpoint(store, column, fp, finished)
            done.update(finished)
    return reused, len(items)
