"""`seal confusing`: identical and near-identical responses, exact and near duplicates, contradictions,
clusters with RM resistance, stored results; and a validation on real hh-rlhf rows with planted
near-duplicates and contradictions (recall ≥ 0.95 at precision ≥ 0.9).

The planting helpers (`plant`, `paraphrase`, `score_findings`) are also used by benchmarks/confusing.py.
"""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pyarrow as pa
import pytest
from test_embeddings import BowEncoder, random_pairs, write_pairs

import seal
from seal.analysis import confusing as C
from seal.analysis.neighbors import similar_pairs
from seal.annotate import embeddings as E
from seal.annotate.findings import FindingsStage
from seal.cli_schemas import validate_output
from seal.pipeline import run_stage
from seal.store import RunRecord, new_run_id, now_utc

HH_TEST = "hh-rlhf-harmless-base/test.jsonl.gz"
ASSISTANT = "\n\nAssistant:"
HUMAN = "\n\nHuman:"

# -- planting paraphrase-like near-duplicates and contradictions ------------------------------------------
SUBSTITUTIONS = {
    "big": "large",
    "help": "assist",
    "maybe": "perhaps",
    "think": "believe",
    "very": "really",
    "get": "obtain",
    "good": "fine",
    "bad": "poor",
    "people": "folks",
    "make": "create",
    "tell": "inform",
    "want": "wish",
    "sure": "certain",
    "also": "too",
    "start": "begin",
    "buy": "purchase",
    "quick": "fast",
    "small": "little",
    "often": "frequently",
    "show": "display",
    "answer": "reply",
    "hard": "difficult",
    "kind": "sort",
    "example": "instance",
    "idea": "notion",
    "use": "employ",
    "need": "require",
}
CONTRACTIONS = {
    "do not": "don't",
    "I am": "I'm",
    "it is": "it's",
    "can not": "cannot",
    "you are": "you're",
    "that is": "that's",
    "I would": "I'd",
    "is not": "isn't",
    "does not": "doesn't",
}


def split_transcript(transcript: str) -> tuple[str, str]:
    i = transcript.rfind(ASSISTANT)
    return transcript[:i], transcript[i + len(ASSISTANT) :]


def paraphrase(text: str, rng: np.random.Generator, n_subs: int = 2) -> str:
    """Paraphrase-like edits: up to `n_subs` word substitutions and a contraction (texts of 40+ characters),
    then one casing or punctuation change. The result always differs from the input."""
    out = text
    if len(text.strip()) >= 40:
        words = [w for w in SUBSTITUTIONS if re.search(rf"\b{w}\b", out)]
        for w in rng.permutation(words)[:n_subs] if words else []:
            out = re.sub(rf"\b{w}\b", SUBSTITUTIONS[str(w)], out, count=1)
        for a, b in CONTRACTIONS.items():
            if a in out:
                out = out.replace(a, b, 1)
                break
    choice = int(rng.integers(3))
    stripped = out.rstrip()
    if choice == 0 and stripped.endswith("."):
        out = stripped[:-1] + "!"
    elif choice == 1:
        out = stripped + ("" if stripped.endswith((".", "!", "?")) else ".")
    elif out[:1].isalpha():
        out = out[:1].swapcase() + out[1:]
    if out == text:
        out = text.rstrip() + ("." if not text.rstrip().endswith(".") else "..")
    return out


def _edit_last_human_turn(prefix: str, rng: np.random.Generator) -> str:
    i = prefix.rfind(HUMAN) + len(HUMAN)
    return prefix[:i] + paraphrase(prefix[i:], rng, n_subs=1)


def load_hh(path) -> list[dict]:
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh]


