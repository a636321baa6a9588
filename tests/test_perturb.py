"""The `perturb` stage: variants column, seeds, resume, re-scoring with the score recipe (and later RMs),
similarity marking, variant labels, the CLI and spec, and the `llm` rewriter against a fault-injecting
fake server and llama.cpp's real server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import llm_servers
import numpy as np
import pyarrow as pa
import pytest
from tiny_models import build_deberta_rm

from seal.annotate.perturb import (
    VARIANTS_TYPE,
    VSCORE_TYPE,
    PerturbConfig,
    RuleChain,
    label_variants,
    perturb,
    plan_perturb,
    sample_ids,
    variant_texts,
    write_variant_labels,
)
from seal.annotate.perturb.llm_rewriter import LLMRewriter, clean_answer
from seal.annotate.perturb.rewriters import RuleRewriter
from seal.annotate.scores import score
from seal.catalog.featuresets import load_feature_set
from seal.cli_schemas import validate_output
from seal.engines.scoring import RewardModel
from seal.errors import SealError
from seal.ingest import ingest
from seal.store import WORK_PREFIX

QUESTIONS = [
    "How do I boil an egg?",
    "Can you help me write a polite email?",
    "What's the capital of France?",
    "Why is the sky blue?",
    "I don't feel well today.",
    "Tell me a joke about cats.",
]
REPLIES = [
    "Sure, I can help. Put the egg in boiling water for nine minutes.",
    "I'm not able to help with that. It could hurt someone.",
    "That sounds great! Let me know if you need anything else.",
    "You should talk to a doctor. They will know what to do.",
    "No way! That is a terrible idea. Please don't do it.",
    "Paris is the capital of France. It's a lovely city.",
    "The sky looks blue because air scatters blue light more than red light.",
]


def write_pairs(folder: Path, n: int = 12) -> Path:
    """Transcript pairs; every third one has two Human turns."""
    path = folder / "pairs.jsonl"
    with path.open("w") as fh:
        for i in range(n):
            q = f"{QUESTIONS[i % len(QUESTIONS)]} (case {i})"
            prefix = f"\n\nHuman: Hello there.\n\nAssistant: Hi! How can I help?\n\nHuman: {q}" if i % 3 == 0 else ""
            prefix = prefix or f"\n\nHuman: {q}"
            a, b = REPLIES[i % len(REPLIES)], REPLIES[(i + 3) % len(REPLIES)]
            fh.write(json.dumps({"chosen": f"{prefix}\n\nAssistant: {a}", "rejected": f"{prefix}\n\nAssistant: {b}"}))
            fh.write("\n")
    return path


@pytest.fixture(scope="module")
def rms(tmp_path_factory):
    root = tmp_path_factory.mktemp("perturb-rms")
    return {"a": build_deberta_rm(root / "a", seed=1), "b": build_deberta_rm(root / "b", seed=2)}


@pytest.fixture
def pairs_store(store, tmp_path):
    ingest(store, str(write_pairs(tmp_path)))
    return store


def column(store, name: str) -> dict[str, object]:
    tab = store.read()
    return dict(zip(tab.column("pair_id").to_pylist(), tab.column(name).to_pylist(), strict=True))


class Counting(RuleRewriter):
    """A rule rewriter that counts the texts it rewrites and can fail after some chunks (a killed run)."""

    def __init__(self, method: str, chunk: int = 2000, fail_after: int | None = None):
        super().__init__(method)
        self.texts = 0
        self.calls = 0
        self.chunk = chunk
        self.fail_after = fail_after

    def chunk_size(self) -> int:
        return self.chunk

    def rewrite(self, jobs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise SealError("killed")
        self.calls += 1
        self.texts += len(jobs)
        return super().rewrite(jobs)


# -- variants ---------------------------------------------------------------------------------------
def test_variants_are_seeded_reproducible_and_one_per_side(pairs_store, tmp_path):
    config = PerturbConfig(method="typos:rate=0.05", sample=5, seed=3)
    result = perturb(pairs_store, config)
    assert result.status == "done" and result.column == "variants_typos" and result.pairs_sampled == 5
    assert pairs_store.schema().field("variants_typos").type == VARIANTS_TYPE
    values = column(pairs_store, "variants_typos")
    sampled = sorted(pid for pid, v in values.items() if v is not None)
    assert sampled == sample_ids(list(values), 5, 3)
    originals = {r["pair_id"]: r for r in pairs_store.read().to_pylist()}
    chain = RuleChain.parse("typos:rate=0.05")
    for pid in sampled:
        variants = values[pid]
        assert [v["side"] for v in variants] == ["chosen", "rejected"]
        for v in variants:
            assert v["text"] == chain.apply(originals[pid][v["side"]], f"3|{pid}|{v['side']}|response")
            assert v["context"] is None and v["target"] == "response" and v["seed"] == 3
            assert -1 <= v["similarity"] <= 1 and v["status"] == "ok" and v["changed"]
            assert json.loads(v["params"]) == {"kind": "rules", "ops": chain.params()}

    other = type(pairs_store)(tmp_path / "other")
    ingest(other, str(tmp_path / "pairs.jsonl"))
    perturb(other, config)
    assert column(other, "variants_typos") == values  # same seed, same store content: same variants
    perturb(other, PerturbConfig(method="typos:rate=0.05", sample=5, seed=4))
    assert column(other, "variants_typos") != values


def test_rerun_does_nothing_and_a_recipe_change_recomputes(pairs_store):
    first = Counting("typos:rate=0.05")
    perturb(pairs_store, PerturbConfig(method="typos:rate=0.05", sample=4), rewriter=first)
    assert first.texts == 8
    again = Counting("typos:rate=0.05")
    result = perturb(pairs_store, PerturbConfig(method="typos:rate=0.05", sample=4), rewriter=again)
    assert result.status == "up-to-date" and again.texts == 0
    changed = PerturbConfig(method="typos:rate=0.2", sample=4)
    plan = plan_perturb(pairs_store, changed)
    assert plan.status == "stale" and "method" in plan.reason
    third = Counting("typos:rate=0.2")
    assert perturb(pairs_store, changed, rewriter=third).status == "done" and third.texts == 8
    runs = [r for r in pairs_store.runs("perturb") if r["name"] == "typos"]
    assert len(runs) == 2 and runs[-1]["recipe"]["params"]["method"] == "typos:min=1,rate=0.2"


def test_a_killed_run_resumes_without_rewriting_committed_pairs(pairs_store):
    config = PerturbConfig(method="filler", sample=6, seed=1)
    killed = Counting("filler", chunk=2, fail_after=2)
    with pytest.raises(SealError, match="killed"):
        perturb(pairs_store, config, rewriter=killed)
    assert WORK_PREFIX + "variants_filler" in pairs_store.table_names()
    assert "variants_filler" not in pairs_store.columns()
    resumed = Counting("filler", chunk=2)
    result = perturb(pairs_store, config, rewriter=resumed)
    assert result.pairs_rewritten == 2 and resumed.texts == 4  # only the last chunk
    assert WORK_PREFIX + "variants_filler" not in pairs_store.table_names()
    resumed_values = column(pairs_store, "variants_filler")

    fresh = type(pairs_store)(pairs_store.path.parent / "fresh")
    ingest(fresh, str(pairs_store.path.parent / "pairs.jsonl"))
    perturb(fresh, config)
    assert column(fresh, "variants_filler") == resumed_values


def test_sides_and_conversation_target(pairs_store, rms):
    score(pairs_store, str(rms["a"]), alias="a")
    perturb(pairs_store, PerturbConfig(method="case:mode=upper", sides="chosen", target="conversation", sample=4))
    variants = column(pairs_store, "variants_case")
    vscores = column(pairs_store, "vscore_case__a")
    originals = {r["pair_id"]: r for r in pairs_store.read().to_pylist()}
    rm = RewardModel(str(rms["a"]))
    for pid, vs in variants.items():
        if vs is None:
            assert vscores[pid] is None
            continue
        (v,) = vs
        assert v["side"] == "chosen" and v["target"] == "conversation"
        assert [m["content"] for m in v["context"]] == [m["content"].upper() for m in originals[pid]["context"]]
        assert v["text"] == originals[pid]["chosen"].upper()
        assert vscores[pid]["rejected"] is None
        expected = rm.score([(v["context"], v["text"])])[0]
        assert vscores[pid]["chosen"] == pytest.approx(expected, abs=1e-5)


def test_stored_response_embeddings_stand_for_the_originals(pairs_store):
    from seal.annotate.embeddings import embed
    from seal.annotate.perturb import similarity

    embed(pairs_store, fields=["chosen", "rejected"], index=False)
    encoder = similarity.encoder_for(similarity.store_embedding_spec(pairs_store))
    similarity._CACHE.clear()
    before = encoder.stats["texts"]
    result = perturb(pairs_store, PerturbConfig(method="filler:rate=1", sample=4, seed=9))
    assert encoder.stats["texts"] - before == 8  # the variants only: the originals' vectors were in the store
    assert result.recipe["params"]["similarity"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    originals = {r["pair_id"]: r for r in pairs_store.read().to_pylist()}
    for pid, vs in column(pairs_store, "variants_filler").items():
        for v in vs or []:
            a, b = encoder.encode([originals[pid][v["side"]], v["text"]])
            assert v["similarity"] == pytest.approx(float(a @ b), abs=1e-4)


# -- re-scoring -------------------------------------------------------------------------------------
def test_variants_are_rescored_with_the_score_recipe_and_later_rms_add_their_column(pairs_store, rms):
    score(pairs_store, str(rms["a"]), alias="a", max_length=64)
    result = perturb(pairs_store, PerturbConfig(method="contractions+punctuation:mode=strip", sample=6))
    (rescored,) = result.rescored
    assert rescored.status == "done" and rescored.column == "vscore_contractions_punctuation__a"
    assert pairs_store.schema().field(rescored.column).type == VSCORE_TYPE
    rm = RewardModel(str(rms["a"]), max_length=64)  # the recipe `a` was scored with
    variants = column(pairs_store, "variants_contractions_punctuation")
    vscores = column(pairs_store, rescored.column)
    contexts = {r["pair_id"]: r["context"] for r in pairs_store.read().to_pylist()}
    items, expected_keys = [], []
    for pid, vs in variants.items():
        for v in vs or []:
            items.append((contexts[pid], v["text"]))
            expected_keys.append((pid, v["side"]))
    expected = rm.score(items)
    got = [vscores[pid][side] for pid, side in expected_keys]
    np.testing.assert_allclose(got, expected, atol=1e-5)

    # An RM scored later: the plan says so, the next run adds its column only.
    score(pairs_store, str(rms["b"]), alias="b")
    config = PerturbConfig(method="contractions+punctuation:mode=strip", sample=6)
    plan = plan_perturb(pairs_store, config)
    assert plan.status == "pending" and plan.rescore_todo == ["b"]
    runs_before = len(pairs_store.runs("perturb"))
    again = perturb(pairs_store, config)
    assert again.status == "up-to-date" and len(pairs_store.runs("perturb")) == runs_before
    statuses = {r.alias: r.status for r in again.rescored}
    assert statuses == {"a": "up-to-date", "b": "done"}
    assert "vscore_contractions_punctuation__b" in pairs_store.columns()
    assert column(pairs_store, rescored.column) == vscores
    assert plan_perturb(pairs_store, config).status == "up-to-date"

    # Re-scoring the originals with another recipe makes the variant scores stale.
    score(pairs_store, str(rms["a"]), alias="a", max_length=32, replace=True)
    assert plan_perturb(pairs_store, config).rescore_todo == ["a"]
    third = perturb(pairs_store, config)
    assert {r.alias: r.status for r in third.rescored} == {"a": "done", "b": "up-to-date"}


def test_unchanged_variants_reuse_the_original_score(pairs_store, rms):
    score(pairs_store, str(rms["a"]), alias="a")
    result = perturb(pairs_store, PerturbConfig(method="typos:rate=0,min=0", sample=3))
    assert result.variants["unchanged"] == 6 and result.rescored[0].texts_scored == 0
    originals = column(pairs_store, "score_a")
    for pid, value in column(pairs_store, "vscore_typos__a").items():
        assert value == (originals[pid] if value is not None else None)


def test_min_similarity_marks_variants_and_analyses_skip_them(pairs_store, rms):
    from seal.analysis.robustness import robustness

    score(pairs_store, str(rms["a"]), alias="a")
    result = perturb(pairs_store, PerturbConfig(method="typos:rate=0.3", sample=8, min_similarity=0.9))
    marked = result.variants["below_min_similarity"]
    sims = [v["similarity"] for vs in column(pairs_store, "variants_typos").values() for v in vs or []]
    assert marked == sum(s < 0.9 for s in sims) > 0
    default = robustness(pairs_store).results[0]
    included = robustness(pairs_store, include_dissimilar=True).results[0]
    assert default.coverage["dissimilar"] == marked and default.coverage["texts"] == 16 - marked
    assert included.coverage["dissimilar"] == 0 and included.coverage["included"] == 8


# -- labels of variants -----------------------------------------------------------------------------
SET = """\
name: cues
features:
  - {name: exclaims, type: bool}
  - {name: mood, type: category, values: {sad: -1, flat: 0, glad: 1}}
  - {name: words, type: number}
