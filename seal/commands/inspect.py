"""Commands that look at the store, and its housekeeping: stats, show, query, quarantine, versions, tag,
optimize."""

from __future__ import annotations

import csv
import json
from datetime import timedelta

import click

from seal import api
from seal.commands.common import emit_json, get_store, json_option
from seal.render import table, to_jsonable


@click.command("stats")
@json_option
@click.pass_context
def stats_command(ctx: click.Context, json_: bool) -> None:
    """Pairs per dataset, flag counts, column coverage and quarantine counts."""
    result = api.stats(get_store(ctx))
    if json_:
        emit_json(result)
        return
    click.echo(f"store {result['store']}: {result['pairs']:,} pairs (pairs version {result['version']})\n")
    rows = [{"dataset": name, "pairs": d["pairs"], **d["flags"]} for name, d in result["datasets"].items()]
    click.echo(table(rows))
    click.echo("\ncolumns")
    click.echo(table(result["columns"], ["column", "non_null", "coverage", "type"]))
    if result["quarantine"]:
        click.echo("\nquarantine")
        qrows = [
            {"dataset": d, "reason": r, "rows": n}
            for d, reasons in result["quarantine"].items()
            for r, n in reasons.items()
        ]
        click.echo(table(qrows))


@click.command("show")
@click.argument("pair_id")
@json_option
@click.pass_context
def show_command(ctx: click.Context, pair_id: str, json_: bool) -> None:
    """Show one pair: its conversation, both responses, flags and annotations."""
    row = api.show(get_store(ctx), pair_id)
    if json_:
        emit_json(row)
        return
    click.echo(f"pair {row['pair_id']}  dataset {row['dataset']}  key {row['source_key']}  format {row['format']}")
    flags = [name for name, on in (row.get("flags") or {}).items() if on]
    click.echo(f"flags: {', '.join(flags) if flags else 'none'}\n")
    for message in row["context"] or []:
        click.echo(f"[{message['role']}] {message['content']}\n")
    click.secho("[chosen] ", fg="green", nl=False)
    click.echo(row["chosen"] + "\n")
    click.secho("[rejected] ", fg="red", nl=False)
    click.echo(row["rejected"])
    # Every annotation column (scores, features, variants and their scores, clusters, ...); vectors by size.
    for name, value in row.items():
        if name in api.INGEST_COLUMNS or name == "context_text" or value is None:
            continue
        if name.startswith("emb_") and isinstance(value, list):
            click.echo(f"\n{name}: {len(value)}-d vector")
            continue
        click.echo(f"\n{name}: {json.dumps(to_jsonable(value), ensure_ascii=False)}")


@click.command("query")
@click.option(
    "--where",
    help="One LanceDB SQL filter expression (no `;`, comments or statements), "
    "e.g. \"dataset = 'x' AND flags.context_mismatch\".",
)
@click.option("--select", help="Comma-separated existing columns; nested fields with dots (flags.identical_responses).")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="0 for all rows.")
@click.option("json_", "--json", is_flag=True, help="Print a JSON array of rows.")
@click.option("--csv", "csv_", is_flag=True, help="Print CSV (nested values as JSON).")
@click.pass_context
def query_command(
    ctx: click.Context, where: str | None, select: str | None, limit: int, json_: bool, csv_: bool
) -> None:
    """Filter and select pairs with LanceDB SQL."""
    if json_ and csv_:
        raise click.UsageError("choose one of --json and --csv")
    columns = [c.strip() for c in select.split(",") if c.strip()] if select else None
    result = api.query(get_store(ctx), where=where, select=columns, limit=limit or None)
    rows = result.to_pylist()
    if json_:
        emit_json(rows)
    elif csv_:
        out = click.get_text_stream("stdout")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.column_names)
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row.values()])
    else:
        shown = columns or [c for c in result.column_names if not _hidden_by_default(c)]
        click.echo(table(rows, shown, width=40))
        click.echo(f"({len(rows)} rows)", err=True)


def _hidden_by_default(column: str) -> bool:
    """Columns left out of the human table unless selected: raw texts, hashes, provenance, vectors."""
    return column.endswith("_raw") or column.startswith("emb_") or column in ("source", "content_hash", "ingest_run")


def _csv_cell(value: object) -> object:
    """CSV cells: nested values as JSON, booleans as true/false (as in JSON), null as empty."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(to_jsonable(value), ensure_ascii=False)
    return to_jsonable(value)


@click.command("quarantine")
@click.option("--dataset", help="Only this dataset.")
@click.option("--reason", help="Only this reason code.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0 for all rows.")
@json_option
@click.pass_context
def quarantine_command(ctx: click.Context, dataset: str | None, reason: str | None, limit: int, json_: bool) -> None:
    """Rows that could not become pairs, with the reason."""
    rows = api.quarantined(get_store(ctx), dataset=dataset, reason=reason, limit=limit or None)
    if json_:
        emit_json(rows)
        return
    click.echo(table(rows, ["dataset", "source_key", "reason", "detail", "snippet"], width=50))


@click.command("versions")
@json_option
@click.pass_context
def versions_command(ctx: click.Context, json_: bool) -> None:
    """Versions of the pairs table, the operation and seal run that made each, and tags."""
    rows = api.versions(get_store(ctx))
    if json_:
        emit_json(rows)
        return
    for row in rows:
        row["tags"] = ", ".join(row["tags"])
    click.echo(table(rows, ["version", "timestamp", "operation", "rows", "stage", "name", "run_id", "tags"]))


@click.command("tag")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), help="Version to tag (default: current).")
@json_option
@click.pass_context
def tag_command(ctx: click.Context, name: str, version: int | None, json_: bool) -> None:
    """Tag a version of the pairs table (the current one by default)."""
    result = api.tag(get_store(ctx), name, version)
    if json_:
        emit_json(result)
        return
    click.echo(f"tagged pairs version {result['version']} as `{result['tag']}`")


@click.command("optimize")
@click.option(
    "--keep",
    default=None,
    metavar="DURATION",
    help="Keep versions newer than this: 0, 30m, 1h, 7d (default $SEAL_KEEP_VERSIONS, else 1h). Tags are kept.",
)
@json_option
@click.pass_context
def optimize_command(ctx: click.Context, keep: str | None, json_: bool) -> None:
    """Compact the store's files, update its indexes and delete old versions.

    Every stage does this at its end with the default retention; run it by hand to reclaim the
    space of replaced columns at once (`--keep 0`). Tagged versions (`seal tag`) always stay
    readable; with --keep 0, any other process still reading an older version will fail.
    """
    result = api.optimize(get_store(ctx), keep)
    tables = result["tables"]
    retention = timedelta(seconds=result["keep_seconds"])
    if json_:
        emit_json(result)
        return
    rows = [{"table": name, **stats} for name, stats in tables.items()]
    click.echo(table(rows, ["table", "fragments_before", "fragments_after", "versions_removed", "bytes_removed"]))
    freed = sum(s["bytes_removed"] for s in tables.values())
    click.echo(f"freed {freed / 2**20:,.1f} MiB; versions newer than {retention} and tagged versions kept")