def plant(rows: list[dict], n_real: int, n_dup: int, n_con: int, seed: int = 0):
    """(rows, truth): a seeded sample of `n_real` real transcript rows followed by `n_dup` near-duplicates
    (same label) and `n_con` contradictions (label flipped) of distinct originals, each made with
    `paraphrase` on both responses and, for half of them, on the last human turn. truth maps
    (original row, planted row) to "duplicate" or "contradictory". Originals whose two responses are
    already near-identical (edit ratio ≥ 0.8) are not used: their label carries no signal either way."""
    from rapidfuzz import fuzz, utils

    rng = np.random.default_rng(seed)
    real = [rows[i] for i in sorted(rng.choice(len(rows), size=n_real, replace=False).tolist())]
    eligible = []
    for i, r in enumerate(real):
        prefix_c, chosen = split_transcript(r["chosen"])
        prefix_r, rejected = split_transcript(r["rejected"])
        if prefix_c == prefix_r and fuzz.ratio(chosen, rejected, processor=utils.default_process) < 80:
            eligible.append(i)
    picks = rng.choice(eligible, size=n_dup + n_con, replace=False).tolist()
    out, truth = list(real), {}
    for k, i in enumerate(picks):
        prefix, chosen = split_transcript(real[i]["chosen"])
        _, rejected = split_transcript(real[i]["rejected"])
        ctx = _edit_last_human_turn(prefix, rng) if rng.random() < 0.5 else prefix
        a, b = paraphrase(chosen, rng), paraphrase(rejected, rng)
        if k < n_dup:
            out.append({"chosen": ctx + ASSISTANT + a, "rejected": ctx + ASSISTANT + b})
            truth[(i, len(out) - 1)] = "duplicate"
        else:
            out.append({"chosen": ctx + ASSISTANT + b, "rejected": ctx + ASSISTANT + a})
            truth[(i, len(out) - 1)] = "contradictory"
    return out, truth


def score_findings(result: C.ConfusingResult, index_of: dict[str, int], truth: dict[tuple[int, int], str]):
    """(recall, precision, wrong, missed) of the near-duplicate (same label) and contradiction findings."""
    found: dict[tuple[int, int], str] = {}
    for r in result.duplicates:
        if r["label"] in ("same", "ambiguous"):
            found[tuple(sorted((index_of[r["pair_id"]], index_of[r["other_pair_id"]])))] = "duplicate"
    for r in result.contradictory:
        found[tuple(sorted((index_of[r["pair_id"]], index_of[r["other_pair_id"]])))] = "contradictory"
    expected = {tuple(sorted(k)): v for k, v in truth.items()}
    hits = sum(1 for k, v in expected.items() if found.get(k) == v)
    wrong = {k: v for k, v in found.items() if expected.get(k) != v}
    missed = {k: v for k, v in expected.items() if found.get(k) != v}
    return hits / len(expected), (hits / len(found) if found else 1.0), wrong, missed


# -- unit tests ---------------------------------------------------------------------------------------
def test_check_kinds():
    assert C.check_kinds(None) == C.KINDS
    assert C.check_kinds(["all"]) == C.KINDS
    assert C.check_kinds(["contradictory", "near_identical"]) == ("near-identical", "contradictory")
    with pytest.raises(seal.SealError, match="unknown kind"):
        C.check_kinds("weird")


def test_exact_groups_are_order_insensitive():
    ctx = ["q1", "q1", "q1", "q2", "q1"]
    chosen = ["a", "a", "b", "a", "a"]
    rejected = ["b", "b", "a", "b", "c"]
    assert sorted(C.exact_groups(ctx, chosen, rejected)) == [(0, 1, True), (0, 2, False)]


def test_edit_similarity_ignores_case_and_punctuation():
    sims = C.edit_similarity(["You're welcome.", "Paris", "abc"], ["you're welcome!", "London", "abc"])
    assert sims[0] == pytest.approx(1.0) and sims[1] < 0.5 and sims[2] == 1.0


