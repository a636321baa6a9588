"""`seal ingest --loader datasets`: the Hugging Face Hub path (datasets.load_dataset), exercised offline on
local folders laid out like Hub dataset repos (Anthropic/hh-rlhf: one folder per data_dir, one file per split)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seal.cli_schemas import validate_output


def transcript(question: str, answer: str) -> str:
    return f"\n\nHuman: {question}\n\nAssistant: {answer}"


def rows(prefix: str, n: int) -> list[dict[str, str]]:
    return [
        {
            "chosen": transcript(f"{prefix} question {i}?", f"A careful answer {i}."),
            "rejected": transcript(f"{prefix} question {i}?", f"A careless answer {i}."),
        }
        for i in range(n)
    ]


def write_jsonl_gz(path: Path, records: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


@pytest.fixture
def hh_repo(tmp_path) -> Path:
    """repo/{harmless-base,helpful-base}/{train,test}.jsonl.gz, like Anthropic/hh-rlhf."""
    repo = tmp_path / "hh-rlhf"
    write_jsonl_gz(repo / "harmless-base" / "test.jsonl.gz", rows("harmless-test", 3))
    write_jsonl_gz(repo / "harmless-base" / "train.jsonl.gz", rows("harmless-train", 4))
    write_jsonl_gz(repo / "helpful-base" / "test.jsonl.gz", rows("helpful-test", 2))
    (repo / "README.md").write_text("# hh-rlhf (test copy)\n")
    return repo


def chosen_texts(run_cli, dataset: str) -> list[str]:
    result = run_cli("query", "--where", f"dataset = '{dataset}'", "--select", "chosen_raw", "--limit", "0", "--json")
    assert result.exit_code == 0, result.output
    return sorted(r["chosen_raw"] for r in json.loads(result.stdout))


def ingest_json(run_cli, *args: str) -> dict:
    result = run_cli("ingest", *args, "--json", "--silent")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    validate_output("ingest", out)
    return out


def test_data_dir_and_split(run_cli, hh_repo):
    out = ingest_json(run_cli, hh_repo, "--loader", "datasets", "--data-dir", "harmless-base", "--split", "test")
    assert (out["read"], out["ingested"], out["format"]) == (3, 3, "transcript")
    params = out["recipe"]["params"]
    assert (params["loader"], params["data_dir"], params["split"]) == ("datasets", "harmless-base", "test")
    assert chosen_texts(run_cli, out["dataset"]) == sorted(r["chosen"] for r in rows("harmless-test", 3))
    keys = json.loads(run_cli("query", "--select", "source_key", "--json").stdout)
    assert sorted(k["source_key"] for k in keys) == [
        "harmless-base/test:0",
        "harmless-base/test:1",
        "harmless-base/test:2",
    ]
    again = ingest_json(run_cli, hh_repo, "--loader", "datasets", "--data-dir", "harmless-base", "--split", "test")
    assert (again["ingested"], again["already_present"]) == (0, 3)


def test_all_splits_when_split_is_omitted(run_cli, hh_repo):
    out = ingest_json(run_cli, hh_repo, "--loader", "datasets", "--data-dir", "harmless-base")
    assert (out["read"], out["ingested"]) == (7, 7)
    expected = rows("harmless-test", 3) + rows("harmless-train", 4)
    assert chosen_texts(run_cli, out["dataset"]) == sorted(r["chosen"] for r in expected)


def test_limit_applies_to_the_hub_path(run_cli, hh_repo):
    out = ingest_json(run_cli, hh_repo, "--loader", "datasets", "--data-dir", "helpful-base", "--limit", "1")
    assert (out["read"], out["ingested"]) == (1, 1)


def error_line(result) -> str:
    """The one `Error:` line on stderr (datasets may also print its own progress bars there)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("Generating ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_missing_data_dir_is_one_line_error(run_cli, hh_repo, store_path):
    result = run_cli("ingest", hh_repo, "--loader", "datasets", "--data-dir", "no-such-base", "--split", "test")
    line = error_line(result)
    assert line.startswith("Error: cannot load") and "no-such-base" in line
    assert not (store_path / "pairs.lance").exists()


def test_missing_split_is_one_line_error(run_cli, hh_repo):
    result = run_cli("ingest", hh_repo, "--loader", "datasets", "--data-dir", "helpful-base", "--split", "train")
    line = error_line(result)
    assert line.startswith("Error: cannot load") and 'Unknown split "train"' in line


def test_missing_repo_offline_is_one_line_error(run_cli):
    result = run_cli("ingest", "no-such-org/no-such-dataset", "--split", "test")
    assert error_line(result).startswith("Error: cannot load `no-such-org/no-such-dataset`")


def test_subset_from_readme_configs(run_cli, tmp_path):
    repo = tmp_path / "configs-repo"
    write_jsonl_gz(repo / "harmless-base" / "test.jsonl.gz", rows("harmless", 2))
    write_jsonl_gz(repo / "helpful-base" / "test.jsonl.gz", rows("helpful", 3))
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: harmless\n  data_dir: harmless-base\n"
        "- config_name: helpful\n  data_dir: helpful-base\n---\n# test\n"
    )
    out = ingest_json(run_cli, repo, "--loader", "datasets", "--subset", "helpful", "--split", "test")
    assert out["ingested"] == 3 and out["recipe"]["params"]["subset"] == "helpful"
    assert chosen_texts(run_cli, out["dataset"]) == sorted(r["chosen"] for r in rows("helpful", 3))
    assert "'nope' not found" in error_line(run_cli("ingest", repo, "--loader", "datasets", "--subset", "nope"))


