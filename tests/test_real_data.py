"""Ingest of the real preference data in ../shared/data (skipped when the folder is absent)."""

from __future__ import annotations

import gzip
import itertools
import json
from collections import Counter

import pytest

import seal
from seal.ingest.transcript import parse_turns

HH = "hh-rlhf-harmless-base/test.jsonl.gz"
HHH = "hhh-alignment/pairs.jsonl"
DPO = "llamafactory-dpo-demo/dpo_en_demo.json"


def rows_of(store, dataset: str) -> list[dict]:
    table = store.read(where=f"dataset = '{dataset}'")
    return sorted(table.to_pylist(), key=lambda r: r["source_index"])


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """One store with all three real datasets (ingested once for the module), plus the results."""
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    store = seal.Store(tmp_path_factory.mktemp("real") / "store")
    results = {rel: seal.ingest(store, SHARED_DATA / rel) for rel in (HH, HHH, DPO)}
    return store, results


def test_hh_rlhf_harmless_base_test(shared_data, loaded):
    store, results = loaded
    result = results[HH]
    assert result.format == "transcript"
    assert (result.read, result.ingested, result.quarantined) == (2312, 2312, 0)
    expected_flags = {"identical_responses": 0, "context_mismatch": 5, "duplicate_in_source": 0, "empty_response": 4}
    assert result.flags == expected_flags
    rows = rows_of(store, result.dataset)
    assert len(rows) == 2312
    source = [json.loads(line) for line in _gz_lines(shared_data / HH)]
    mismatched = [r for r in rows if r["flags"]["context_mismatch"]]
    assert len(mismatched) == 5
    for row in mismatched:
        original = source[row["source_index"]]
        assert row["chosen_raw"] == original["chosen"]  # both raw texts are kept, untouched
        assert row["rejected_raw"] == original["rejected"]
        assert row["chosen_raw"] != row["rejected_raw"]
        # the context is the chosen side's (the rejected side's differs)
        chosen_prefix = original["chosen"][: original["chosen"].rfind("\n\nAssistant:")]
        rejected_prefix = original["rejected"][: original["rejected"].rfind("\n\nAssistant:")]
        assert row["context"] == parse_turns(chosen_prefix) != parse_turns(rejected_prefix)
    # facts from the data's README: 662 single-turn rows, up to 18 Human turns
    human_turns = Counter(sum(t["role"] == "user" for t in r["context"]) for r in rows)
    assert human_turns[1] == 662
    assert max(human_turns) == 18
    assert all(r["context"] and r["context"][0]["role"] == "user" for r in rows)
    assert not any(r["chosen"].startswith("Assistant:") for r in rows)
    first = rows[0]
    assert first["chosen_raw"] == source[0]["chosen"]
    assert source[0]["chosen"].endswith(first["chosen"])


def _gz_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [line for line in handle if line.strip()]


def test_hhh_alignment(shared_data, loaded):
    store, results = loaded
    result = results[HHH]
    assert result.format == "prompt-response"
    assert (result.ingested, result.quarantined) == (221, 0)
    rows = rows_of(store, result.dataset)
    multi = [r for r in rows if len(r["context"]) > 1]
    assert len(multi) == 41  # prompts with an embedded Human:/Assistant: dialogue
    for row in multi:
        roles = [t["role"] for t in row["context"]]
        assert roles[0] == "user" and roles[-1] == "user" and "assistant" in roles
        assert all(a != b for a, b in itertools.pairwise(roles))  # turns alternate
        assert not any("\n\nAssistant:" in t["content"] or "\n\nHuman:" in t["content"] for t in row["context"])
    assert all(len(r["context"]) == 1 for r in rows if r not in multi)


def test_llamafactory_dpo_demo_sharegpt(shared_data, loaded):
    store, results = loaded
    result = results[DPO]
    assert result.format == "messages"
    assert (result.ingested, result.quarantined) == (300, 0)
    rows = rows_of(store, result.dataset)
    source = json.loads((shared_data / DPO).read_text())
    with_system = [i for i, r in enumerate(source) if any(m["from"] == "system" for m in r["conversations"])]
    assert with_system
    for i, row in enumerate(rows):
        roles = [t["role"] for t in row["context"]]
        assert set(roles) <= {"system", "user", "assistant"}
        assert ("system" in roles) == (i in with_system)
        assert row["chosen"] == source[i]["chosen"]["value"].strip()
        assert row["rejected"] == source[i]["rejected"]["value"].strip()
    system_row = rows[with_system[0]]
    assert system_row["context"][0] == {
        "role": "system",
        "content": source[with_system[0]]["conversations"][0]["value"].strip(),
    }


def test_three_datasets_stay_apart_and_reingest_adds_nothing(shared_data, loaded):
    store, results = loaded
    counts = Counter(store.read().column("dataset").to_pylist())
    assert counts == {results[HH].dataset: 2312, results[HHH].dataset: 221, results[DPO].dataset: 300}
    assert len(set(counts)) == 3
    versions = {name: store.version(name) for name in store.table_names()}
    for rel, first in results.items():
        again = seal.ingest(store, shared_data / rel)
        assert again.dataset == first.dataset
        assert (again.ingested, again.already_present, again.pairs_version) == (0, first.ingested, None)
    assert {name: store.version(name) for name in store.table_names()} == versions
    assert store.count() == 2312 + 221 + 300


def test_real_pair_ids_are_stable_across_stores(shared_data, loaded, tmp_path):
    store, results = loaded
    fresh = seal.Store(tmp_path / "fresh")
    seal.ingest(fresh, shared_data / HHH)
    assert [r["pair_id"] for r in rows_of(fresh, results[HHH].dataset)] == [
        r["pair_id"] for r in rows_of(store, results[HHH].dataset)
    ]


def test_real_data_via_cli(shared_data, run_cli):
    result = run_cli("ingest", shared_data / HH, "--json", "--limit", "100")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["format"], summary["ingested"]) == ("transcript", 100)
