"""Shared CLI plumbing: the store option, JSON/human output, and one place that maps errors to exits."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from seal.errors import SealError, store_write_error
from seal.render import dumps

if TYPE_CHECKING:  # seal.store imports LanceDB: only commands that open the store pay for it
    from seal.api import Store


class SealGroup(click.Group):
    """A click group that turns seal's errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except SealError as err:
            if _debug(ctx):
                raise
            click.echo(f"Error: {err}", err=True)
            ctx.exit(err.exit_code)
        except BrokenPipeError:
            ctx.exit(141)
        except Exception as err:
            if _debug(ctx):
                raise
            from seal.api import default_store_path

            refused = store_write_error(err, (ctx.find_root().obj or {}).get("store") or default_store_path())
            if refused is not None:  # a store write outside Store's own methods (a stage's checkpoint table)
                click.echo(f"Error: {refused}", err=True)
                ctx.exit(refused.exit_code)
            click.echo(f"Error: unexpected {type(err).__name__}: {err} (rerun with --debug for details)", err=True)
            if os.environ.get("SEAL_DEBUG"):
                traceback.print_exc()
            ctx.exit(1)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or bool(os.environ.get("SEAL_DEBUG"))


def get_store(ctx: click.Context) -> Store:
    from seal.api import open_store

    obj = ctx.find_root().obj or {}
    return open_store(obj.get("store") or None, storage_options=obj.get("storage_options") or None)


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("json_", "--json", is_flag=True, help="Print JSON (the shape is in schemas/cli/).")(func)


def silent_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--silent", "-s", is_flag=True, help="No progress bar.")(func)


def emit_json(value: Any) -> None:
    click.echo(dumps(value, pretty=sys.stdout.isatty()))


def info(message: str) -> None:
    """A human message on stderr (never mixed into --json output)."""
    click.echo(message, err=True)