def test_parquet_repo_layout(run_cli, tmp_path):
    """The layout the Hub's parquet conversion uses: data/<split>-00000-of-00001.parquet."""
    repo = tmp_path / "parquet-repo"
    (repo / "data").mkdir(parents=True)
    prompts = [{"prompt": f"Q{i}?", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(prompts[:3]), repo / "data" / "train-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(prompts[3:]), repo / "data" / "test-00000-of-00001.parquet")
    out = ingest_json(run_cli, repo, "--loader", "datasets", "--split", "test", "--name", "pq")
    assert (out["ingested"], out["format"], out["dataset"]) == (2, "prompt-response", "pq")
    rows_out = json.loads(run_cli("query", "--select", "chosen,context", "--json").stdout)
    assert sorted(r["chosen"] for r in rows_out) == ["good 3", "good 4"]
    assert rows_out[0]["context"][0]["role"] == "user"
    everything = ingest_json(run_cli, repo, "--loader", "datasets", "--name", "pq-all")
    assert everything["ingested"] == 5


def test_spec_with_the_datasets_loader(run_cli, hh_repo, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"dataset:\n  source: {hh_repo.name}\n  loader: datasets\n  data_dir: helpful-base\n"
        "  split: test\n  name: helpful\n"
    )
    result = run_cli("run", spec, "--json", "--silent")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    validate_output("run", out)
    assert out["stages"][0]["result"]["ingested"] == 2
    assert out["stages"][0]["result"]["recipe"]["params"]["source"] == str(hh_repo)  # resolved against the spec
    plan = json.loads(run_cli("plan", spec, "--json").stdout)
    assert plan["stages"][0]["status"] == "up-to-date"


def test_hub_path_matches_the_file_path_on_real_rows(run_cli, shared_data, tmp_path):
    """The same rows read through datasets.load_dataset and through seal's own reader give the same pairs."""
    source = shared_data / "hh-rlhf-harmless-base" / "test.jsonl.gz"
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        first = [json.loads(next(handle)) for _ in range(6)]
    repo = tmp_path / "real-repo"
    write_jsonl_gz(repo / "harmless-base" / "test.jsonl.gz", first)
    hub = ingest_json(run_cli, repo, "--loader", "datasets", "--data-dir", "harmless-base", "--split", "test")
    files = ingest_json(run_cli, repo / "harmless-base" / "test.jsonl.gz", "--name", "files")
    assert hub["ingested"] == files["ingested"] == 6

    def hashes(dataset: str) -> list[str]:
        result = run_cli("query", "--where", f"dataset = '{dataset}'", "--select", "content_hash", "--json")
        return sorted(r["content_hash"] for r in json.loads(result.stdout))

    assert hashes(hub["dataset"]) == hashes("files")


def test_two_data_dirs_under_one_name_do_not_collide(run_cli, hh_repo):
    """Keys carry the data dir, so harmless-base and helpful-base test splits are distinct pairs."""
    first = ingest_json(
        run_cli, hh_repo, "--loader", "datasets", "--data-dir", "harmless-base", "--split", "test", "--name", "hh"
    )
    second = ingest_json(
        run_cli, hh_repo, "--loader", "datasets", "--data-dir", "helpful-base", "--split", "test", "--name", "hh"
    )
    assert (first["ingested"], second["ingested"], second["already_present"]) == (3, 2, 0)
    assert len(chosen_texts(run_cli, "hh")) == 5


def test_hub_options_with_the_files_loader_are_an_error(run_cli, hh_repo):
    result = run_cli("ingest", hh_repo / "harmless-base" / "test.jsonl.gz", "--split", "test")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "--split only apply to the datasets loader" in result.stderr
