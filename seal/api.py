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
`run` do for a spec what `seal plan` and `seal run` do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from seal.spec import Spec, load_spec
from seal.store import Store, default_store_path

StoreLike = Store | str | os.PathLike[str]


def open_store(path: StoreLike | None = None) -> Store:
    """The store at `path` (default `$SEAL_STORE`, else ./seal-store). Opening creates nothing."""
    return path if isinstance(path, Store) else Store(path or default_store_path())


def _store(store: StoreLike | None) -> Store:
    return open_store(store)


def ingest(store: StoreLike, source: str, **options: Any) -> Any:
    """Add the pairs of `source` (a file, a folder or a Hub dataset id) to the store; options as `seal ingest`
    (name, split, subset, data_dir, revision, format, column_map, label_map, limit, sample, seed, ...)."""
    from seal.ingest import ingest as run_ingest

    return run_ingest(_store(store), source, **options)


def score(store: StoreLike, model: str, **options: Any) -> Any:
    """Score every pair with reward model `model` (Hub id or folder); options as `seal score` (alias, role,
    batch_size, device, dtype, max_length, truncation, prefix_sharing, compile, ...)."""
    from seal.annotate.scores import score as run_score

    return run_score(_store(store), model, **options)


def label(store: StoreLike, feature_set: str = "heuristics", *, labeler: str = "heuristics", **options: Any) -> Any:
    """Label every response with a feature set: `labeler="heuristics"` (free, offline) or `labeler="llm"` with the
    options of `seal label --labeler llm` (model, base_url, api_key_env, concurrency, dry_run, ...)."""
    if labeler == "llm":
        from seal.annotate.features.llm import label_llm

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


def perturb(store: StoreLike, method: str, **options: Any) -> Any:
    """Rewrite a seeded sample of responses with `method` (rule ops or `llm:...`) and re-score the variants with
    every scored RM; options as `seal perturb` (sample, seed, sides, target, min_similarity, ...)."""
    from seal.annotate.perturb import PerturbConfig
    from seal.annotate.perturb import perturb as run_perturb

    config_fields = set(PerturbConfig.__dataclass_fields__)
    config = PerturbConfig(method=method, **{k: v for k, v in options.items() if k in config_fields})
    rest = {k: v for k, v in options.items() if k not in config_fields}
    return run_perturb(_store(store), config, **rest)


def import_scores(store: StoreLike, file: str, alias: str, **options: Any) -> Any:
    """Import reward-model scores computed elsewhere (`seal import-scores`): a parquet/csv/jsonl file with one row
    per pair (pair_id, chosen, rejected); options: role, column_map, replace."""
    from seal.annotate.import_scores import import_scores as run_import

    return run_import(_store(store), file, alias, **options)


def resistance(store: StoreLike, model: str | None = None, control: str | None = None, **options: Any) -> Any:
    """Agreement, regimes, McNemar and the shift angle (`seal resistance`); options: by, use_control,
    confidence, ties."""
    from seal.analysis.resistance import resistance as analyse

    return analyse(_store(store), model, control, **options)


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
) -> Any:
    """Run every stage of the spec that is pending or stale (`seal run`)."""
    from seal import pipeline

    loaded = _spec(spec)
    return pipeline.run(_spec_store(loaded, store), loaded, show_progress=show_progress, on_error=on_error)


__all__ = [
    "confusing",
    "embed",
    "import_scores",
    "imprint",
    "ingest",
    "label",
    "open_store",
    "perturb",
    "plan",
    "resistance",
    "robustness",
    "run",
    "score",
]
