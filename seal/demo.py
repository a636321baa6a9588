"""`seal demo`: the main job on the shipped demo data, offline, in a few minutes on a laptop CPU.

Under one folder (default ./seal-demo): a store with a seeded slice of hh-rlhf harmless-base test pairs and a
few planted confusing pairs (seal/data/demo/README.md); two probe reward models trained on its preferences (an
aligned one reading three MiniLM layers, on 80 % of the hh pairs; a weaker control reading one layer, on 20 %
with a stronger L2), both scored through the ordinary scorer; heuristic labels; embeddings; two rule
perturbations re-scored by both probes; then resistance (agreement, regimes), imprint, robustness, confusing
entries (stored as findings) and the HTML report. With an OpenAI-compatible endpoint configured in the
environment it also runs the LLM labeler and rewriter on a small sample. Every stage is the Python API verb a
user would call; a rerun on the same folder resumes (each stage does only what is missing) and `force` starts
over.

The demo is a client of the public Python API: it calls the verbs as `seal.<verb>` (`import seal`), as a
notebook would, so `seal.api.demo` can delegate here without an import cycle. It imports nothing heavy at
import time (`seal/__init__` loads it to keep `seal.demo` the verb).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data" / "demo"
SLICE = DATA_DIR / "hh-harmless-test-300.jsonl.gz"
PLANTED = DATA_DIR / "planted.jsonl"
DATASET, PLANTED_DATASET = "hh-harmless", "demo-planted"
SLICE_PAIRS = 300
MIN_PAIRS = 40  # the control probe trains on 20 % of the pairs: 8 at least
MARKER = "seal-demo.json"  # marks a demo folder (so --force may clear it) and holds the last run's figures
ALIGNED, CONTROL = "probe_aligned", "probe_control"
# The aligned probe reads three encoder layers and learns from 80 % of the hh pairs; the control, a weaker base,
# reads the first layer only and learns from 20 % (a subset of the aligned probe's: the splits are nested) with a
# stronger L2. Over 10 seeded splits of the 300 pairs: about 0.59 against 0.55 held-out agreement.
PROBES = {
    ALIGNED: {"role": "aligned", "split": "train:0.8", "l2": 1.0, "layers": 3},
    CONTROL: {"role": "control", "split": "train:0.2", "l2": 10.0, "layers": 1},
}
PROBE_EPOCHS = 200
PROBE_SEED = 0
# Cheap rule rewrites that keep the meaning, each on a seeded sample of pairs, re-scored by both probes.
PERTURBATIONS = (("typos", "typos:rate=0.05"), ("filler", "filler:rate=0.3"))
PERTURB_SAMPLE = 50
EMBED_MAX_TOKENS = 128  # the embeddings find near-duplicates and clusters; 128 tokens do that at half the cost
LLM_LABEL_SAMPLE, LLM_PERTURB_SAMPLE = 12, 8
LLM_MODEL_ENV = "SEAL_LLM_MODEL"
# Seconds per LLM request. A one-slot local server (llama.cpp on a CPU) answers 4 concurrent requests one after
# another, ~12 s each for SmolLM2-135M on 2 cores: at the usual 60 s the queued ones time out and are sent again
# while the server still works on them (725 s instead of ~300 s for the 12 pairs, measured).
LLM_TIMEOUT_S = 600.0
# The labeler's preference γ (METHOD.md) needs target features on every pair. Offline, the demo takes them from
# the heuristic labels: refusal and apology phrases, proxies for harmlessness on hh-rlhf harmless-base. (The
# SEAL taxonomy's harmless/helpful come from the LLM labeler, which labels only a sample here.)
GAMMA_FEATURES = ("is_refusal", "has_apology")
PLANTED_KINDS = {"identical": "identical", "near-identical": "near_identical", "contradictory": "contradictory"}

Say = Callable[[str], None]


@dataclass
class DemoResult:
    """What `seal demo` made and measured; `to_json()` is the shape in schemas/cli/demo.schema.json."""

    out: str
    store: str
    report: str | None
    report_note: str | None
    report_sections: dict[str, str]
    status: str  # done | resumed
    pairs: dict[str, int]
    probes: dict[str, dict[str, Any]]
    agreement: dict[str, dict[str, Any]]
    regimes: dict[str, Any] | None
    gamma: dict[str, Any]
    imprint: dict[str, list[dict[str, Any]]]
    robustness: list[dict[str, Any]]
    confusing: dict[str, Any]
    llm: dict[str, Any]
    analyses: dict[str, str]
    next: list[str]
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per stage
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # CPU seconds per stage (all threads)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Stages:
    """Runs named stages, timing each and saying on stderr (via `say`) what happens."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.timings: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, name: str, what: str, func: Callable[[], Any]) -> Any:
        self.say(f"[{name}] {what}")
        t0, c0 = time.perf_counter(), time.process_time()
        value = func()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 2)
        self.cpu[name] = round(self.cpu.get(name, 0.0) + cpu, 2)
        self.say(f"[{name}] done in {seconds:.1f}s (CPU {cpu:.1f}s)")
        return value


