"""The CLI's static command table (seal.commands.registry.COMMANDS) matches the real commands.

`seal --help` lists commands from that table without importing their modules, so a command added,
renamed or re-documented in seal/commands/ must be mirrored there; these tests say what differs.
"""

from __future__ import annotations

import importlib
import pkgutil

import click
import pytest
from click.testing import CliRunner

import seal.commands
from seal.cli import cli
from seal.commands.registry import COMMANDS, LazyGroup, shorten


def _defined_commands() -> dict[tuple[str, str], click.Command]:
    """(module, attribute) of every click command defined at module level in seal/commands/."""
    found = {}
    for info in pkgutil.iter_modules(seal.commands.__path__):
        module = importlib.import_module(f"seal.commands.{info.name}")
        for attr, value in vars(module).items():
            if isinstance(value, click.Command) and value.callback.__module__ == module.__name__:
                found[(module.__name__, attr)] = value
    return found


def test_every_defined_command_is_in_the_table():
    defined = _defined_commands()
    listed = {(spec.module, spec.attr) for spec in COMMANDS.values()}
    assert sorted(set(defined) - listed) == [], "add these commands to seal.commands.registry.COMMANDS"
    assert sorted(listed - set(defined)) == [], "COMMANDS names commands that do not exist"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_table_entry_matches_the_command(name):
    spec = COMMANDS[name]
    command = spec.load()
    assert command.name == name
    assert not command.hidden
    for limit in (30, 45, 74, 200, 10_000):
        assert shorten(spec.short_help, limit) == command.get_short_help_str(limit), (
            f"COMMANDS[{name!r}].short_help is not the first sentence of `seal {name}`'s help: "
            f"{command.get_short_help_str(10_000)!r}"
        )


@pytest.mark.parametrize("width", [80, 100, 140])
def test_help_lists_commands_as_an_eager_group_would(width):
    """`seal --help` from the table equals the help of the same group with every command loaded."""
    eager = LazyGroup(
        name=cli.name, params=cli.params, callback=cli.callback, help=cli.help, context_settings=cli.context_settings
    )
    for name, spec in COMMANDS.items():
        eager.add_command(spec.load(), name)
    runner = CliRunner()
    lazy_help = runner.invoke(cli, ["--help"], prog_name="seal", terminal_width=width)
    eager_help = runner.invoke(eager, ["--help"], prog_name="seal", terminal_width=width)
    assert lazy_help.exit_code == eager_help.exit_code == 0
    assert lazy_help.stdout == eager_help.stdout


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.stderr


def test_commands_load_on_demand():
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    assert cli.get_command(ctx, "stats") is COMMANDS["stats"].load()
    assert cli.get_command(ctx, "nope") is None
