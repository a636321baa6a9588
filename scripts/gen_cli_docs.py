"""Write docs/cli.md from the `--help` of every seal command (recursively through groups).

    python scripts/gen_cli_docs.py           # regenerate docs/cli.md
    python scripts/gen_cli_docs.py --check   # exit 1 when docs/cli.md is out of date

tests/test_docs.py fails when docs/cli.md differs from what this script would write.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "cli.md"
WIDTH = 100

HEADER = """# seal command reference

Generated from `--help` by `python scripts/gen_cli_docs.py`; do not edit by hand.
Every command prints a human table by default and JSON with `--json` (its shape is the JSON Schema
`schemas/cli/<command>.schema.json`). Errors are one line on stderr and exit code 1; usage errors exit 2;
a stage that ran but none of whose units succeeded exits 3 (README.md, "Exit codes and errors").
"""


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path below `group`, in the order the group lists them (groups before their children)."""
    paths: list[tuple[str, ...]] = []
    ctx = click.Context(group, info_name="seal")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*prefix, name)))
    return paths


def help_text(cli: click.Group, path: tuple[str, ...]) -> str:
    env = {"COLUMNS": str(WIDTH), "SEAL_STORE": None, "SEAL_DEBUG": None}
    result = CliRunner(env=env).invoke(
        cli, [*path, "--help"], prog_name="seal", terminal_width=WIDTH, max_content_width=WIDTH
    )
    if result.exit_code != 0:
        raise RuntimeError(f"`seal {' '.join(path)} --help` exited {result.exit_code}: {result.output}")
    return result.stdout.rstrip() + "\n"


def render(cli: click.Group | None = None) -> str:
    """The text of docs/cli.md."""
    if cli is None:
        sys.path.insert(0, str(REPO))
        from seal.cli import cli
    parts = [HEADER, "## seal\n", "```text\n" + help_text(cli, ()) + "```\n"]
    for path in command_paths(cli):
        parts.append(f"## seal {' '.join(path)}\n")
        parts.append("```text\n" + help_text(cli, path) + "```\n")
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not DOC.is_file() or DOC.read_text() != text:
            print(f"{DOC.relative_to(REPO)} is out of date: run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
