"""The store's column-level writes, versions and tags."""

from __future__ import annotations

import pyarrow as pa
import pytest
from conftest import REPO

import seal
from seal.errors import SealError, StoreError

SCORE = pa.struct([("chosen", pa.float64()), ("rejected", pa.float64())])


@pytest.fixture
def filled(store):
    seal.ingest(store, REPO / "examples" / "tiny-hh.jsonl")
    return store


def column_values(store, column):
    rows = store.read().select(["pair_id", column]).to_pylist()
    return {r["pair_id"]: r[column] for r in rows}


def test_materialize_fills_a_column_keeps_the_last_duplicate_and_leaves_others_null(filled):
    ids = filled.pair_ids().to_pylist()
    values = pa.table(
        {
            "pair_id": [ids[0], ids[1], ids[0]],
            "score_x": pa.array([{"chosen": 1.0, "rejected": 2.0}] * 2 + [{"chosen": 9.0, "rejected": 8.0}], SCORE),
        }
    )
    filled.materialize_column("score_x", values)
    got = column_values(filled, "score_x")
    assert got[ids[0]] == {"chosen": 9.0, "rejected": 8.0}
    assert got[ids[1]] == {"chosen": 1.0, "rejected": 2.0}
    assert all(got[i] is None for i in ids[2:])
    assert len(got) == len(ids)


def test_materialize_replaces_an_existing_column_and_accepts_an_empty_one(filled):
    ids = filled.pair_ids().to_pylist()
    filled.materialize_column(
        "score_x", pa.table({"pair_id": ids[:1], "score_x": pa.array([{"chosen": 1.0, "rejected": 0.0}], SCORE)})
    )
    empty = pa.table({"pair_id": pa.array([], pa.string()), "score_x": pa.array([], SCORE)})
    filled.materialize_column("score_x", empty)
    assert set(column_values(filled, "score_x").values()) == {None}
    assert filled.schema().field("score_x").type == SCORE


def test_ingest_columns_cannot_be_overwritten(filled):
    with pytest.raises(StoreError, match="belongs to ingest"):
        filled.materialize_column("chosen", pa.table({"pair_id": ["x"], "chosen": ["y"]}))


def test_versions_name_the_operation_and_run_and_tags_refuse_duplicates(filled):
    versions = filled.versions()
    assert [v["operation"] for v in versions][:2] == ["Overwrite", "Append"]
    assert versions[1]["stage"] == "ingest" and versions[1]["rows"] == 8
    assert filled.tag("start") == {"tag": "start", "version": versions[-1]["version"]}
    assert filled.versions()[-1]["tags"] == ["start"]
    with pytest.raises(SealError, match="already exists"):
        filled.tag("start")
    with pytest.raises(StoreError, match="no version 99"):
        filled.tag("later", 99)


def test_reading_a_missing_store_says_how_to_make_one(tmp_path):
    with pytest.raises(StoreError, match="run `seal ingest SOURCE` first"):
        seal.Store(tmp_path / "nowhere").read()


def test_side_tables_are_created_on_first_use_and_never_shadow_the_stores_own(filled):
    schema = pa.schema([("key", pa.string())])
    assert filled.side_read("cache_x") is None and not filled.side_exists("cache_x")
    filled.side_append("cache_x", pa.table({"key": ["a"]}), schema)
    assert filled.side_count("cache_x") == 1 and filled.side_read("cache_x").column("key").to_pylist() == ["a"]
    for own in ("pairs", "runs", "quarantine", "work__score_x"):
        with pytest.raises(StoreError, match="store's own tables"):
            filled.side_append(own, pa.table({"key": ["b"]}), schema)