def test_similar_pairs_exact_and_inverted_file_agree():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((300, 48)).astype(np.float32)
    x = np.concatenate([base, base[:100] + 0.05 * rng.standard_normal((100, 48)).astype(np.float32)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = similar_pairs(x, 0.9, exact_below=10_000)
    ivf = similar_pairs(x, 0.9, exact_below=0, nlist=8, nprobe=3)
    assert set(zip(*exact[:2], strict=True)) == {(i, 300 + i) for i in range(100)}
    assert set(zip(*ivf[:2], strict=True)) == set(zip(*exact[:2], strict=True))
    np.testing.assert_allclose(np.sort(ivf[2]), np.sort(exact[2]), atol=1e-5)
    capped = similar_pairs(np.repeat(x[:1], 10, axis=0), 0.9, max_neighbors=2)
    assert np.bincount(capped[0]).max() == 2


# -- a crafted store ----------------------------------------------------------------------------------
def crafted_rows() -> list[dict]:
    rows = [
        {"prompt": "Say something polite please.", "chosen": "Sure thing.", "rejected": "Sure  thing."},  # 0 identical
        {"prompt": "Thank you so much for that!", "chosen": "You're welcome.", "rejected": "You're welcome!"},  # 1
        {"prompt": "What is the capital of France?", "chosen": "Paris is the capital.", "rejected": "Lyon."},  # 2
        {"prompt": "What is the capital of France?", "chosen": "Paris is the capital.", "rejected": "Lyon."},  # 3 dup
        {"prompt": "Name a primary colour for me.", "chosen": "Red is one.", "rejected": "Seven is one."},  # 4
        {"prompt": "Name a primary colour for me.", "chosen": "Seven is one.", "rejected": "Red is one."},  # 5 opp
        {
            "prompt": "How do I bake sourdough bread at home?",
            "chosen": "Feed the starter, mix flour water salt, fold, proof overnight, bake hot in a dutch oven.",
            "rejected": "Buy bread from the bakery down the street instead of baking it yourself.",
        },  # 6
        {
            "prompt": "How do I bake sourdough bread at home?",
            "chosen": "Buy bread from the bakery down the street instead of baking it yourself!",
            "rejected": "Feed the starter, mix flour water salt, fold, proof overnight, bake hot in a dutch oven",
        },  # 7: 6 flipped, with punctuation edits
        {
            "prompt": "Which planet is known as the red planet in our solar system?",
            "chosen": "Mars is called the red planet because of iron oxide dust on its surface.",
            "rejected": "Jupiter, the giant gas planet with the great red spot storm.",
        },  # 8
        {
            "prompt": "Which planet is known as the red planet in our solar system??",
            "chosen": "Mars is called the red planet because of the iron oxide dust on its surface.",
            "rejected": "Jupiter, the giant gas planet with the great red spot storm!",
        },  # 9: near duplicate of 8, same label
    ]
    return rows + random_pairs(40, seed=11)


@pytest.fixture
def crafted(store, tmp_path):
    seal.ingest(store, str(write_pairs(tmp_path / "c.jsonl", crafted_rows())), name="c")
    E.embed(store, encoder=BowEncoder())
    rows = store.read(["pair_id", "source_index"]).to_pylist()
    return store, {r["source_index"]: r["pair_id"] for r in rows}


def _links(items, by):
    index = {v: k for k, v in by.items()}
    return {
        (tuple(sorted((index[r["pair_id"]], index[r["other_pair_id"]]))), r["match"], r.get("label")) for r in items
    }


def store_findings(store, *args, **options):
    """Find and store (the findings stage, as `seal confusing` runs it): the ConfusingResult."""
    return run_stage(store, FindingsStage(*args, **options)).result


def test_confusing_finds_each_kind(crafted):
    store, by = crafted
    result = C.confusing(store, limit=0, n_clusters=3)
    assert [r["pair_id"] for r in result.identical] == [by[0]]
    assert [r["pair_id"] for r in result.near_identical] == [by[1]]
    assert result.near_identical[0]["response_edit"] == pytest.approx(1.0)
    assert _links(result.duplicates, by) == {
        ((2, 3), "exact", "same"),
        ((4, 5), "exact", "opposite"),
        ((8, 9), "near", "same"),
    }
    assert _links(result.contradictory, by) == {((4, 5), "exact", None), ((6, 7), "near", None)}
    near = next(r for r in result.contradictory if r["match"] == "near")
    assert near["context_similarity"] > 0.99 and near["response_similarity"] >= 0.9
    assert set(near["similarities"]) == {"cc", "rr", "cr", "rc"}
    assert result.counts["contradictory"] == 2 and result.counts["duplicates_exact"] == 2
    assert result.clusters["k"] == 3 and sum(c["size"] for c in result.clusters["clusters"]) == 50
    assert result.clusters["ranking_model"] is None  # no scores: ranked by size
    sizes = [c["size"] for c in result.clusters["clusters"]]
    assert sizes == sorted(sizes, reverse=True)
    assert all(c["terms"] for c in result.clusters["clusters"])
    validate_output("confusing", json.loads(json.dumps(result.to_json())))
    assert result.stored is None and "confusing" not in store.columns()  # the analysis only reads
    assert not store.side_exists(C.FINDINGS)


def test_results_are_stored_and_queryable(crafted):
    from seal import views as q

    store, by = crafted
    store_findings(store, n_clusters=3)
    schema = store.schema()
    assert schema.field("cluster").type == pa.int32()
    assert schema.field("confusing").type == C.CONFUSING_TYPE
    hit = q.query(store, where="array_length(confusing.contradicts) > 0", select=["pair_id"], limit=None)
    assert set(hit.column("pair_id").to_pylist()) == {by[4], by[5], by[6], by[7]}
    near = q.query(store, where="confusing.near_identical", select=["pair_id"], limit=None)
    assert near.column("pair_id").to_pylist() == [by[1]]
    row = q.show(store, by[6])
    assert row["confusing"]["contradicts"] == [by[7]] and row["cluster"] in (0, 1, 2)
    kinds = {}
    for f in C.stored_findings(store):
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    assert kinds == {"identical": 1, "near_identical": 1, "duplicate": 3, "contradictory": 2, "cluster": 3}
    assert [f["other_pair_id"] for f in C.stored_findings(store, "contradictory", pair_id=by[6])] == [by[7]]
    assert {r["stage"] for r in store.runs()} >= {"confusing", "cluster"}
    plan = FindingsStage("identical").plan(store)  # findings are recomputed on request, replacing the stored ones
    assert plan.status == "pending" and plan.column == "confusing" and "replacing 1 stored findings" in plan.reason
    # recomputing one kind replaces only its findings and keeps the other fields of the column
    store_findings(store, "identical")
    assert q.show(store, by[6])["confusing"]["contradicts"] == [by[7]]
    assert len(C.stored_findings(store, "contradictory")) == 2 and len(C.stored_findings(store, "identical")) == 1


def test_findings_command_lists_stored_findings(crafted, run_cli):
    from seal.cli_schemas import validate_output

    store, by = crafted
    empty = run_cli("findings")
    assert empty.exit_code == 0 and "no stored findings match (run `seal confusing` first)" in empty.stdout
    store_findings(store, n_clusters=3)
    everything = json.loads(run_cli("findings", "--limit", "0", "--json").stdout)
    validate_output("findings", everything)
    assert everything["total"] == len(everything["findings"]) == 10
    mine = json.loads(run_cli("findings", "--pair", by[6], "--kind", "contradictory", "--json").stdout)
    assert [(f["pair_id"], f["other_pair_id"]) for f in mine["findings"]] in ([(by[6], by[7])], [(by[7], by[6])])
    one = json.loads(run_cli("findings", "--limit", "1", "--json").stdout)
    assert one["total"] == 10 and len(one["findings"]) == 1
    text = run_cli("findings", "--kind", "clusters", "--limit", "2").stdout
    assert text.count("cluster ") >= 2 and "2 of 3 findings (--limit 0 for all)" in text


def test_cli_json_human_and_no_store(crafted, run_cli):
    store, _by = crafted
    out = run_cli("confusing", "--kind", "contradictory", "--kind", "near-identical", "--no-store", "--json")
    assert out.exit_code == 0, out.output
    value = json.loads(out.stdout)
    validate_output("confusing", value)
    assert value["stored"] is None and value["counts"]["contradictory"] == 2
    assert "confusing" not in store.schema().names
    human = run_cli("confusing", "--clusters", "2", "--limit", "3")
    assert human.exit_code == 0, human.output
    for fragment in ("contradictions", "near-identical", "duplicates", "clusters (kmeans, 2 clusters", "stored:"):
        assert fragment in human.stdout
    strict = run_cli("confusing", "--kind", "duplicates", "--threshold", "0.999", "--edit-threshold", "1", "--json")
    assert {r["match"] for r in json.loads(strict.stdout)["duplicates"]} == {"exact"}


def test_confusing_without_embeddings_uses_what_needs_none(store, tmp_path, run_cli):
    seal.ingest(store, str(write_pairs(tmp_path / "c.jsonl", crafted_rows()[:6])), name="c")
    out = run_cli("confusing", "--json")
    assert out.exit_code == 0, out.output
    value = json.loads(out.stdout)
    validate_output("confusing", value)
    assert set(value["skipped"]) == {"clusters", "near-identical by cosine", "near duplicates and contradictions"}
    assert value["counts"]["identical"] == 1 and value["counts"]["near_identical"] == 1  # by edit similarity
    assert value["counts"]["contradictory_exact"] == 1 and value["counts"]["duplicates_exact"] == 2
    assert value["near_identical"][0]["response_cosine"] is None
    clusters = run_cli("confusing", "--kind", "clusters")
    assert clusters.exit_code == 1 and "seal embed" in clusters.stderr


def _record_score_run(store, alias: str, role: str) -> None:
    store.record_run(
        RunRecord(
            run_id=new_run_id(),
            stage="score",
            name=alias,
            fingerprint="f" * 16,
            recipe={"stage": "score", "name": alias, "params": {}},
            provenance={"role": role, "origin": "imported"},
            status="done",
            rows_written=0,
            pairs_version=None,
            started_at=now_utc(),
            finished_at=now_utc(),
        )
    )


def test_clusters_rank_by_excess_resistance_with_wilson_intervals(crafted, run_cli):
    store, _by = crafted
    ids = store.pair_ids().combine_chunks()
    n = len(ids)
    rng = np.random.default_rng(0)
    chosen, rejected = rng.normal(size=n), rng.normal(size=n)
    scores = pa.StructArray.from_arrays([pa.array(chosen), pa.array(rejected)], names=["chosen", "rejected"])
    store.materialize_column("score_rm", pa.table({"pair_id": ids, "score_rm": scores}))
    _record_score_run(store, "rm", "aligned")
    feats = pa.StructArray.from_arrays(
        [pa.StructArray.from_arrays([pa.array(np.ones(n)), pa.array(np.zeros(n))], names=["chosen", "rejected"])],
        names=["polite"],
    )
    store.materialize_column("features_demo", pa.table({"pair_id": ids, "features_demo": feats}))
    result = store_findings(store, "clusters", n_clusters=4)
    info = result.clusters
    assert info["ranking_model"] == "rm"
    base = info["dataset"]["rm"]
    assert base["scored"] == n and base["resisting"] == int(np.sum(chosen <= rejected))
    excess = [c["excess"] for c in info["clusters"]]
    assert excess == sorted(excess, reverse=True)
    for c in info["clusters"]:
        s = c["resistance"]["rm"]
        assert s["ci_low"] <= s["resistance"] <= s["ci_high"]
        assert s["excess"] == pytest.approx(s["resistance"] - base["resistance"])
        assert c["features"]["demo"]["polite"] == {"chosen": 1.0, "rejected": 0.0}
    validate_output("confusing", json.loads(json.dumps(result.to_json())))
    # the stored `cluster` column groups pairs for `seal resistance --by cluster`
    out = run_cli("resistance", "--model", "rm", "--by", "cluster", "--json")
    assert out.exit_code == 0, out.output


def test_an_unreadable_rm_role_stops_the_cluster_ranking(crafted, monkeypatch):
    """Ranking clusters needs each RM's role; a failure to read them surfaces instead of ranking silently
    by another RM (the old code turned any error into an empty mapping)."""
    import seal.catalog.models as models

    store, _by = crafted
    ids = store.pair_ids().combine_chunks()
    n = len(ids)
    rng = np.random.default_rng(1)
    for alias, role in (("other", "other"), ("rm", "aligned")):
        scores = pa.StructArray.from_arrays(
            [pa.array(rng.normal(size=n)), pa.array(rng.normal(size=n))], names=["chosen", "rejected"]
        )
        store.materialize_column(f"score_{alias}", pa.table({"pair_id": ids, f"score_{alias}": scores}))
        _record_score_run(store, alias, role)
    assert C.confusing(store, "clusters", n_clusters=3).clusters["ranking_model"] == "rm"
    calls = []

    def broken(store):
        calls.append(store)
        raise OSError("runs table unreadable")

    monkeypatch.setattr(models, "list_models", broken)
    with pytest.raises(OSError, match="runs table unreadable"):
        C.confusing(store, "clusters", n_clusters=3)
    assert calls


# -- validation on real data ----------------------------------------------------------------------------
def test_planted_near_duplicates_and_contradictions_in_real_hh_rlhf(shared_data, tmp_path):
    """200 real harmless-base test rows plus 20 planted near-duplicates and 20 planted contradictions
    (paraphrase-like edits), embedded with all-MiniLM-L6-v2: recall ≥ 0.95 at precision ≥ 0.9."""
    rows, truth = plant(load_hh(shared_data / HH_TEST), n_real=200, n_dup=20, n_con=20, seed=0)
    store = seal.Store(tmp_path / "hh")
    seal.ingest(store, str(write_pairs(tmp_path / "hh.jsonl", rows)))
    E.embed(store, fields="context,chosen,rejected")
    result = C.confusing(store, ["duplicates", "contradictory"], limit=0)
    ids = store.read(["pair_id", "source_index"]).to_pylist()
    index_of = {r["pair_id"]: r["source_index"] for r in ids}
    recall, precision, wrong, missed = score_findings(result, index_of, truth)
    assert recall >= 0.95, f"missed {missed}"
    assert precision >= 0.9, f"wrong {wrong}"