def _prepare(out: Path, options: Mapping[str, Any], force: bool) -> str:
    """Make `out` ready: new, resumed (same options) or cleared (`force`, only if it is a demo folder)."""
    from seal.errors import SealError

    marker = out / MARKER
    if out.exists() and not out.is_dir():
        raise SealError(f"{out} is a file", hint="choose another --out")
    occupied = out.is_dir() and any(out.iterdir())
    if occupied and not marker.is_file():
        raise SealError(
            f"{out} is not empty and is not a seal demo folder", hint="choose another --out (an empty or new folder)"
        )
    if occupied and force:
        shutil.rmtree(out)
        occupied = False
    if occupied:
        previous = json.loads(marker.read_text()).get("options") or {}
        if previous != dict(options):
            raise SealError(
                f"{out} holds a demo run with other options ({previous})",
                hint="pass --force to start over, or choose another --out",
            )
    out.mkdir(parents=True, exist_ok=True)
    status = "resumed" if occupied else "done"
    if not occupied:
        marker.write_text(json.dumps({"options": dict(options), "status": "running"}, indent=2) + "\n")
    return status


def run_demo(
    out: str | os.PathLike[str] = "seal-demo",
    *,
    pairs: int | None = None,
    force: bool = False,
    llm: bool | None = None,
    llm_model: str | None = None,
    perturb_sample: int = PERTURB_SAMPLE,
    llm_samples: tuple[int, int] = (LLM_LABEL_SAMPLE, LLM_PERTURB_SAMPLE),
    environment: Mapping[str, str] | None = None,
    progress: Say | None = None,
) -> DemoResult:
    """Run the demo into folder `out` (see the module docstring). `pairs`: use only the first N pairs of the
    shipped slice (a seeded sample; default all 300); `llm`: run the LLM labeler and rewriter (None: when an
    OpenAI-compatible endpoint is configured in `environment`, default os.environ); `llm_model`: the model
    (default $SEAL_LLM_MODEL, else the endpoint's first model); `llm_samples`: pairs the LLM labels and
    rewrites; `perturb_sample`: pairs each rule perturbation rewrites."""
    import seal
    from seal.errors import SealError

    t_start = time.perf_counter()
    say = progress or (lambda _msg: None)
    if pairs is not None and not MIN_PAIRS <= int(pairs) <= SLICE_PAIRS:
        raise SealError(f"--pairs {pairs} is out of range", hint=f"use {MIN_PAIRS}..{SLICE_PAIRS}")
    root = Path(out).expanduser().resolve()
    status = _prepare(root, {"pairs": pairs, "perturb_sample": perturb_sample}, force)
    store = seal.open_store(root / "store")
    stages = _Stages(say)

    def ingest() -> dict[str, int]:
        slice_ = seal.ingest(store, str(SLICE), name=DATASET, limit=pairs)
        planted = seal.ingest(store, str(PLANTED), name=PLANTED_DATASET)
        return {
            DATASET: slice_.ingested + slice_.already_present,
            PLANTED_DATASET: planted.ingested + planted.already_present,
        }

    counts = stages.run("ingest", f"{SLICE.name} ({pairs or SLICE_PAIRS} pairs) and {PLANTED.name}", ingest)

    probes = _probes(seal, store, root, stages)

    stages.run("label", "heuristic features of every response", lambda: seal.label(store))
    stages.run(
        "embed",
        f"contexts and responses (all-MiniLM-L6-v2, {EMBED_MAX_TOKENS} tokens)",
        lambda: seal.embed(store, max_seq_length=EMBED_MAX_TOKENS),
    )
    for name, method in PERTURBATIONS:
        stages.run(
            f"perturb {name}",
            f"{method} on {perturb_sample} pairs, re-scored by both probes",
            lambda name=name, method=method: seal.perturb(
                store, method, name=name, sample=perturb_sample, seed=0, label_sets=("heuristics",)
            ),
        )

    env = os.environ if environment is None else environment
    llm_info = _llm_stages(store, stages, llm, llm_model, env, llm_samples)

    analyses_dir = root / "analyses"
    analyses_dir.mkdir(exist_ok=True)
    saved: dict[str, str] = {}

    def save(name: str, value: Any) -> Any:
        path = analyses_dir / f"{name}.json"
        from seal.render import dumps

        path.write_text(dumps(value.to_json(), pretty=True) + "\n")
        saved[name] = str(path)
        return value

    resistance = stages.run(
        "resistance",
        "agreement, regimes and the reward-vector shift",
        lambda: save("resistance", seal.resistance(store, ALIGNED, CONTROL)),
    )
    gamma = stages.run(
        "labeler regime",
        f"regimes by the labeler's preference γ from {', '.join(GAMMA_FEATURES)}",
        lambda: save("labeler-regime", seal.labeler_regime(store, ALIGNED, CONTROL, list(GAMMA_FEATURES))),
    )
    imprints = {
        alias: stages.run(
            f"imprint {alias}",
            "which heuristic features the probe rewards (every pair has them; the LLM labels only a sample)",
            lambda alias=alias: save(f"imprint-{alias}", seal.imprint(store, alias, features=["heuristics"])),
        )
        for alias in PROBES
    }
    robustness = stages.run(
        "robustness", "agreement before and after the rewrites", lambda: save("robustness", seal.robustness(store))
    )
    confusing = stages.run(
        "confusing",
        "identical, near-identical, duplicate and contradictory pairs, clusters (stored as findings)",
        lambda: save("confusing", seal.confusing(store, save=True) or seal.confusing(store, save=False)),
    )
    report_path, report_note, sections = stages.run("report", "the HTML report", lambda: _report(seal, store, root))

    result = DemoResult(
        out=str(root),
        store=str(store.path),
        report=report_path,
        report_note=report_note,
        report_sections=sections,
        status=status,
        pairs=counts,
        probes=probes,
        agreement=_agreement(resistance.to_json()),
        regimes=resistance.to_json().get("regimes"),
        gamma=_gamma_summary(gamma.to_json()),
        imprint={alias: _imprint_rows(fit.to_json()) for alias, fit in imprints.items()},
        robustness=_robustness_rows(robustness.to_json()),
        confusing=_confusing_summary(confusing.to_json(), seal.findings(store), store),
        llm=llm_info,
        analyses=saved,
        next=next_commands(store.path),
        timings=stages.timings,
        cpu_seconds=stages.cpu,
        seconds=round(time.perf_counter() - t_start, 2),
    )
    (root / MARKER).write_text(
        json.dumps(
            {
                "options": {"pairs": pairs, "perturb_sample": perturb_sample},
                "status": "done",
                "result": result.to_json(),
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    return result


def _probes(seal: Any, store: Any, root: Path, stages: _Stages) -> dict[str, dict[str, Any]]:
    """Train both probes (up to date on a rerun), score every pair with each through the ordinary scorer, and
    check the stored scores of each probe's held-out pairs against its own rewards."""
    probes: dict[str, dict[str, Any]] = {}
    trained_probes: dict[str, Any] = {}
    for alias, recipe in PROBES.items():
        folder = root / "probes" / alias
        trained = stages.run(
            f"train {alias}",
            f"Bradley-Terry probe, {recipe['layers']} encoder layer(s), on {recipe['split']} of the {DATASET} pairs, "
            f"L2 {recipe['l2']}",
            lambda folder=folder, recipe=recipe: seal.train_probe(
                store,
                folder,
                where=f"dataset = '{DATASET}'",
                split=recipe["split"],
                seed=PROBE_SEED,
                l2=recipe["l2"],
                layers=recipe["layers"],
                epochs=PROBE_EPOCHS,
                check=False,  # the demo checks every held-out pair once scored (below)
            ),
        )
        trained_probes[alias] = trained
        probes[alias] = {
            "path": trained.path,
            "role": recipe["role"],
            "status": trained.status,
            "pairs_train": trained.pairs_train,
            "pairs_heldout": trained.pairs_heldout,
            "train": trained.train,
            "heldout": trained.heldout,
            "l2": recipe["l2"],
            "layers": recipe["layers"],
        }
        stages.say(f"[train {alias}] {trained.summary()}")
    for alias, info in probes.items():
        stages.run(
            f"score {alias}",
            "every pair, through the ordinary scorer",
            lambda alias=alias, info=info: seal.score(store, info["path"], alias=alias, role=info["role"]),
        )
        info["scorer_check"] = scorer_check(store, alias, trained_probes[alias])

    return probes


def scorer_check(store: Any, alias: str, trained: Any) -> dict[str, Any]:
    """The stored scores of the probe's held-out pairs against the probe's own rewards: the largest difference."""
    import numpy as np

    rows = store.read(["pair_id", f"score_{alias}"]).to_pylist()
    stored = {r["pair_id"]: r[f"score_{alias}"] for r in rows}
    chosen = np.array([stored[i]["chosen"] for i in trained.heldout_ids], dtype=np.float64)
    rejected = np.array([stored[i]["rejected"] for i in trained.heldout_ids], dtype=np.float64)
    diff = np.concatenate([np.abs(chosen - trained.heldout_chosen), np.abs(rejected - trained.heldout_rejected)])
    return {"pairs": len(trained.heldout_ids), "max_abs_diff": float(diff.max()) if len(diff) else 0.0}


def _report(seal: Any, store: Any, root: Path) -> tuple[str | None, str | None, dict[str, str]]:
    """The HTML report and each section's status, or why there is none (the verb may be missing)."""
    report = getattr(seal, "report", None)
    if report is None:
        return None, "this seal has no HTML report yet (seal.api.report is missing)", {}
    made = report(
        store, out=str(root / "report.html"), model=ALIGNED, control=CONTROL, gamma_features=list(GAMMA_FEATURES)
    )
    sections = {str(s["name"]): str(s["status"]) for s in made.get("sections") or []}
    return str(made["path"]), None, sections


def next_commands(store: Path | str) -> list[str]:
    """Three commands to try next on the demo store (each a real command; the tests run them)."""
    prefix = f"seal --store {store}"
    return [
        f"{prefix} resistance --model {ALIGNED} --control {CONTROL} --by dataset",
        f"{prefix} findings --kind contradictory",
        f'{prefix} query --where "score_{ALIGNED}.chosen < score_{ALIGNED}.rejected" '
        "--select pair_id,chosen,rejected --limit 5",
    ]


# -- figures --------------------------------------------------------------------------------------
def _agreement(resistance: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for alias, value in (resistance.get("agreement") or {}).items():
        share = value.get("agreement") or {}
        out[alias] = {
            "agreement": share.get("share"),
            "low": share.get("ci_low"),
            "high": share.get("ci_high"),
            "decided": value.get("decided"),
            "ties": value.get("ties"),
        }
    return out


def _gamma_summary(table: Mapping[str, Any]) -> dict[str, Any]:
    """Per value of γ (c: the labeler prefers chosen, r: rejected, i: indifferent; all): pairs and each RM's
    agreement."""
    rows = {}
    for row in table.get("rows") or []:
        rows[row["gamma"]] = {
            "meaning": row.get("meaning"),
            "n": row.get("n"),
            "agreement_model": (row.get("agreement_model") or {}).get("share"),
            "agreement_control": (row.get("agreement_control") or {}).get("share"),
        }
    return {"features": list(table.get("features") or []), "pairs": table.get("n_pairs"), "rows": rows}


def _imprint_rows(imprint: Mapping[str, Any], top: int = 5) -> list[dict[str, Any]]:
    """The `top` feature coefficients with the largest |t|: feature, role (target or spoiler), beta, CI, p."""
    rows = []
    for regression in imprint.get("regressions") or []:
        for coef in regression.get("coefficients") or []:
            if coef.get("feature") is None or coef.get("beta") is None or coef.get("t") is None:
                continue
            rows.append(
                {
                    "feature": coef["feature"],
                    "role": coef.get("role"),
                    "beta": coef["beta"],
                    "ci_low": coef.get("ci_low"),
                    "ci_high": coef.get("ci_high"),
                    "p": coef.get("p"),
                    "p_adj": coef.get("p_adj"),
                    "t": coef["t"],
                }
            )
    rows.sort(key=lambda r: -abs(float(r["t"])))
    return rows[:top]


def _robustness_rows(robustness: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per RM and rewrite: agreement before and after, the flips, the reward correlation."""
    rows = []
    for entry in robustness.get("results") or []:
        agreement = entry.get("agreement") or {}
        flips = entry.get("flips") or {}
        before = (agreement.get("before") or {}).get("agreement") or {}
        after = (agreement.get("after") or {}).get("agreement") or {}
        rows.append(
            {
                "model": entry.get("model"),
                "method": entry.get("method"),
                "status": entry.get("status"),
                "pairs": (entry.get("coverage") or {}).get("included"),
                "agreement_before": before.get("share"),
                "agreement_after": after.get("share"),
                "became_misaligned": flips.get("became_misaligned"),
                "became_aligned": flips.get("became_aligned"),
                "mcnemar_p": (flips.get("mcnemar") or {}).get("pvalue"),
                "pearson": (entry.get("reward") or {}).get("pearson"),
            }
        )
    return rows


def _confusing_summary(confusing: Mapping[str, Any], findings: list[dict[str, Any]], store: Any) -> dict[str, Any]:
    """Counts per kind, and which planted pairs were found (by the planted kind of seal/data/demo)."""
    planted = store.read(["pair_id", "source_index"], f"dataset = '{PLANTED_DATASET}'").to_pylist()
    lines = [json.loads(line) for line in PLANTED.read_text().splitlines() if line.strip()]
    kind_of = {r["pair_id"]: lines[r["source_index"]].get("planted") for r in planted}
    found: dict[str, dict[str, int]] = {}
    for kind in sorted(set(kind_of.values()) - {None}):
        ids = {pid for pid, k in kind_of.items() if k == kind}
        wanted = "contradictory" if kind == "opposite-duplicate" else PLANTED_KINDS.get(kind, kind)
        hit = {f["pair_id"] for f in findings if f["kind"] == wanted and f["pair_id"] in ids}
        hit |= {f.get("other_pair_id") for f in findings if f["kind"] == wanted and f.get("other_pair_id") in ids}
        found[kind] = {"planted": len(ids), "found": len(hit & ids)}
    return {"counts": dict(confusing.get("counts") or {}), "planted": found}


# -- the LLM labeler and rewriter, when an endpoint is configured ------------------------------------
def llm_settings(environment: Mapping[str, str], model: str | None) -> dict[str, Any] | None:
    """The endpoint the environment configures (OPENAI_BASE_URL and/or OPENAI_API_KEY), or None."""
    base_url = environment.get("OPENAI_BASE_URL") or None
    if base_url is None and not environment.get("OPENAI_API_KEY"):
        return None
    return {"base_url": base_url, "model": model or environment.get(LLM_MODEL_ENV) or None}


def _endpoint_model(base_url: str | None) -> str:
    """The model to use when none is named: gpt-4o-mini on the default endpoint, else the server's first."""
    from seal.engines.llm.client import run_sync
    from seal.engines.llm.endpoint import DEFAULT_BASE_URL, LLMEndpoint

    if base_url is None or base_url.rstrip("/") == DEFAULT_BASE_URL:
        return "gpt-4o-mini"
    endpoint = LLMEndpoint(model="?", base_url=base_url, max_retries=1, timeout=10.0)

    async def first() -> str:
        async with endpoint.client(endpoint.api_key()) as client:
            listing = await client.request_json("GET", "/models")
        return str(listing["data"][0]["id"])

    return run_sync(first())


def _llm_stages(
    store: Any,
    stages: _Stages,
    wanted: bool | None,
    model: str | None,
    env: Mapping[str, str],
    samples: tuple[int, int],
) -> dict[str, Any]:
    import seal
    from seal.errors import SealError

    settings = llm_settings(env, model)
    if wanted is False:
        return {"ran": False, "reason": "turned off (--no-llm)"}
    if settings is None:
        reason = f"no endpoint configured (set OPENAI_BASE_URL and/or OPENAI_API_KEY; model: {LLM_MODEL_ENV})"
        if wanted:
            raise SealError(f"--llm: {reason}")
        return {"ran": False, "reason": reason}
    info: dict[str, Any] = {"ran": True, "base_url": settings["base_url"]}
    try:
        chosen = settings["model"] or _endpoint_model(settings["base_url"])
        info["model"] = chosen
        endpoint: dict[str, Any] = {"timeout": LLM_TIMEOUT_S}
        if settings["base_url"]:
            endpoint["base_url"] = settings["base_url"]
        labelled = stages.run(
            "llm label",
            f"the SEAL taxonomy on {samples[0]} pairs with {chosen} (minutes with a small local CPU model; "
            "--no-llm skips)",
            lambda: seal.label(store, "seal-taxonomy", labeler="llm", model=chosen, sample=samples[0], **endpoint),
        )
        info["label"] = {"feature_set": "seal-taxonomy", "pairs": samples[0], "status": labelled.status}
        rewritten = stages.run(
            "llm perturb",
            f"paraphrases of {samples[1]} pairs with {chosen}, re-scored by both probes",
            lambda: seal.perturb(store, f"llm:model={chosen}", name="llm", sample=samples[1], **endpoint),
        )
        info["perturb"] = {"name": "llm", "pairs": samples[1], "status": rewritten.status}
    except (SealError, OSError, KeyError, IndexError, ValueError) as err:
        info.update(ran=False, reason=f"the LLM steps failed: {err}")
        stages.say(f"[llm] skipped: {err}")
    return info
