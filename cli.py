"""The `seal` command line: parse options, call seal's library, print. No logic lives here."""

from __future__ import annotations

import click

from seal import __version__
from seal.commands.common import SealGroup
from seal.commands.embed import (
    confusing_command,
    embed_command,
    findings_command,
    search_command,
    similar_command,
)
from seal.commands.imprint import imprint_command
from seal.commands.ingest import ingest_command
from seal.commands.inspect import (
    optimize_command,
    quarantine_command,
    query_command,
    show_command,
    stats_command,
    tag_command,
    versions_command,
)
from seal.commands.label import import_features_command, label_command
from seal.commands.perturb import perturb_command, robustness_command
from seal.commands.resistance import import_scores_command, resistance_command
from seal.commands.score import models_command, score_command
from seal.commands.spec import plan_command, run_command, validate_command


@click.group(cls=SealGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    envvar="SEAL_STORE",
    type=click.Path(file_okay=False),
    help="Store folder (default ./seal-store; env SEAL_STORE).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors (or set SEAL_DEBUG=1).")
@click.version_option(__version__, prog_name="seal")
@click.pass_context
def cli(ctx: click.Context, store: str | None, debug: bool) -> None:
    """seal: audit reward models against preference datasets (SEAL, AAAI 2025)."""
    ctx.obj = {"store": store, "debug": debug}


for command in (
    ingest_command,
    stats_command,
    show_command,
    query_command,
    quarantine_command,
    versions_command,
    tag_command,
    optimize_command,
    validate_command,
    plan_command,
    run_command,
):
    cli.add_command(command)
cli.add_command(import_scores_command)
cli.add_command(resistance_command)
cli.add_command(perturb_command)
cli.add_command(robustness_command)
cli.add_command(score_command)
cli.add_command(models_command)
cli.add_command(label_command)
cli.add_command(import_features_command)
cli.add_command(imprint_command)
cli.add_command(embed_command)
cli.add_command(similar_command)
cli.add_command(search_command)
cli.add_command(confusing_command)
cli.add_command(findings_command)


def main() -> None:
    cli(prog_name="seal")


if __name__ == "__main__":
    main()
