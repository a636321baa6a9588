"""`seal validate`, `seal plan` and `seal run` over an experiment spec."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from seal import api
from seal.commands.common import emit_json, json_option, silent_option
from seal.errors import NothingSucceeded, SealError, SpecError
from seal.render import table

if TYPE_CHECKING:
    from seal.api import Spec, Store

spec_argument = click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))


def set_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--set KEY=VALUE`, repeatable: change the spec before it is validated (the fingerprint includes it)."""
    return click.option(
        "overrides",
        "--set",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a spec value (repeatable): a dotted path (list items by index or alias/name, e.g. "
        "reward_models.pre.model=./my-rm, dataset.limit=100); VALUE is YAML, empty removes the key.",
    )(func)


def _store_for(ctx: click.Context, spec: Spec) -> Store:
    """--store / SEAL_STORE win over the spec's `store`, which wins over the default."""
    explicit = (ctx.find_root().obj or {}).get("store")
    return api.spec_store(spec, explicit or None)


def _head(spec_path: str, spec: Spec, store: Store) -> dict[str, Any]:
    return {
        "spec": spec_path,
        "spec_fingerprint": spec.fingerprint(),
        "overrides": list(spec.overrides),
        "store": str(store.path),
    }


@click.command("validate")
@spec_argument
@set_option
@json_option
def validate_command(spec_path: str, overrides: Sequence[str], json_: bool) -> None:
    """Check an experiment spec against schemas/experiment.schema.json.

    Every problem is printed with its path in the document, e.g.
    `reward_models[1].batch_size: must be a positive integer`. Exit code 1 when the spec is invalid.

    \b
    Examples:
      seal validate examples/demo.yaml
      seal validate examples/seal-paper.yaml --set reward_models.pre.model=./my-rm
    """
    spec, problems = api.validate_spec(spec_path, overrides)
    result = {
        "spec": spec_path,
        "valid": spec is not None,
        "fingerprint": spec.fingerprint() if spec is not None else None,
        "overrides": list(overrides),
        "sections": [s for s in spec.document if s not in ("version", "name")] if spec is not None else [],
        "errors": [p.to_json() for p in problems],
    }
    if json_:
        emit_json(result)
    elif spec is not None:
        click.echo(
            f"{spec_path}: valid (fingerprint {result['fingerprint']}; sections: {', '.join(result['sections'])})"
        )
    else:
        for problem in problems:
            click.echo(f"{spec_path}: {problem}")
    if spec is None:
        raise SpecError(f"{spec_path} is not a valid spec ({len(problems)} problem(s))")


def _short(n: float) -> str:
    """12,345 -> 12.3k; 4,200,000 -> 4.2M."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:g}"


def _estimate_cell(estimate: dict[str, Any]) -> str:
    """The plan table's `estimate` column: what an estimated plan would do, in a few words."""
    parts = []
    approx = "~" if estimate.get("estimated") else ""
    if estimate.get("pairs") is not None and estimate.get("estimated"):
        parts.append(f"{approx}{estimate['pairs']:,} pairs")
    for key, word in (("texts", "texts"), ("rewrites", "rewrites"), ("requests", "requests")):
        if estimate.get(key):
            parts.append(f"{approx}{estimate[key]:,} {word}")
    tokens = (estimate.get("input_tokens") or 0) + (estimate.get("output_tokens") or 0)
    if tokens:
        parts.append(f"{approx}{_short(tokens)} tokens")
    if estimate.get("cost_usd") is not None:
        parts.append(f"{approx}${estimate['cost_usd']:,.2f}")
    elif estimate.get("requests"):
        parts.append("no price known")
    for download in estimate.get("downloads") or []:
        parts.append("download " + (download.get("model") or download.get("dataset") or "?"))
    return ", ".join(parts)


def totals(stages: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the whole plan would download and ask of LLMs (the sums of the stages' estimates)."""
    out: dict[str, Any] = {"downloads": [], "requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    unpriced = []
    for stage in stages:
        estimate = stage.get("estimate") or {}
        for download in estimate.get("downloads") or []:
            if download not in out["downloads"]:
                out["downloads"].append(download)
        for key in ("requests", "input_tokens", "output_tokens"):
            out[key] += int(estimate.get(key) or 0)
        if estimate.get("requests"):
            if estimate.get("cost_usd") is None:
                unpriced.append(estimate.get("model") or stage.get("name"))
            else:
                out["cost_usd"] += float(estimate["cost_usd"])
    out["cost_usd"] = round(out["cost_usd"], 2)
    out["unpriced"] = unpriced
    out["estimated"] = any((s.get("estimate") or {}).get("estimated") for s in stages)
    return out


def _print_totals(total: dict[str, Any]) -> None:
    for download in total["downloads"]:
        what = download.get("model") or download.get("dataset")
        where = "/".join(str(download[k]) for k in ("data_dir", "split") if download.get(k))
        click.echo(
            f"download: {'model' if 'model' in download else 'dataset'} {what}" + (f" ({where})" if where else "")
        )
    if total["requests"]:
        approx = "~" if total["estimated"] else ""
        line = (
            f"LLM: {approx}{total['requests']:,} requests, {approx}{_short(total['input_tokens'])} input and "
            f"{approx}{_short(total['output_tokens'])} output tokens, {approx}${total['cost_usd']:,.2f}"
        )
        if total["unpriced"]:
            line += f" (no price known for {', '.join(map(str, total['unpriced']))})"
        click.echo(line)
    if total["estimated"]:
        click.echo(
            "~: estimated before the data is downloaded or ingested (`seal plan --json` says what each rests on)"
        )


@click.command("plan")
@spec_argument
@set_option
@json_option
@click.pass_context
def plan_command(ctx: click.Context, spec_path: str, overrides: Sequence[str], json_: bool) -> None:
    """Show what `seal run SPEC` would do, stage by stage, and why.

    Each stage is `pending` (never computed), `stale` (its recipe changed: the changed fields are named),
    `up-to-date`, `unavailable` (not in this version of seal) or `error` (cannot be planned, exit 1).
    Nothing is sent to the Hub or to an LLM: before the data is ingested, the plan estimates the pairs,
    texts, LLM requests, tokens and cost, and lists what `seal run` would download.

    \b
    Examples:
      seal plan examples/demo.yaml --json
      seal plan examples/seal-paper.yaml --set dataset.limit=1000
    """
    spec = api.load_spec(spec_path, overrides)
    store = _store_for(ctx, spec)
    plans = api.plan(spec, store)
    stages = [p.to_json() for p in plans]
    total = totals(stages)
    if json_:
        emit_json({**_head(spec_path, spec, store), "stages": stages, "totals": total})
    else:
        click.echo(f"store {store.path}")
        rows = [{**s, "estimate": _estimate_cell(s["estimate"])} for s in stages]
        click.echo(table(rows, ["entry", "stage", "name", "status", "reason", "rows_todo", "estimate"], width=70))
        _print_totals(total)
    errors = [p for p in plans if p.status == api.PLAN_ERROR]
    if errors:
        first = errors[0]
        raise SealError(f"{first.entry} ({first.stage}) cannot be planned: {first.reason}")


@click.command("run")
@spec_argument
@set_option
@click.option(
    "--on-error",
    type=click.Choice(api.ON_ERROR),
    default="fail",
    show_default=True,
    help="fail: stop at the first failing stage; keep-going: run the remaining stages.",
)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Say on stderr when each stage starts and ends, also when stderr is not a terminal (a log file).",
)
@json_option
@silent_option
@click.pass_context
def run_command(
    ctx: click.Context,
    spec_path: str,
    overrides: Sequence[str],
    on_error: str,
    verbose: bool,
    json_: bool,
    silent: bool,
) -> None:
    """Compute every annotation the spec asks for that is missing or stale.

    Stages run in order (ingest first), then the spec's analyses and report, which only read the store and
    write files; a stage already up to date is skipped, and one not available in this version of seal is
    reported and does not fail the run. On a terminal (or with --verbose) each stage says on stderr when it
    starts and ends (`[3/7] label seal_taxonomy: 76 of 76 text(s) to label`). Exit code 1 when a stage
    failed, 3 when every failed stage ran but none of its units succeeded (e.g. an LLM endpoint refused
    every request).

    \b
    Examples:
      seal run examples/demo.yaml
      seal run examples/seal-paper.yaml --set dataset.limit=200
      seal --store ./my-store run spec.yaml --on-error keep-going --json
    """
    spec = api.load_spec(spec_path, overrides)
    store = _store_for(ctx, spec)
    report = api.run(
        spec, store, on_error=on_error, show_progress=not silent, announce=(verbose or None) and not silent
    )
    if json_:
        emit_json({**_head(spec_path, spec, store), **report.to_json()})
    else:
        click.echo(f"store {store.path}")
        rows = [
            {
                "entry": s["plan"]["entry"],
                "stage": s["plan"]["stage"],
                "name": s["plan"]["name"],
                "status": s["status"],
                "detail": s["error"] or s["summary"] or s["plan"]["reason"],
            }
            for s in report.stages
        ]
        click.echo(table(rows, width=100))
    if not report.ok:
        first = report.failures[0]
        where = f"{first['plan']['entry']} ({first['plan']['stage']} {first['plan']['name']})"
        others = f" and {len(report.failures) - 1} more" if len(report.failures) > 1 else ""
        error = NothingSucceeded if report.nothing_succeeded else SealError
        raise error(f"stage {where} failed{others}: {first['error']}")
