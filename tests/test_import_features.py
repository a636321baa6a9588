"""`seal import-features` and the label writer: long and wide layouts, every file type, validation that
writes nothing, keys, re-import, and the writer's merge/replace rules."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import seal
from seal.annotate.features.importer import import_features
from seal.annotate.features.writer import (
    InvalidLabels,
    labels_from_arrays,
    labels_from_records,
    latest_label_run,
    read_labels,
    write_labels,
)
from seal.catalog.features import stored_feature_sets
from seal.catalog.featuresets import load_feature_set
from seal.cli_schemas import validate_output
from seal.errors import SealError, StoreError
from seal.recipe import Recipe

SET_YAML = """name: mini
features:
  - {name: harmless, type: bool, role: target}
  - {name: insult, type: bool, role: target, sign: -1}
  - {name: sentiment, type: category, role: spoiler, values: {negative: -1, neutral: 0, positive: 1}}
  - {name: score, type: number, role: spoiler}
  - {name: topics, type: list, values: [science, sport, art]}
"""


def transcript(human: str, assistant: str) -> str:
    return f"\n\nHuman: {human}\n\nAssistant: {assistant}"


@pytest.fixture
def mini(tmp_path) -> str:
    path = tmp_path / "mini.yaml"
    path.write_text(SET_YAML)
    return str(path)


@pytest.fixture
def filled(store, tmp_path):
    path = tmp_path / "pairs.jsonl"
    with path.open("w") as handle:
        for i in range(6):
            handle.write(
                json.dumps({"chosen": transcript(f"q{i}", f"good {i}"), "rejected": transcript(f"q{i}", f"bad {i}")})
                + "\n"
            )
    seal.ingest(store, path, name="tiny")
    return store


def ids(store) -> list[str]:
    table = store.read(["pair_id", "source_index"]).sort_by("source_index")
    return table.column("pair_id").to_pylist()


def side(i: int, good: bool) -> dict:
    return {
        "harmless": good,
        "insult": not good and i % 2 == 0,
        "sentiment": "positive" if good else ["negative", "neutral"][i % 2],
        "score": float(i) + (0.5 if good else 0.0),
        "topics": ["science"] if i % 2 else ["sport", "art"],
    }


def long_rows(pair_ids: list[str]) -> list[dict]:
    rows = []
    for i, p in enumerate(pair_ids):
        rows.append({"pair_id": p, "side": "chosen", **side(i, True)})
        rows.append({"pair_id": p, "side": "rejected", **side(i, False)})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_long_jsonl_import_then_reimport_is_up_to_date(filled, mini, tmp_path):
    pair_ids = ids(filled)
    path = write_jsonl(tmp_path / "labels.jsonl", long_rows(pair_ids))
    result = import_features(filled, path, mini)
    assert result.status == "done" and result.layout == "long" and result.pairs_imported == 6
    labels = {r["pair_id"]: r["features_mini"] for r in read_labels(filled, "mini").to_pylist()}
    assert labels[pair_ids[1]]["sentiment"] == {"chosen": "positive", "rejected": "neutral"}
    assert labels[pair_ids[0]]["topics"] == {"chosen": ["art", "sport"], "rejected": ["art", "sport"]}
    assert labels[pair_ids[0]]["insult"] == {"chosen": False, "rejected": True}
    run = latest_label_run(filled, "mini")
    assert run["provenance"]["origin"] == "imported" and run["rows_written"] == 6
    assert result.means["harmless"]["chosen"]["mean"] == 1.0 and result.means["harmless"]["rejected"]["mean"] == 0.0
    assert stored_feature_sets(filled)["mini"].feature("insult").sign == -1
    again = import_features(filled, path, mini)
    assert again.status == "up-to-date" and again.pairs_imported == 0
    assert len([r for r in filled.runs("label") if r["name"] == "mini"]) == 1


def test_wide_json_csv_and_parquet_give_the_same_labels(filled, mini, tmp_path):
    pair_ids = ids(filled)
    rows = long_rows(pair_ids)
    wide = [
        {"pair_id": p, "chosen": side(i, True), "rejected": side(i, False), "model": "gpt-4"}
        for i, p in enumerate(pair_ids)
    ]
    (tmp_path / "wide.json").write_text(json.dumps(wide))
    with (tmp_path / "long.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "harmless": str(r["harmless"]).lower(), "insult": int(r["insult"]),
                             "topics": ";".join(r["topics"])})  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "long.parquet")
    results = {}
    for name in ("wide.json", "long.csv", "long.parquet"):
        result = import_features(filled, tmp_path / name, mini)
        assert result.status == "done", name
        results[name] = sorted(read_labels(filled, "mini").to_pylist(), key=lambda r: r["pair_id"])
    assert results["wide.json"] == results["long.csv"] == results["long.parquet"]
    wide_result = import_features(filled, tmp_path / "wide.json", mini, dry_run=True)
    assert wide_result.layout == "wide" and wide_result.ignored_columns == ["model"]


def test_invalid_rows_are_listed_and_nothing_is_written(filled, mini, tmp_path):
    pair_ids = ids(filled)
    rows = long_rows(pair_ids)
    rows[0]["harmless"] = "maybe"
    rows[3]["sentiment"] = "angry"
    rows[4]["topics"] = ["science", "cooking"]
    rows[5]["score"] = "high"
    rows[6]["side"] = "left"
    rows.append({**rows[1]})  # a second rejected row for pair 0
    rows.append({"pair_id": "no-such-pair", "side": "chosen", **side(0, True)})
    del rows[9]  # pair 4 loses its rejected row
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InvalidLabels) as err:
        import_features(filled, path, mini)
    message = str(err.value)
    problems = err.value.problems
    assert "nothing written" in message
    assert any("row 1 " in p and "harmless: expected true or false, got 'maybe'" in p for p in problems)
    assert any("row 4 " in p and "sentiment: expected one of negative, neutral, positive" in p for p in problems)
    assert any("row 5 " in p and "'cooking' not among the allowed values" in p for p in problems)
    assert any("row 6 " in p and "score: expected a number" in p for p in problems)
    assert any("row 7 " in p and "side must be chosen or rejected" in p for p in problems)
    assert any("a second rejected row" in p for p in problems)
    assert any("'no-such-pair' is not a pair of the store" in p for p in problems)
    assert any("no rejected row for this pair" in p for p in problems)
    assert "features_mini" not in filled.columns()
    assert filled.runs("label") == []


def test_missing_columns_and_unknown_layouts_are_file_level_errors(filled, mini, tmp_path):
    rows = [{k: v for k, v in r.items() if k != "score"} for r in long_rows(ids(filled))]
    with pytest.raises(SealError, match="lacks columns for features of `mini`: score"):
        import_features(filled, write_jsonl(tmp_path / "a.jsonl", rows), mini)
    with pytest.raises(SealError, match="cannot tell the layout"):
        import_features(filled, write_jsonl(tmp_path / "b.jsonl", [{"pair_id": "x", "harmless": True}]), mini)
    wide = [{"pair_id": p, "chosen": {**side(0, True), "extra": 1}, "rejected": "nope"} for p in ids(filled)[:1]]
    with pytest.raises(InvalidLabels) as err:
        import_features(filled, write_jsonl(tmp_path / "c.jsonl", wide), mini)
    assert any("unknown keys: extra" in p for p in err.value.problems)
    assert any("rejected: expected an object of labels" in p for p in err.value.problems)


def test_keys_by_source_index_of_a_dataset(filled, mini, tmp_path):
    rows = long_rows(ids(filled))
    for r in rows:
        r["source_index"] = ids(filled).index(r.pop("pair_id"))
    path = write_jsonl(tmp_path / "by-index.jsonl", rows)
    result = import_features(filled, path, mini, key="source_index", dataset="tiny")
    assert result.pairs_imported == 6 and result.key == "source_index"
    by_id = {r["pair_id"]: r["features_mini"] for r in read_labels(filled, "mini").to_pylist()}
    assert by_id[ids(filled)[3]]["score"] == {"chosen": 3.5, "rejected": 3.0}


def test_cli_import_features_json_and_errors(run_cli, filled, mini, tmp_path):
    path = write_jsonl(tmp_path / "labels.jsonl", long_rows(ids(filled)))
    result = run_cli("import-features", path, "--feature-set", mini, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    validate_output("import-features", out)
    assert out["pairs_imported"] == 6 and out["status"] == "done"
    again = json.loads(run_cli("import-features", path, "--feature-set", mini, "--json").stdout)
    validate_output("import-features", again)
    assert again["status"] == "up-to-date"
    bad = long_rows(ids(filled))
    bad[2]["harmless"] = 3
    failed = run_cli("import-features", write_jsonl(tmp_path / "bad.jsonl", bad), "--feature-set", mini)
    assert failed.exit_code == 1
    assert "1 invalid row(s) in the label file; nothing written: row 3" in failed.stderr
    assert failed.stderr.count("\n") == 1


def test_spec_import_entry(run_cli, filled, mini, tmp_path):
    write_jsonl(tmp_path / "labels.jsonl", long_rows(ids(filled)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"store: {filled.path}\ndataset: {{source: pairs.jsonl, name: tiny}}\n"
        f"features:\n  - {{labeler: import, file: labels.jsonl, feature_set: {mini}}}\n"
    )
    result = run_cli("run", spec, "--json", store=None)
    assert result.exit_code == 0, result.output
    stages = {s["plan"]["stage"]: s for s in json.loads(result.stdout)["stages"]}
    assert stages["label"]["status"] == "done" and stages["label"]["result"]["pairs_imported"] == 6


# -- the writer ------------------------------------------------------------------------------------------
def test_writer_merges_same_recipe_and_replaces_another(filled, mini):
    fs = load_feature_set(mini)
    pair_ids = ids(filled)
    recipe_a = Recipe("label", "mini", {"labeler": "test", "v": 1})
    recipe_b = Recipe("label", "mini", {"labeler": "test", "v": 2})
    records = [{"pair_id": p, "chosen": side(i, True), "rejected": side(i, False)} for i, p in enumerate(pair_ids)]
    first = write_labels(filled, fs, labels_from_records(fs, records[:2]), recipe_a, {"labeler": "test"})
    assert (first.rows_written, first.labelled_pairs, first.kept) == (2, 2, 0)
    more = write_labels(filled, fs, labels_from_records(fs, records[2:4]), recipe_a)
    assert more.merged and (more.rows_written, more.labelled_pairs, more.kept) == (2, 4, 2)
    other = write_labels(filled, fs, labels_from_records(fs, records[4:]), recipe_b)
    assert not other.merged and other.labelled_pairs == 2
    assert len(read_labels(filled, "mini", non_null=True)) == 2
    with pytest.raises(StoreError, match="name pairs the store does not hold"):
        write_labels(filled, fs, labels_from_records(fs, [{**records[0], "pair_id": "ghost"}]), recipe_b)
    with pytest.raises(InvalidLabels, match="harmless: missing"):
        labels_from_records(fs, [{"pair_id": "x", "chosen": {}, "rejected": side(0, False)}])
    with pytest.raises(SealError, match="needs a `label` recipe named `mini`"):
        write_labels(filled, fs, labels_from_records(fs, records[:1]), Recipe("label", "other", {}))
    arrays = labels_from_arrays(
        fs,
        pair_ids[:1],
        {"harmless": [True], "insult": [False], "sentiment": ["neutral"], "score": [1.0], "topics": [[]]},
        {"harmless": [False], "insult": [True], "sentiment": ["negative"], "score": [0.0], "topics": [["art"]]},
    )
    assert arrays.column("features_mini").to_pylist()[0]["insult"] == {"chosen": False, "rejected": True}
