"""`seal report`: gather every section from the store, render it, write one self-contained HTML file."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seal.errors import SealError
from seal.report import gather, sections_data, sections_rm
from seal.report.gather import Options, Section
from seal.report.page import page
from seal.store import Store

DEFAULT_OUT = "report.html"
RENDER = {
    "overview": sections_data.overview,
    "agreement": sections_rm.agreement,
    "gamma": sections_rm.gamma,
    "imprint": sections_rm.imprint,
    "reward_vectors": sections_rm.reward_vectors,
    "robustness": sections_rm.robustness,
    "recipes": sections_data.recipes,
}


def check_options(options: Options) -> None:
    """One-line errors for options out of range."""
    from seal.analysis.resistance import check_tie_rule

    check_tie_rule(options.ties)
    if not 0.5 <= options.confidence < 1:
        raise SealError(f"confidence {options.confidence!r} must lie in [0.5, 1)", hint="e.g. 0.95")
    if options.max_text < 20:
        raise SealError(f"max_text {options.max_text!r} is too small", hint="show at least 20 characters")
    if options.examples < 0 or options.clusters < 0:
        raise SealError("examples and clusters must be 0 or more")
    if isinstance(options.gamma_features, str):
        options.gamma_features = [f.strip() for f in options.gamma_features.split(",") if f.strip()]


def check_models(store: Store, model: str | None, control: str | None) -> None:
    """A model or control named but not scored is a typo, not an empty section: say so and list the RMs."""
    from seal.catalog.models import list_models

    if model is None and control is None:
        return
    known = list_models(store)
    for alias in (model, control):
        if alias is not None and alias not in known:
            names = ", ".join(known) or "none"
            raise SealError(f"no scores for reward model `{alias}`", hint=f"scored models: {names}")
    if model is not None and model == control:
        raise SealError(f"--control `{control}` is the model itself", hint="compare two different RMs")


def gather_sections(store: Store, options: Options) -> tuple[list[Section], Any]:
    """Every section's data, in page order, and the resistance result (None without scores)."""
    from seal.views import stats as read_stats

    stats = read_stats(store)
    agreement, result = gather.agreement(store, options)
    model = result.model.alias if result is not None else options.model
    control = result.control.alias if result is not None and result.control is not None else None
    found = {
        "overview": gather.overview(stats),
        "agreement": agreement,
        "gamma": gather.gamma(store, options, model, control),
        "imprint": gather.imprint(store, options, gather.model_order(store, model, control)),
        "reward_vectors": gather.reward_vectors(store, result, options),
        "robustness": gather.robustness(store, options),
        "confusing": gather.confusing(store, options, model),
        "recipes": gather.recipes(store, stats),
    }
    return [found[name] for name, _ in gather.SECTIONS], result


def render(section: Section, options: Options, model: str | None, control: str | None) -> str:
    if section.status != "ok":
        return sections_rm.empty(section)
    if section.name == "confusing":
        return sections_data.confusing(section, options, model, control)
    return RENDER[section.name](section, options)


def write_atomically(path: Path, content: bytes) -> None:
    """Write `content` to `path` through a temporary file in the same folder (no half-written report)."""
    if path.is_dir():
        raise SealError(f"--out {path} is a folder", hint="name a file, e.g. report.html")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".seal-report-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise SealError(
            f"cannot write the report to {path}: {err.strerror or err}", hint="pick another --out"
        ) from None


def build_report(
    store: Store,
    out: str | os.PathLike[str] | None = None,
    *,
    model: str | None = None,
    control: str | None = None,
    confidence: float = 0.95,
    ties: str = "exclude",
    gamma_features: str | Sequence[str] = ("harmless", "helpful"),
    max_text: int = 600,
    examples: int = 3,
    clusters: int = 10,
) -> dict[str, Any]:
    """Write the HTML report of `store` to `out` (default report.html) and say what is in it: {"path",
    "bytes", "sections": [{"name", "title", "status": ok|empty, "hint" (the command that fills an empty
    section), "note"}], "model", "control", "pairs", "pairs_version", "plots", "seconds"}."""
    from seal import __version__

    t0 = time.perf_counter()
    options = Options(model, control, confidence, ties, gamma_features, max_text, examples, clusters)
    check_options(options)
    path = Path(out if out is not None else DEFAULT_OUT)
    if path.is_dir():
        raise SealError(f"--out {path} is a folder", hint="name a file, e.g. report.html")
    store.require()
    check_models(store, model, control)
    sections, result = gather_sections(store, options)
    model_alias = result.model.alias if result is not None else None
    control_alias = result.control.alias if result is not None and result.control is not None else None
    rendered = [(s, render(s, options, model_alias, control_alias)) for s in sections]
    overview = sections[0].data
    document = page(
        rendered,
        store=str(store.path),
        pairs_version=overview.get("version"),
        model=model_alias,
        control=control_alias,
        version=__version__,
    )
    content = document.encode("utf-8")
    write_atomically(path, content)
    return {
        "path": str(path.resolve()),
        "bytes": len(content),
        "sections": [s.summary() for s in sections],
        "model": model_alias,
        "control": control_alias,
        "pairs": overview.get("pairs", 0),
        "pairs_version": overview.get("version"),
        "plots": document.count('<img src="data:image/'),
        "seconds": round(time.perf_counter() - t0, 3),
    }
