"""`seal export`: the hf dataset (parquet shards + card) round-trips through `datasets.load_dataset` for every
column kind, the card says how each column was made and what the analyses found (numbers checked against an
independent computation), an existing card is merged, the flat formats keep nested columns, and the
AnnotatedPairs file opens in Feedback Forensics' own loader (the real PyPI package, in its own virtualenv).

`annotated_store` builds one real store for these tests and tests/test_publish.py (once per session): two
datasets from a source with an MIT LICENSE beside it and one unparseable row, a tiny real reward model and
imported scores, heuristic labels and LLM labels of every feature type (the fake OpenAI server), MiniLM
embeddings, rule rewrites re-scored by the RM, and the confusing-entry findings.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO
from llm_servers import FakeOpenAI

MINI_SET = """\
name: mini
version: 1
labeler: llm
features:
  - {name: is_polite, type: bool, instruction: "Is the final response polite?"}
  - {name: tone, type: category, values: {negative: -1, neutral: 0, positive: 1}, instruction: The tone.}
  - {name: topics, type: list, values: [cooking, travel, music], instruction: "Which topics?"}
  - {name: size, type: number, instruction: "How long is it?"}
"""
MIT = "MIT License\n\nCopyright (c) 2022 Someone\n\nPermission is hereby granted, free of charge, to any person\n"
FF_PYTHON = Path(os.environ.get("SEAL_FF_PYTHON") or REPO / ".venv-ff" / "bin" / "python")
_BUILT: dict[str, Path] = {}


def build_annotated_store(root: Path) -> Path:
    """The store described in the module docstring, under `root` (built once per root and process)."""
    if str(root) in _BUILT:
        return _BUILT[str(root)]
    with pytest.MonkeyPatch.context() as env:  # as tests/conftest.py's _isolated_env, which runs after this
        for name, value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("HF_HOME", str(root / "hf"))):
            env.setenv(name, value)
        env.delenv("SEAL_STORE", raising=False)
        _build(root)
    _BUILT[str(root)] = root / "store"
    return root / "store"


def _build(root: Path) -> None:
    from tiny_models import build_deberta_rm, minilm_dir

    import seal

    src = root / "src"
    src.mkdir(parents=True)
    (src / "LICENSE").write_text(MIT)
    (src / "hh.jsonl").write_text((REPO / "examples" / "tiny-hh.jsonl").read_text() + "{not json\n")
    store = seal.Store(root / "store")
    seal.ingest(store, str(src / "hh.jsonl"), name="hh")
    seal.ingest(store, str(src / "hh.jsonl"), name="hh-b", limit=4)
    seal.score(store, str(build_deberta_rm(root / "rm")), alias="post", role="aligned")
    ids = store.read(["pair_id"]).column("pair_id").to_pylist()
    pq.write_table(
        pa.table({"pair_id": ids, "chosen": [(i % 5) * 0.5 for i in range(len(ids))], "rejected": [1.0] * len(ids)}),
        root / "pre.parquet",
    )
    seal.import_scores(store, str(root / "pre.parquet"), "pre", role="control")
    seal.label(store)
    (root / "mini.yaml").write_text(MINI_SET)
    with FakeOpenAI() as fake:
        seal.label(store, str(root / "mini.yaml"), labeler="llm", model="m", base_url=fake.url)
    seal.embed(store, str(minilm_dir()))
    seal.perturb(store, "typos", sample=4, seed=0)
    seal.confusing(store)


@pytest.fixture(scope="session")
def annotated_store_path(tmp_path_factory) -> Path:
    return build_annotated_store(tmp_path_factory.getbasetemp() / "annotated")


@pytest.fixture
def annotated(annotated_store_path):
    import seal

    return seal.Store(annotated_store_path)


def assert_same_rows(store, table: pa.Table, dataset: str | None, columns: list[str]) -> None:
    """`table` holds exactly the store's rows of `dataset` (all when None) in `columns`: same types, same values."""
    where = None if dataset is None else f"dataset = '{dataset}'"
    expected = store.read(columns, where).sort_by("pair_id")
    got = table.select(columns).sort_by("pair_id")
    assert got.num_rows == expected.num_rows > 0
    for name in columns:
        assert got.schema.field(name).type == expected.schema.field(name).type, name
        assert got.column(name).combine_chunks().equals(expected.column(name).combine_chunks()), name


