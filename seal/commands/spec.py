"""`seal validate`, `seal plan` and `seal run` over an experiment spec."""

from __future__ import annotations

import click

from seal import pipeline
from seal.commands.common import emit_json, json_option, silent_option
from seal.errors import SpecError
from seal.render import table
from seal.spec import load_spec
from seal.store import Store, default_store_path


def _store_for(ctx: click.Context, spec_store: str | None) -> Store:
    """--store / SEAL_STORE win over the spec's `store`, which wins over the default."""
    explicit = (ctx.find_root().obj or {}).get("store")
    return Store(explicit or spec_store or default_store_path())


@click.command("validate")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@json_option
def validate_command(spec_path: str, json_: bool) -> None:
    """Check an experiment spec against schemas/experiment.schema.json."""
    try:
        spec = load_spec(spec_path)
        result = {"spec": spec_path, "valid": True, "errors": [], "fingerprint": spec.fingerprint()}
    except SpecError as err:
        result = {"spec": spec_path, "valid": False, "errors": err.message.split(": ", 1)[-1].split("; ")}
        result["errors"] = [e.split("problem(s): ", 1)[-1] for e in result["errors"]]
    if json_:
        emit_json(result)
    elif result["valid"]:
        click.echo(f"{spec_path}: valid (fingerprint {result['fingerprint']})")
    else:
        for error in result["errors"]:
            click.echo(f"{spec_path}: {error}", err=True)
    if not result["valid"]:
        raise click.exceptions.Exit(1)


@click.command("plan")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@json_option
@click.pass_context
def plan_command(ctx: click.Context, spec_path: str, json_: bool) -> None:
    """Show what `seal run SPEC` would do, stage by stage, and why."""
    spec = load_spec(spec_path)
    store = _store_for(ctx, spec.store_path())
    plans = [p.to_json() for p in pipeline.plan(store, spec)]
    if json_:
        emit_json({"spec": spec_path, "store": str(store.path), "stages": plans})
        return
    click.echo(f"store {store.path}")
    click.echo(table(plans, ["stage", "name", "status", "reason", "rows_todo", "fingerprint"]))


@click.command("run")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option(
    "--on-error",
    type=click.Choice(["fail", "keep-going"]),
    default="fail",
    show_default=True,
    help="keep-going: run the remaining stages after one fails.",
)
@json_option
@silent_option
@click.pass_context
def run_command(ctx: click.Context, spec_path: str, on_error: str, json_: bool, silent: bool) -> None:
    """Compute every annotation the spec asks for that is missing or stale."""
    spec = load_spec(spec_path)
    store = _store_for(ctx, spec.store_path())
    results = pipeline.run(store, spec, show_progress=not silent, on_error=on_error)
    failed = [r for r in results if r["status"] == "failed"]
    if json_:
        emit_json({"spec": spec_path, "store": str(store.path), "stages": results})
    else:
        rows = [
            {"stage": r["plan"]["stage"], "name": r["plan"]["name"], "status": r["status"], "detail": _detail(r)}
            for r in results
        ]
        click.echo(f"store {store.path}")
        click.echo(table(rows, width=80))
    if failed:
        raise click.exceptions.Exit(1)


def _detail(entry: dict) -> str:
    if entry["error"]:
        return entry["error"]
    result = entry["result"]
    if entry["status"] == "done" and result and "ingested" in result:
        return f"{result['ingested']:,} new pairs, {result['quarantined']:,} quarantined"
    return entry["plan"]["reason"]
