"""The report's data: one `Section` per part of the page, each read from the store's read API, the catalog
and the analyses' public functions (their results' `to_json()`), never recomputed here. A section whose
data the store lacks is `empty` and says which command fills it; a `SealError` of an analysis (no scores,
no labels, two RMs with role aligned) becomes that section's note instead of failing the report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pyarrow.compute as pc

from seal.errors import SealError
from seal.store import Store

T = TypeVar("T")

SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "Dataset overview"),
    ("agreement", "Agreement and regimes"),
    ("gamma", "Labeler preference γ × regime"),
    ("imprint", "Feature imprint"),
    ("reward_vectors", "Reward vectors and shift angle"),
    ("robustness", "Robustness to rewrites"),
    ("confusing", "Confusing pairs and clusters"),
    ("recipes", "Recipes: where every column comes from"),
)
TITLES = dict(SECTIONS)
FILLS = {
    "overview": "seal ingest SOURCE",
    "agreement": "seal score --model PATH --alias post --role aligned (and a control RM with --role control), "
    "or seal import-scores FILE --alias ALIAS --role aligned",
    "gamma": "seal label --labeler llm --feature-set seal-taxonomy (or seal import-features FILE SET) to label the "
    "target features harmless and helpful, with an aligned and a control RM scored",
    "imprint": "seal label (the heuristic features; seal label --labeler llm for the SEAL taxonomy) and seal score",
    "reward_vectors": "seal score for a model (--role aligned) and a control RM (--role control)",
    "robustness": "seal perturb --method typos (after seal score: it re-scores the variants with every RM)",
    "confusing": "seal embed, then seal confusing",
    "recipes": "seal ingest SOURCE",
}
EXAMPLE_KINDS = ("contradictory", "near_identical", "identical", "duplicate")


@dataclass
class Options:
    """What the report shows: the RMs to compare and the presentation limits."""

    model: str | None = None
    control: str | None = None
    confidence: float = 0.95
    ties: str = "exclude"
    gamma_features: Sequence[str] = ("harmless", "helpful")
    max_text: int = 600
    examples: int = 3
    clusters: int = 10


@dataclass
class Section:
    """One part of the page: its data (plain JSON-like values and arrays) or why it has none."""

    name: str
    status: str = "ok"  # ok | empty
    note: str | None = None  # why it is empty (or partial)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES[self.name]

    @property
    def hint(self) -> str:
        return FILLS[self.name]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "title": self.title, "status": self.status}
        if self.status != "ok":
            out["hint"] = self.hint
        if self.note:
            out["note"] = self.note
        return out


def empty(name: str, note: str | None = None) -> Section:
    return Section(name, "empty", note)


def attempt(work: Callable[[], T]) -> tuple[T | None, str | None]:
    """(work(), None), or (None, the one-line message) when it raises a SealError."""
    try:
        return work(), None
    except SealError as err:
        return None, str(err)


# -- overview and recipes ------------------------------------------------------------------------------
def overview(stats: dict[str, Any]) -> Section:
    """Pairs per dataset, flag counts and quarantine counts by reason (seal.views.stats)."""
    if not stats["pairs"]:
        return empty("overview", "the store holds no pairs")
    data = {key: stats[key] for key in ("store", "pairs", "version", "datasets", "flags", "quarantine")}
    return Section("overview", data=data)


def _run_column(run: dict[str, Any], columns: set[str]) -> str | None:
    from seal.catalog.embeddings import EMB_PREFIX
    from seal.catalog.featuresets import FEATURES_PREFIX
    from seal.catalog.models import SCORE_PREFIX
    from seal.catalog.perturbations import VARIANTS_PREFIX, VFEATURES_PREFIX, VSCORE_PREFIX

    prefix = {
        "score": SCORE_PREFIX,
        "label": FEATURES_PREFIX,
        "embed": EMB_PREFIX,
        "perturb": VARIANTS_PREFIX,
        "vscore": VSCORE_PREFIX,
        "vlabel": VFEATURES_PREFIX,
    }.get(run["stage"], "")
    for candidate in (run["provenance"].get("column"), prefix + run["name"], run["name"]):
        if isinstance(candidate, str) and candidate in columns:
            return candidate
    return None


def recipes(store: Store, stats: dict[str, Any]) -> Section:
    """Every column with the last run that wrote it, and every (stage, name)'s last run with its recipe."""
    from seal.schema import INGEST_COLUMNS

    runs = store.runs()
    if not runs:
        return empty("recipes", "the store records no runs")
    names = {c["column"] for c in stats["columns"]}
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:  # oldest first: the last one wins
        latest[(run["stage"], run["name"])] = run
    made_by: dict[str, dict[str, Any]] = {}
    for run in latest.values():
        column = _run_column(run, names)
        if column is not None and run["status"] == "done":
            made_by[column] = run
    ingests = [r for r in latest.values() if r["stage"] == "ingest"]
    columns = []
    for c in stats["columns"]:
        run = made_by.get(c["column"])
        columns.append({**c, "run": run, "ingest": run is None and bool(ingests) and c["column"] in INGEST_COLUMNS})
    data = {"columns": columns, "runs": list(latest.values()), "ingest_runs": len(ingests), "runs_total": len(runs)}
    return Section("recipes", data=data)


