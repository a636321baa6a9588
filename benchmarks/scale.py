"""Scaling of seal's stages, local engine: 16,080 → 160,800 → 1,608,000 pairs (issue #14, item 5).

Each size is built from the real hh-rlhf harmless test rows (2,312 pairs), replicated, every replica made
unique: a row-specific tag ends the last human turn (so the context) and both responses, so no text repeats
and no cache or deduplication can shortcut the work. Per size, timed end to end through `seal.api`:

- `ingest`: `seal.api.ingest` of the .jsonl.gz (building the file is not timed);
- `heuristics`: `seal.api.label(store)` (the heuristics feature set, default workers);
- `imprint`: `seal.api.imprint` of an RM whose scores are synthetic (a length effect plus noise per text),
  imported with `seal.api.import_scores` (its time is reported too, not a goal stage);
- `contradictions`: `seal.api.confusing(store, ["contradictory"])` (the findings stored, as the command
  does). It needs embeddings, and embedding 1.6M pairs on a CPU is out of reach, so the vectors are
  synthetic but realistic: the real MiniLM embeddings of the 2,312 base rows (embedded once with
  `seal.api.embed`, cached in the work folder), every replica its base row's vectors plus Gaussian noise
  (σ = 0.042 per dimension: cosine ≈ 0.77 to its base row, ≈ 0.6 between replicas: related, not
  duplicates), and 0.1 % of the rows planted as contradictions of another row (its context vector, its
  responses' vectors crossed, σ = 0.002). seal has no public import path for embeddings, so they are
  written with the store's `materialize_column` (as benchmarks/confusing.py does);
- `similar`: `seal.api.similar(store, pair_id, k=10)` p50 and p95 over 50 random pairs, in-process and warm,
  with the vector index the embed stage's policy gives the size (exact below 20,000 rows, IVF-PQ above:
  built here on `emb_pair` with the policy's parameters, its build time reported);
- `neighbors`: the contradiction search's candidate step alone (`similar_pairs` on the content vectors, the
  same synthetic vectors built without a store): it also runs where the whole search needs too much memory;
- `embed` (only at `--embed-sizes`, e.g. 16080: about 5,000 CPU seconds): `seal.api.embed` of every text with the
  real MiniLM (then the synthetic vectors replace its columns, so every size searches the same kind of data).

A size that needs more disk than is free is skipped, and so is a stage that needs more memory than is
available (checked again before the contradiction search), each with a `skipped` line saying why.

`--baseline` also times ingest and heuristics with the code the speed-ups replaced (tests/reference_paths.py,
swapped in for the run) on a second store of the same rows, in the same run, at sizes up to
`--baseline-max`. `--ray` compares the heuristics stage local vs Ray at 160,800 when Ray is installed and the
stage takes an `engine`. One JSON line per figure (with the 1-minute load average next to each: the machine
is shared), then the log-log slope of each stage between successive sizes and over all of them.

    python benchmarks/scale.py [--sizes 16080,160800[,1608000]] [--work DIR] [--baseline] [--ray]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import seal  # noqa: E402
from seal import api  # noqa: E402
from seal.catalog import embeddings as EC  # noqa: E402

BASE_ROWS = 2312
SIGMA = 0.042  # per-dimension noise of a replica's vectors
TWIN_SIGMA = 0.002  # per-dimension noise of a planted contradiction
PLANTED_SHARE = 0.001
SIMILAR_QUERIES = 50
DISK_BYTES_PER_PAIR = 24_000  # source file, store (texts, labels, 4 embeddings), findings and index, measured
# peak memory per pair, with a margin: the contradiction search holds the texts, 3 embedding matrices, the content
# vectors and a sorted copy (12 kB measured); the candidate search alone the content vectors, a copy and probes
MEMORY_BYTES_PER_PAIR = {"contradictions": 16_000, "neighbors": 4_000, "similar": 3_000}
FINAL = "\n\nAssistant:"
STAGES = ("ingest", "heuristics", "imprint", "contradictions", "similar", "neighbors")


def emit(**fields: Any) -> dict[str, Any]:
    line = {"benchmark": "scale", **fields, "load_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(line), flush=True)
    return line


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the VADER pool's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """fn's result, wall seconds and CPU seconds (this process and its children)."""
    cpu, wall = _cpu(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - wall, _cpu() - cpu


# -- data ---------------------------------------------------------------------------------------------------
def tagged(text: str, tag: str) -> str:
    """The transcript with `tag` at the end of its last human turn (before the final Assistant marker) and
    of its final response: the context and the response both become unique."""
    cut = text.rfind(FINAL)
    return f"{text[:cut]} {tag}{text[cut:]} {tag}"


def build_source(base: list[dict[str, Any]], pairs: int, path: Path) -> None:
    """`pairs` rows: replica r of base row i carries the tag [r.i] (replica 0 too)."""
    with gzip.open(path, "wt", compresslevel=1) as handle:
        for k in range(pairs):
            r, i = divmod(k, len(base))
            tag = f"[{r}.{i}]"
            row = base[i]
            handle.write(json.dumps({"chosen": tagged(row["chosen"], tag), "rejected": tagged(row["rejected"], tag)}))
            handle.write("\n")


def base_embeddings(work: Path, base: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """MiniLM vectors (context, chosen, rejected) of the base rows as replica 0 tags them, cached in `work`."""
    cache = work / "base-embeddings.npz"
    if cache.exists():
        return dict(np.load(cache))
    folder = work / "base"
    build_source(base, len(base), folder.with_suffix(".jsonl.gz"))
    store = seal.open_store(folder)
    api.ingest(store, str(folder.with_suffix(".jsonl.gz")), name="base")
    _, wall, cpu = timed(lambda: api.embed(store, fields="context,chosen,rejected", index=False))
    emit(figure="embed_base", pairs=len(base), seconds=round(wall, 1), cpu_seconds=round(cpu, 1))
    table = store.read(["source_index", *(EC.emb_column(f) for f in EC.TEXT_FIELDS)])
    order = np.argsort(table.column("source_index").to_numpy())
    mats = {f: EC.vector_matrix(table.column(EC.emb_column(f)))[0][order] for f in EC.TEXT_FIELDS}
    np.savez(cache, **mats)
    shutil.rmtree(folder, ignore_errors=True)
    return mats


def synthetic_embeddings(
    store: seal.Store, base: dict[str, np.ndarray], fields: tuple[str, ...] = EC.FIELDS, seed: int = 0
) -> list[tuple[int, int]]:
    """Write the emb_<field> columns of `fields` for every row of `store` (see the module docstring), built
    200,000 rows at a time (only the written columns are kept whole); returns the planted contradictions (row,
    twin row: both in one block)."""
    ids = store.read(["pair_id", "source_index"])
    n = ids.num_rows
    pair_ids = ids.column("pair_id").take(pa.array(np.argsort(ids.column("source_index").to_numpy())))
    rng = np.random.default_rng(seed)
    dim = base["context"].shape[1]
    out = {f: np.empty((n, dim), dtype=np.float32) for f in fields}
    twins: list[tuple[int, int]] = []
    for lo in range(0, n, 200_000):
        rows = np.arange(lo, min(n, lo + 200_000))
        src = rows % len(base["context"])
        block = {}
        for f in EC.TEXT_FIELDS:
            m = base[f][src] + SIGMA * rng.standard_normal((len(rows), dim), dtype=np.float32)
            first = rows < len(base[f])  # the first replica keeps the real vectors
            m[first] = base[f][src[first]]
            block[f] = EC.normalize_rows(m).astype(np.float32)
        planted = max(1, int(len(rows) * PLANTED_SHARE))
        picks = rng.choice(len(rows), size=2 * planted, replace=False)
        one, two = picks[:planted], picks[planted:]
        for f, other in (("context", "context"), ("chosen", "rejected"), ("rejected", "chosen")):
            noisy = block[other][one] + TWIN_SIGMA * rng.standard_normal((planted, dim), dtype=np.float32)
            block[f][two] = EC.normalize_rows(noisy)
        twins += list(zip((lo + one).tolist(), (lo + two).tolist(), strict=True))
        block["pair"] = EC.pair_vectors(block["context"], block["chosen"], block["rejected"]).astype(np.float32)
        for f in fields:
            out[f][rows] = block[f]
    for f in fields:
        col = EC.emb_column(f)
        store.materialize_column(col, pa.table({"pair_id": pair_ids, col: EC.vectors_array(out.pop(f))}))
    return twins


def synthetic_scores(store: seal.Store, path: Path, seed: int = 0) -> Path:
    """An RM's scores: 0.004 per character of the response plus N(0, 1) noise, per text."""
    table = store.read(["pair_id", "chosen", "rejected"])
    rng = np.random.default_rng(seed)
    cols = {"pair_id": table.column("pair_id")}
    for side in ("chosen", "rejected"):
        length = np.array([len(t or "") for t in table.column(side).to_pylist()], dtype=np.float64)
        cols[side] = pa.array(0.004 * length + rng.standard_normal(len(length)))
    pq.write_table(pa.table(cols), path)
    return path


# -- the reference (pre-speed-up) code paths ---------------------------------------------------------------
@contextmanager
def reference_paths() -> Iterator[None]:
    """Swap in the ingest and heuristics code that the speed-ups replaced (tests/reference_paths.py)."""
    import reference_paths as R

    from seal.annotate.features import heuristic_tools as HT
    from seal.annotate.features import heuristics as H
    from seal.ingest import core, readers

    saved = (core.adapt_all, readers._open_binary, HT.FAST_VADER, H.count_tokens)
    core.adapt_all, readers._open_binary, HT.FAST_VADER, H.count_tokens = (
        R.adapt_all_decoding,
        R.open_binary,
        False,
        R.count_tokens,
    )
    try:
        yield
    finally:
        core.adapt_all, readers._open_binary, HT.FAST_VADER, H.count_tokens = saved


# -- stages ----------------------------------------------------------------------------------------------------
def run_size(n: int, args: argparse.Namespace, base_rows: list[dict[str, Any]], work: Path) -> list[dict]:
    out: list[dict] = []
    folder = work / f"n{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    source = folder / "pairs.jsonl.gz"
    _, wall, _ = timed(lambda: build_source(base_rows, n, source))
    emit(figure="source", pairs=n, seconds=round(wall, 1), bytes=source.stat().st_size)
    store = seal.open_store(folder / "store")
    baseline = args.baseline and n <= args.baseline_max
    stages = set(args.stages)

    result, wall, cpu = timed(lambda: api.ingest(store, str(source), name="scale"))
    assert result.ingested == n, result.to_json()
    out.append(emit(figure="ingest", impl="seal", pairs=n, seconds=round(wall, 2), cpu_seconds=round(cpu, 2)))
    ref_store = seal.open_store(folder / "reference-store")
    if baseline:
        with reference_paths():
            _, wall, cpu = timed(lambda: api.ingest(ref_store, str(source), name="scale"))
        out.append(emit(figure="ingest", impl="reference", pairs=n, seconds=round(wall, 2), cpu_seconds=round(cpu, 2)))
    if "heuristics" in stages or "imprint" in stages:
        result, wall, cpu = timed(lambda: api.label(store))
        out.append(emit(figure="heuristics", impl="seal", pairs=n, seconds=round(wall, 2), cpu_seconds=round(cpu, 2)))
        if baseline:
            with reference_paths():
                _, wall, cpu = timed(lambda: api.label(ref_store))
            out.append(
                emit(figure="heuristics", impl="reference", pairs=n, seconds=round(wall, 2), cpu_seconds=round(cpu, 2))
            )
    shutil.rmtree(folder / "reference-store", ignore_errors=True)
    if args.ray and n == 160_800:
        out.append(ray_comparison(n, source, folder))
    if "imprint" in stages:
        scores = synthetic_scores(store, folder / "scores.parquet")
        _, wall, cpu = timed(lambda: api.import_scores(store, str(scores), "synthetic", role="aligned"))
        emit(figure="import_scores", pairs=n, seconds=round(wall, 2), cpu_seconds=round(cpu, 2))
        result, wall, cpu = timed(lambda: api.imprint(store, "synthetic"))
        fit = result.regressions[0] if result.regressions else None
        out.append(
            emit(
                figure="imprint",
                impl="seal",
                pairs=n,
                seconds=round(wall, 2),
                cpu_seconds=round(cpu, 2),
                regressions=len(result.regressions),
                rows=fit.n if fit else 0,
                features=len(fit.coefficients) if fit else 0,
                level=result.level,
                cov=result.cov,
            )
        )
    if n in args.embed_sizes:
        result, wall, cpu = timed(lambda: api.embed(store, fields="context,chosen,rejected,pair", index=False))
        emit(
            figure="embed",
            pairs=n,
            texts_encoded=result.texts_encoded,
            texts_per_second=result.texts_per_second,
            seconds=round(wall, 1),
            cpu_seconds=round(cpu, 1),
        )
    if "contradictions" in stages and not check_room(n, work, ["contradictions"])[1]:
        stages.discard("contradictions")  # memory is checked again here: it shrinks as a long run goes on
    if {"contradictions", "similar"} & stages:
        base = base_embeddings(work, base_rows)
        fields = EC.FIELDS if "contradictions" in stages else ("pair",)
        twins, wall, _ = timed(lambda: synthetic_embeddings(store, base, fields))
        emit(
            figure="write_embeddings",
            pairs=n,
            fields=list(fields),
            seconds=round(wall, 1),
            note="synthetic, store.materialize_column",
        )
    if "contradictions" in stages:
        result, wall, cpu = timed(lambda: api.confusing(store, ["contradictory"], limit=0))
        ids = store.read(["pair_id", "source_index"])
        pos = dict(zip(ids.column("pair_id").to_pylist(), ids.column("source_index").to_pylist(), strict=True))
        stored = api.findings(store, "contradictory")
        found = {tuple(sorted((pos[c["pair_id"]], pos[c["other_pair_id"]]))) for c in stored}
        recall = sum(tuple(sorted(t)) in found for t in twins) / len(twins)
        out.append(
            emit(
                figure="contradictions",
                impl="seal",
                pairs=n,
                seconds=round(wall, 2),
                cpu_seconds=round(cpu, 2),
                timings=result.timings,
                candidates=result.counts.get("candidates_checked"),
                contradictions=result.counts.get("contradictory"),
                planted=len(twins),
                planted_recall=round(recall, 4),
            )
        )
    if "similar" in stages:
        out.append(similar_latency(store, n))
    shutil.rmtree(folder, ignore_errors=True)
    if "neighbors" in stages:
        out.append(neighbor_search(n, base_embeddings(work, base_rows)))
    return out


def neighbor_search(n: int, base: dict[str, np.ndarray], seed: int = 0) -> dict[str, Any]:
    """The contradiction search's candidate step alone (seal.analysis.neighbors.similar_pairs on the content
    vectors, at the search's threshold), on the synthetic vectors of n pairs built without a store: its
    memory is one n × 384 matrix, so it also runs where the whole search would not fit."""
    from seal.analysis.near_duplicates import CANDIDATE_MARGIN
    from seal.analysis.neighbors import similar_pairs

    rng = np.random.default_rng(seed)
    src = np.arange(n) % len(base["context"])
    content = np.zeros((n, base["context"].shape[1]), dtype=np.float32)
    for f in EC.TEXT_FIELDS:
        for lo in range(0, n, 200_000):
            part = base[f][src[lo : lo + 200_000]]
            part = part + SIGMA * rng.standard_normal(part.shape, dtype=np.float32)
            part[: max(0, len(base[f]) - lo)] = base[f][lo : lo + len(part)]
            content[lo : lo + len(part)] += EC.normalize_rows(part)
    content = EC.normalize_rows(content).astype(np.float32)
    (i, _j, _s), wall, cpu = timed(lambda: similar_pairs(content, 0.9 - CANDIDATE_MARGIN))
    return emit(
        figure="neighbors", impl="seal", pairs=n, seconds=round(wall, 2), cpu_seconds=round(cpu, 2), edges=len(i)
    )


def similar_latency(store: seal.Store, n: int) -> dict[str, Any]:
    from seal.annotate.embed_indexes import INDEX_THRESHOLD, IVF_ITERATIONS, IVF_SAMPLE_RATE, ivf_pq_params

    index, build = "exact", 0.0
    if n >= INDEX_THRESHOLD:
        params = ivf_pq_params(n, store.schema().field("emb_pair").type.list_size)
        _, build, _ = timed(
            lambda: store.build_vector_index(
                "emb_pair", **params, max_iterations=IVF_ITERATIONS, sample_rate=IVF_SAMPLE_RATE
            )
        )
        index = f"ivf_pq {params}"
    store.build_scalar_index("pair_id")
    ids = store.read(["pair_id"]).column("pair_id").to_pylist()
    rng = np.random.default_rng(3)
    picks = [ids[i] for i in rng.choice(len(ids), size=SIMILAR_QUERIES, replace=False)]
    api.similar(store, picks[0], k=10)  # warm: the dataset, its index and the B-tree opened once
    times = []
    for pid in picks:
        t0 = time.perf_counter()
        api.similar(store, pid, k=10)
        times.append(time.perf_counter() - t0)
    return emit(
        figure="similar",
        impl="seal",
        pairs=n,
        seconds=round(float(np.median(times)), 4),
        p50_ms=round(1000 * float(np.median(times)), 2),
        p95_ms=round(1000 * float(np.percentile(times, 95)), 2),
        index=index,
        index_build_seconds=round(build, 1),
    )


def ray_comparison(n: int, source: Path, folder: Path) -> dict[str, Any]:
    """The heuristics stage on the same rows, local then Ray, when Ray is installed and the stage takes an
    `engine` (issue #14 expects parity on one machine)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return emit(figure="ray_vs_local", pairs=n, status="not run", reason="ray is not installed")
    times = {}
    for engine in ("local", "ray"):
        store = seal.open_store(folder / f"store-{engine}")
        api.ingest(store, str(source), name="scale")
        try:
            _, wall, cpu = timed(lambda store=store, engine=engine: api.label(store, engine=engine))
        except TypeError as err:
            shutil.rmtree(folder / f"store-{engine}", ignore_errors=True)
            return emit(figure="ray_vs_local", pairs=n, status="not run", reason=f"label takes no engine: {err}")
        times[engine] = (round(wall, 2), round(cpu, 2))
        shutil.rmtree(folder / f"store-{engine}", ignore_errors=True)
    return emit(
        figure="ray_vs_local",
        stage="heuristics",
        pairs=n,
        local_seconds=times["local"][0],
        ray_seconds=times["ray"][0],
        ratio=round(times["ray"][0] / times["local"][0], 2),
    )


def warm_up(args: argparse.Namespace, base_rows: list[dict[str, Any]], work: Path) -> None:
    """Every stage once on 500 pairs, unreported: imports and one-time set-up (LanceDB, the tokenizer, the VADER
    lexicon) would otherwise count against the first size."""
    quiet = argparse.Namespace(**{**vars(args), "baseline": False, "ray": False, "embed_sizes": set()})
    global emit
    shown, emit = emit, lambda **fields: fields  # type: ignore[assignment]
    try:
        run_size(500, quiet, base_rows, work)
    finally:
        emit = shown


# -- slopes ----------------------------------------------------------------------------------------------------
GOALS = {"ingest": 1.1, "heuristics": 1.1, "imprint": 1.1, "contradictions": 1.1, "neighbors": 1.1, "similar": 0.3}


def slopes(figures: list[dict[str, Any]]) -> None:
    """The log-log slope of each stage's seconds against pairs: between successive sizes and a least-squares
    fit over all sizes."""
    for stage, goal in GOALS.items():
        points = sorted((f["pairs"], f["seconds"]) for f in figures if f["figure"] == stage and f.get("impl") == "seal")
        if len(points) < 2:
            continue
        x, y = np.log([p[0] for p in points]), np.log([max(p[1], 1e-6) for p in points])
        steps = [round(float((y[i + 1] - y[i]) / (x[i + 1] - x[i])), 3) for i in range(len(points) - 1)]
        fit = float(np.polyfit(x, y, 1)[0])
        emit(
            figure="slope",
            stage=stage,
            sizes=[p[0] for p in points],
            seconds=[p[1] for p in points],
            slope_steps=steps,
            slope=round(fit, 3),
            goal_max=goal,
            met=bool(fit <= goal),
        )


def check_room(n: int, work: Path, stages: list[str]) -> tuple[str | None, list[str]]:
    """Why size n cannot run here at all (disk), or None; and the stages that fit in memory."""
    free = shutil.disk_usage(work).free
    if free < n * DISK_BYTES_PER_PAIR:
        return f"needs ~{n * DISK_BYTES_PER_PAIR / 1e9:.0f} GB of disk, {free / 1e9:.0f} GB free in {work}", []
    available = _available_memory()
    kept = []
    for stage in stages:
        need = n * MEMORY_BYTES_PER_PAIR.get(stage, 0)
        if available is not None and need > available:
            emit(
                figure="skipped",
                stage=stage,
                pairs=n,
                reason=f"needs ~{need / 1e9:.0f} GB of memory, {available / 1e9:.0f} GB available",
            )
        else:
            kept.append(stage)
    return None, kept


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16080,160800", help="pair counts, comma-separated (1608000 optional)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"some of {','.join(STAGES)}")
    parser.add_argument("--embed-sizes", default="", help="sizes at which all texts are embedded (MiniLM; slow)")
    parser.add_argument("--baseline", action="store_true", help="also time the pre-speed-up ingest and heuristics")
    parser.add_argument("--baseline-max", type=int, default=160_800, help="largest size with a baseline")
    parser.add_argument("--ray", action="store_true", help="heuristics local vs Ray at 160,800 (if installed)")
    parser.add_argument("--work", help="folder for the stores (default: temporary); sizes' removed after")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.embed_sizes = {int(s) for s in args.embed_sizes.split(",") if s.strip()}
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        sys.exit(f"unknown stage(s) {', '.join(unknown)}: use {', '.join(STAGES)}")
    source = Path(args.data) / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    if not source.exists():
        sys.exit(f"missing {source}")
    with gzip.open(source, "rt") as handle:
        base_rows = [json.loads(line) for line in handle]
    emit(figure="machine", cpus=os.cpu_count(), python=sys.version.split()[0], argv=sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)  # --work keeps the base embeddings' cache between runs
        work.mkdir(parents=True, exist_ok=True)
        warm_up(args, base_rows, work)
        figures: list[dict[str, Any]] = []
        for n in args.sizes:
            why, stages = check_room(n, work, args.stages)
            if why:
                emit(figure="skipped", pairs=n, reason=why)
                continue
            figures += run_size(n, argparse.Namespace(**{**vars(args), "stages": stages}), base_rows, work)
        slopes(figures)


if __name__ == "__main__":
    main()
