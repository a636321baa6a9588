"""The Python API: the verbs a notebook user needs, with the same options as the CLI (the click commands call
these same functions). `import seal` stays cheap: each verb imports its module when first called.

    import seal

    store = seal.open_store("seal-store")
    seal.ingest(store, "examples/tiny-hh.jsonl")
    seal.label(store)                                   # heuristic features
    seal.score(store, "path/to/reward-model", alias="post", role="aligned")
    seal.resistance(store).to_frame()

Stages (ingest, score, label, embed, perturb, confusing findings) write; analyses (resistance, imprint, robustness,
confusing) only read and return result objects with `to_json()`, `to_frame()` and a text rendering; `plan` and
`run` do for a spec what `seal plan` and `seal run` do. The store's readers and housekeeping (`stats`, `show`,
`query`, `quarantined`, `versions`, `tag`, `optimize`, `models`, `findings`, `similar`, `search`) and
`validate_spec` are here too: every `seal` command does its work through this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from seal.spec import Spec, load_spec
from seal.store import Store, default_store_path

StoreLike = Store | str | os.PathLike[str]


def open_store(
    path: StoreLike | None = None, storage_options: Mapping[str, str] | Sequence[str] | None = None
) -> Store:
    """The store at `path` (default `$SEAL_STORE`, else ./seal-store): a folder or an object-store URI
    (``s3://bucket/prefix``), whose `storage_options` (a mapping or ``KEY=VALUE`` strings) add to the ``AWS_*``
    environment and are never written anywhere. Opening creates nothing."""
    if isinstance(path, Store):
        return path
    return Store(path or default_store_path(), storage_options=storage_options)


def engine_options(engine: Any = None, **ray: Any) -> Any:
    """Where a stage's engine runs: `engine_options("ray", address=..., actors=..., actors_per_gpu=...,
    cpus_per_actor=..., batch_rows=...)`, for the `engine=` option of `score`, `embed`, `label` and `perturb`.
    "local" (the default) needs no Ray; "ray" needs `pip install 'seal-audit[ray]'`."""
    from seal.distributed import engine_options as make

    return make(engine, **ray)


def _store(store: StoreLike | None) -> Store:
    return open_store(store)


def ingest(store: StoreLike, source: str, **options: Any) -> Any:
    """Add the pairs of `source` (a file, a folder or a Hub dataset id) to the store; options as `seal ingest`
    (name, split, subset, data_dir, revision, format, column_map, label_map, limit, sample, seed, ...)."""
    from seal.ingest import ingest as run_ingest

    return run_ingest(_store(store), source, **options)


def score(store: StoreLike, model: str, *, on_start: Callable[[Any], None] | None = None, **options: Any) -> Any:
    """Score every pair with reward model `model` (Hub id or folder); options as `seal score` (alias, role,
    batch_size, device, dtype, max_length, truncation, prefix_sharing, compile, ...). `on_start(stage)` is
    called once the model's stage is built, before any scoring (the command says the input format there)."""
    from seal.annotate.scores import score as run_score

    return run_score(_store(store), model, on_start=on_start, **options)


def train_probe(
    store: StoreLike,
    out: str | os.PathLike[str],
    *,
    where: str | None = None,
    split: str | float = "train:0.5",
    force: bool = False,
    check: bool = True,
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
    **config: Any,
) -> Any:
    """Train a probe reward model on the human preferences of the store's pairs (`seal train-probe`): a
    Bradley–Terry linear head on a frozen MiniLM, saved at `out` as a model folder that `score` loads like
    any RM. `where` selects pairs (LanceDB SQL; identical-response pairs are always left out), `split`
    (train:0.5) and `seed` split them; config: seed, epochs, l2, layers, max_length, base. `check`: re-score a
    few held-out pairs from the saved folder through the ordinary scorer (`scorer_check`)."""
    from seal.analysis.stats import wilson_interval
    from seal.engines.probe import ProbeConfig, ProbePair, parse_split
    from seal.engines.probe import train_probe as fit
    from seal.schema import IDENTICAL_FLAG, has_identical_flag

    opened = _store(store)
    opened.require()
    keep = f"NOT {IDENTICAL_FLAG}" if has_identical_flag(opened.schema()) else None
    selected = " AND ".join(f"({w})" for w in (where, keep) if w) or None
    rows = opened.read(["pair_id", "context", "chosen", "rejected"], selected).to_pylist()
    pairs = [ProbePair(r["pair_id"], r["context"] or [], r["chosen"] or "", r["rejected"] or "") for r in rows]
    data = {
        "store": str(opened.path.resolve()),
        "where": where,
        "pairs_version": opened.version(),
        "identical_left_out": opened.count(where) - len(pairs) if keep else 0,
    }
    cfg = ProbeConfig(split=parse_split(split), **config)
    return fit(
        pairs, out, cfg, interval=wilson_interval, force=force, check=check, device=device, data=data, progress=progress
    )


def label(store: StoreLike, feature_set: str = "heuristics", *, labeler: str = "heuristics", **options: Any) -> Any:
    """Label every response with a feature set: `labeler="heuristics"` (free, offline) or `labeler="llm"` with the
    options of `seal label --labeler llm` (model, base_url, api_key_env, concurrency, dry_run, ...)."""
    if labeler == "llm":
        from seal.annotate.features.llm import label_llm

        engine = options.pop("engine", None)
        if engine is not None and engine_options(engine).is_ray:
            from seal.errors import SealError

            raise SealError(
                "the llm labeler runs on the local engine", hint="its requests are already concurrent: drop --engine"
            )
        return label_llm(_store(store), feature_set, **options)
    if labeler != "heuristics":
        from seal.errors import SealError

        raise SealError(f"unknown labeler `{labeler}`", hint="use heuristics or llm")
    from seal.annotate.features.stage import label_heuristics

    return label_heuristics(_store(store), feature_set, **options)


def embed(store: StoreLike, model: str | None = None, **options: Any) -> Any:
    """Embed contexts, responses and pairs (``emb_<field>`` columns) and index them; options as `seal embed`."""
    from seal.annotate.embeddings import embed as run_embed

    return run_embed(_store(store), model, **options)


ENDPOINT_OPTIONS = ("base_url", "api_key_env", "concurrency", "timeout", "max_retries")


def perturb(
    store: StoreLike,
    method: str,
    *,
    spec: Spec | str | os.PathLike[str] | None = None,
    endpoint_environment: Mapping[str, Any] | None = None,
    **options: Any,
) -> Any:
    """Rewrite a seeded sample of responses with `method` (rule ops or `llm:...`) and re-score the variants with
    every scored RM; options as `seal perturb` (name, params, sample, seed, sides, target, min_similarity,
    similarity_model, rescore, device, batch_size, label_sets, show_progress, and the llm rewriter's endpoint:
    base_url, api_key_env, concurrency, timeout, max_retries). With `spec`, the perturbation is the one the
    spec's `perturbations` section names `method` (or declares with that method and no name), and its options
    come from there. `endpoint_environment`: endpoint settings read from the environment (OPENAI_BASE_URL),
    used only where neither the method nor an option names them."""
    from dataclasses import replace

    from seal.annotate.perturb import PerturbConfig
    from seal.annotate.perturb import perturb as run_perturb
    from seal.annotate.perturb.llm_rewriter import endpoint_settings

    config_fields = set(PerturbConfig.__dataclass_fields__)
    given = {k: options.pop(k) for k in ENDPOINT_OPTIONS if k in options}
    if spec is not None:
        mixed = sorted(k for k in options if k in config_fields)
        if mixed:
            from seal.errors import SealError

            raise SealError(f"with a spec the perturbation comes from the spec; drop {', '.join(mixed)}")
        config = PerturbConfig.from_entry(_spec_perturbation(spec, method))
    else:
        config = PerturbConfig(method=method, **{k: v for k, v in options.items() if k in config_fields})
    if "endpoint" not in options:
        config = replace(config, endpoint=endpoint_settings(config.method, config.params, given, endpoint_environment))
    rest = {k: v for k, v in options.items() if k not in config_fields}
    from seal.distributed import use_engine

    with use_engine(engine_options(rest.pop("engine", None))):  # the variants' re-scoring runs there
        return run_perturb(_store(store), config, **rest)


def _spec_perturbation(spec: Spec | str | os.PathLike[str], name: str) -> dict[str, Any]:
    """The spec's `perturbations` entry named `name` (or, unnamed, with method `name`)."""
    loaded = _spec(spec)
    entries = loaded.section("perturbations") or []
    for entry in entries:
        if entry.get("name") == name:
            return dict(entry)
    for entry in entries:
        if entry.get("method") == name and not entry.get("name"):
            return dict(entry)
    from seal.errors import SealError

    known = ", ".join(e.get("name") or e["method"] for e in entries) or "none"
    raise SealError(f"the spec {spec} declares no perturbation `{name}`", hint=f"declared: {known}")


def perturb_params(values: Mapping[str, str]) -> dict[str, Any]:
    """Typed values of a rule op's parameters written as text (`seal perturb --param KEY=VALUE`): true/false,
    integers and floats become those, anything else stays a string."""
    from seal.annotate.perturb.rules import parse_value

    return {key.strip(): parse_value(value) for key, value in values.items()}


def perturb_ops() -> list[dict[str, Any]]:
    """The perturbation ops (`seal perturb --list-ops`): each rule op with its parameters and defaults, and the
    llm rewriter; `available` says whether this machine can run it (wordnet ops need WordNet)."""
    from seal.annotate.perturb.rules import OPS, wordnet_dir

    ops = [op.describe() for op in OPS.values()]
    ops.append(
        {
            "op": "llm",
            "help": "paraphrase with an OpenAI-compatible chat model (llm:model=ID[,base_url=URL,...])",
            "params": {},
            "requires": "an OpenAI-compatible endpoint",
        }
    )
    for op in ops:
        op["available"] = op["requires"] != "wordnet" or wordnet_dir() is not None
    return ops


def import_scores(store: StoreLike, file: str, alias: str, **options: Any) -> Any:
    """Import reward-model scores computed elsewhere (`seal import-scores`): a parquet/csv/jsonl file with one row
    per pair (pair_id, chosen, rejected); options: role, column_map, replace."""
    from seal.annotate.import_scores import import_scores as run_import

    return run_import(_store(store), file, alias, **options)


def import_features(
    store: StoreLike,
    file: str,
    feature_set: str,
    *,
    key: str = "pair_id",
    dataset: str | None = None,
    dry_run: bool = False,
) -> Any:
    """Import labels computed elsewhere into `features_<set>` (`seal import-features`): a JSON Lines, JSON,
    CSV/TSV or Parquet file, long or wide, checked against the feature set; `key` names the pair (pair_id,
    source_key or source_index, the last two with `dataset`); `dry_run` validates and writes nothing."""
    from seal.annotate.features.importer import import_features as run_import

    return run_import(_store(store), file, feature_set, key=key, dataset=dataset, dry_run=dry_run)


def export(store: StoreLike, directory: str | os.PathLike[str], **options: Any) -> Any:
    """Export the pairs to `directory` (`seal export`): format hf (parquet shards + a dataset card that documents
    every column's recipe and the analyses), parquet, jsonl or annotated-pairs (Feedback Forensics); options:
    format, where, columns, embeddings, config, license, max_shard_size."""
    from seal.export.core import export as run_export

    return run_export(_store(store), directory, **options)


def publish(store: StoreLike, repo_id: str, **options: Any) -> Any:
    """Push the `hf` export to Hugging Face Hub dataset repo `repo_id` in one commit, merging the repo's card
    (`seal publish`); options: private, revision, create_pr, config, token_env, dry_run, report, message and the
    export's (where, columns, embeddings, license, max_shard_size)."""
    from seal.export.publish import publish as run_publish

    return run_publish(_store(store), repo_id, **options)


def resistance(store: StoreLike, model: str | None = None, control: str | None = None, **options: Any) -> Any:
    """Agreement, regimes, McNemar and the shift angle (`seal resistance`); options: by, use_control,
    confidence, ties."""
    from seal.analysis.resistance import resistance as analyse

    return analyse(_store(store), model, control, **options)


def labeler_regime(
    store: StoreLike,
    model: str | None = None,
    control: str | None = None,
    features: str | Sequence[str] | None = None,
    *,
    confidence: float = 0.95,
    ties: str | None = None,
) -> Any:
    """The regimes cross-tabbed with the labeler's preference γ from target `features`, most important first
    (`seal resistance --labeler-regime`); `ties` defaults to resistance's tie rule."""
    from seal.analysis.regimes import DEFAULT_GAMMA_FEATURES, gamma_regime_table
    from seal.analysis.resistance import DEFAULT_TIE_RULE

    return gamma_regime_table(
        _store(store),
        model,
        control,
        DEFAULT_GAMMA_FEATURES if features is None else features,
        confidence=confidence,
        ties=DEFAULT_TIE_RULE if ties is None else ties,
    )


def imprint(store: StoreLike, model: str | None = None, **options: Any) -> Any:
    """Feature imprint regressions (`seal imprint`)."""
    from seal.analysis.imprint import imprint as analyse

    return analyse(_store(store), model, **options)


def robustness(store: StoreLike, model: str | None = None, method: str | None = None, **options: Any) -> Any:
    """Robustness to meaning-preserving rewrites (`seal robustness`); options: population, ties, correction, ..."""
    from seal.analysis.robustness import robustness as analyse

    return analyse(_store(store), model, method, **options)


def confusing(store: StoreLike, kinds: Any = None, *, save: bool = True, **options: Any) -> Any:
    """Confusing entries: identical, near-identical, duplicate and contradictory pairs and clusters
    (`seal confusing`). With `save` (the default, as the command) the findings stage stores them (the
    `confusing` and `cluster` columns and the `findings` table); `save=False` only computes and reads."""
    if not save:
        from seal.analysis.confusing import confusing as analyse

        return analyse(_store(store), kinds, **options)
    from seal.annotate.findings import FindingsStage
    from seal.pipeline import run_stage

    return run_stage(_store(store), FindingsStage(kinds, **options)).result


def findings(store: StoreLike, kind: str | None = None, pair_id: str | None = None) -> list[dict[str, Any]]:
    """The findings stored by `confusing` (`seal findings`), optionally of one kind or involving one pair, by
    kind and strongest first; nothing is recomputed."""
    from seal.analysis.confusing import stored_findings

    opened = _store(store)
    opened.require()
    rows = stored_findings(opened, kind, pair_id)
    rows.sort(key=lambda r: (r["kind"], -(r["score"] if r["score"] is not None else float("-inf"))))
    return rows


def report(
    store: StoreLike,
    out: str | os.PathLike[str] | None = None,
    *,
    model: str | None = None,
    control: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Write the self-contained HTML report of the store to `out` (default report.html; `seal report`): dataset,
    agreement and regimes, γ × regime, imprint, reward vectors, robustness, confusing findings and recipes.
    Options: confidence, ties, gamma_features, max_text, examples, clusters. Returns {"path", "bytes",
    "sections": [{"name", "title", "status": "ok" | "empty", "hint", "note"}], "model", "control", ...}."""
    from seal.report import build_report

    return build_report(_store(store), out, model=model, control=control, **options)


def similar(store: StoreLike, pair_id: str, *, k: int = 10, field: str = "pair", where: str | None = None) -> Any:
    """The `k` pairs nearest to `pair_id` by embedding `field` (context, chosen, rejected or pair), with RM
    margins when scored (`seal similar`); `where` filters the neighbours (LanceDB SQL)."""
    from seal.similarity import similar as find

    return find(_store(store), pair_id, k=k, field=field, where=where)


def search(
    store: StoreLike,
    text: str,
    *,
    k: int = 10,
    mode: str = "hybrid",
    fields: Sequence[str] | None = None,
    where: str | None = None,
) -> Any:
    """Pairs whose context or responses match `text` (`seal search`): mode vector (by meaning), text (BM25) or
    hybrid (both, reciprocal-rank fusion); `fields` among context, chosen, rejected (default all)."""
    from seal.similarity import search as find

    return find(_store(store), text, k=k, mode=mode, fields=fields, where=where)


def models(store: StoreLike) -> list[dict[str, Any]]:
    """The reward models the store has scores for (`seal models`): alias, role, origin, recipe, coverage."""
    from seal.catalog.models import list_models

    return list(list_models(_store(store)).values())


def stats(store: StoreLike) -> dict[str, Any]:
    """Pairs per dataset, flag counts, column coverage and quarantine counts (`seal stats`)."""
    from seal.views import stats as read

    return read(_store(store))


def show(store: StoreLike, pair_id: str) -> dict[str, Any]:
    """One pair with every column: conversation, both responses, flags and annotations (`seal show`)."""
    from seal.views import show as read

    return read(_store(store), pair_id)


def query(
    store: StoreLike, *, where: str | None = None, select: Sequence[str] | None = None, limit: int | None = 20
) -> Any:
    """Pairs filtered with one LanceDB SQL `where` expression, `select`ed columns (nested with dots), at most
    `limit` rows (None: all), as an Arrow table (`seal query`)."""
    from seal.views import query as read

    return read(_store(store), where=where, select=list(select) if select is not None else None, limit=limit)


def quarantined(
    store: StoreLike, *, dataset: str | None = None, reason: str | None = None, limit: int | None = 50
) -> list[dict[str, Any]]:
    """Rows that could not become pairs, with the reason (`seal quarantine`); None `limit` for all."""
    from seal.views import quarantined as read

    return read(_store(store), dataset=dataset, reason=reason, limit=limit)


def versions(store: StoreLike) -> list[dict[str, Any]]:
    """Versions of the pairs table, the operation and seal run that made each, and their tags (`seal versions`)."""
    return _store(store).versions()


def tag(store: StoreLike, name: str, version: int | None = None) -> dict[str, Any]:
    """Tag a version of the pairs table, the current one by default (`seal tag`)."""
    return _store(store).tag(name, version)


def optimize(store: StoreLike, keep: str | None = None) -> dict[str, Any]:
    """Compact the store's files, update its indexes and delete versions older than `keep` (0, 30m, 1h, 7d;
    default $SEAL_KEEP_VERSIONS, else 1h); tagged versions stay (`seal optimize`). Returns the store, the
    retention in seconds and what happened per table."""
    from seal.store import default_keep_versions, parse_duration

    opened = _store(store)
    opened.require()
    retention = parse_duration(keep) if keep is not None else default_keep_versions()
    tables = opened.optimize(keep=retention)
    return {"store": str(opened.path), "keep_seconds": retention.total_seconds(), "tables": tables}


def validate_spec(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> tuple[Spec | None, list[Any]]:
    """Load and check an experiment spec (`seal validate`) after `overrides` (`--set KEY=VALUE` strings): the
    spec (None when invalid) and every problem, each with its path in the document."""
    from seal.spec import check_spec

    return check_spec(path, overrides)


def spec_store(spec: Spec | str | os.PathLike[str], store: StoreLike | None = None) -> Store:
    """The store a spec works on: `store` when given (`--store`, $SEAL_STORE), else the spec's `store`, else
    the default."""
    return _spec_store(_spec(spec), store)


def _spec(spec: Spec | str | os.PathLike[str]) -> Spec:
    return spec if isinstance(spec, Spec) else load_spec(Path(spec))


def _spec_store(spec: Spec, store: StoreLike | None) -> Store:
    if store is not None:
        return open_store(store)
    return Store(spec.store_path() or default_store_path())


def plan(spec: Spec | str | os.PathLike[str], store: StoreLike | None = None) -> list[Any]:
    """What `seal run SPEC` would do, stage by stage, without running anything."""
    from seal import pipeline

    loaded = _spec(spec)
    return pipeline.plan(_spec_store(loaded, store), loaded)


def run(
    spec: Spec | str | os.PathLike[str],
    store: StoreLike | None = None,
    *,
    on_error: str = "fail",
    show_progress: bool = False,
    announce: bool | None = None,
) -> Any:
    """Run every stage of the spec that is pending or stale (`seal run`); `announce` says each stage's start and
    end on stderr (default: with `show_progress` when stderr is a terminal)."""
    from seal import pipeline

    loaded = _spec(spec)
    return pipeline.run(
        _spec_store(loaded, store), loaded, show_progress=show_progress, on_error=on_error, announce=announce
    )


def demo(out: str | os.PathLike[str] = "seal-demo", **options: Any) -> Any:
    """The main job on the shipped demo data, offline (`seal demo`): ingest a slice of hh-rlhf with planted
    confusing pairs, train an aligned and a control probe RM and score with both, label, embed, perturb and
    re-score, then resistance, imprint, robustness, confusing entries and the HTML report, all under `out`.
    Options: pairs, force, llm_model, llm (None: when an endpoint is configured), progress."""
    from seal.demo import run_demo

    return run_demo(out, **options)


# Constants the commands need for their option choices and defaults, read from the module that owns each on
# first use (`seal.api.TIE_RULES`), so that `import seal.api` stays cheap: name -> (module, attribute).
_CONSTANTS = {
    "ROLES": ("seal.catalog.models", "ROLES"),
    "TIE_RULES": ("seal.analysis.resistance", "TIE_RULES"),
    "DEFAULT_TIE_RULE": ("seal.analysis.resistance", "DEFAULT_TIE_RULE"),
    "INGEST_COLUMNS": ("seal.schema", "INGEST_COLUMNS"),
    "INGEST_FORMATS": ("seal.ingest.mapping", "FORMATS"),
    "LABEL_AGGREGATIONS": ("seal.ingest.mapping", "LABEL_AGGREGATIONS"),
    "PAIRINGS": ("seal.ingest.mapping", "PAIRINGS"),
    "MAX_ROW_BYTES": ("seal.ingest.readers", "MAX_ROW_BYTES"),
    "IMPRINT_CATEGORICAL": ("seal.analysis.imprint", "CATEGORICAL"),
    "IMPRINT_COV_TYPES": ("seal.analysis.imprint", "COV_TYPES"),
    "IMPRINT_DEFAULT_MIN_COUNT": ("seal.analysis.imprint", "DEFAULT_MIN_COUNT"),
    "IMPRINT_LEVELS": ("seal.analysis.imprint", "LEVELS"),
    "IMPRINT_TIES": ("seal.analysis.imprint", "TIES"),
    "INPUT_FORMATS": ("seal.engines.scoring", "INPUT_FORMATS"),
    "TRUNCATION_SIDES": ("seal.engines.scoring", "TRUNCATION_SIDES"),
    "SHARING_MIN_FLOP_PER_KV_BYTE": ("seal.engines.scoring", "SHARING_MIN_FLOP_PER_KV_BYTE"),
    "ON_ERROR": ("seal.pipeline", "ON_ERROR"),
    "PROBE_DEFAULTS": ("seal.engines.probe", "DEFAULTS"),
    "ENGINES": ("seal.distributed", "ENGINES"),
    "PLAN_ERROR": ("seal.pipeline", "ERROR"),
    "EXPORT_FORMATS": ("seal.export.core", "FORMATS"),
    "EXPORT_MAX_SHARD_SIZE": ("seal.export.writers", "DEFAULT_MAX_SHARD_SIZE"),
}


def __getattr__(name: str) -> Any:
    if name not in _CONSTANTS:
        raise AttributeError(f"module 'seal.api' has no attribute {name!r}")
    module, attribute = _CONSTANTS[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value


__all__ = [
    "confusing",
    "demo",
    "embed",
    "engine_options",
    "export",
    "findings",
    "import_features",
    "import_scores",
    "imprint",
    "ingest",
    "label",
    "labeler_regime",
    "models",
    "open_store",
    "optimize",
    "perturb",
    "perturb_ops",
    "plan",
    "publish",
    "quarantined",
    "report",
    "resistance",
    "robustness",
    "run",
    "score",
    "show",
    "similar",
    "stats",
    "tag",
    "train_probe",
    "validate_spec",
    "versions",
]
