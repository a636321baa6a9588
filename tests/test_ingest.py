"""Ingest: format adapters, detection, options (--map, --label-map, --limit, --sample, key), ids, idempotency."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import seal
from seal.errors import SourceError
from seal.ingest.core import pair_id_for
from seal.ingest.formats import (
    ColumnMap,
    RowProblem,
    adapt_messages,
    adapt_pairwise,
    adapt_prompt_response,
    adapt_transcript,
    detect_format,
    label_text,
    parse_label_map,
    parse_map_options,
)


# -- helpers ----------------------------------------------------------------------------------------
def hh(*turns: str) -> str:
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


def hh_rows(n: int, prefix: str = "q") -> list[dict]:
    return [{"chosen": hh(f"{prefix}{i}", f"good {i}"), "rejected": hh(f"{prefix}{i}", f"bad {i}")} for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cmap(columns: dict | None = None, labels: dict | None = None) -> ColumnMap:
    return ColumnMap(columns or {}, labels or {})


def pairs_of(store, dataset: str | None = None) -> list[dict]:
    rows = store.read().to_pylist()
    rows = [r for r in rows if dataset is None or r["dataset"] == dataset]
    return sorted(rows, key=lambda r: r["source_index"])


def msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


# -- option parsing ---------------------------------------------------------------------------------
def test_parse_map_options_allows_spaces_and_equals_in_column_names():
    assert parse_map_options(["prompt=the input", "a=x=y", "b= b col"]) == {
        "prompt": "the input",
        "a": "x=y",
        "b": " b col",
    }


@pytest.mark.parametrize(
    "item", ["prompt", "=col", "prompt=", "colour=x"], ids=["no-eq", "no-key", "no-col", "unknown-key"]
)
def test_parse_map_options_rejects(item):
    with pytest.raises(SourceError, match="bad --map"):
        parse_map_options([item])


def test_parse_map_options_rejects_conflicting_duplicates():
    with pytest.raises(SourceError, match="already mapped"):
        parse_map_options(["prompt=a", "prompt=b"])
    assert parse_map_options(["prompt=a", "prompt=a"]) == {"prompt": "a"}


def test_parse_label_map():
    assert parse_label_map(["1=a", "2=b", "0=tie", "x=y=A"]) == {"1": "a", "2": "b", "0": "tie", "x=y": "a"}
    for bad in ("1=c", "1", "1=a b"):
        with pytest.raises(SourceError, match="bad --label-map"):
            parse_label_map([bad])
    with pytest.raises(SourceError, match="already mapped"):
        parse_label_map(["1=a", "1=b"])


def test_label_text_normalises_numbers_and_bools():
    assert label_text(1) == label_text(1.0) == label_text("1") == label_text(" 1 ") == "1"
    assert label_text(True) == "true"
    assert label_text(1.5) == "1.5"


# -- adapters ---------------------------------------------------------------------------------------
def test_adapt_transcript():
    record = {"chosen": hh("q1", "a1", "q2", "good"), "rejected": hh("q1", "a1", "q2", "bad")}
    pair = adapt_transcript(record, cmap())
    assert pair.context == [msg("user", "q1"), msg("assistant", "a1"), msg("user", "q2")]
    assert (pair.chosen, pair.rejected) == ("good", "bad")
    assert (pair.chosen_raw, pair.rejected_raw) == (record["chosen"], record["rejected"])
    assert not pair.context_mismatch


def test_adapt_transcript_context_mismatch_uses_chosen_context():
    record = {"chosen": hh("q1", "a1", "q2", "good"), "rejected": hh("q1", "other", "q2", "bad")}
    pair = adapt_transcript(record, cmap())
    assert pair.context_mismatch
    assert pair.context[1] == msg("assistant", "a1")
    assert pair.rejected_raw == record["rejected"]


def test_adapt_transcript_mapped_columns():
    record = {"win": hh("q", "good"), "lose": hh("q", "bad")}
    pair = adapt_transcript(record, cmap({"chosen": "win", "rejected": "lose"}))
    assert (pair.chosen, pair.rejected) == ("good", "bad")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"chosen": None, "rejected": hh("q", "b")}, "missing_value"),
        ({"chosen": 3, "rejected": hh("q", "b")}, "wrong_type"),
        ({"rejected": hh("q", "b")}, "missing_column"),
        ({"chosen": "", "rejected": hh("q", "b")}, "empty_text"),
        ({"chosen": hh("q"), "rejected": hh("q", "b")}, "no_assistant_turn"),
        ({"chosen": hh("q", "a", "q2"), "rejected": hh("q", "b")}, "final_turn_not_assistant"),
    ],
)
def test_adapt_transcript_problems(record, reason):
    with pytest.raises(RowProblem) as err:
        adapt_transcript(record, cmap())
    assert err.value.reason == reason


def test_adapt_prompt_response_plain():
    record = {"prompt": "What is 2+2?", "chosen": "4", "rejected": " Assistant: 5"}
    pair = adapt_prompt_response(record, cmap())
    assert pair.context == [msg("user", "What is 2+2?")]
    assert (pair.chosen, pair.rejected) == ("4", "5")
    assert pair.rejected_raw == " Assistant: 5"


def test_adapt_prompt_response_embedded_dialogue_and_trl_cue():
    # TRL's explicit-prompt hh format: the prompt ends with an empty "Assistant:" cue.
    record = {"prompt": hh("q1", "a1", "q2", ""), "chosen": " good", "rejected": " bad"}
    pair = adapt_prompt_response(record, cmap())
    assert pair.context == [msg("user", "q1"), msg("assistant", "a1"), msg("user", "q2")]
    assert (pair.chosen, pair.rejected) == ("good", "bad")
    # HHH style: the human's words first, later turns marked.
    hhh = {"prompt": "My question\n\nAssistant: A reply\n\nHuman: Follow-up", "chosen": "x", "rejected": "y"}
    assert [t["role"] for t in adapt_prompt_response(hhh, cmap()).context] == ["user", "assistant", "user"]


def test_adapt_prompt_response_system_column_and_message_prompt():
    record = {"system": "Be brief.", "prompt": [msg("user", "hi")], "chosen": "hello", "rejected": "go away"}
    pair = adapt_prompt_response(record, cmap())
    assert pair.context == [msg("system", "Be brief."), msg("user", "hi")]


def test_adapt_messages_trl_implicit_prompt():
    record = {
        "chosen": [msg("user", "hi"), msg("assistant", "hello")],
        "rejected": [msg("user", "hi"), msg("assistant", "go away")],
    }
    pair = adapt_messages(record, cmap())
    assert pair.context == [msg("user", "hi")]
    assert (pair.chosen, pair.rejected) == ("hello", "go away")
    assert json.loads(pair.chosen_raw) == record["chosen"]
    assert not pair.context_mismatch


def test_adapt_messages_trl_explicit_prompt():
    record = {
        "prompt": [msg("system", "sys"), msg("user", "hi")],
        "chosen": [msg("assistant", "hello")],
        "rejected": [msg("assistant", "go away")],
    }
    pair = adapt_messages(record, cmap())
    assert pair.context == [msg("system", "sys"), msg("user", "hi")]
    assert pair.chosen == "hello"


def test_adapt_messages_sharegpt():
    record = {
        "conversations": [
            {"from": "system", "value": "You are helpful."},
            {"from": "human", "value": "hi"},
        ],
        "chosen": {"from": "gpt", "value": "hello"},
        "rejected": {"from": "gpt", "value": "go away"},
    }
    pair = adapt_messages(record, cmap())
    assert pair.context == [msg("system", "You are helpful."), msg("user", "hi")]
    assert (pair.chosen, pair.rejected) == ("hello", "go away")


def test_adapt_messages_text_content_parts_and_mismatch():
    record = {
        "chosen": [msg("user", "a"), {"role": "assistant", "content": [{"type": "text", "text": "x"}]}],
        "rejected": [msg("user", "b"), msg("assistant", "y")],
    }
    pair = adapt_messages(record, cmap())
    assert pair.chosen == "x"
    assert pair.context_mismatch
    assert pair.context == [msg("user", "a")]


@pytest.mark.parametrize(
    ("chosen", "reason"),
    [
        ([msg("user", "a"), {"role": "robot", "content": "x"}], "unknown_role"),
        ([msg("user", "a"), {"content": "x"}], "bad_message"),
        ([msg("user", "a"), "x"], "bad_message"),
        ([], "empty_messages"),
        ([msg("assistant", "x"), msg("user", "a")], "final_turn_not_assistant"),
        ([msg("user", "a"), {"role": "assistant", "content": None}], "missing_value"),
        ([msg("user", "a"), {"role": "assistant", "content": 5}], "wrong_type"),
        ([{"role": "assistant", "content": [{"type": "image_url", "image_url": "u"}]}], "unsupported_content"),
        (None, "missing_value"),
        ("text", "wrong_type"),
    ],
)
def test_adapt_messages_problems(chosen, reason):
    record = {"chosen": chosen, "rejected": [msg("user", "a"), msg("assistant", "y")]}
    with pytest.raises(RowProblem) as err:
        adapt_messages(record, cmap())
    assert err.value.reason == reason


def test_adapt_pairwise():
    mapping = cmap(
        {"prompt": "input", "a": "output 1", "b": "output 2", "label": "pref"}, {"1": "a", "2": "b", "0": "tie"}
    )
    base = {"input": "q", "output 1": "A", "output 2": "B"}
    a = adapt_pairwise({**base, "pref": 1}, mapping)
    assert (a.chosen, a.rejected, a.context) == ("A", "B", [msg("user", "q")])
    b = adapt_pairwise({**base, "pref": 2.0}, mapping)
    assert (b.chosen, b.rejected) == ("B", "A")
    assert (b.chosen_raw, b.rejected_raw) == ("B", "A")
    for label, reason in ((0, "tie"), (3, "label_not_mapped"), (None, "missing_value")):
        with pytest.raises(RowProblem) as err:
            adapt_pairwise({**base, "pref": label}, mapping)
        assert err.value.reason == reason


def test_adapt_pairwise_default_labels_are_a_b_tie():
    record = {"prompt": "q", "a": "A", "b": "B", "label": "B"}
    assert adapt_pairwise(record, cmap()).chosen == "B"


# -- detection --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("records", "mapping", "expected"),
    [
        ([{"chosen": hh("q", "a"), "rejected": hh("q", "b")}], cmap(), "transcript"),
        ([{"prompt": "q", "chosen": "a", "rejected": "b"}], cmap(), "prompt-response"),
        ([{"chosen": [msg("user", "q")], "rejected": [msg("user", "q")]}], cmap(), "messages"),
        ([{"conversations": [], "chosen": {"from": "gpt", "value": "a"}, "rejected": {}}], cmap(), "messages"),
        ([{"x": "q", "o1": "a", "o2": "b", "l": 1}], cmap({"a": "o1", "b": "o2", "label": "l"}), "pairwise"),
        ([{"prompt": "q", "a": "a", "b": "b", "label": "a"}], cmap(), "pairwise"),
        ([{"prompt": "q", "x": "a", "y": "b", "label": "a"}], cmap({}, {"1": "a"}), "pairwise"),
        # a broken first row does not decide
        (
            [{"chosen": None, "rejected": None}, {"prompt": "q", "chosen": "a", "rejected": "b"}],
            cmap(),
            "prompt-response",
        ),
    ],
)
def test_detect_format(records, mapping, expected):
    fmt, why = detect_format(records, mapping)
    assert fmt == expected
    assert why


def test_detect_format_failures_say_how_to_fix():
    with pytest.raises(SourceError, match="no `chosen` or `rejected` column") as err:
        detect_format([{"question": "q", "answer": "a"}], cmap())
    assert "--map chosen=COL" in str(err.value)
    with pytest.raises(SourceError, match="no prompt column"):
        detect_format([{"chosen": "a", "rejected": "b"}], cmap())
    with pytest.raises(SourceError, match="int values"):
        detect_format([{"chosen": 1, "rejected": 2}], cmap())


# -- end-to-end through seal.ingest -----------------------------------------------------------------
def test_ingest_transcript_file(store, tmp_path):
    rows = hh_rows(3)
    rows.append({"chosen": hh("same", "x"), "rejected": hh("same", "x")})
    rows.append({"chosen": hh("q", "a1", "q2", "good"), "rejected": hh("q", "a2", "q2", "bad")})
    result = seal.ingest(store, write_jsonl(tmp_path / "prefs.jsonl", rows))
    assert (result.format, result.read, result.ingested, result.quarantined) == ("transcript", 5, 5, 0)
    assert "transcript" in result.format_reason
    assert result.dataset == "prefs"
    assert result.flags == {
        "identical_responses": 1,
        "context_mismatch": 1,
        "duplicate_in_source": 0,
        "empty_response": 0,
    }
    got = pairs_of(store)
    assert got[0]["context"] == [msg("user", "q0")]
    assert (got[0]["chosen"], got[0]["rejected"]) == ("good 0", "bad 0")
    assert got[0]["chosen_raw"] == rows[0]["chosen"]
    assert got[3]["flags"]["identical_responses"]
    mismatch = got[4]
    assert mismatch["flags"]["context_mismatch"]
    assert (mismatch["chosen_raw"], mismatch["rejected_raw"]) == (rows[4]["chosen"], rows[4]["rejected"])
    assert mismatch["context"][1] == msg("assistant", "a1")  # the chosen side's context
    assert all(r["dataset"] == "prefs" and r["format"] == "transcript" for r in got)


def test_ingest_prompt_response_embedded_dialogue(store, tmp_path):
    rows = [
        {"prompt": "Plain question?", "chosen": "good", "rejected": "bad"},
        {"prompt": "First\n\nAssistant: reply\n\nHuman: second", "chosen": "good2", "rejected": "bad2"},
    ]
    result = seal.ingest(store, write_jsonl(tmp_path / "pr.jsonl", rows))
    assert result.format == "prompt-response"
    got = pairs_of(store)
    assert len(got[0]["context"]) == 1
    assert [t["role"] for t in got[1]["context"]] == ["user", "assistant", "user"]


def test_ingest_messages_parquet_and_sharegpt_json(store, tmp_path):
    trl = [
        {
            "prompt": [msg("user", f"q{i}")],
            "chosen": [msg("assistant", f"good {i}")],
            "rejected": [msg("assistant", f"bad {i}")],
        }
        for i in range(3)
    ]
    pq.write_table(pa.Table.from_pylist(trl), tmp_path / "trl.parquet")
    result = seal.ingest(store, tmp_path / "trl.parquet")
    assert (result.format, result.ingested) == ("messages", 3)
    sharegpt = [
        {
            "conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": f"q{i}"}],
            "chosen": {"from": "gpt", "value": f"good {i}"},
            "rejected": {"from": "gpt", "value": f"bad {i}"},
        }
        for i in range(2)
    ]
    (tmp_path / "sg.json").write_text(json.dumps(sharegpt))
    result = seal.ingest(store, tmp_path / "sg.json")
    assert (result.format, result.ingested, result.dataset) == ("messages", 2, "sg")
    got = pairs_of(store, "sg")
    assert got[1]["context"] == [msg("system", "S"), msg("user", "q1")]
    assert pairs_of(store, "trl")[2]["context"] == [msg("user", "q2")]


PAIRWISE_OPTS = {
    "column_map": ["prompt=input", "a=output_1", "b=output_2", "label=label"],
    "label_map": ["1=a", "2=b", "0=tie"],
}


def test_ingest_pairwise_issue_example(store, tmp_path):
    rows = [
        {"input": "q0", "output_1": "A0", "output_2": "B0", "label": 1},
        {"input": "q1", "output_1": "A1", "output_2": "B1", "label": 2},
        {"input": "q2", "output_1": "A2", "output_2": "B2", "label": 0},
    ]
    result = seal.ingest(store, write_jsonl(tmp_path / "votes.jsonl", rows), **PAIRWISE_OPTS)
    assert (result.format, result.ingested, result.quarantined) == ("pairwise", 2, 1)
    assert result.quarantine_reasons == {"tie": 1}
    got = pairs_of(store)
    assert [(r["chosen"], r["rejected"]) for r in got] == [("A0", "B0"), ("B1", "A1")]
    quarantine = store.quarantine().to_pylist()
    assert [(q["reason"], q["source_key"]) for q in quarantine] == [("tie", "votes.jsonl:3")]


def test_ingest_pairwise_csv_columns_with_spaces(store, tmp_path):
    (tmp_path / "votes.csv").write_text(
        'the input,first output,second output,which one\nq0,A0,B0,1\n"q1, with comma",A1,B1,2\n'
    )
    result = seal.ingest(
        store,
        tmp_path / "votes.csv",
        column_map=["prompt=the input", "a=first output", "b=second output", "label=which one"],
        label_map=["1=a", "2=b"],
    )
    assert (result.ingested, result.quarantined) == (2, 0)
    got = pairs_of(store)
    assert got[1]["context"] == [msg("user", "q1, with comma")]
    assert got[1]["chosen"] == "B1"


def test_ingest_map_chosen_rejected_columns(store, tmp_path):
    rows = [{"question": "q", "good answer": "A", "bad answer": "B"}]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    result = seal.ingest(store, path, column_map=["prompt=question", "chosen=good answer", "rejected=bad answer"])
    assert (result.format, result.ingested) == ("prompt-response", 1)
    assert pairs_of(store)[0]["chosen"] == "A"


def test_auto_detection_reports_choice_via_cli(run_cli, tmp_path):
    path = write_jsonl(tmp_path / "pr.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    result = run_cli("ingest", path, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "prompt-response"
    assert "prompt" in summary["format_reason"]
    human = run_cli("ingest", path, "--name", "other")
    assert "format prompt-response" in human.stdout


# -- ids, idempotency, datasets ---------------------------------------------------------------------
def test_pair_ids_stable_across_fresh_stores(tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", hh_rows(20))
    ids = []
    for name in ("one", "two"):
        store = seal.Store(tmp_path / name)
        seal.ingest(store, path)
        ids.append([r["pair_id"] for r in pairs_of(store)])
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 20
    assert ids[0][0] == pair_id_for("prefs", "prefs.jsonl:1")


def test_pair_ids_do_not_depend_on_how_the_path_is_written(store, tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "data" / "prefs.jsonl", hh_rows(3))
    seal.ingest(store, str(path))
    monkeypatch.chdir(tmp_path / "data")
    again = seal.ingest(store, "prefs.jsonl")
    assert (again.ingested, again.already_present) == (0, 3)


def test_reingest_is_idempotent_and_second_dataset_is_separate(store, tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", hh_rows(5))
    first = seal.ingest(store, path)
    version = store.version()
    runs = len(store.runs())
    again = seal.ingest(store, path)
    assert (again.ingested, again.already_present, again.pairs_version, again.run_id) == (0, 5, None, None)
    assert store.version() == version
    assert store.count() == 5
    assert len(store.runs()) == runs
    other = seal.ingest(store, path, name="copy")
    assert other.ingested == 5
    assert store.count() == 10
    ids = {r["dataset"]: set() for r in pairs_of(store)}
    for r in pairs_of(store):
        ids[r["dataset"]].add(r["pair_id"])
    assert set(ids) == {"prefs", "copy"}
    assert not ids["prefs"] & ids["copy"]
    assert first.run_id and other.run_id


def test_reingest_does_not_repeat_quarantine(store, tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps(hh_rows(1)[0]) + "\n{broken\n")
    first = seal.ingest(store, path)
    assert first.quarantined == 1
    versions = {name: store.version(name) for name in store.table_names()}
    again = seal.ingest(store, path)
    assert again.quarantined == 1  # reported again ...
    assert {name: store.version(name) for name in store.table_names()} == versions  # ... not stored again
    assert store.count(table="quarantine") == 1


def test_growing_file_adds_only_new_rows(store, tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", hh_rows(3))
    seal.ingest(store, path)
    write_jsonl(path, hh_rows(5))
    result = seal.ingest(store, path)
    assert (result.ingested, result.already_present) == (2, 3)


def test_default_dataset_names(store, tmp_path):
    (tmp_path / "hh").mkdir()
    assert seal.ingest(store, write_jsonl(tmp_path / "hh" / "train.jsonl", hh_rows(1))).dataset == "hh/train"
    assert seal.ingest(store, write_jsonl(tmp_path / "my.prefs.v2.jsonl", hh_rows(1))).dataset == "my.prefs.v2"


def test_duplicate_in_source_flag(store, tmp_path):
    rows = hh_rows(3)
    rows.insert(2, dict(rows[0]))
    rows.append(dict(rows[0]))
    result = seal.ingest(store, write_jsonl(tmp_path / "dups.jsonl", rows))
    assert (result.ingested, result.quarantined) == (5, 0)
    assert result.flags["duplicate_in_source"] == 2
    flags = [r["flags"]["duplicate_in_source"] for r in pairs_of(store)]
    assert flags == [False, False, True, False, True]  # the first occurrence is not flagged
    assert len({r["content_hash"] for r in pairs_of(store)}) == 3


def test_map_key_column_gives_ids_independent_of_row_order(tmp_path):
    rows = [{"id": f"row-{i}", **r} for i, r in enumerate(hh_rows(4))]
    write_jsonl(tmp_path / "a" / "prefs.jsonl", rows)
    write_jsonl(tmp_path / "b" / "prefs.jsonl", rows[::-1])
    ids = []
    for folder in ("a", "b"):
        store = seal.Store(tmp_path / f"store-{folder}")
        result = seal.ingest(store, tmp_path / folder / "prefs.jsonl", name="prefs", column_map=["key=id"])
        assert result.ingested == 4
        ids.append({r["source_key"]: r["pair_id"] for r in pairs_of(store)})
    assert ids[0] == ids[1]
    assert set(ids[0]) == {f"id=row-{i}" for i in range(4)}


def test_map_key_column_duplicates_and_nulls_are_quarantined(store, tmp_path):
    rows = [{"id": i, **r} for i, r in zip([1, 2, 1, None], hh_rows(4), strict=True)]
    result = seal.ingest(store, write_jsonl(tmp_path / "k.jsonl", rows), column_map=["key=id"])
    assert result.ingested == 2
    assert result.quarantine_reasons == {"duplicate_key": 1, "missing_value": 1}


# -- --limit and --sample ---------------------------------------------------------------------------
def test_limit_reads_first_rows(store, tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", hh_rows(10))
    result = seal.ingest(store, path, limit=4)
    assert (result.read, result.ingested) == (4, 4)
    assert [r["chosen"] for r in pairs_of(store)] == [f"good {i}" for i in range(4)]
    more = seal.ingest(store, path, limit=6)
    assert (more.ingested, more.already_present) == (2, 4)
    with pytest.raises(SourceError, match="--limit"):
        seal.ingest(store, path, limit=0)


def test_sample_is_reproducible_per_seed(tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", hh_rows(60))

    def sample_ids(store_name: str, seed: int) -> list[str]:
        store = seal.Store(tmp_path / store_name)
        result = seal.ingest(store, path, sample=10, seed=seed)
        assert result.ingested == 10
        assert result.recipe["params"]["seed"] == seed
        return sorted(r["pair_id"] for r in pairs_of(store))

    first = sample_ids("s1", 7)
    assert sample_ids("s2", 7) == first
    assert sample_ids("s3", 8) != first
    # a sample is a subset of the full ingest's ids
    full = seal.Store(tmp_path / "full")
    seal.ingest(full, path)
    assert set(first) <= {r["pair_id"] for r in pairs_of(full)}


def test_sample_larger_than_source_takes_everything(store, tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", hh_rows(5))
    assert seal.ingest(store, path, sample=50, seed=1).ingested == 5


def test_folder_source_mixes_file_types(store, tmp_path):
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    write_jsonl(folder / "a.jsonl", hh_rows(2, "a"))
    (folder / "sub" / "b.jsonl.gz").write_bytes(gzip.compress(json.dumps(hh_rows(1, "b")[0]).encode() + b"\n"))
    pq.write_table(pa.Table.from_pylist(hh_rows(2, "c")), folder / "c.parquet")
    (folder / "README.md").write_text("not data")
    result = seal.ingest(store, folder)
    assert (result.dataset, result.ingested, result.quarantined) == ("mixed", 5, 0)
    keys = [r["source_key"] for r in pairs_of(store)]
    assert keys == ["a.jsonl:1", "a.jsonl:2", "c.parquet:0", "c.parquet:1", "sub/b.jsonl.gz:1"]


def test_recipe_and_run_record(store, tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", hh_rows(2))
    result = seal.ingest(store, path, limit=5)
    (run,) = store.runs("ingest")
    assert run["run_id"] == result.run_id
    assert run["pairs_version"] == result.pairs_version == store.version()
    assert run["recipe"]["params"]["source"] == str(path.resolve())
    assert run["recipe"]["params"]["limit"] == 5
    assert run["provenance"]["counts"]["ingested"] == 2


def test_cli_pairwise_issue_invocation_with_spaces(run_cli, store, tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text('my input,output 1,output 2,label\nq0,A0,B0,1\nq1,A1,B1,2\n"q2\nsecond line",A2,B2,0\n')
    result = run_cli(
        "ingest", path, "--json",
        "--map", "prompt=my input", "--map", "a=output 1", "--map", "b=output 2", "--map", "label=label",
        "--label-map", "1=a", "--label-map", "2=b", "--label-map", "0=tie",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["format"], summary["ingested"], summary["quarantine_reasons"]) == ("pairwise", 2, {"tie": 1})
    assert [(r["chosen"], r["rejected"]) for r in pairs_of(store)] == [("A0", "B0"), ("B1", "A1")]


def test_messages_saved_as_json_text_in_csv(store, tmp_path):
    import csv

    path = tmp_path / "conv.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "chosen", "rejected"])
        for i in range(2):
            writer.writerow(
                [
                    json.dumps([msg("user", f"q{i}")]),
                    json.dumps([msg("assistant", f"good {i}")]),
                    json.dumps([msg("assistant", f"bad {i}")]),
                ]
            )
    result = seal.ingest(store, path)
    assert (result.format, result.ingested, result.quarantined) == ("messages", 2, 0)
    assert "JSON text" in result.format_reason
    assert pairs_of(store)[1]["context"] == [msg("user", "q1")]
    assert pairs_of(store)[1]["chosen"] == "good 1"


def test_prompt_that_looks_like_json_stays_text():
    record = {"prompt": '{"name": "x"} - what is this?', "chosen": "a", "rejected": "b"}
    assert adapt_prompt_response(record, cmap()).context == [msg("user", record["prompt"])]
    record = {"prompt": '{"name": "x"}', "chosen": "a", "rejected": "b"}
    assert adapt_prompt_response(record, cmap()).context == [msg("user", '{"name": "x"}')]


def test_same_keys_with_other_content_under_one_name_are_refused(store, tmp_path):
    """Two files with the same name (so the same row keys) under one dataset name must not be
    mistaken for a re-ingest: the second is refused and the store is unchanged."""
    first, second = tmp_path / "a" / "test.jsonl", tmp_path / "b" / "test.jsonl"
    for path, word in ((first, "alpha"), (second, "beta")):
        path.parent.mkdir()
        path.write_text(
            json.dumps(
                {"chosen": f"\n\nHuman: {word}?\n\nAssistant: yes", "rejected": f"\n\nHuman: {word}?\n\nAssistant: no"}
            )
            + "\n"
        )
    seal.ingest(store, first, name="shared")
    version = store.version()
    with pytest.raises(SourceError, match="same keys as different pairs already in dataset `shared`"):
        seal.ingest(store, second, name="shared")
    assert store.version() == version
    assert seal.ingest(store, second, name="other").ingested == 1
