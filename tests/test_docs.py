"""Docs that can drift are generated and checked: docs/cli.md from --help, and every command is in the README."""

from __future__ import annotations

import importlib.util
import re

import click
import pytest
from conftest import REPO

from seal.cli import cli


def _gen_cli_docs():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", REPO / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _all_commands() -> list[tuple[str, click.Command]]:
    gen = _gen_cli_docs()
    out = []
    for path in gen.command_paths(cli):
        command: click.Command = cli
        for name in path:
            command = command.get_command(click.Context(command), name)  # type: ignore[attr-defined]
        out.append((" ".join(path), command))
    return out


def test_cli_docs_are_up_to_date():
    expected = _gen_cli_docs().render(cli)
    actual = (REPO / "docs" / "cli.md").read_text()
    assert actual == expected, "docs/cli.md is out of date: run `python scripts/gen_cli_docs.py`"


@pytest.mark.parametrize(("name", "command"), _all_commands(), ids=[n for n, _ in _all_commands()])
def test_commands_have_help(name, command):
    assert command.help and len(command.help.strip()) > 20, f"`seal {name}` has no help text"
    assert command.get_short_help_str(limit=200).strip()
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"`seal {name}` option {param.opts[0]} has no help text"


@pytest.mark.parametrize("name", [n for n, _ in _all_commands()])
def test_commands_are_in_the_readme(name):
    readme = (REPO / "README.md").read_text()
    # In inline code (`seal NAME ...`) or at the start of a line of a shell example.
    pattern = rf"(`|^)seal {re.escape(name)}(?![\w-])"
    assert re.search(pattern, readme, re.MULTILINE), f"README.md does not mention `seal {name}`"


def test_docs_mention_every_json_schema():
    from seal.cli_schemas import cli_schema_names

    doc = (REPO / "docs" / "cli.md").read_text()
    for name in cli_schema_names():
        assert f"## seal {name}\n" in doc, f"schemas/cli/{name}.schema.json has no command `seal {name}`"
