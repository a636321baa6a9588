"""Facts the README states that the code decides: flags, the prefix-sharing rule, example paths."""

from __future__ import annotations

import json
import re

from conftest import REPO

from seal import schema

README = (REPO / "README.md").read_text()


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL)


def _bullet(text: str, start: str) -> str:
    """The README list item that starts with `start`, up to the next item or blank line."""
    begin = text.index(start)
    end = re.search(r"\n(- |\n)", text[begin + 1 :])
    return text[begin : begin + 1 + end.start()] if end else text[begin:]


def test_every_flag_stats_counts_is_documented_with_stats(run_cli):
    assert run_cli("ingest", REPO / "examples" / "tiny-hh.jsonl", "--silent").exit_code == 0
    shown = json.loads(run_cli("stats", "--json").stdout)["flags"]
    bullet = _bullet(README, "- `seal stats")
    missing = [flag for flag in shown if f"`{flag}`" not in bullet]
    assert missing == [], f"README's `seal stats` item does not explain {missing}"


def test_every_stored_flag_is_in_the_readme():
    missing = [field.name for field in schema.FLAGS if f"`{field.name}`" not in README]
    assert missing == [], f"README does not mention the flags {missing}"


def test_prefix_sharing_rule_matches_the_code():
    from click.testing import CliRunner

    from seal.cli import cli
    from seal.engines.scoring import SHARING_MIN_FLOP_PER_KV_BYTE

    threshold = f"{SHARING_MIN_FLOP_PER_KV_BYTE:,}"
    help_text = " ".join(CliRunner().invoke(cli, ["score", "--help"], terminal_width=400).stdout.split())
    readme = " ".join(README.split())
    for where, text in (("seal score --help", help_text), ("README.md", readme)):
        assert f"{threshold} FLOPs per byte of KV cache" in text, f"{where} does not state the auto rule"
        assert "CUDA only" not in text, f"{where} still says auto is CUDA only"
        assert "--compile" in text and "Encoders never share" in text


def test_examples_in_the_readme_use_shipped_files():
    code = "\n".join(_code_blocks(README))
    assert "../shared/data" not in code, "README examples must not need the maintainers' data folder"
    for path in re.findall(r"\bexamples/[\w./-]+", code):
        assert (REPO / path).is_file(), f"README uses {path}, which is not shipped"


def test_readme_documents_the_shared_data_variable():
    conftest = (REPO / "tests" / "conftest.py").read_text()
    assert "SEAL_SHARED_DATA" in conftest
    assert "SEAL_SHARED_DATA" in README


def test_ci_runs_the_readme_test_command():
    """CI must run exactly what the README tells a newcomer to run, and the tests it needs must be installable."""
    marker = "**The tests**"
    block = _code_blocks(README[README.index(marker) :])[0].strip()
    assert block.startswith("python -m pytest"), block
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert block in ci_lines, f".ci/run does not run the README's test command `{block}`"
    if " -n " in f" {block} ":
        assert "pytest-xdist" in (REPO / "pyproject.toml").read_text(), "`-n` needs pytest-xdist in the test extra"
