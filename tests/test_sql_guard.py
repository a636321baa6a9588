"""`--where` takes exactly one SQL expression and `--select` existing columns (seal.sql_guard), in every
command that has them: `seal query`, `seal similar`, `seal search`."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from seal.errors import QueryError
from seal.sql_guard import check_where

EXAMPLE = REPO / "examples" / "tiny-hh.jsonl"


@pytest.fixture
def ingested(run_cli):
    assert run_cli("ingest", EXAMPLE, "--silent").exit_code == 0


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("1=1; DROP TABLE pairs; --", "--where: `;` (one expression only, not statements) at character 4"),
        ("1=1 -- and more", "--where: a `--` comment at character 5"),
        ("1=1 /* hidden */", "--where: a `/* */` comment at character 5"),
        ("pair_id IN (SELECT pair_id FROM pairs)", "--where: `SELECT` at character 13 starts a statement"),
        ("dataset = 'x' UNION ALL", "--where: `UNION` at character 15 starts a statement"),
        ("drop table pairs", "--where: `drop` at character 1 starts a statement"),
        ("dataset = 'unterminated", "--where: unterminated string literal starting at character 11"),
    ],
)
def test_where_must_be_one_expression(run_cli, ingested, where, says):
    result = run_cli("query", "--where", where, "--json")
    assert result.exit_code == 1 and result.stdout == ""
    line = error_line(result)
    assert line.startswith("Error: " + says), line
    assert "give one SQL expression" in line  # the hint


@pytest.mark.parametrize(
    "where",
    [
        "dataset = 'tiny-hh' AND NOT flags.identical_responses",
        "chosen LIKE '%;%' OR chosen LIKE '%--%' OR chosen LIKE '%/*%' OR dataset IN ('drop; select', 'tiny-hh')",
        "dataset = 'it''s' OR `dataset` = 'tiny-hh'",
        "dataset IN ('tiny-hh', 'other') AND source_index >= 0",
        "   ",  # blank: no filter
    ],
)
def test_ordinary_filters_still_work(run_cli, ingested, where):
    result = run_cli("query", "--where", where, "--select", "pair_id", "--limit", "0", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) in (7, 8) and set(rows[0]) == {"pair_id"}


def test_select_must_name_columns(run_cli, ingested):
    result = run_cli("query", "--select", "pair_id; DROP", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    line = error_line(result)
    assert line.startswith("Error: --select: no column `pair_id; DROP` (columns: pair_id, dataset")
    assert "nested fields with dots" in line
    for bad in ("flags.no_such_flag", "pair_id.x", "chosen)"):
        assert run_cli("query", "--select", bad).exit_code == 1
    good = run_cli("query", "--select", "pair_id,flags.context_mismatch,flags", "--limit", "1", "--json")
    assert good.exit_code == 0, good.output
    (row,) = json.loads(good.stdout)
    assert set(row) == {"pair_id", "flags.context_mismatch", "flags"} and row["flags"]["context_mismatch"] is False


def test_similar_and_search_check_their_where_too(run_cli, ingested):
    pair_id = json.loads(run_cli("query", "--select", "pair_id", "--limit", "1", "--json").stdout)[0]["pair_id"]
    for args in (("similar", pair_id), ("search", "pasta")):
        result = run_cli(*args, "--where", "1=1; DROP TABLE pairs")
        assert result.exit_code == 1
        assert error_line(result).startswith("Error: --where: `;` (one expression only, not statements)")


def test_check_where_unit():
    assert check_where(None) is None and check_where("") is None
    assert check_where("a = 'x;y'") == "a = 'x;y'"
    assert check_where('"weird;column" = 1') == '"weird;column" = 1'
    with pytest.raises(QueryError, match="unterminated quoted identifier"):
        check_where("`flags.x = 1")
