"""`seal import-scores`: file formats, coverage, idempotence, --replace, and validation that writes nothing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO

import seal
from seal.annotate.import_scores import import_scores, parse_column_map
from seal.catalog.models import SCORE_TYPE, list_models, model_with_role
from seal.errors import SealError
from seal.recipe import Recipe
from seal.store import RunRecord, new_run_id, now_utc

N = 12


def write_pairs(path: Path, n: int) -> Path:
    with open(path, "w") as handle:
        for i in range(n):
            chosen = f"\n\nHuman: question {i}\n\nAssistant: a helpful answer {i}"
            rejected = f"\n\nHuman: question {i}\n\nAssistant: an unhelpful answer {i}"
            handle.write(json.dumps({"chosen": chosen, "rejected": rejected}) + "\n")
    return path


@pytest.fixture
def ids(store, tmp_path) -> list[str]:
    """A store of N pairs; their ids in file order."""
    seal.ingest(store, str(write_pairs(tmp_path / "pairs.jsonl", N)), name="fx")
    rows = store.read(["pair_id", "source_index"]).to_pylist()
    return [r["pair_id"] for r in sorted(rows, key=lambda r: r["source_index"])]


def write_csv(path: Path, header: str, rows: list[tuple]) -> Path:
    lines = [header] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def scores_of(store, alias: str) -> dict[str, dict | None]:
    table = store.read()
    return dict(zip(table.column("pair_id").to_pylist(), table.column(f"score_{alias}").to_pylist(), strict=True))


def state(store) -> tuple[int, int, list[str]]:
    """What a failed import must leave unchanged: the pairs version, the number of runs, the columns."""
    return store.version(), len(store.runs()), store.columns()


# -- formats and contents -----------------------------------------------------------------------
def test_import_csv_records_column_and_run(store, ids, tmp_path):
    path = write_csv(tmp_path / "post.csv", "pair_id,chosen,rejected", [(p, i, -i / 4) for i, p in enumerate(ids)])
    result = import_scores(store, path, "post", role="aligned")
    assert result.status == "imported"
    assert (result.rows_in_file, result.pairs_scored, result.pairs_total, result.coverage) == (N, N, N, 1.0)
    assert store.schema().field("score_post").type == SCORE_TYPE
    got = scores_of(store, "post")
    assert all(got[p] == {"chosen": float(i), "rejected": -i / 4} for i, p in enumerate(ids))
    (run,) = [r for r in store.runs("score") if r["name"] == "post"]
    assert run["provenance"]["role"] == "aligned" and run["provenance"]["origin"] == "imported"
    assert run["provenance"]["file"] == str(path.resolve())
    assert run["recipe"]["params"]["file_sha256"] == result.sha256
    assert run["recipe"]["params"]["column_map"] == {"pair_id": "pair_id", "chosen": "chosen", "rejected": "rejected"}
    assert run["pairs_version"] == result.pairs_version == store.version()
    assert run["rows_written"] == N
    info = list_models(store)["post"]
    assert (info["role"], info["origin"], info["scored_pairs"]) == ("aligned", "imported", N)
    assert model_with_role(store, "aligned") == "post"


def test_parquet_partial_coverage(store, ids, tmp_path):
    half = ids[: N // 2]
    pq.write_table(
        pa.table({"pair_id": half, "chosen": [1.5] * len(half), "rejected": pa.array(range(len(half)), pa.int64())}),
        tmp_path / "pre.parquet",
    )
    result = import_scores(store, tmp_path / "pre.parquet", "pre", role="control")
    assert (result.pairs_scored, result.pairs_total) == (N // 2, N)
    assert result.coverage == pytest.approx(0.5)
    got = scores_of(store, "pre")
    assert got[ids[1]] == {"chosen": 1.5, "rejected": 1.0}
    assert all(got[p] is None for p in ids[N // 2 :])
    assert list_models(store)["pre"]["coverage"] == pytest.approx(0.5)


def test_jsonl_gz_with_column_map(store, ids, tmp_path):
    path = tmp_path / "api.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        for i, p in enumerate(ids):
            handle.write(json.dumps({"id": p, "r_c": i + 0.25, "r_r": "-1e-3", "extra": "x"}) + "\n")
    result = import_scores(store, path, "api", column_map=["pair_id=id", "chosen=r_c", "rejected=r_r"])
    assert result.role == "other" and result.pairs_scored == N
    assert result.column_map == {"pair_id": "id", "chosen": "r_c", "rejected": "r_r"}
    assert scores_of(store, "api")[ids[2]] == {"chosen": 2.25, "rejected": -0.001}


def test_csv_gz_and_json_list(store, ids, tmp_path):
    raw = "pair_id,chosen,rejected\n" + "".join(f"{p},{i},0\n" for i, p in enumerate(ids[:3]))
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(raw.encode()))
    assert import_scores(store, tmp_path / "a.csv.gz", "a").pairs_scored == 3
    records = [{"pair_id": p, "chosen": 1, "rejected": 2} for p in ids[:4]]
    (tmp_path / "b.json").write_text(json.dumps(records))
    assert import_scores(store, tmp_path / "b.json", "b").pairs_scored == 4


# -- idempotence and replacement ------------------------------------------------------------------
def test_reimport_identical_file_is_a_no_op(store, ids, tmp_path):
    path = write_csv(tmp_path / "s.csv", "pair_id,chosen,rejected", [(p, 1, 0) for p in ids])
    first = import_scores(store, path, "post", role="aligned")
    before = state(store)
    again = import_scores(store, path, "post")  # role defaults to the alias's current role
    assert again.status == "unchanged" and again.role == "aligned"
    assert again.run_id == first.run_id
    assert state(store) == before


def test_same_file_new_role_records_a_run_without_writing(store, ids, tmp_path):
    path = write_csv(tmp_path / "s.csv", "pair_id,chosen,rejected", [(p, 1, 0) for p in ids])
    import_scores(store, path, "pre", role="aligned")
    version = store.version()
    result = import_scores(store, path, "pre", role="control")
    assert result.status == "role_updated"
    assert store.version() == version
    assert list_models(store)["pre"]["role"] == "control"


def test_different_file_needs_replace(store, ids, tmp_path):
    one = write_csv(tmp_path / "one.csv", "pair_id,chosen,rejected", [(p, 1, 0) for p in ids])
    two = write_csv(tmp_path / "two.csv", "pair_id,chosen,rejected", [(p, 5, 6) for p in ids[:3]])
    first = import_scores(store, one, "post", role="aligned")
    before = state(store)
    with pytest.raises(SealError, match=r"already holds scores imported from another file.*--replace"):
        import_scores(store, two, "post")
    assert state(store) == before
    result = import_scores(store, two, "post", replace=True)
    assert result.status == "replaced" and result.role == "aligned"
    assert result.replaced["run_id"] == first.run_id
    assert result.pairs_scored == 3
    got = scores_of(store, "post")
    assert got[ids[0]] == {"chosen": 5.0, "rejected": 6.0} and got[ids[5]] is None


def test_scored_alias_needs_replace(store, ids, tmp_path):
    # Scores written by `seal score` (simulated: the column and a run with origin "scored").
    values = pa.table({"pair_id": ids, "score_rm": pa.array([{"chosen": 0.0, "rejected": 1.0}] * N, type=SCORE_TYPE)})
    version = store.materialize_column("score_rm", values)
    recipe = Recipe("score", "rm", {"model": "org/reward-model"})
    store.record_run(
        RunRecord(
            new_run_id(), "score", "rm", recipe.fingerprint(), recipe.to_dict(),
            {"role": "aligned", "origin": "scored"}, "done", N, version, now_utc(), now_utc(),
        )
    )  # fmt: skip
    path = write_csv(tmp_path / "s.csv", "pair_id,chosen,rejected", [(p, 1, 0) for p in ids])
    before = state(store)
    with pytest.raises(SealError, match=r"computed by `seal score` with org/reward-model"):
        import_scores(store, path, "rm")
    assert state(store) == before
    result = import_scores(store, path, "rm", replace=True)
    assert result.status == "replaced" and result.replaced["origin"] == "scored"
    assert list_models(store)["rm"]["origin"] == "imported"


# -- validation: one line, nothing written --------------------------------------------------------
def _bad_files(ids: list[str]) -> dict[str, tuple[str, list[tuple], list[str], str]]:
    header = "pair_id,chosen,rejected"
    good = [(p, 1.0, 0.0) for p in ids]
    unknown = [*good[:3], *((f"nope{i}", 1, 0) for i in range(7))]
    return {
        "unknown": (header, unknown, [], r"unknown pair ids: 7 \(nope0, nope1, nope2, nope3, nope4, … 2 more\)"),
        "nan": (header, [*good[1:], (ids[0], "nan", 0)], [], rf"NaN `chosen` values: 1 \({ids[0]}\)"),
        "missing": (
            header,
            [*good[2:], (ids[0], 1, None), (ids[1], 1, "")],
            [],
            rf"missing `rejected` values: 2 \({ids[0]}, {ids[1]}\)",
        ),
        "duplicate": (
            header,
            [*good, good[4], good[4], good[7]],
            [],
            rf"duplicate pair ids: 2 on 5 rows \({ids[4]}, {ids[7]}\)",
        ),
        "non_numeric": (header, [*good[1:], (ids[0], "high", 0)], [], rf"non-numeric `chosen` values: 1 \({ids[0]}\)"),
        "infinite": (header, [*good[1:], (ids[0], 1, "-inf")], [], r"infinite `rejected` values: 1"),
        "no_id": (header, [*good, ("", 1, 0)], [], rf"rows without a pair id: 1 \(row {N + 1}\)"),
        "wrong_map": (
            "pair_id,score_c,score_r",
            good,
            ["chosen=score_c", "rejected=nope"],
            r"has no column `nope` \(columns: pair_id, score_c, score_r\).*--map rejected=COLUMN",
        ),
        "unmapped": ("pair_id,score_c,score_r", good, [], r"has no column `chosen`, `rejected`"),
    }


@pytest.mark.parametrize(
    "case", ["unknown", "nan", "missing", "duplicate", "non_numeric", "infinite", "no_id", "wrong_map", "unmapped"]
)
def test_invalid_files_write_nothing(store, ids, tmp_path, case):
    header, rows, column_map, message = _bad_files(ids)[case]
    path = write_csv(tmp_path / f"{case}.csv", header, rows)
    before = state(store)
    with pytest.raises(SealError, match=message) as info:
        import_scores(store, path, "post", role="aligned", column_map=column_map)
    assert "\n" not in str(info.value)
    assert state(store) == before
    assert "score_post" not in store.columns()


def test_all_problems_reported_in_one_line(store, ids, tmp_path):
    path = write_csv(
        tmp_path / "bad.csv",
        "pair_id,chosen,rejected",
        [(ids[0], "x", 1), (ids[0], "nan", None), ("ghost", 1, 2), (ids[1], 1, 2)],
    )
    with pytest.raises(SealError) as info:
        import_scores(store, path, "post")
    text = str(info.value)
    assert text.startswith("bad.csv: nothing imported: ")
    for part in ("unknown pair ids: 1 (ghost)", "duplicate pair ids: 1 on 2 rows", "non-numeric `chosen`",
                 "NaN `chosen`", "missing `rejected`"):  # fmt: skip
        assert part in text


def test_mixed_types_in_jsonl_are_reported(store, ids, tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [{"pair_id": ids[0], "chosen": 1.0, "rejected": 0}, {"pair_id": ids[1], "chosen": "abc", "rejected": 0},
             {"pair_id": ids[2], "chosen": True, "rejected": 0}, {"pair_id": ids[3], "rejected": 0}]  # fmt: skip
    lines.append({"pair_id": ids[4], "chosen": float("nan"), "rejected": 1})  # json.dumps writes NaN
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    with pytest.raises(SealError) as info:
        import_scores(store, path, "post")
    text = str(info.value)
    assert f"non-numeric `chosen` values: 2 ({ids[1]}, {ids[2]})" in text
    assert f"missing `chosen` values: 1 ({ids[3]})" in text
    assert f"NaN `chosen` values: 1 ({ids[4]})" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alias": "bad alias"}, "bad alias"),
        ({"role": "boss"}, "unknown role"),
        ({"column_map": ["score=x"]}, "unknown --map key `score`"),
        ({"column_map": ["chosen"]}, "bad --map `chosen`"),
        ({"column_map": ["chosen=a", "rejected=a"]}, "two keys to one column"),
    ],
)
def test_bad_options(store, ids, tmp_path, kwargs, message):
    path = write_csv(tmp_path / "s.csv", "pair_id,chosen,rejected", [(ids[0], 1, 0)])
    args = {"alias": "post", **kwargs}
    with pytest.raises(SealError, match=message):
        import_scores(store, path, args.pop("alias"), **args)


def test_other_failures(store, ids, tmp_path):
    with pytest.raises(SealError, match="no such file"):
        import_scores(store, tmp_path / "absent.csv", "post")
    (tmp_path / "s.txt").write_text("x")
    with pytest.raises(SealError, match="unknown score file type"):
        import_scores(store, tmp_path / "s.txt", "post")
    (tmp_path / "empty.csv").write_text("pair_id,chosen,rejected\n")
    with pytest.raises(SealError, match="no rows"):
        import_scores(store, tmp_path / "empty.csv", "post")
    (tmp_path / "trunc.csv.gz").write_bytes(gzip.compress(b"pair_id,chosen,rejected\n" * 50)[:30])
    with pytest.raises(SealError, match="corrupt or truncated gzip"):
        import_scores(store, tmp_path / "trunc.csv.gz", "post")


def test_no_store(tmp_path):
    path = write_csv(tmp_path / "s.csv", "pair_id,chosen,rejected", [("a", 1, 0)])
    with pytest.raises(SealError, match="no seal store"):
        import_scores(seal.Store(tmp_path / "nothing"), path, "post")


def test_parse_column_map_defaults():
    assert parse_column_map(None) == {"pair_id": "pair_id", "chosen": "chosen", "rejected": "rejected"}
    assert parse_column_map({"chosen": "c"})["chosen"] == "c"


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_import_scores_human_and_json(run_cli, store, ids, tmp_path):
    schema = json.loads((REPO / "schemas" / "cli" / "import-scores.schema.json").read_text())
    path = write_csv(tmp_path / "post.csv", "id,c,r", [(p, 1, 0) for p in ids[:9]])
    out = run_cli("import-scores", path, "--alias", "post", "--role", "aligned", "--map", "pair_id=id",
                  "--map", "chosen=c", "--map", "rejected=r")  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "imported `post` (role aligned)" in out.stdout and f"9 of {N} pairs scored (75.0%)" in out.stdout
    again = run_cli("import-scores", path, "--alias", "post", "--map", "pair_id=id", "--map", "chosen=c",
                    "--map", "rejected=r", "--json")  # fmt: skip
    assert again.exit_code == 0, again.output
    payload = json.loads(again.stdout)
    jsonschema.Draft202012Validator(schema).validate(payload)
    assert payload["status"] == "unchanged" and payload["pairs_scored"] == 9 and payload["role"] == "aligned"

    other = write_csv(tmp_path / "other.csv", "pair_id,chosen,rejected", [(p, 2, 0) for p in ids])
    refused = run_cli("import-scores", other, "--alias", "post")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: alias `post` already holds") and refused.stderr.count("\n") == 1
    replaced = run_cli("import-scores", other, "--alias", "post", "--replace", "--json")
    payload = json.loads(replaced.stdout)
    jsonschema.Draft202012Validator(schema).validate(payload)
    assert payload["status"] == "replaced" and payload["coverage"] == 1.0

    bad = write_csv(tmp_path / "bad.csv", "pair_id,chosen,rejected", [("ghost", 1, 0)])
    version = store.version()
    failed = run_cli("import-scores", bad, "--alias", "x")
    assert failed.exit_code == 1 and "unknown pair ids: 1 (ghost)" in failed.stderr
    assert failed.stderr.count("\n") == 1 and store.version() == version