@pytest.fixture(scope="session")
def ff_loader():
    """A Python of .venv-ff that imports Feedback Forensics' loader right away (~20 s of imports, done while the
    store is built) and then loads the AnnotatedPairs file named on its stdin, writing what it read as JSON
    (to a file: the package logs to stdout). None when that virtualenv is absent."""
    if not FF_PYTHON.is_file():
        yield None
        return
    script = (
        "import json, pathlib, sys\n"
        "from feedback_forensics.data.loader import get_votes_dict_from_annotated_pairs_json as load\n"
        "source, target = sys.stdin.readline().rstrip('\\n').split('\\t')\n"
        "votes = load(pathlib.Path(source))\n"
        "df = votes['df']\n"
        "cols = [c for c in df.columns if c in votes['annotator_metadata']]\n"
        "rows = {r['comparison_id']: {c: (None if r[c] != r[c] else r[c]) for c in cols} for r in "
        "df[['comparison_id', *cols]].astype(object).to_dict('records')}\n"
        "pathlib.Path(target).write_text(json.dumps({'rows': rows, 'metadata': votes['annotator_metadata'], "
        "'reference': votes['reference_annotator_col'], 'shown': votes['shown_annotator_rows']}))\n"
    )
    proc = subprocess.Popen(
        [str(FF_PYTHON), "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def ff_run(ff_loader, annotated_store_path, tmp_path_factory):
    """The AnnotatedPairs export of the store, handed to the waiting Feedback Forensics process."""
    import seal

    out = tmp_path_factory.mktemp("ff")
    seal.export(seal.Store(annotated_store_path), out, format="annotated-pairs")
    if ff_loader is not None:
        ff_loader.stdin.write(f"{out / 'annotated_pairs.json'}\t{out / 'loaded.json'}\n")
        ff_loader.stdin.close()
    return out, ff_loader


def test_hf_export_round_trips_every_column_kind(ff_loader, annotated, ff_run, tmp_path, run_cli):
    # (ff_loader first: its imports run while the session's store is built)
    import datasets

    from seal.cli_schemas import validate_output

    out = tmp_path / "hf"
    done = run_cli("export", out, "--max-shard-size", "12KB", "--json", store=annotated.path)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    validate_output("export", result)
    assert [(c["name"], c["rows"]) for c in result["configs"]] == [("hh", 8), ("hh-b", 4)]
    assert result["pairs"] == result["pairs_in_store"] == 12 and result["quarantined"] == 1
    assert len(result["configs"][0]["files"]) > 1  # bounded shards
    assert not list(out.glob(".seal-export-*"))
    columns = result["columns"]
    assert "context_text" not in columns  # the full-text-search helper stays internal
    kinds = {
        "score_post",
        "score_pre",
        "features_heuristics",
        "features_mini",
        "emb_pair",
        "variants_typos",
        "vscore_typos__post",
        "confusing",
        "cluster",
        "flags",
        "context",
    }
    assert kinds <= set(columns)
    mini = annotated.schema().field("features_mini").type
    leaves = {f.name: f.type.field("chosen").type for f in mini}
    assert leaves == {
        "is_polite": pa.bool_(),
        "tone": pa.string(),
        "topics": pa.list_(pa.string()),
        "size": pa.float64(),
    }
    for config in ("hh", "hh-b"):
        loaded = datasets.load_dataset(str(out), config, split="train", cache_dir=str(tmp_path / "cache"))
        assert_same_rows(annotated, loaded.data.table, config, columns)


def test_card_says_how_every_column_was_made_and_what_the_analyses_found(annotated, tmp_path):
    from datasets import Features

    import seal

    result = seal.export(annotated, tmp_path / "hf")
    card = (tmp_path / "hf" / "README.md").read_text()
    assert card == result.card
    header, body = card.split("---\n", 2)[1:]
    meta = yaml.safe_load(header)
    assert meta["license"] == "mit"  # from the LICENSE beside the source
    assert meta["size_categories"] == ["n<1K"] and "seal" in meta["tags"]
    assert [c["config_name"] for c in meta["configs"]] == ["hh", "hh-b"] and meta["configs"][0]["default"]
    assert meta["configs"][1]["data_files"] == [{"split": "train", "path": "data/hh-b/train-*"}]
    schema = pa.schema([annotated.schema().field(c) for c in result.columns])
    features = Features.from_arrow_schema(schema)._to_yaml_list()
    for info, rows in zip(meta["dataset_info"], (8, 4), strict=True):
        assert info["features"] == features and info["splits"][0]["num_examples"] == rows

    for column in result.columns:  # every column documented
        assert f"| `{column}` |" in body, column
    runs = {(r["stage"], r["name"]): r for r in annotated.runs()}
    score = runs[("score", "post")]["recipe"]["params"]
    mini = runs[("label", "mini")]["recipe"]["params"]
    perturb = runs[("perturb", "typos")]["recipe"]["params"]
    embed = runs[("embed", "pair")]["recipe"]["params"]
    for fact in (
        f"- model: `{score['model']}`",
        f"- dtype: `{score['dtype']}`",
        f"- truncation: `{score['truncation']}`",
        f"- input format: `{score['input_format']}`",
        f"- weights sha256: `{score['files_sha256']}`",
        "- origin: `imported (scores computed elsewhere)`",
        "- labeler: `llm`",
        "- model: `m`",
        f"- prompt hash: `{mini['prompt_hash']}`",
        "- features: `is_polite (bool), tone (category), topics (list), size (number)`",
        f"- method: `{perturb['method']}`",
        "- seed: `0`",
        "- sample: `4`",
        f"- model: `{embed['model']}`",
        f"- source: `{runs[('ingest', 'hh')]['recipe']['params']['source']}` (loader: file)",
        "- rows read: 9, pairs ingested: 8, quarantined: 1",
        "Not included: 1 source row that could not become pairs (quarantined; hh: 1 invalid_json).",
        f"Exported by seal {seal.__version__}",
    ):
        assert fact in body, fact

    # The agreement and its Wilson interval, recomputed here from the stored scores.
    rows = annotated.read(["score_post", "flags"]).to_pylist()
    identical = sum(r["flags"]["identical_responses"] for r in rows)
    decided = [r["score_post"] for r in rows if not r["flags"]["identical_responses"]]
    decided = [s for s in decided if s["chosen"] != s["rejected"]]
    k, n = sum(s["chosen"] > s["rejected"] for s in decided), len(decided)
    z, p = 1.959963984540054, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    row = f"| post | aligned | 12 | 0 | {identical} | {p:.1%} [{centre - half:.1%}, {centre + half:.1%}] ({k}/{n}) |"
    assert identical == 1 and row in body
    assert "Regimes of `post` against control `pre` over 10 pairs" in body  # identical and `pre`'s tie left out
    assert "`post`: reward of post per text, OLS over 24 texts (12 pairs)" in body
    assert "| post | typos | 4 |" in body
    findings = seal.findings(annotated)
    duplicates = [f for f in findings if f["kind"] == "duplicate"]
    assert duplicates and f"| duplicate | {len(duplicates)} | `" in body  # hh-b repeats hh's first pairs
    assert f"`{duplicates[0]['pair_id']}`" in body or f"`{duplicates[0]['other_pair_id']}`" in body


def test_export_merges_an_existing_card_and_is_stable(annotated, tmp_path):
    import seal

    out = tmp_path / "hf"
    out.mkdir()
    user_meta = {
        "license": "apache-2.0",
        "pretty_name": "My audit",
        "annotations_creators": ["expert-generated"],
        "tags": ["mine"],
        "configs": [{"config_name": "raw", "data_files": "raw/*.csv"}],
    }
    prose = "# My audit\n\nMy own introduction.\n\n"
    notes = "\n\n## My notes\n\nKeep me, *exactly*.\n"
    stale = "<!-- seal:begin analyses -->\nstale numbers\n<!-- seal:end analyses -->"
    (out / "README.md").write_text(
        "---\n" + yaml.safe_dump(user_meta, sort_keys=False) + "---\n" + prose + stale + notes
    )
    (out / "raw").mkdir()
    (out / "raw" / "x.csv").write_text("a,b\n1,2\n")
    first = seal.export(annotated, out).card
    meta = yaml.safe_load(first.split("---\n", 2)[1])
    assert {k: meta[k] for k in ("license", "pretty_name", "annotations_creators")} == {
        k: user_meta[k] for k in ("license", "pretty_name", "annotations_creators")
    }
    assert meta["tags"][0] == "mine" and "seal" in meta["tags"]
    assert [c["config_name"] for c in meta["configs"]] == ["hh", "hh-b", "raw"]
    assert [i["config_name"] for i in meta["dataset_info"]] == ["hh", "hh-b"]
    body = first.split("---\n", 2)[2]
    assert prose in body and body.endswith(notes) and "stale numbers" not in body
    assert body.index("<!-- seal:begin analyses -->") < body.index("## My notes")
    for name in ("overview", "columns", "recipes", "provenance"):
        assert body.count(f"<!-- seal:begin {name} -->") == 1
    assert (out / "raw" / "x.csv").read_text() == "a,b\n1,2\n"  # files seal does not own stay
    assert seal.export(annotated, out).card == first  # a second export changes nothing


def test_flat_formats_keep_nested_columns(annotated, tmp_path, run_cli):
    import seal

    parquet = seal.export(annotated, tmp_path / "p", format="parquet", embeddings=False)
    assert parquet.files[0]["path"] == "pairs.parquet" and not any(c.startswith("emb_") for c in parquet.columns)
    assert_same_rows(annotated, pq.read_table(tmp_path / "p" / "pairs.parquet"), None, parquet.columns)

    done = run_cli(
        "export",
        tmp_path / "j",
        "--format",
        "jsonl",
        "--where",
        "dataset = 'hh-b'",
        "--columns",
        "chosen,score_post",
        "--columns",
        "variants_typos",
        store=annotated.path,
    )
    assert done.exit_code == 0, done.output
    assert "exported 4 of 12 pairs" in done.stdout
    rows = [json.loads(line) for line in (tmp_path / "j" / "pairs.jsonl").read_text().splitlines()]
    expected = annotated.read(["pair_id", "dataset", "chosen", "score_post", "variants_typos"], "dataset = 'hh-b'")
    assert sorted(rows, key=lambda r: r["pair_id"]) == sorted(expected.to_pylist(), key=lambda r: r["pair_id"])
    assert isinstance(rows[0]["score_post"], dict)


def test_export_refuses_bad_input_in_one_line(annotated, tmp_path, run_cli):
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    cases = {
        ("--where", "1=1; DROP TABLE pairs"): "Error: ",
        ("--where", "dataset = 'nope'"): "no pairs match --where",
        ("--columns", "nope"): "no column `nope` in the store",
        ("--config", "bad name!"): "bad config name",
        ("--max-shard-size", "lots"): "cannot read `lots` as a size",
    }
    for args, message in cases.items():
        done = run_cli("export", out, *args, store=annotated.path)
        assert done.exit_code == 1, (args, done.output)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # nothing half-written


def test_license_comes_from_the_source_or_a_clear_error(tmp_path):
    from seal.errors import SealError
    from seal.export.sources import SourceDoc, detect_license, resolve_license

    apache = tmp_path / "a"
    apache.mkdir()
    (apache / "LICENSE.txt").write_text("\n      Apache License\n    Version 2.0, January 2004\n")
    card = tmp_path / "b"
    card.mkdir()
    (card / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# x\n")
    assert detect_license([str(apache / "d.jsonl")]) == ("apache-2.0", str(apache / "LICENSE.txt"))
    assert detect_license([str(card / "sub" / "d.jsonl")])[0] == "cc-by-4.0"  # the folder above counts
    assert detect_license([str(tmp_path / "none" / "d.jsonl")]) == (None, None)
    unknown = [SourceDoc("x", "x.jsonl")]
    with pytest.raises(SealError, match="license of `x` is unknown") as err:
        resolve_license(unknown, None)
    assert "--license" in (err.value.hint or "")
    assert resolve_license(unknown, "other") == "other"
    assert resolve_license(unknown, None, fallback="mit") == "mit"  # what the repo's card already declares
    mixed = [SourceDoc("x", "x", license="mit"), SourceDoc("y", "y", license="apache-2.0")]
    with pytest.raises(SealError, match=r"different licenses \(x: mit, y: apache-2.0\)"):
        resolve_license(mixed, None)


def test_annotated_pairs_open_in_feedback_forensics(ff_run, annotated):
    out, proc = ff_run
    document = json.loads((out / "annotated_pairs.json").read_text())
    assert document["metadata"]["version"] == "2.0" and len(document["comparisons"]) == 12
    if proc is None:
        pytest.skip(f"Feedback Forensics is not installed at {FF_PYTHON} (bash .ci/install-feedback-forensics.sh)")
    proc.wait(timeout=300)  # its stdin is closed already (communicate() would flush it)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    loaded = json.loads((out / "loaded.json").read_text())
    human = loaded["reference"]  # Feedback Forensics' own id for the dataset's label
    assert document["metadata"]["default_annotator"] == human and human in document["annotators"]
    shown = set(loaded["shown"])  # the boolean features, as principle-following annotators
    assert {"feat-heuristics-is_refusal", "feat-mini-is_polite"} <= shown
    assert not any(s.startswith(("feat-mini-tone", "feat-mini-topics", "feat-mini-size")) for s in shown)
    assert loaded["metadata"]["rm-post"]["variant"] == "reward_model"
    table = annotated.read(["pair_id", "score_post", "features_mini"])
    assert set(loaded["rows"]) == set(table.column("pair_id").to_pylist())
    for row in table.to_pylist():
        votes = loaded["rows"][row["pair_id"]]
        chosen = (
            "text_a"
            if next(c for c in document["comparisons"] if c["id"] == row["pair_id"])["response_a"]["side"] == "chosen"
            else "text_b"
        )
        rejected = "text_b" if chosen == "text_a" else "text_a"
        assert votes[human] == chosen
        score = row["score_post"]
        if score["chosen"] == score["rejected"]:  # the pair with identical responses
            assert votes["rm-post"] is None
        else:
            assert votes["rm-post"] == (chosen if score["chosen"] > score["rejected"] else rejected)
        polite = row["features_mini"]["is_polite"]
        if polite["chosen"] == polite["rejected"]:
            assert votes["feat-mini-is_polite"] is None
        else:
            assert votes["feat-mini-is_polite"] == (chosen if polite["chosen"] else rejected)
    positions = [c["response_a"]["side"] for c in document["comparisons"]]
    assert 0 < positions.count("chosen") < len(positions)  # the chosen side is not always in position a
    assert sys.executable != str(FF_PYTHON)
