"""The CLI end to end: every command's human and `--json` output, one-line errors and exit codes.

The `--json` output of every command is validated against its schema in `schemas/cli/` (seal's
machine interface): stdout must be exactly one JSON document, with progress and messages on stderr.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click
import pytest
from conftest import REPO

from seal.cli_schemas import cli_schema_names, load_cli_schema, validate_output
from seal.errors import StoreError

EXAMPLE = REPO / "examples" / "tiny-hh.jsonl"

PROMPT_RESPONSE = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Hi!"},
    {"prompt": "Name a colour", "chosen": "Blue, like the sky.", "rejected": "Seven."},
]


def _commands() -> dict[str, click.Command]:
    """Every top-level command, loaded (the group imports command modules lazily)."""
    from seal.cli import cli

    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


def _has_json_flag(command: click.Command) -> bool:
    return any("--json" in getattr(p, "opts", []) for p in command.params)


def write_fixture(folder: Path) -> Path:
    """A prompt/response JSONL file: three good rows (one with identical responses) and one broken line."""
    path = folder / "qa.jsonl"
    lines = [json.dumps(r) for r in PROMPT_RESPONSE[:2]] + ['{"prompt": "broken'] + [json.dumps(PROMPT_RESPONSE[2])]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def built(run_cli, tmp_path):
    """A store holding tiny-hh (8 pairs) and qa (3 pairs, 1 quarantined row); returns one qa pair id."""
    for source in (EXAMPLE, write_fixture(tmp_path)):
        result = run_cli("ingest", source, "--silent")
        assert result.exit_code == 0, result.output
    rows = json.loads(run_cli("query", "--where", "dataset = 'qa'", "--select", "pair_id", "--json").stdout)
    return {"pair_id": rows[0]["pair_id"]}


@pytest.fixture
def spec_file(tmp_path) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"version: 1\ndataset:\n  source: {EXAMPLE}\n  name: hh\n")
    return spec


def json_stdout(result, schema: str):
    """Parse stdout as exactly one JSON document and validate it against schemas/cli/<schema>."""
    assert result.exit_code == 0, (result.stdout, result.stderr)
    value = json.loads(result.stdout)  # raises when anything else is mixed into stdout
    validate_output(schema, value)
    return value


def assert_one_line_error(result, *fragments: str, code: int = 1) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# -- schemas ----------------------------------------------------------------------------------------
def test_every_json_command_has_a_schema():
    names = set(cli_schema_names())
    missing = [name for name, cmd in _commands().items() if _has_json_flag(cmd) and name not in names]
    assert not missing, f"commands with --json but no schemas/cli/<name>.schema.json: {missing}"


@pytest.mark.parametrize(
    "name", ["ingest", "stats", "show", "query", "quarantine", "versions", "tag", "validate", "plan", "run"]
)
def test_schema_is_documented_draft_2020_12(name):
    schema = load_cli_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"{name}.schema.json"
    assert schema["title"] == f"seal {name} --json"
    assert len(schema["description"]) > 20


# -- --json outputs against their schemas -----------------------------------------------------------
def test_ingest_json(run_cli, tmp_path):
    first = json_stdout(run_cli("ingest", write_fixture(tmp_path), "--json"), "ingest")
    assert (first["read"], first["ingested"], first["quarantined"]) == (4, 3, 1)
    assert first["quarantine_reasons"] == {"invalid_json": 1}
    assert first["flags"]["identical_responses"] == 1
    assert first["format"] == "prompt-response" and first["recipe"]["stage"] == "ingest"
    again = json_stdout(run_cli("ingest", tmp_path / "qa.jsonl", "--json"), "ingest")
    assert (again["ingested"], again["already_present"], again["pairs_version"]) == (0, 3, None)


def test_stats_json(run_cli, built):
    stats = json_stdout(run_cli("stats", "--json"), "stats")
    assert stats["pairs"] == 11
    assert {name: d["pairs"] for name, d in stats["datasets"].items()} == {"qa": 3, "tiny-hh": 8}
    assert stats["quarantine"] == {"qa": {"invalid_json": 1}}
    assert {c["column"] for c in stats["columns"]} >= {"pair_id", "context", "chosen", "rejected", "flags"}


def test_show_json(run_cli, built):
    row = json_stdout(run_cli("show", built["pair_id"], "--json"), "show")
    assert row["pair_id"] == built["pair_id"] and row["dataset"] == "qa"
    assert row["context"][0]["role"] == "user"


def test_query_json(run_cli, built):
    rows = json_stdout(run_cli("query", "--limit", "0", "--json"), "query")
    assert len(rows) == 11
    picked = json_stdout(run_cli("query", "--select", "pair_id,dataset", "--limit", "2", "--json"), "query")
    assert [sorted(r) for r in picked] == [["dataset", "pair_id"]] * 2


def test_quarantine_json(run_cli, built):
    rows = json_stdout(run_cli("quarantine", "--json"), "quarantine")
    assert [(r["dataset"], r["reason"], r["source_key"]) for r in rows] == [("qa", "invalid_json", "qa.jsonl:3")]
    assert json_stdout(run_cli("quarantine", "--reason", "tie", "--json"), "quarantine") == []


def test_versions_and_tag_json(run_cli, built):
    everything = json_stdout(run_cli("versions", "--json"), "versions")
    # The second ingest left two fragments; the clean-up at its end compacted them (a Rewrite).
    assert [(v["stage"], v["operation"]) for v in everything[-4:]] == [
        ("ingest", "Append"),
        ("ingest", "Append"),
        ("optimize", "BaseOperation"),
        ("optimize", "Rewrite"),
    ]
    versions = everything[:-2]
    assert versions[-1]["rows"] == everything[-1]["rows"] == 11
    tag = json_stdout(run_cli("tag", "before-scoring", "--json"), "tag")
    assert tag == {"tag": "before-scoring", "version": everything[-1]["version"]}
    old = json_stdout(run_cli("tag", "first", "--version", str(versions[-2]["version"]), "--json"), "tag")
    assert old["version"] == versions[-2]["version"]
    tags = {v["version"]: v["tags"] for v in json_stdout(run_cli("versions", "--json"), "versions")}
    assert tags[everything[-1]["version"]] == ["before-scoring"]
    assert tags[versions[-2]["version"]] == ["first"]


def test_validate_plan_run_json(run_cli, spec_file):
    valid = json_stdout(run_cli("validate", spec_file, "--json"), "validate")
    assert valid["valid"] and valid["errors"] == [] and valid["sections"] == ["dataset"]
    plan = json_stdout(run_cli("plan", spec_file, "--json"), "plan")
    assert [(s["stage"], s["name"], s["status"]) for s in plan["stages"]] == [("ingest", "hh", "pending")]
    run = json_stdout(run_cli("run", spec_file, "--json"), "run")
    assert run["ok"] and run["stages"][0]["status"] == "done"
    assert run["stages"][0]["result"]["ingested"] == 8
    validate_output("ingest", run["stages"][0]["result"])


def test_invalid_spec_json_still_matches_schema(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: {source: x, limit: 0}\nreward_models: [{model: a, batch_size: -1}]\n")
    result = run_cli("validate", bad, "--json")
    assert result.exit_code == 1
    value = json.loads(result.stdout)
    validate_output("validate", value)
    assert value["errors"] == [
        {"path": "dataset.limit", "message": "must be a positive integer"},
        {"path": "reward_models[0].batch_size", "message": "must be a positive integer"},
    ]


# -- human output ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["stats"], "tiny-hh"),
        (["query", "--limit", "3"], "pair_id"),
        (["query", "--select", "pair_id,flags.identical_responses"], "flags.identical_responses"),
        (["quarantine"], "invalid_json"),
        (["versions"], "Append"),
        (["tag", "v1"], "tagged pairs version"),
    ],
)
def test_human_output(run_cli, built, args, expect):
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert expect in result.stdout


def test_human_show_and_ingest(run_cli, built, tmp_path):
    shown = run_cli("show", built["pair_id"])
    assert shown.exit_code == 0 and "[chosen]" in shown.stdout and "[user]" in shown.stdout
    again = run_cli("ingest", EXAMPLE)
    assert again.exit_code == 0 and "0 new pairs, 8 already present" in again.stdout


def test_human_show_prints_every_annotation_column(run_cli, built, store):
    import pyarrow as pa

    pid = built["pair_id"]
    score = pa.struct([("chosen", pa.float64()), ("rejected", pa.float64())])
    store.materialize_column(
        "score_rm", pa.table({"pair_id": [pid], "score_rm": pa.array([{"chosen": 1.5, "rejected": -2.0}], score)})
    )
    store.materialize_column(
        "vscore_typos__rm", pa.table({"pair_id": [pid], "vscore_typos__rm": pa.array([[0.25]], pa.list_(pa.float64()))})
    )
    store.materialize_column(
        "emb_chosen", pa.table({"pair_id": [pid], "emb_chosen": pa.array([[0.0] * 8], pa.list_(pa.float32(), 8))})
    )
    out = run_cli("show", pid).stdout
    assert 'score_rm: {"chosen": 1.5, "rejected": -2.0}' in out
    assert "vscore_typos__rm: [0.25]" in out
    assert "emb_chosen: 8-d vector" in out
    assert "ingest_run" not in out and "content_hash" not in out


def test_human_query_leaves_out_raw_columns(run_cli, built):
    header = run_cli("query", "--limit", "1").stdout.splitlines()[0].split()
    assert "chosen" in header and "chosen_raw" not in header and "ingest_run" not in header


def test_human_validate_plan_run(run_cli, spec_file):
    assert "valid" in run_cli("validate", spec_file).stdout
    assert "pending" in run_cli("plan", spec_file).stdout
    ran = run_cli("run", spec_file)
    assert ran.exit_code == 0
    assert "hh: read 8 rows (transcript): 8 new pairs" in ran.stdout


# -- query details -----------------------------------------------------------------------------------
def test_query_nested_fields_in_where_and_select(run_cli, built):
    rows = json.loads(
        run_cli(
            "query",
            "--where",
            "flags.identical_responses AND dataset = 'qa'",
            "--select",
            "pair_id,flags.identical_responses,chosen",
            "--json",
        ).stdout
    )
    assert rows == [{"pair_id": rows[0]["pair_id"], "flags.identical_responses": True, "chosen": "Hi!"}]
    none = json.loads(run_cli("query", "--where", "flags.context_mismatch", "--json").stdout)
    assert none == []


def test_query_csv_parses_back(run_cli, built):
    result = run_cli("query", "--select", "pair_id,dataset,flags.identical_responses,context", "--limit", "0", "--csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 11
    assert set(rows[0]) == {"pair_id", "dataset", "flags.identical_responses", "context"}
    assert {r["flags.identical_responses"] for r in rows} == {"true", "false"}
    context = json.loads(rows[0]["context"])  # nested values are JSON
    assert context[0]["role"] == "user"


def test_query_limit(run_cli, built):
    assert len(json.loads(run_cli("query", "--limit", "2", "--json").stdout)) == 2
    assert len(json.loads(run_cli("query", "--json").stdout)) == 11  # default 20


# -- errors ------------------------------------------------------------------------------------------
def test_missing_store_is_one_line_error(run_cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["stats"], ["query"], ["versions"], ["show", "x"], ["tag", "t"], ["quarantine"]):
        result = run_cli(*args, store=empty)
        assert_one_line_error(result, "no seal store", "seal ingest")
        assert result.stdout == ""
    missing = tmp_path / "nowhere"
    assert_one_line_error(run_cli("stats", "--json", store=missing), "no seal store")
    assert not missing.exists()  # reading never creates a store


def test_unknown_pair_id(run_cli, built):
    assert_one_line_error(run_cli("show", "no-such-id"), "no pair with id `no-such-id`")


def test_bad_sql(run_cli, built):
    assert_one_line_error(run_cli("query", "--where", "dataset ==== 'x'"), "query failed")
    assert_one_line_error(run_cli("query", "--where", "no_such_column = 1", "--json"), "query failed")
    assert_one_line_error(run_cli("query", "--select", "pair_id,nope"), "--select: no column `nope`")


def test_duplicate_tag(run_cli, built):
    assert run_cli("tag", "v1").exit_code == 0
    assert_one_line_error(run_cli("tag", "v1"), "tag `v1` already exists")
    assert_one_line_error(run_cli("tag", "v2", "--version", "999"), "no version 999")


def test_bad_spec(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset:\n  source: x\nreward_models:\n  - model: a\n  - model: b\n    batch_size: 0\n")
    for command in ("plan", "run"):
        assert_one_line_error(run_cli(command, bad), "reward_models[1].batch_size: must be a positive integer")
    validated = run_cli("validate", bad)
    assert validated.stdout.strip() == f"{bad}: reward_models[1].batch_size: must be a positive integer"
    assert_one_line_error(validated, "not a valid spec")
    assert_one_line_error(run_cli("plan", tmp_path / "missing.yaml"), "cannot read the spec")
    (tmp_path / "broken.yaml").write_text("dataset: [unclosed\n")
    assert_one_line_error(run_cli("run", tmp_path / "broken.yaml"), "invalid YAML at line")


def test_source_errors_are_one_line(run_cli, tmp_path):
    assert_one_line_error(run_cli("ingest", tmp_path / "nope.jsonl", "--loader", "files"), "no such file")
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(run_cli("ingest", tmp_path / "notes.txt"), "unknown file type")


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["show"],
        ["query", "--json", "--csv"],
        ["query", "--limit", "-1"],
        ["ingest", "x", "--format", "xml"],
        ["run", "spec.yaml", "--on-error", "sometimes"],
        ["stats", "--no-such-option"],
    ],
)
def test_usage_errors_exit_2(run_cli, args):
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert "Error:" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_debug_shows_the_exception(run_cli, tmp_path):
    with pytest.raises(StoreError):
        run_cli("--debug", "stats", store=None)


def test_seal_debug_env_prints_traceback_for_unexpected_errors(run_cli, built, monkeypatch):
    from seal import views as query

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(query, "stats", boom)
    result = run_cli("stats")
    assert_one_line_error(result, "unexpected RuntimeError: kaboom", "--debug")


# -- help --------------------------------------------------------------------------------------------
def test_root_help(run_cli):
    result = run_cli("--help", store=None)
    assert result.exit_code == 0
    for name in _commands():
        assert name in result.stdout


@pytest.mark.parametrize("name", sorted(_commands()))
def test_subcommand_help(run_cli, name):
    result = run_cli(name, "--help", store=None)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: cli {name}") or result.stdout.startswith(f"Usage: seal {name}")
    assert result.stderr == ""


def test_version(run_cli):
    result = run_cli("--version", store=None)
    assert result.exit_code == 0 and result.stdout.startswith("seal, version")


def test_json_rendering_of_values_json_lacks():
    import math
    from datetime import UTC, datetime

    import numpy as np

    from seal.render import dumps

    value = {"nan": math.nan, "inf": -math.inf, "vec": np.arange(3, dtype=np.float32), "n": np.int64(7)}
    value["when"] = datetime(2025, 1, 2, tzinfo=UTC)
    value["path"] = Path("a/b")
    assert json.loads(dumps(value)) == {
        "nan": None,
        "inf": None,
        "vec": [0.0, 1.0, 2.0],
        "n": 7,
        "when": "2025-01-02T00:00:00+00:00",
        "path": "a/b",
    }
