"""An evolving source (issue 15): `seal ingest --on-change refuse|update [--prune]`.

Edit a row, insert one at the top, delete one, reorder them: pair ids stay, changed pairs lose their
annotations (and the stages recompute exactly those), the version before the update is tagged."""

from __future__ import annotations

import json
import random
from pathlib import Path

import lancedb
import pyarrow as pa
import pytest

from seal.cli_schemas import validate_output
from seal.ingest import ingest
from seal.store import Store

N = 6


def rows(n: int = N) -> list[dict]:
    return [
        {"prompt": f"question {i}", "chosen": f"A helpful answer number {i}.", "rejected": f"No. {i}"} for i in range(n)
    ]


def write(path: Path, items: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


def by_prompt(store: Store) -> dict[str, dict]:
    """Every stored pair by its prompt text."""
    return {r["context"][0]["content"]: r for r in store.read().to_pylist()}


def update(run_cli, path: Path, *extra: str) -> dict:
    done = run_cli("ingest", path, "--on-change", "update", "--json", "-s", *extra)
    assert done.exit_code == 0, done.stderr
    payload = json.loads(done.stdout)
    validate_output("ingest", payload)
    return payload


def label(store: Store) -> int:
    from seal.annotate.features.stage import label_heuristics

    return label_heuristics(store).pairs_computed


@pytest.fixture
def labelled(store, tmp_path) -> tuple[Store, Path]:
    """A store with N pairs from `src/prefs.jsonl`, labelled by the heuristics labeler."""
    path = write(tmp_path / "src" / "prefs.jsonl", rows())
    assert ingest(store, path).ingested == N
    assert label(store) == N
    return store, path


def test_refuse_is_the_default_and_leaves_the_store(run_cli, labelled):
    store, path = labelled
    version = store.version()
    edited = rows()
    edited[2]["chosen"] = "An edited answer."
    write(path, edited)
    done = run_cli("ingest", path, "-s")
    assert done.exit_code == 1
    assert "same keys as different pairs" in done.stderr and "--on-change update" in done.stderr
    assert store.version() == version


def test_edit_a_row_replaces_it_in_place_and_clears_its_annotations(run_cli, labelled):
    store, path = labelled
    before = by_prompt(store)
    version = store.version()
    edited = rows()
    edited[2]["chosen"] = "An edited, much longer and more helpful answer."
    write(path, edited)
    payload = update(run_cli, path)
    u = payload["update"]
    assert (u["changed"], u["new"], u["moved"], u["unchanged"], u["removed"]) == (1, 0, 0, N - 1, 0)
    assert "features_heuristics" in u["annotations_cleared"]
    after = by_prompt(store)
    assert after["question 2"]["pair_id"] == before["question 2"]["pair_id"]
    assert after["question 2"]["chosen"] == "An edited, much longer and more helpful answer."
    assert after["question 2"]["features_heuristics"] is None
    assert all(after[p]["features_heuristics"] == before[p]["features_heuristics"] for p in after if p != "question 2")
    assert store.count() == N
    tagged = [v for v in store.versions() if u["tag"] in v["tags"]]
    assert u["tag"].startswith("before-update-") and [v["version"] for v in tagged] == [version]
    old = store.read(["chosen"], version=u["tag"])  # the tagged version still holds the old text
    assert {r["chosen"] for r in old.to_pylist()} == {r["chosen"] for r in before.values()}
    # the label stage recomputes exactly the changed pair
    assert label(store) == 1
    assert by_prompt(store)["question 2"]["features_heuristics"] is not None
    assert label(store) == 0


def test_insert_at_top_keeps_every_pair_and_its_annotations(run_cli, labelled):
    store, path = labelled
    before = by_prompt(store)
    write(path, [{"prompt": "a new first question", "chosen": "yes", "rejected": "no"}, *rows()])
    u = update(run_cli, path)["update"]
    assert (u["new"], u["moved"], u["changed"], u["removed"]) == (1, N, 0, 0)
    after = by_prompt(store)
    assert all(after[p]["pair_id"] == before[p]["pair_id"] for p in before)
    assert all(after[p]["features_heuristics"] == before[p]["features_heuristics"] for p in before)
    assert after["question 0"]["source_key"] == "prefs.jsonl:2" and after["question 0"]["source_index"] == 1
    new_id = after["a new first question"]["pair_id"]
    assert new_id not in {r["pair_id"] for r in before.values()}  # the key's old id belongs to a moved pair
    assert label(store) == 1
    # the updated file re-ingests as unchanged, under both policies
    assert ingest(store, path).ingested == 0
    assert update(run_cli, path)["update"]["unchanged"] == N + 1


def test_delete_a_row_flags_it_then_prune_deletes_it(run_cli, labelled):
    store, path = labelled
    before = by_prompt(store)
    kept = [r for i, r in enumerate(rows()) if i != 3]
    write(path, kept)
    u = update(run_cli, path)["update"]
    assert (u["removed"], u["removed_keys"], u["moved"], u["changed"], u["pruned"]) == (1, ["prefs.jsonl:4"], 2, 0, 0)
    after = by_prompt(store)
    assert len(after) == N and after["question 3"]["flags"]["removed_from_source"] is True
    assert not any(r["flags"]["removed_from_source"] for p, r in after.items() if p != "question 3")
    assert after["question 3"]["features_heuristics"] == before["question 3"]["features_heuristics"]
    assert label(store) == 0
    again = update(run_cli, path)["update"]
    assert again["removed"] == 1 and again["tag"] is None  # already flagged: nothing to write
    pruned = update(run_cli, path, "--prune")["update"]
    assert pruned["pruned"] == 1 and "question 3" not in by_prompt(store) and store.count() == N - 1
    # the row comes back: a new pair
    write(path, rows())
    back = update(run_cli, path)["update"]
    assert back["new"] == 1 and back["moved"] == 2


def test_reorder_rows_keeps_everything(run_cli, labelled):
    store, path = labelled
    before = by_prompt(store)
    shuffled = rows()
    random.Random(3).shuffle(shuffled)
    write(path, shuffled)
    u = update(run_cli, path)["update"]
    assert u["changed"] == 0 and u["new"] == 0 and u["removed"] == 0
    assert u["moved"] + u["unchanged"] == N and u["moved"] >= 2
    after = by_prompt(store)
    assert {p: r["pair_id"] for p, r in after.items()} == {p: r["pair_id"] for p, r in before.items()}
    assert label(store) == 0


def test_update_drops_changed_pairs_from_checkpoints_and_respects_limit(run_cli, labelled):
    store, path = labelled
    ids = by_prompt(store)
    schema = pa.schema([("pair_id", pa.string()), ("score_x", pa.float64())])
    done_ids = [ids["question 1"]["pair_id"], ids["question 4"]["pair_id"]]
    store.work_append("score_x", pa.table({"pair_id": done_ids, "score_x": [1.0, 2.0]}), schema)
    edited = rows()
    edited[1]["rejected"] = "A different rejected answer."
    write(path, edited[:3])  # the file lost rows too, but --limit reads part of it: nothing is removed
    u = update(run_cli, path, "--limit", "3")["update"]
    assert (u["changed"], u["removed"], u["removals_checked"], u["checkpoint_rows_dropped"]) == (1, 0, False, 1)
    assert store.work_read("score_x").column("pair_id").to_pylist() == [ids["question 4"]["pair_id"]]
    done = run_cli("ingest", path, "--on-change", "update", "--prune", "--limit", "3", "-s")
    assert done.exit_code == 1 and "--prune needs the whole source" in done.stderr


def test_score_stage_rescores_only_the_changed_pair(run_cli, store, tmp_path, monkeypatch):
    from tiny_models import build_deberta_rm

    from seal.engines.scoring import RewardModel

    model = str(build_deberta_rm(tmp_path / "rm", seed=1))
    path = write(tmp_path / "prefs.jsonl", rows())
    assert ingest(store, path).ingested == N
    calls: list[int] = []
    original = RewardModel.score

    def counting(self, items, **kwargs):
        calls.append(len(items))
        return original(self, items, **kwargs)

    monkeypatch.setattr(RewardModel, "score", counting)
    assert run_cli("score", "--model", model, "--alias", "tiny", "-s").exit_code == 0
    assert sum(calls) == 2 * N
    scores = {p: r["score_tiny"] for p, r in by_prompt(store).items()}
    edited = rows()
    edited[4]["chosen"] = "Something else entirely."
    write(path, edited)
    assert update(run_cli, path)["update"]["annotations_cleared"] == ["score_tiny"]
    calls.clear()
    done = run_cli("score", "--model", model, "--alias", "tiny", "--json", "-s")
    assert done.exit_code == 0, done.stderr
    assert sum(calls) == 2  # one pair: its chosen and rejected texts
    after = {p: r["score_tiny"] for p, r in by_prompt(store).items()}
    assert all(after[p] == scores[p] for p in scores if p != "question 4")
    assert after["question 4"] is not None and after["question 4"]["chosen"] != scores["question 4"]["chosen"]


def test_update_adds_a_second_source_or_dataset_without_touching_the_first(run_cli, labelled, tmp_path):
    store, _ = labelled
    second = write(tmp_path / "b" / "more.jsonl", rows(2))  # the same content as the first two rows
    u = update(run_cli, second, "--name", "prefs")["update"]
    assert (u["new"], u["moved"], u["removed"]) == (2, 0, 0) and store.count() == N + 2
    fresh = update(run_cli, write(tmp_path / "other.jsonl", rows(3)))
    assert fresh["dataset"] == "other" and fresh["ingested"] == 3 and fresh["update"]["new"] == 3
    assert label(store) == 5  # the new pairs only


def test_update_follows_a_moved_file(run_cli, labelled, tmp_path):
    store, _ = labelled
    before = by_prompt(store)
    edited = rows()
    edited[0]["chosen"] = "Changed."
    moved = write(tmp_path / "elsewhere" / "prefs.jsonl", edited)
    payload = update(run_cli, moved)
    u = payload["update"]
    assert payload["dataset"] == "prefs" and "the source moved from" in u["note"]
    assert (u["changed"], u["refreshed"], u["new"], u["removed"]) == (1, N - 1, 0, 0)
    after = by_prompt(store)
    assert {p: r["pair_id"] for p, r in after.items()} == {p: r["pair_id"] for p, r in before.items()}
    assert {r["source"] for r in after.values()} == {str(moved.resolve())}
    assert label(store) == 1


def test_a_store_whose_flags_predate_removed_from_source(run_cli, store, tmp_path):
    path = write(tmp_path / "prefs.jsonl", rows())
    ingest(store, path)
    table = store.read()
    old_flags = pa.struct([(n, pa.bool_()) for n in ("identical_responses", "context_mismatch", "duplicate_in_source")])
    old = table.set_column(table.schema.get_field_index("flags"), "flags", table.column("flags").cast(old_flags))
    db = lancedb.connect(str(store.path))  # rewrite the table as an older seal left it
    db.drop_table("pairs")
    db.create_table("pairs", data=old)
    write(path, rows(N + 1))  # one more row: added under both policies, its flags fitted to the old struct
    assert ingest(store, path).ingested == 1
    write(path, rows(N - 1))
    u = update(run_cli, path)["update"]
    assert u["removed"] == 2 and "predate removed_from_source" in u["note"] and u["tag"] is None
    assert update(run_cli, path, "--prune")["update"]["pruned"] == 2 and store.count() == N - 1
    assert run_cli("ingest", path, "--prune", "-s").exit_code == 1  # --prune needs --on-change update
