"""Housekeeping: compaction, index updates and version clean-up at the end of every stage."""

from __future__ import annotations

import json
from datetime import timedelta

import pyarrow as pa
import pytest
from conftest import REPO

import seal
from seal.cli_schemas import validate_output
from seal.errors import SealError
from seal.store import parse_duration

SCORE = pa.struct([("chosen", pa.float64()), ("rejected", pa.float64())])
TINY = REPO / "examples" / "tiny-hh.jsonl"


def write_scores(store, column: str, offset: float) -> None:
    ids = store.pair_ids().to_pylist()
    values = [{"chosen": i + offset, "rejected": -i - offset} for i in range(len(ids))]
    store.materialize_column(column, pa.table({"pair_id": ids, column: pa.array(values, SCORE)}))


def snapshot(store) -> list[dict]:
    return store.read().sort_by("pair_id").to_pylist()


@pytest.fixture
def busy(store):
    """Three ingests (three fragments) and a score column written three times."""
    for name in ("a", "b", "c"):
        seal.ingest(store, TINY, name=name)
    for offset in (0.0, 10.0, 20.0):
        write_scores(store, "score_x", offset)
    return store


def test_each_ingest_compacts_the_fragments_it_adds(store):
    for name in ("a", "b", "c"):
        seal.ingest(store, TINY, name=name)
    assert store.fragment_count() == 1
    assert store.count() == 24
    stages = [v["stage"] for v in store.versions()]
    assert stages.count("ingest") == 3 and "optimize" in stages


def test_default_retention_keeps_recent_versions(busy):
    before = [v["version"] for v in busy.versions()]
    report = busy.optimize()
    assert report["pairs"]["versions_removed"] == 0
    assert [v["version"] for v in busy.versions()][: len(before)] == before


def test_keep_zero_frees_old_versions_but_not_data_nor_tags(busy):
    tagged_version = busy.versions()[1]["version"]  # right after the first ingest: 8 rows, no scores
    busy.tag("first-ingest", tagged_version)
    expected = snapshot(busy)
    report = busy.optimize(keep=timedelta(0))
    pairs = report["pairs"]
    assert pairs["versions_removed"] > 0 and pairs["bytes_removed"] > 0
    assert pairs["fragments_after"] == 1
    assert snapshot(busy) == expected
    assert {r["score_x"]["chosen"] for r in expected} == {20.0 + i for i in range(24)}
    kept = busy.versions()
    assert [v["version"] for v in kept] == [tagged_version, busy.version()]
    assert kept[0]["tags"] == ["first-ingest"]
    old = busy.read(version=tagged_version)
    assert old.num_rows == 8 and "score_x" not in old.schema.names
    # Writing on after a clean-up works as before.
    write_scores(busy, "score_y", 1.0)
    assert busy.count() == 24


def test_a_failed_tidy_warns_and_keeps_the_finished_stage(store, monkeypatch, capsys):
    calls = []

    def broken(self, keep=None):
        calls.append(keep)
        raise OSError("disk full")

    monkeypatch.setattr(seal.Store, "optimize", broken)
    result = seal.ingest(store, TINY, name="a")
    assert result.run_id is not None and store.count() == 8
    assert len(calls) == 1
    assert "compacting the store failed (disk full); run `seal optimize`" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("1.5d", 129600), ("2w", 1209600)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "-1h", "1y", "soon", "1 h x"])
def test_parse_duration_refuses_what_it_cannot_read(text):
    with pytest.raises(SealError, match="cannot read"):
        parse_duration(text)


def test_optimize_command(run_cli, store_path):
    for name in ("a", "b"):
        assert run_cli("ingest", str(TINY), "--name", name, "--silent").exit_code == 0
    result = run_cli("optimize", "--keep", "0", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    validate_output("optimize", report)
    assert report["keep_seconds"] == 0
    assert set(report["tables"]) >= {"pairs", "runs"}
    assert report["tables"]["pairs"]["versions_removed"] > 0
    text = run_cli("optimize")
    assert text.exit_code == 0 and "versions newer than 1:00:00" in text.stdout
    bad = run_cli("optimize", "--keep", "soon")
    assert bad.exit_code != 0 and "cannot read `soon` as a duration" in bad.stderr