"""


def cue_labels(text: str) -> dict[str, object]:
    mood = "glad" if "great" in text.lower() else ("sad" if "sorry" in text.lower() else "flat")
    return {"exclaims": "!" in text, "mood": mood, "words": float(len(text.split()))}


def test_variant_texts_and_labels(pairs_store, tmp_path):
    (tmp_path / "cues.yaml").write_text(SET)
    fs = load_feature_set(str(tmp_path / "cues.yaml"))
    perturb(pairs_store, PerturbConfig(method="punctuation:mode=strip", sample=4, sides="rejected"))
    texts = variant_texts(pairs_store, "punctuation")
    assert len(texts) == 4 and {t.side for t in texts} == {"rejected"}
    assert all("!" not in t.response and t.context for t in texts)
    out = label_variants(pairs_store, "punctuation", fs, lambda ts: [cue_labels(t.response) for t in ts])
    assert out["column"] == "vfeatures_punctuation__cues" and out["pairs"] == 4
    assert pairs_store.schema().field(out["column"]).type == fs.arrow_type()
    stored = [v for v in column(pairs_store, out["column"]).values() if v is not None]
    assert all(v["exclaims"] == {"chosen": None, "rejected": False} for v in stored)
    run = pairs_store.runs("vlabel")[-1]
    assert run["name"] == "punctuation__cues" and run["recipe"]["params"]["feature_set"]["name"] == "cues"
    with pytest.raises(SealError, match="expected true or false"):
        write_variant_labels(pairs_store, "punctuation", fs, {texts[0].key: {**cue_labels("x"), "exclaims": "?"}})
    with pytest.raises(SealError, match="not variants"):
        write_variant_labels(pairs_store, "punctuation", fs, {("nope", "chosen"): cue_labels("x")})


# -- CLI and spec -----------------------------------------------------------------------------------
def test_cli_perturb_and_list_ops(run_cli, tmp_path, rms, store):
    ingest(store, str(write_pairs(tmp_path)))
    score(store, str(rms["a"]), alias="a")
    args = [
        "perturb",
        "--method",
        "typos",
        "--param",
        "rate=0.1",
        "--sample",
        "3",
        "--seed",
        "2",
        "--label",
        "heuristics",
    ]
    result = run_cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    value = json.loads(result.stdout)
    validate_output("perturb", value)
    assert value["variants"]["total"] == 6 and value["rescored"][0]["column"] == "vscore_typos__a"
    (labels,) = value["labels"]
    assert labels["column"] == "vfeatures_typos__heuristics" and labels["status"] == "done" and labels["pairs"] == 3
    heuristics = load_feature_set("heuristics")
    assert store.schema().field("vfeatures_typos__heuristics").type == heuristics.arrow_type()
    human = run_cli(*args, "-s")
    assert "variants up to date" in human.stdout and "vscore_typos__a: up-to-date" in human.stdout
    assert "vfeatures_typos__heuristics: up-to-date" in human.stdout
    ops = run_cli("perturb", "--list-ops", "--json")
    validate_output("perturb", json.loads(ops.stdout))
    assert {o["op"] for o in json.loads(ops.stdout)["ops"]} >= {"typos", "case", "llm"}
    bad = run_cli("perturb", "--method", "sparkle")
    assert bad.exit_code == 1 and bad.stderr.strip().count("\n") == 0 and "unknown perturbation method" in bad.stderr
    rob = run_cli("robustness", "--json")
    validate_output("robustness", json.loads(rob.stdout))
    text = run_cli("robustness")
    assert "agreement before / after" in text.stdout and "sensitivity" in text.stdout


def test_spec_declares_perturbations(run_cli, tmp_path, rms):
    pairs = write_pairs(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"version: 1\ndataset:\n  source: {pairs}\n  name: mini\n"
        f"reward_models:\n  - model: {rms['a']}\n    alias: a\n"
        "perturbations:\n"
        "  - {method: punctuation, params: {mode: exclaim}, name: bang, sample: 4, seed: 5, sides: chosen}\n"
    )
    planned = run_cli("plan", spec, "--json")
    assert planned.exit_code == 0, planned.stderr
    stages = {p["stage"]: p for p in json.loads(planned.stdout)["stages"]}
    assert stages["perturb"]["status"] == "pending" and stages["perturb"]["column"] == "variants_bang"
    ran = run_cli("run", spec, "--json")
    assert ran.exit_code == 0, ran.stderr
    assert "variants_bang" in run_cli("stats", "--json").stdout
    assert "vscore_bang__a" in run_cli("stats", "--json").stdout
    again = run_cli("perturb", "--spec", spec, "--method", "bang", "--json")
    assert json.loads(again.stdout)["status"] == "up-to-date"
    missing = run_cli("perturb", "--spec", spec, "--method", "nope")
    assert missing.exit_code == 1 and "declares no perturbation `nope`" in missing.stderr


# -- the llm rewriter -------------------------------------------------------------------------------
LLM_FAST = {"backoff_base": 0.01, "timeout": 5.0, "concurrency": 2}
PARA = re.compile(r"\{para:(\w+):(\d+|\*)\}")


class FakeParaphraser(llm_servers.FakeOpenAI):
    """The labeler's fault-injecting server, answering paraphrase requests: "In other words, ..." per turn.
    Besides its HTTP faults ({fault:KIND:N}), {para:KIND:N} makes the first N answers invalid: same (echo
    the text), empty, long, markers (adds a Human turn)."""

    def completion(self, body, fault):
        if fault in ("429", "500", "503", "400"):
            return super().completion(body, fault)
        prompt = body["messages"][1]["content"]
        text = llm_servers.FINAL.search(prompt).group(1)
        attempt = self.attempts[text]
        kind = next((k for k, n in PARA.findall(text) if n == "*" or attempt <= int(n)), None)
        if "<dialogue>" in prompt:
            turns = re.split(r"\n\n(?=(?:Human|Assistant): )", text)
            answer = "\n\n".join(re.sub(r"^(\w+): ", r"\1: In other words, ", t) for t in turns)
        else:
            answer = "In other words, " + text
        if kind == "same":
            answer = text
        elif kind == "empty":
            answer = "  "
        elif kind == "long":
            answer = answer * 5
        elif kind == "markers":
            answer += "\n\nHuman: and then?"
        value = {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
        return 200, value, {}


@pytest.fixture
def paraphraser(monkeypatch):
    monkeypatch.setattr(llm_servers, "FINAL", re.compile(r"<(?:text|dialogue)>\n(.*?)\n</(?:text|dialogue)>", re.S))
    with FakeParaphraser() as fake:
        yield fake


def llm_store(store, tmp_path, replies: list[str]) -> None:
    path = tmp_path / "llm.jsonl"
    with path.open("w") as fh:
        for i, reply in enumerate(replies):
            q = f"\n\nHuman: Question {i}?"
            fh.write(json.dumps({"chosen": f"{q}\n\nAssistant: {reply}", "rejected": f"{q}\n\nAssistant: No idea."}))
            fh.write("\n")
    ingest(store, str(path))


def llm_config(fake, **extra) -> PerturbConfig:
    params = {"model": "fake", "base_url": fake.url, **LLM_FAST, **extra}
    return PerturbConfig(method="llm", params=params, sides="chosen")


def test_llm_rewriter_validates_reasks_and_caches(store, tmp_path, paraphraser):
    replies = [
        "Boil the egg for nine minutes, then cool it.",
        "Paris is the capital. {para:same:1}",
        "Try a warm bath. {para:markers:2}",
        "Call a friend today. {fault:500:1}",
        "Drink some water. {para:empty:*}",
        "Go outside for a walk. {para:long:*}",
    ]
    llm_store(store, tmp_path, replies)
    result = perturb(store, llm_config(paraphraser))
    assert result.kind == "llm" and result.variants == {
        "total": 6,
        "ok": 4,
        "unchanged": 0,
        "failed": 2,
        "below_min_similarity": 0,
    }
    by_text = {}
    for vs in column(store, "variants_llm").values():
        (v,) = vs
        by_text[v["text"] or v["error"]] = v
    ok = [v for v in by_text.values() if v["status"] == "ok"]
    assert all(v["text"].startswith("In other words, ") and v["context"] is None for v in ok)
    assert sorted(v["attempts"] for v in ok) == [1, 1, 2, 3]  # the HTTP retry is not an ask
    failed = sorted(v["error"] for v in by_text.values() if v["status"] == "failed")
    assert "the answer is empty" in failed[0] and "times as long as the original" in failed[1]
    # 6 first asks + 1 re-ask (same) + 2 (markers) + 2 each for the two that always fail + 1 HTTP retry
    assert paraphraser.chat_requests == 6 + 1 + 2 + 4 + 1
    reasks = [b for b in paraphraser.chat_bodies if len(b["messages"]) > 2]
    assert any("adds speaker markers" in b["messages"][-1]["content"] for b in reasks)

    # A rerun asks again only for the failed ones; another perturbation of the same texts asks nothing new.
    paraphraser.reset_counts()
    plan = plan_perturb(store, llm_config(paraphraser))
    assert plan.status == "pending" and plan.pairs_todo == 2
    perturb(store, llm_config(paraphraser))
    assert paraphraser.chat_requests == 2 * 3
    paraphraser.reset_counts()
    other = perturb(store, PerturbConfig(**{**llm_config(paraphraser).__dict__, "name": "llm_again"}))
    assert other.variants["ok"] == 4 and paraphraser.chat_requests == 2 * 3
    assert other.provenance["rewriter"]["stats"]["cache_hits"] == 4


def test_llm_rewriter_conversation_target_keeps_markers(store, tmp_path, paraphraser):
    llm_store(store, tmp_path, ["Sure, here it is.", "Fine. {para:markers:1}"])
    perturb(store, PerturbConfig(**{**llm_config(paraphraser).__dict__, "target": "conversation", "sides": "both"}))
    for vs in column(store, "variants_llm").values():
        for v in vs:
            assert v["status"] == "ok", v["error"]
            assert [m["role"] for m in v["context"]] == ["user"]
            assert v["context"][0]["content"].startswith("In other words, Question")
            assert v["text"].startswith("In other words, ")


def test_llm_rewriter_parameters_and_answer_cleaning():
    with pytest.raises(SealError, match="needs a model"):
        LLMRewriter.from_method("llm")
    with pytest.raises(SealError, match="unknown llm parameter"):
        LLMRewriter.from_method("llm:model=x,colour=red")
    rewriter = LLMRewriter.from_method("llm:model=m,temperature=0.2", {"min_ratio": 0.7})
    assert rewriter.recipe_params()["temperature"] == 0.2 and rewriter.recipe_params()["min_ratio"] == 0.7
    assert "base_url" not in rewriter.recipe_params()
    assert clean_answer("Here is the paraphrase:\n<text>\nHello.\n</text>") == "Hello."
    assert clean_answer('```\n"Hi there."\n```') == "Hi there."


def test_llm_rewriter_against_llama_cpp(store, tmp_path, tmp_path_factory):
    """A real OpenAI-compatible server (llama.cpp, SmolLM2-135M): the client path works end to end. The model is
    weak, so the rewrite may fail validation; either way the variant says what happened."""
    server_iter = llm_servers.start_llama_server(tmp_path_factory.mktemp("llama"))
    server = next(server_iter)
    try:
        llm_store(store, tmp_path, ["The capital of France is Paris, a city on the Seine."])
        params = {"model": server.model, "base_url": server.base_url, "concurrency": 1, "timeout": 120}
        config = PerturbConfig(method="llm", params={**params, "attempts": 1, "max_tokens": 32}, sides="chosen")
        result = perturb(store, config)
        ((v,),) = [vs for vs in column(store, "variants_llm").values()]
        assert (v["status"] == "ok" and v["text"]) or (v["status"] == "failed" and v["error"]), v
        assert result.provenance["rewriter"]["stats"]["requests"] == 1
        if v["status"] == "ok":  # accepted rewrites are cached: another perturbation sends nothing
            other = perturb(store, PerturbConfig(**{**config.__dict__, "name": "llm_again"}))
            assert other.provenance["rewriter"]["stats"] == {**other.provenance["rewriter"]["stats"], "requests": 0}
    finally:
        server_iter.close()


def test_pairs_table_type_helpers():
    assert pa.types.is_list(VARIANTS_TYPE) and VSCORE_TYPE.names == ["chosen", "rejected"]


def test_llm_endpoint_options_are_shared_with_the_labeler(run_cli, store, tmp_path, paraphraser, monkeypatch):
    from seal.annotate.perturb.llm_rewriter import endpoint_settings

    llm_store(store, tmp_path, ["Boil the egg for nine minutes, then cool it."])
    args = ["perturb", "--method", "llm:model=fake,backoff_base=0.01", "--sides", "chosen", "--json", "-s"]
    ran = run_cli(*args, "--base-url", paraphraser.url, "--concurrency", "2", "--timeout", "5", "--max-retries", "1")
    assert ran.exit_code == 0, ran.stderr
    value = json.loads(ran.stdout)
    validate_output("perturb", value)
    assert value["variants"]["ok"] == 1 and value["method"] == "llm:model=fake"
    endpoint = value["provenance"]["rewriter"]
    assert (endpoint["base_url"], endpoint["concurrency"], endpoint["timeout"], endpoint["max_retries"]) == (
        paraphraser.url,
        2,
        5.0,
        1,
    )
    # the older grammar still works; a flag that contradicts it is a one-line error
    same = run_cli("perturb", "--method", f"llm:model=fake,base_url={paraphraser.url}", "--base-url", paraphraser.url)
    assert same.exit_code == 0, same.stderr
    clash = run_cli(
        "perturb", "--method", "llm:model=fake,base_url=http://127.0.0.1:9/v1", "--base-url", paraphraser.url
    )
    assert clash.exit_code == 1 and "contradicts base_url=" in clash.stderr and clash.stderr.count("\n") == 1
    rule = run_cli("perturb", "--method", "typos", "--timeout", "5")
    assert rule.exit_code == 1 and "configure the llm rewriter" in rule.stderr
    # OPENAI_BASE_URL fills in only where neither the flags nor the method name a base URL
    assert endpoint_settings("llm:model=m", {}, {}, {"base_url": "http://env/v1"}) == {"base_url": "http://env/v1"}
    assert endpoint_settings("llm:model=m,base_url=http://a/v1", {}, {}, {"base_url": "http://env/v1"}) == {}
    assert endpoint_settings("typos", {}, {}, {"base_url": "http://env/v1"}) == {}
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    env_rule = run_cli("perturb", "--method", "typos", "--sample", "1", "--no-rescore", "-s")
    assert env_rule.exit_code == 0, env_rule.stderr
