"""`seal validate`, `seal plan` and `seal run` over an experiment spec."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from seal import api
from seal.commands.common import emit_json, json_option, silent_option
from seal.errors import NothingSucceeded, SealError, SpecError
from seal.render import table

if TYPE_CHECKING:
    from seal.api import Spec, Store

spec_argument = click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))


def _store_for(ctx: click.Context, spec: Spec) -> Store:
    """--store / SEAL_STORE win over the spec's `store`, which wins over the default."""
    explicit = (ctx.find_root().obj or {}).get("store")
    return api.spec_store(spec, explicit or None)


@click.command("validate")
@spec_argument
@json_option
def validate_command(spec_path: str, json_: bool) -> None:
    """Check an experiment spec against schemas/experiment.schema.json.

    Every problem is printed with its path in the document, e.g.
    `reward_models[1].batch_size: must be a positive integer`. Exit code 1 when the spec is invalid.

    \b
    Example:
      seal validate examples/demo.yaml
    """
    spec, problems = api.validate_spec(spec_path)
    result = {
        "spec": spec_path,
        "valid": spec is not None,
        "fingerprint": spec.fingerprint() if spec is not None else None,
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


@click.command("plan")
@spec_argument
@json_option
@click.pass_context
def plan_command(ctx: click.Context, spec_path: str, json_: bool) -> None:
    """Show what `seal run SPEC` would do, stage by stage, and why.

    Each stage is `pending` (never computed), `stale` (its recipe changed: the changed fields are named),
    `up-to-date`, `unavailable` (not in this version of seal) or `error` (cannot be planned, exit 1).

    \b
    Example:
      seal plan examples/demo.yaml --json
    """
    spec = api.load_spec(spec_path)
    store = _store_for(ctx, spec)
    plans = api.plan(spec, store)
    if json_:
        emit_json(
            {
                "spec": spec_path,
                "spec_fingerprint": spec.fingerprint(),
                "store": str(store.path),
                "stages": [p.to_json() for p in plans],
            }
        )
    else:
        click.echo(f"store {store.path}")
        rows = [p.to_json() for p in plans]
        click.echo(table(rows, ["entry", "stage", "name", "status", "reason", "rows_todo"], width=80))
    errors = [p for p in plans if p.status == api.PLAN_ERROR]
    if errors:
        first = errors[0]
        raise SealError(f"{first.entry} ({first.stage}) cannot be planned: {first.reason}")


@click.command("run")
@spec_argument
@click.option(
    "--on-error",
    type=click.Choice(api.ON_ERROR),
    default="fail",
    show_default=True,
    help="fail: stop at the first failing stage; keep-going: run the remaining stages.",
)
@json_option
@silent_option
@click.pass_context
def run_command(ctx: click.Context, spec_path: str, on_error: str, json_: bool, silent: bool) -> None:
    """Compute every annotation the spec asks for that is missing or stale.

    Stages run in order (ingest first); a stage already up to date is skipped, and one not available in
    this version of seal is reported and does not fail the run. Exit code 1 when a stage failed, 3 when
    every failed stage ran but none of its units succeeded (e.g. an LLM endpoint refused every request).

    \b
    Examples:
      seal run examples/demo.yaml
      seal --store ./my-store run spec.yaml --on-error keep-going --json
    """
    spec = api.load_spec(spec_path)
    store = _store_for(ctx, spec)
    report = api.run(spec, store, on_error=on_error, show_progress=not silent)
    if json_:
        emit_json(
            {
                "spec": spec_path,
                "spec_fingerprint": spec.fingerprint(),
                "store": str(store.path),
                **report.to_json(),
            }
        )
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
