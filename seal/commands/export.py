"""`seal export` and `seal publish`: the store's pairs as files, and on the Hugging Face Hub."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from seal import api
from seal.commands.common import emit_json, get_store, info, json_option
from seal.render import table

F = Callable[..., Any]


def _export_options(func: F) -> F:
    """The options `seal export` and `seal publish` share: which rows and columns, the card's license."""
    options = [
        click.option(
            "--where", help="Export only the pairs matching this LanceDB SQL filter, e.g. \"dataset = 'hh'\"."
        ),
        click.option(
            "--columns",
            "columns",
            multiple=True,
            metavar="COL[,COL...]",
            help="Top-level columns to export (repeatable; pair_id and dataset are always kept). Default: all but "
            "internal ones.",
        ),
        click.option(
            "--embeddings/--no-embeddings",
            default=True,
            show_default=True,
            help="Include the emb_* vector columns.",
        ),
        click.option(
            "--config",
            metavar="NAME",
            help="Put every exported pair in one config NAME (default: one config per dataset in the store).",
        ),
        click.option(
            "--license",
            "license_",
            metavar="ID",
            help="License of the card (mit, apache-2.0, cc-by-4.0, other, ...) when the sources state none "
            "(a LICENSE or README beside the source file); overrides what they state.",
        ),
        click.option(
            "--max-shard-size",
            default=api.EXPORT_MAX_SHARD_SIZE,
            show_default=True,
            metavar="SIZE",
            help="Largest parquet shard of the hf format, in Arrow bytes (e.g. 500MB, 1GB).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


@click.command("export")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "format_",
    type=click.Choice(api.EXPORT_FORMATS),
    default="hf",
    show_default=True,
    help="hf: parquet shards + a dataset card (load_dataset(DIR) reads it); parquet/jsonl: one flat file; "
    "annotated-pairs: the AnnotatedPairs JSON of Feedback Forensics.",
)
@_export_options
@json_option
@click.pass_context
def export_command(
    ctx: click.Context,
    directory: str,
    format_: str,
    where: str | None,
    columns: tuple[str, ...],
    embeddings: bool,
    config: str | None,
    license_: str | None,
    max_shard_size: str,
    json_: bool,
) -> None:
    """Export the pairs and their annotations to DIRECTORY: a Hub-ready dataset with a card, parquet, JSON Lines
    or Feedback Forensics' AnnotatedPairs.

    The hf format writes data/<config>/<split>-NNNNN-of-NNNNN.parquet and a README.md whose YAML declares the
    configs and features and whose body documents every column with the recipe that made it and summarises
    the analyses with their numbers; an existing README.md in DIRECTORY is merged (your text and metadata stay).
    Quarantined rows are counted in the card, never exported.

    \b
    Examples:
      seal export out/ --license mit
      seal export out/ --format parquet --no-embeddings --where "dataset = 'hh'"
      seal export ff/ --format annotated-pairs
    """
    result = api.export(
        get_store(ctx),
        directory,
        format=format_,
        where=where,
        columns=list(columns) or None,
        embeddings=embeddings,
        config=config,
        license=license_,
        max_shard_size=max_shard_size,
    )
    if json_:
        emit_json(result.to_json())
        return
    files = f"{len(result.files)} file{'s' if len(result.files) != 1 else ''}"
    click.echo(
        f"exported {result.pairs:,} of {result.pairs_in_store:,} pairs to {result.directory} as {result.format}: "
        f"{files}, {_mb(result.bytes)} in {result.seconds:.1f} s"
    )
    if result.configs:
        click.echo(table([{k: c[k] for k in ("name", "split", "rows", "bytes")} for c in result.configs]))
    if result.quarantined:
        info(f"{result.quarantined:,} quarantined source rows are counted in the card, not exported")


@click.command("publish")
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="Create the repo as private (an existing repo keeps its visibility).")
@click.option("--revision", metavar="BRANCH", help="Branch to commit to (default main; created from main if missing).")
@click.option(
    "--create-pr", is_flag=True, help="Open a pull request with the commit instead of committing to the branch."
)
@click.option(
    "--token-env",
    metavar="VAR",
    help="Environment variable holding the Hub token (default HF_TOKEN, else the saved login). The token is "
    "never written anywhere.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be uploaded (files, sizes, card diff); push nothing.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, exists=True),
    help="An HTML report to upload next to the card as report.html.",
)
@click.option("--message", metavar="TEXT", help="Commit message (default: seal publish: N pairs (configs)).")
@_export_options
@json_option
@click.pass_context
def publish_command(
    ctx: click.Context,
    repo_id: str,
    private: bool,
    revision: str | None,
    create_pr: bool,
    token_env: str | None,
    dry_run: bool,
    report: str | None,
    message: str | None,
    where: str | None,
    columns: tuple[str, ...],
    embeddings: bool,
    config: str | None,
    license_: str | None,
    max_shard_size: str,
    json_: bool,
) -> None:
    """Publish the pairs to a Hugging Face Hub dataset repo: data and card in one commit.

    Builds the hf export (see `seal export`) and pushes it with one commit, so the branch never holds half a
    push: an interrupted publish leaves it as it was and rerunning completes it. When the repo already has a
    README.md, your text and metadata stay; only seal's marked sections and the configs/dataset_info entries
    of the configs seal writes are replaced. Honours HF_ENDPOINT and HF_TOKEN.

    \b
    Examples:
      seal publish me/hh-audit --license mit --dry-run
      seal publish me/hh-audit --license mit
      seal publish org/hh-audit --revision seal-update --create-pr --token-env ORG_HF_TOKEN
    """
    result = api.publish(
        get_store(ctx),
        repo_id,
        private=private,
        revision=revision,
        create_pr=create_pr,
        token_env=token_env,
        dry_run=dry_run,
        report=report,
        message=message,
        where=where,
        columns=list(columns) or None,
        embeddings=embeddings,
        config=config,
        license=license_,
        max_shard_size=max_shard_size,
    )
    if json_:
        emit_json(result.to_json())
        return
    rows = [{"file": f["path"], "bytes": f["bytes"], "action": f["action"]} for f in result.files]
    rows += [{"file": path, "bytes": None, "action": "delete"} for path in result.deleted]
    total = sum(f["bytes"] for f in result.files if f["action"] != "unchanged")
    if result.dry_run:
        click.echo(f"dry run: would publish {result.pairs:,} pairs to {result.repo_id}@{result.revision}")
        click.echo(table(rows))
        click.echo(
            f"{_mb(total)} to upload; card diff:" if result.card_diff else f"{_mb(total)} to upload; card unchanged"
        )
        if result.card_diff:
            click.echo(result.card_diff.rstrip())
        return
    if not result.changed:
        click.echo(f"{result.repo_id}@{result.revision} already holds this export: nothing to commit")
        return
    where_to = result.pull_request_url or result.commit_url
    made = " (created the repo)" if result.created_repo else " (created the branch)" if result.created_branch else ""
    click.echo(f"published {result.pairs:,} pairs to {result.repo_id}@{result.revision}{made}: {where_to}")
    click.echo(table(rows))
