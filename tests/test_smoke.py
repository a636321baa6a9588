"""End-to-end smoke: ingest the shipped example through the CLI and read it back."""

from __future__ import annotations

import json

from conftest import REPO


def test_ingest_example_and_query_it(run_cli):
    example = REPO / "examples" / "tiny-hh.jsonl"
    result = run_cli("ingest", example, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "transcript"
    assert summary["ingested"] == summary["read"] > 0
    rows = json.loads(run_cli("query", "--select", "pair_id,chosen", "--limit", "0", "--json").stdout)
    assert len(rows) == summary["ingested"]
    again = json.loads(run_cli("ingest", example, "--json").stdout)
    assert again["ingested"] == 0 and again["already_present"] == summary["ingested"]
