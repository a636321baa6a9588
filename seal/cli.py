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
    help="Store folder (default ./seal-store; env SEAL_STORE).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors (or set SEAL_DEBUG=1).")
@click.version_option(__version__, prog_name="seal")
@click.pass_context
def cli(ctx: click.Context, store: str | None, debug: bool) -> None:
    """seal: audit reward models against preference datasets (SEAL, AAAI 2025)."""
    ctx.obj = {"store": store, "debug": debug}


def main() -> None:
    cli(prog_name="seal")


if __name__ == "__main__":
    main()