# -- reward-model sections -----------------------------------------------------------------------------
def agreement(store: Store, options: Options) -> tuple[Section, Any]:
    """Agreement with CIs, regimes and McNemar (seal.analysis.resistance), and the result itself."""
    from seal.analysis.resistance import resistance

    result, error = attempt(
        lambda: resistance(store, options.model, options.control, confidence=options.confidence, ties=options.ties)
    )
    if result is None:
        return empty("agreement", error), None
    return Section("agreement", data={"result": result.to_json()}), result


def gamma(store: Store, options: Options, model: str | None, control: str | None) -> Section:
    """The γ × regime table (seal.analysis.regimes) of the target features."""
    if model is None:
        return empty("gamma", "no reward model to compare")
    from seal.analysis.regimes import gamma_regime_table

    table, error = attempt(
        lambda: gamma_regime_table(
            store, model, control, list(options.gamma_features), confidence=options.confidence, ties=options.ties
        )
    )
    if table is None:
        return empty("gamma", error)
    return Section("gamma", data={"result": table.to_json()})


def model_order(store: Store, model: str | None, control: str | None) -> list[str]:
    """Every scored RM: the model, the control, then the others by alias."""
    from seal.catalog.models import list_models

    aliases = list(list_models(store))
    first = [a for a in (model, control) if a in aliases]
    return first + sorted(a for a in aliases if a not in first)


def imprint(store: Store, options: Options, aliases: Sequence[str]) -> Section:
    """The text-level imprint of every RM (standardised β with CIs, clustered by pair; seal.analysis.imprint)."""
    if not aliases:
        return empty("imprint", "the store holds no reward-model scores")
    from seal.analysis.imprint import imprint as fit

    # Sets that label different pairs (heuristics on every pair, an LLM's taxonomy on a sample) are fitted one
    # by one: a joint fit would keep only the pairs every set labels and drop the best-covered set's data.
    coverage = feature_set_coverage(store)
    separate = sorted(coverage, key=lambda s: (-coverage[s], s)) if len(set(coverage.values())) > 1 else [None]
    per_model, notes = {}, []
    for alias in aliases:
        fits = []
        for feature_set in separate:
            features = None if feature_set is None else [feature_set]
            result, error = attempt(
                lambda a=alias, f=features: fit(store, a, features=f, standardize=True, confidence=options.confidence)
            )
            if result is None:
                notes.append(f"{alias}{'' if feature_set is None else f' × {feature_set}'}: {error}")
                continue
            fit_json = result.to_json()
            for reg in fit_json["regressions"]:
                reg["feature_set"] = feature_set
            fits.append(fit_json)
        if fits:
            per_model[alias] = {**fits[0], "regressions": [reg for f in fits for reg in f["regressions"]]}
    if separate != [None]:
        covered = ", ".join(f"{name} {coverage[name]:,}" for name in separate)
        notes.insert(
            0,
            f"The feature sets label different numbers of pairs ({covered}): one regression per set, each on "
            "the pairs it labels (seal imprint --model ALIAS fits them jointly on the pairs every set labels).",
        )
    if not per_model:
        return empty("imprint", "; ".join(notes))
    return Section("imprint", note="; ".join(notes) or None, data={"models": per_model})


def feature_set_coverage(store: Store) -> dict[str, int]:
    """Pairs labelled by each stored feature set (`features_<set>` not null)."""
    from seal.catalog.features import label_column, stored_feature_sets

    return {name: store.count(f"{label_column(name)} IS NOT NULL") for name in stored_feature_sets(store)}


def reward_vectors(store: Store, result: Any, options: Options) -> Section:
    """Each pair's reward vectors (chosen, rejected) under the model and the control, its regime and shift
    angle θ, read from the score columns; the summary figures come from the resistance result."""
    if result is None:
        return empty("reward_vectors", "the store holds no reward-model scores")
    from seal.analysis.angles import angle_population
    from seal.schema import IDENTICAL_FLAG, has_identical_flag

    model, control = result.model, result.control
    columns = [f"{model.column}.chosen", f"{model.column}.rejected"]
    if control is not None:
        columns += [f"{control.column}.chosen", f"{control.column}.rejected"]
    has_identical = has_identical_flag(store.schema())
    data = store.read(columns + ([IDENTICAL_FLAG] if has_identical else []), version=result.pairs_version)
    arrays = [data.column(c).to_numpy().astype(np.float64) for c in columns]
    identical = (
        data.column(IDENTICAL_FLAG).fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        if has_identical
        else np.zeros(data.num_rows, bool)
    )
    finite = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    vectors = np.column_stack(arrays)[finite]
    identical = identical[finite]
    out: dict[str, Any] = {
        "model": model.alias,
        "control": control.alias if control else None,
        "pairs": int(finite.sum()),
        "model_vectors": vectors[:, :2],
        "control_vectors": vectors[:, 2:] if control else None,
        "quadrants": result.to_json()["reward_vectors"]["quadrants"],
        "shift": None,
        "regimes": None,
        "theta": None,
    }
    if control is not None:
        out["regimes"] = pair_regimes(vectors[:, :2], vectors[:, 2:], identical, options.ties)
        theta, _ = angle_population(vectors[:, 2], vectors[:, 3], vectors[:, 0], vectors[:, 1], identical)
        out["theta"] = theta[np.isfinite(theta)]
        out["shift"] = result.to_json()["reward_vectors"]["shift"]
    note = None if control is not None else "the shift angle needs a control RM (seal score --role control)"
    return Section("reward_vectors", note=note, data=out)


