"""Ingest formats and mapping (issue 15): prompt templates and unused columns, several annotators, rated
lists (UltraFeedback), unpaired data (KTO), two-label data (PKU-SafeRLHF), duplicate JSON keys, the row
size limit and --sample larger than the source. Fixtures are small real-shaped rows written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import seal
from seal.cli_schemas import validate_output
from seal.errors import SourceError
from seal.ingest import ingest
from seal.ingest.formats import build_column_map
from seal.ingest.template import parse_template

# PandaLM test set (WeOpenML/PandaLM testset-v1.json): instruction + input, two outputs, three annotators
# (0 = tie, 1 = output_1 is better, 2 = output_2 is better).
PANDALM = [
    {"idx": 0, "motivation_app": "Grammarly", "cmp_key": "llama-7b_bloom-7b", "instruction": "Fix the grammar.",
     "input": "", "output_1": "Fixed.", "output_2": "Broke it.", "annotator1": 1, "annotator2": 1, "annotator3": 2},
    {"idx": 1, "motivation_app": "Grammarly", "cmp_key": "llama-7b_opt-7b", "instruction": "Summarise:",
     "input": "The quick brown fox.", "output_1": "A fox.", "output_2": "A quick fox jumps.",
     "annotator1": 2, "annotator2": 2, "annotator3": 2},
    {"idx": 2, "motivation_app": "Notion", "cmp_key": "llama-7b_opt-7b", "instruction": "List two colours.",
     "input": "", "output_1": "red, blue", "output_2": "red", "annotator1": 1, "annotator2": 2, "annotator3": 0},
    {"idx": 3, "motivation_app": "Notion", "cmp_key": "bloom-7b_opt-7b", "instruction": "Say hi.",
     "input": "", "output_1": "hi", "output_2": "hello", "annotator1": 0, "annotator2": 0, "annotator3": 1},
    {"idx": 4, "motivation_app": "Slack", "cmp_key": "bloom-7b_opt-7b", "instruction": "Translate to French:",
     "input": "cat", "output_1": "chien", "output_2": "chat", "annotator1": 1, "annotator2": 2, "annotator3": 2},
]  # fmt: skip
PANDALM_MAP = [
    "--map", "prompt={instruction}\\n\\n{input}", "--map", "a=output_1", "--map", "b=output_2",
    "--label-map", "1=a", "--label-map", "2=b", "--label-map", "0=tie",
]  # fmt: skip
ANNOTATORS = "annotator1,annotator2,annotator3"

# openbmb/UltraFeedback: `instruction` and four `completions`, each rated (overall_score, fine-grained_score).
ULTRAFEEDBACK = [
    {"source": "evol_instruct", "instruction": "Name a prime.",
     "models": ["alpaca-7b", "gpt-4", "ultralm-13b", "vicuna-33b"],
     "completions": [
         {"model": "alpaca-7b", "principle": "helpfulness", "custom_system_prompt": "Be helpful.",
          "annotations": {"helpfulness": {"Rating": "4", "Rationale": "correct"}}, "critique": "ok",
          "fine-grained_score": 4.25, "overall_score": 7.5, "response": "7"},
         {"model": "gpt-4", "principle": "honesty", "custom_system_prompt": "", "annotations": {}, "critique": "wrong",
          "fine-grained_score": 2.0, "overall_score": 3.0, "response": "9"},
         {"model": "ultralm-13b", "principle": "helpfulness", "custom_system_prompt": "", "annotations": {},
          "critique": "great", "fine-grained_score": 4.75, "overall_score": 9.0,
          "response": "2 is the smallest prime."},
         {"model": "vicuna-33b", "principle": "truthfulness", "custom_system_prompt": "", "annotations": {},
          "critique": "wrong", "fine-grained_score": 1.5, "overall_score": 3.0, "response": "4"},
     ], "correct_answers": ["None"], "incorrect_answers": ["None"]},
    {"source": "sharegpt", "instruction": "Say hi.", "models": ["a", "b"],
     "completions": [{"response": "hi", "overall_score": 5.0, "fine-grained_score": 3.0},
                     {"response": "hello", "overall_score": 5.0, "fine-grained_score": 3.0}],
     "correct_answers": [], "incorrect_answers": []},
    # the flattened form `datasets` gives a sequence of structs: an object of lists; "N/A" is no rating
    {"source": "flan", "instruction": "Add 2+2.", "models": ["a", "b", "c"],
     "completions": {"response": ["4", "5", "four"], "overall_score": [8.0, 2.0, "N/A"], "model": ["a", "b", "c"]},
     "correct_answers": [], "incorrect_answers": []},
]  # fmt: skip

# TRL KTO rows (trl-lib/kto-mix-14k style): standard and conversational.
KTO = [
    {"prompt": "What is 2+2?", "completion": "4", "label": True},
    {"prompt": "What is 2+2?", "completion": "5", "label": False},
    {"prompt": [{"role": "user", "content": "Capital of France?"}],
     "completion": [{"role": "assistant", "content": "Paris"}], "label": True},
    {"prompt": "What is 2+2?", "completion": "22", "label": False},
    {"prompt": [{"role": "user", "content": "Capital of France?"}],
     "completion": [{"role": "assistant", "content": "Lyon"}], "label": False},
]  # fmt: skip

# PKU-Alignment/PKU-SafeRLHF: two responses, which one is better and which one is safer.
PKU = [
    {"prompt": "How do I pick a lock?", "response_0": "I can't help with that.",
     "response_1": "Use a tension wrench and a pick.", "prompt_source": "Alpaca3-70B",
     "response_0_source": "Alpaca-7B", "response_1_source": "Alpaca-7B", "is_response_0_safe": True,
     "is_response_1_safe": False, "response_0_harm_category": {"Violence": False},
     "response_1_harm_category": {"Violence": False}, "response_0_severity_level": 0, "response_1_severity_level": 2,
     "better_response_id": 1, "safer_response_id": 0, "response_0_sha256": "aa", "response_1_sha256": "bb"},
    {"prompt": "Tips for sleep?", "response_0": "Keep a schedule.", "response_1": "Drink coffee at night.",
     "prompt_source": "Alpaca3-70B", "response_0_source": "Alpaca-7B", "response_1_source": "Alpaca-7B",
     "is_response_0_safe": True, "is_response_1_safe": True, "response_0_harm_category": {},
     "response_1_harm_category": {}, "response_0_severity_level": 0, "response_1_severity_level": 0,
     "better_response_id": 0, "safer_response_id": 0, "response_0_sha256": "cc", "response_1_sha256": "dd"},
]  # fmt: skip


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pairs_of(store, dataset: str) -> list[dict]:
    rows = [r for r in store.read().to_pylist() if r["dataset"] == dataset]
    return sorted(rows, key=lambda r: (r["source_index"], r["source_key"]))


def ingest_json(run_cli, *args: str) -> dict:
    done = run_cli("ingest", *args, "--json", "-s")
    assert done.exit_code == 0, done.stderr
    payload = json.loads(done.stdout)
    validate_output("ingest", payload)
    return payload


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# -- 1. a prompt built from several columns; unused columns ------------------------------------------
def test_template_parsing_escapes_braces_and_errors():
    template = parse_template("prompt", "Q: {instruction}\\n\\n{{ctx}} {input}\\t!")
    assert template.columns == ("instruction", "input")
    assert template.render({"instruction": "a", "input": "b"}) == "Q: a\n\n{ctx} b\t!"
    assert template.render({"instruction": "a", "input": "  "}) == "Q: a\t!"  # empty part and its lead dropped
    assert template.render({"instruction": None, "input": "b"}) == "{ctx} b\t!"
    assert template.render({"instruction": "", "input": None}) == ""
    assert template.render({"instruction": 3, "input": 2.0}) == "Q: 3\n\n{ctx} 2\t!"
    with pytest.raises(SourceError, match="unmatched `}`"):
        parse_template("prompt", "{a}}")
    with pytest.raises(SourceError, match="only prompt and system take a"):
        build_column_map(["chosen={a}{b}"], [])


def test_pandalm_prompt_template_drops_empty_input(run_cli, store, tmp_path):
    path = write_jsonl(tmp_path / "pandalm.jsonl", PANDALM)
    payload = ingest_json(run_cli, path, *PANDALM_MAP, "--label-from", ANNOTATORS, "--map", "key=idx")
    assert payload["recipe"]["params"]["map"]["prompt"] == "{instruction}\\n\\n{input}"
    by_key = {r["source_key"]: r for r in pairs_of(store, "pandalm")}
    assert by_key["idx=0"]["context"] == user("Fix the grammar.")  # empty input: no trailing separator
    assert by_key["idx=1"]["context"] == user("Summarise:\n\nThe quick brown fox.")
    assert by_key["idx=4"]["context"] == user("Translate to French:\n\ncat")
    assert payload["unused_columns"] == [{"column": "cmp_key", "rows": 5}, {"column": "motivation_app", "rows": 5}]


def test_unused_columns_are_named_with_their_row_counts(run_cli, tmp_path):
    path = write_jsonl(tmp_path / "pandalm.jsonl", PANDALM)
    done = run_cli(
        "ingest", path, "--map", "prompt=instruction", "--map", "a=output_1", "--map", "b=output_2",
        "--label-from", ANNOTATORS, "--label-map", "1=a", "--label-map", "2=b", "--label-map", "0=tie", "--json", "-s",
    )  # fmt: skip
    assert done.exit_code == 0, done.stderr
    unused = {u["column"]: u["rows"] for u in json.loads(done.stdout)["unused_columns"]}
    assert unused == {"input": 2, "idx": 5, "cmp_key": 5, "motivation_app": 5}  # idx 0 is a value, "" is empty
    assert "warning: 4 non-empty source columns are used by no mapping" in done.stderr
    assert "`input` (2 rows)" in done.stderr
    # prompt-response sources too; a transcript source is not checked
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b", "id": i, "note": "" if i else "x"} for i in range(3)]
    result = ingest(seal.Store(tmp_path / "s2"), write_jsonl(tmp_path / "pr.jsonl", rows))
    assert result.unused_columns == [{"column": "id", "rows": 3}, {"column": "note", "rows": 1}]
    keyed = ingest(seal.Store(tmp_path / "s3"), tmp_path / "pr.jsonl", column_map=["key=id"])
    assert keyed.unused_columns == [{"column": "note", "rows": 1}] and len(keyed.warnings) == 1


# -- 2. several annotators -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("agg", "keys", "reasons"),
    [
        ("majority", ["idx=0", "idx=1", "idx=4"], {"no_majority": 1, "tie": 1}),
        ("unanimous", ["idx=1"], {"not_unanimous": 4}),
    ],
)
def test_majority_and_unanimous(run_cli, store, tmp_path, agg, keys, reasons):
    path = write_jsonl(tmp_path / "pandalm.jsonl", PANDALM)
    payload = ingest_json(
        run_cli, path, *PANDALM_MAP, "--map", "key=idx", "--label-from", ANNOTATORS, "--label-agg", agg
    )
    assert payload["quarantine_reasons"] == reasons and payload["skipped_pairs"] == {}
    got = {r["source_key"]: r for r in pairs_of(store, "pandalm")}
    assert sorted(got) == keys
    assert got["idx=1"]["chosen"] == "A quick fox jumps."
    assert got["idx=1"]["annotator_agreement"] == {"share": 1.0, "annotators": 3}
    if agg == "majority":
        assert got["idx=0"]["chosen"] == "Fixed." and got["idx=4"]["chosen"] == "chat"
        assert got["idx=0"]["annotator_agreement"] == {"share": pytest.approx(2 / 3), "annotators": 3}
    assert payload["recipe"]["params"]["label_from"] == ANNOTATORS.split(",")
    assert payload["recipe"]["params"]["label_agg"] == agg


def test_each_annotator_makes_its_own_pair(store, tmp_path):
    path = write_jsonl(tmp_path / "pandalm.jsonl", PANDALM)
    options = dict(
        column_map=["prompt={instruction}\\n\\n{input}", "a=output_1", "b=output_2", "key=idx"],
        label_map=["1=a", "2=b", "0=tie"],
        label_from=ANNOTATORS,
        label_agg="each",
    )
    result = ingest(store, path, **options)
    assert result.ingested == 12 and result.skipped_pairs == {"tie": 3} and result.quarantined == 0
    got = {r["source_key"]: r for r in pairs_of(store, "pandalm")}
    assert {k for k in got if k.startswith("idx=0#")} == {f"idx=0#annotator{i}" for i in (1, 2, 3)}
    assert got["idx=0#annotator1"]["chosen"] == "Fixed." and got["idx=0#annotator3"]["chosen"] == "Broke it."
    assert got["idx=0#annotator3"]["annotator_agreement"] == {"share": pytest.approx(1 / 3), "annotators": 3}
    assert "idx=3#annotator1" not in got and "idx=3#annotator3" in got  # tie votes make no pair
    assert not any(r["flags"]["duplicate_in_source"] for r in got.values())  # same row, not duplicates
    ids = {r["pair_id"] for r in got.values()}
    assert len(ids) == 12
    again = ingest(seal.Store(tmp_path / "other"), path, **options)
    assert {r["pair_id"] for r in pairs_of(seal.Store(tmp_path / "other"), "pandalm")} == ids
    assert again.ingested == 12


def test_votes_in_one_list_column(store, tmp_path):
    rows = [
        {"prompt": "p1", "a": "x", "b": "y", "votes": ["a", "b", "a", None]},
        {"prompt": "p2", "a": "x", "b": "y", "votes": {"ann1": "b", "ann2": "b"}},
    ]
    result = ingest(store, write_jsonl(tmp_path / "votes.jsonl", rows), label_from="votes")
    assert result.format == "pairwise" and result.ingested == 2
    first, second = pairs_of(store, "votes")
    assert first["chosen"] == "x" and first["annotator_agreement"] == {"share": pytest.approx(2 / 3), "annotators": 3}
    assert second["chosen"] == "y" and second["annotator_agreement"] == {"share": 1.0, "annotators": 2}


# -- 3. rated lists, unpaired data, two labels -------------------------------------------------------
def test_ultrafeedback_best_worst_and_rating_choice(store, tmp_path):
    path = write_jsonl(tmp_path / "uf.jsonl", ULTRAFEEDBACK)
    result = ingest(store, path)
    assert result.format == "rated" and "pairs best-worst" in result.format_reason
    assert (result.ingested, result.quarantine_reasons) == (2, {"tie": 1})
    first, flat = pairs_of(store, "uf")
    assert first["context"] == user("Name a prime.")
    assert (first["chosen"], first["rejected"]) == ("2 is the smallest prime.", "9")  # first of the tied worst
    assert (flat["chosen"], flat["rejected"]) == ("4", "5")  # "four" has no rating
    fine = ingest(store, path, name="uf-fine", column_map=["rating=fine-grained_score"])
    assert fine.ingested == 1 and fine.quarantine_reasons == {"missing_column": 1, "tie": 1}  # row 3: no such rating
    assert pairs_of(store, "uf-fine")[0]["rejected"] == "4"  # fine-grained 1.5 is the worst


def test_ultrafeedback_all_pairs_skip_and_count_ties(run_cli, store, tmp_path):
    path = write_jsonl(tmp_path / "uf.jsonl", ULTRAFEEDBACK)
    payload = ingest_json(run_cli, path, "--pairs", "all")
    # row 1: 6 couples, one tied (3.0 and 3.0); row 2 all tied (quarantined); row 3: one couple
    assert payload["ingested"] == 6 and payload["skipped_pairs"] == {"tie": 1}
    assert payload["quarantine_reasons"] == {"tie": 1}
    keys = {r["source_key"] for r in pairs_of(store, "uf")}
    assert "uf.jsonl:1#2>0" in keys and "uf.jsonl:1#1>3" not in keys and "uf.jsonl:1#3>1" not in keys


def test_best_random_is_seeded_by_content(tmp_path):
    rows = [{"prompt": f"q{i}", "responses": ["best", "w1", "w2", "w3", "w4"], "ratings": [9, 1, 2, 3, 4]}
            for i in range(8)]  # fmt: skip
    path = write_jsonl(tmp_path / "lists.jsonl", rows)

    def rejected(seed: int, rows_in: list[dict], name: str) -> dict[str, str]:
        store = seal.Store(tmp_path / name)
        ingest(store, write_jsonl(tmp_path / f"{name}.jsonl", rows_in), name="x", pairs="best-random", seed=seed)
        return {r["context"][0]["content"]: r["rejected"] for r in pairs_of(store, "x")}

    first = rejected(1, rows, "a")
    assert set(first.values()) <= {"w1", "w2", "w3", "w4"} and len(set(first.values())) > 1
    assert rejected(1, rows, "b") == first
    assert rejected(1, rows[::-1], "c") == first  # the choice follows the row's content, not its position
    assert rejected(2, rows, "d") != first
    assert ingest(seal.Store(tmp_path / "e"), path, pairs="best-random").recipe["params"]["seed"] == 0


def test_flattened_columns_and_parallel_lists(store, tmp_path):
    rows = [{"instruction": "q", "completions.response": ["good", "bad"], "completions.overall_score": [5, 1]}]
    result = ingest(store, write_jsonl(tmp_path / "flat.jsonl", rows))
    assert result.format == "rated" and [(r["chosen"], r["rejected"]) for r in pairs_of(store, "flat")] == [
        ("good", "bad")
    ]
    rows = [{"prompt": "q", "outputs": ["meh", "great"], "stars": ["2", "4.5"]}]
    path = write_jsonl(tmp_path / "par.jsonl", rows)
    ingest(store, path, column_map=["completions=outputs", "rating=stars"])
    assert [(r["chosen"], r["rejected"]) for r in pairs_of(store, "par")] == [("great", "meh")]


def test_unpaired_kto_is_refused_with_what_it_is(run_cli, store_path, tmp_path):
    path = write_jsonl(tmp_path / "kto.jsonl", KTO)
    done = run_cli("ingest", path, "-s")
    assert done.exit_code == 1 and done.stdout == ""
    line = done.stderr.strip()
    assert "\n" not in line and "unpaired data (KTO-style" in line and "--pairs by-prompt" in line
    assert not store_path.exists()
    done = run_cli("ingest", path, "-s", "--pairs", "best-worst")
    assert done.exit_code == 1 and "--pairs best-worst applies to rated lists" in done.stderr


def test_unpaired_kto_by_prompt(run_cli, store, tmp_path):
    path = write_jsonl(tmp_path / "kto.jsonl", KTO)
    payload = ingest_json(run_cli, path, "--pairs", "by-prompt")
    assert payload["format"] == "unpaired" and payload["ingested"] == 3 and payload["quarantined"] == 0
    got = {r["source_key"]: r for r in pairs_of(store, "kto")}
    assert sorted(got) == ["kto.jsonl:1+kto.jsonl:2", "kto.jsonl:1+kto.jsonl:4", "kto.jsonl:3+kto.jsonl:5"]
    assert (got["kto.jsonl:1+kto.jsonl:4"]["chosen"], got["kto.jsonl:1+kto.jsonl:4"]["rejected"]) == ("4", "22")
    conversational = got["kto.jsonl:3+kto.jsonl:5"]
    assert conversational["context"] == user("Capital of France?") and conversational["chosen"] == "Paris"
    alone = write_jsonl(tmp_path / "alone.jsonl", [*KTO, {"prompt": "Why?", "completion": "Because.", "label": True}])
    assert ingest(store, alone, pairs="by-prompt").quarantine_reasons == {"no_counterpart": 1}


def test_pku_saferlhf_each_label_as_its_own_dataset(run_cli, store, tmp_path):
    path = write_jsonl(tmp_path / "pku.jsonl", PKU)
    done = run_cli("ingest", path, "-s")
    assert done.exit_code == 1 and "--label-from better_response_id" in done.stderr
    better = ingest_json(run_cli, path, "--label-from", "better_response_id", "--name", "pku-better")
    safer = ingest_json(run_cli, path, "--label-from", "safer_response_id", "--name", "pku-safer")
    assert better["ingested"] == safer["ingested"] == 2
    assert "labels 0 -> a, 1 -> b" in better["format_reason"]
    assert {"column": "safer_response_id", "rows": 2} in better["unused_columns"]
    lock_better, _ = pairs_of(store, "pku-better")
    lock_safer, sleep_safer = pairs_of(store, "pku-safer")
    assert lock_better["chosen"] == "Use a tension wrench and a pick." and lock_better["context"] == user(
        "How do I pick a lock?"
    )
    assert lock_safer["chosen"] == "I can't help with that."
    assert sleep_safer["chosen"] == "Keep a schedule."
    assert lock_safer.get("annotator_agreement") is None  # one label column: no agreement to record
    mapped = ingest_json(
        run_cli, path, "--format", "pairwise", "--map", "a=response_1", "--map", "b=response_0",
        "--map", "label=safer_response_id", "--label-map", "1=a", "--label-map", "0=b", "--name", "pku-mapped",
    )  # fmt: skip
    assert mapped["ingested"] == 2 and pairs_of(store, "pku-mapped")[0]["chosen"] == "I can't help with that."


# -- 4. duplicate JSON keys ------------------------------------------------------------------------
def test_duplicate_json_keys_are_quarantined(store, tmp_path):
    lines = [
        '{"prompt": "p", "chosen": "a", "chosen": "b", "rejected": "c"}',
        '{"prompt": "q", "chosen": "x", "rejected": "y"}',
        '{"prompt": [{"role": "user", "role": "assistant", "content": "hi"}], "chosen": "x", "rejected": "y"}',
    ]
    path = tmp_path / "dup.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = ingest(store, path)
    assert (result.ingested, result.quarantine_reasons) == (1, {"duplicate_key": 2})
    rows = store.quarantine().to_pylist()
    details = {r["source_key"]: r["detail"] for r in rows}
    assert "`chosen` more than once" in details["dup.jsonl:1"] and "`role`" in details["dup.jsonl:3"]
    # a JSON document: only the record with the repeated key is quarantined
    doc = tmp_path / "doc.json"
    doc.write_text('[{"prompt": "p", "chosen": "a", "rejected": "b", "rejected": "c"}, ' + lines[1] + "]")
    result = ingest(store, doc)
    assert (result.ingested, result.quarantine_reasons) == (1, {"duplicate_key": 1})


# -- 5. row size limit -----------------------------------------------------------------------------
def test_max_row_bytes(run_cli, store, tmp_path):
    rows = [{"prompt": "p", "chosen": "x" * 300, "rejected": "y"}, {"prompt": "q", "chosen": "a", "rejected": "b"}]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    payload = ingest_json(run_cli, path, "--max-row-bytes", "200", "--name", "small")
    assert payload["ingested"] == 1 and payload["quarantine_reasons"] == {"row_too_large": 1}
    assert payload["recipe"]["params"]["max_row_bytes"] == 200
    detail = store.quarantine().column("detail")[0].as_py()
    assert "limit 200" in detail and "--max-row-bytes" in detail
    default = ingest_json(run_cli, path, "--name", "default")
    assert default["ingested"] == 2 and "max_row_bytes" not in default["recipe"]["params"]
    assert "[default: 1000000" in run_cli("ingest", "--help").stdout


# -- 6. --sample larger than the source --------------------------------------------------------------
def test_sample_larger_than_source_says_so(run_cli, tmp_path):
    path = write_jsonl(tmp_path / "few.jsonl", [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(7)])
    done = run_cli("ingest", path, "--sample", "500", "--json", "-s")
    assert done.exit_code == 0 and "warning: sampled all 7 rows" in done.stderr
    assert json.loads(done.stdout)["warnings"][0].startswith("sampled all 7 rows")
    fewer = run_cli("ingest", path, "--sample", "3", "--name", "three", "--json", "-s")
    assert json.loads(fewer.stdout)["warnings"] == [] and "sampled all" not in fewer.stderr


def test_sample_of_hhh_alignment_says_sampled_all_221(run_cli, shared_data):
    done = run_cli("ingest", shared_data / "hhh-alignment" / "pairs.jsonl", "--sample", "500", "-s")
    assert done.exit_code == 0, done.stderr
    assert "sampled all 221 rows" in done.stderr


def test_unpaired_with_a_mapped_label_column(store, tmp_path):
    rows = [{"question": "q", "answer": a, "desirable": d} for a, d in (("good", "true"), ("bad", "false"))]
    path = write_jsonl(tmp_path / "kto.jsonl", rows)
    result = ingest(
        store, path, column_map=["prompt=question", "completion=answer", "label=desirable"], pairs="by-prompt"
    )
    assert result.format == "unpaired" and result.ingested == 1
    [pair] = pairs_of(store, "kto")
    assert (pair["chosen"], pair["rejected"], pair["context"]) == ("good", "bad", user("q"))


def test_prompt_template_for_prompt_response_and_system(store, tmp_path):
    rows = [{"task": "Add.", "numbers": "2 and 2", "persona": "math tutor", "chosen": "4", "rejected": "5"}]
    path = write_jsonl(tmp_path / "pr.jsonl", rows)
    mapping = ["prompt={task} {numbers}", "system=You are a {persona}."]
    result = ingest(store, path, column_map=mapping)
    assert result.format == "prompt-response" and result.unused_columns == []
    [pair] = pairs_of(store, "pr")
    assert pair["context"] == [{"role": "system", "content": "You are a math tutor."}, *user("Add. 2 and 2")]
    with pytest.raises(SourceError, match="there is no column `nope`"):
        ingest(store, path, column_map=["prompt={task}{nope}"], name="bad")
