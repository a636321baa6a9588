"""The `seal` command line: parse options, call seal's library, print. No logic lives here.

Commands are imported on first use (`seal.commands.registry`), so `seal --version`, `seal --help` and
the store readers do not pay for torch, transformers or statsmodels.
"""

from __future__ import annotations

import click

from seal import __version__
from seal.commands.registry import COMMANDS, LazyGroup


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    envvar="SEAL_STORE",
    type=click.Path(file_okay=False),
    help="Store folder or object-store URI, e.g. s3://bucket/prefix (default ./seal-store; env SEAL_STORE).",
)
@click.option(
    "--storage-option",
    "storage_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Object-store setting for an s3:// (gs://, az://) store, e.g. aws_endpoint=http://127.0.0.1:9000; "
    "adds to the AWS_* environment. Never written to the store or logs.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors (or set SEAL_DEBUG=1).")
@click.version_option(__version__, prog_name="seal")
@click.pass_context
def cli(ctx: click.Context, store: str | None, storage_options: tuple[str, ...], debug: bool) -> None:
    """seal: audit reward models against preference datasets (SEAL, AAAI 2025)."""
    ctx.obj = {"store": store, "debug": debug, "storage_options": storage_options}


def main() -> None:
    cli(prog_name="seal")


if __name__ == "__main__":
    main()