def pair_regimes(model: np.ndarray, control: np.ndarray, identical: np.ndarray, ties: str) -> np.ndarray:
    """The regime of each pair ((control agrees, model agrees) as METHOD.md names them), or ``excluded`` for
    pairs the tie rule `exclude` leaves out (identical responses, a tie under either RM)."""
    names = np.array(["resists", "got_aligned", "reversed", "stayed_aligned"], dtype=object)
    c_agree, m_agree = control[:, 0] > control[:, 1], model[:, 0] > model[:, 1]
    regimes = names[2 * c_agree.astype(int) + m_agree.astype(int)]
    if ties == "exclude":
        left_out = identical | (control[:, 0] == control[:, 1]) | (model[:, 0] == model[:, 1])
        regimes = np.where(left_out, "excluded", regimes)
    return regimes


# -- rewrites and findings -----------------------------------------------------------------------------
def robustness(store: Store, options: Options) -> Section:
    """Robustness per (RM, perturbation) (seal.analysis.robustness)."""
    from seal.analysis.robustness import robustness as analyse

    result, error = attempt(lambda: analyse(store, confidence=options.confidence, ties=options.ties))
    if result is None:
        return empty("robustness", error)
    value = result.to_json()
    if not value["results"]:
        return empty("robustness", "no perturbations in the store")
    return Section("robustness", data={"result": value})


def confusing(store: Store, options: Options, model: str | None) -> Section:
    """The findings stored by `seal confusing` (seal.analysis.confusing.stored_findings), with the texts of
    a few example pairs of each kind and of the top clusters."""
    from seal.analysis.confusing import stored_findings

    findings = stored_findings(store)
    if not findings:
        return empty("confusing", "no stored findings")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_kind.setdefault(f["kind"], []).append(f)
    for rows in by_kind.values():
        rows.sort(key=lambda r: -(r["score"] if r["score"] is not None else float("-inf")))
    clusters = sorted(by_kind.get("cluster", []), key=lambda r: r["detail"].get("rank") or 1e9)[: options.clusters]
    wanted: list[str] = []
    for kind in EXAMPLE_KINDS:
        for f in by_kind.get(kind, [])[: options.examples]:
            wanted += [p for p in (f["pair_id"], f["other_pair_id"]) if p]
    cluster_pairs: dict[int, list[str]] = {}
    if "cluster" in store.columns():
        for f in clusters[: options.examples]:
            rows = store.read(["pair_id"], where=pc.field("cluster") == f["cluster"], limit=2)
            cluster_pairs[f["cluster"]] = rows.column("pair_id").to_pylist()
            wanted += cluster_pairs[f["cluster"]]
    versions = sorted({f["pairs_version"] for f in findings if f["pairs_version"] is not None})
    data = {
        "counts": {kind: len(rows) for kind, rows in sorted(by_kind.items())},
        "findings": {kind: rows[: options.examples] for kind, rows in by_kind.items() if kind != "cluster"},
        "clusters": clusters,
        "cluster_pairs": cluster_pairs,
        "pairs": example_pairs(store, wanted, model),
        "found_at_version": versions[-1] if versions else None,
        "store_version": store.version(),
    }
    return Section("confusing", data=data)


def example_pairs(store: Store, pair_ids: Sequence[str], model: str | None) -> dict[str, dict[str, Any]]:
    """Context, responses (and the model's two scores, when scored) of the pairs `pair_ids`, by id."""
    ids = list(dict.fromkeys(pair_ids))
    if not ids:
        return {}
    import pyarrow as pa

    from seal.catalog.models import score_column

    columns = ["pair_id", "dataset", "context", "chosen", "rejected"]
    if model is not None and score_column(model) in store.columns():
        columns.append(score_column(model))
    rows = store.read(columns, where=pc.field("pair_id").isin(pa.array(ids, pa.string()))).to_pylist()
    out = {}
    for r in rows:
        scores = r.pop(score_column(model), None) if model is not None else None
        out[r["pair_id"]] = {**r, "scores": scores, "model": model}
    return out
