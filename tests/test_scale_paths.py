"""The fast paths of the scale work (issue #14) give exactly what the code they replaced gave
(tests/reference_paths.py keeps that code): the transcript parser, the text checks and the pair-row builder of
ingest, VADER's compound score and WordPiece token counts, and whole heuristic labels, on the real hh-rlhf
rows (skipped when ../shared/data is absent) and on random strings built to hit the edge cases."""

from __future__ import annotations

import gzip
import json
import os
import random
import string

import numpy as np
import pytest
import reference_paths as R

from seal.annotate.features import heuristic_tools as HT
from seal.annotate.features import heuristics as H
from seal.annotate.features import wordpiece as W
from seal.annotate.features.fast_vader import analyzer
from seal.catalog.featuresets import load_feature_set
from seal.ingest import builder as B
from seal.ingest import transcript as T
from seal.ingest.formats import adapt_transcript
from seal.ingest.mapping import Canonical, build_column_map
from seal.ingest.readers import RawRow

HH = "hh-rlhf-harmless-base/test.jsonl.gz"


@pytest.fixture(scope="module")
def hh_rows():
    from conftest import SHARED_DATA

    path = SHARED_DATA / HH
    if not path.exists():
        pytest.skip(f"real data {path} is absent")
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def responses(hh_rows):
    return [T.split_final_response(r[side]).response for r in hh_rows for side in ("chosen", "rejected")]


def _split(fn, text, **kw):
    try:
        s = fn(text, **kw)
    except T.TranscriptError as err:
        return ("error", err.reason)
    return (s.prefix, s.context, s.response)


# -- ingest -------------------------------------------------------------------------------------------
def test_transcript_parser_matches_the_reference_on_real_rows(hh_rows):
    for row in hh_rows:
        for side in ("chosen", "rejected"):
            text = row[side]
            assert _split(T.split_final_response, text) == _split(R.split_final_response, text)
            assert T.parse_turns(text) == R.parse_turns(text)
            assert T.has_markers(text) == bool(R._MARKER.search(text))


def test_transcript_parser_matches_the_reference_on_random_marker_soup():
    pieces = ["\n\n", "\n", "Human:", "Assistant:", " ", "\t", "x", "Human: ", "Assistant:\t", "a b", "  "]
    rng = random.Random(0)
    for _ in range(10_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        ref = _split(R.split_final_response, text)
        assert _split(T.split_final_response, text) == ref, repr(text)
        short = _split(T.split_final_response, text, with_context=False)
        assert short == (ref if ref[0] == "error" else (ref[0], [], ref[2])), repr(text)
        assert T.parse_turns(text) == R.parse_turns(text), repr(text)
        assert T.has_markers(text) == bool(R._MARKER.search(text)), repr(text)


def test_text_problem_matches_the_reference():
    texts = ["plain", "caf\u00e9 \u2019", "nul\x00here", "lone \ud800 surrogate", "\ud83d\ude00 pair", "\x00\udfff", ""]
    for chosen in texts:
        for context in texts:
            pair = Canonical([{"role": "user", "content": context}], chosen, "ok", chosen, "ok")
            assert B.text_problem(pair) == R.text_problem(pair)
            assert B.safe_text(chosen) == R._SURROGATE.sub("\ufffd", chosen)


def test_builder_rows_match_the_reference(hh_rows):
    mapping = build_column_map((), (), None, "majority", None, 0)
    new, old = B.Builder("hh", "src", "transcript", "run1"), R.Builder("hh", "src", "transcript", "run1")
    rows = hh_rows + hh_rows[:50]  # repeats: duplicate_in_source flags and duplicate keys
    for index, record in enumerate(rows):
        row = RawRow(index, f"test.jsonl:{index % len(hh_rows) + 1}", record)
        fast, ref = adapt_transcript(record, mapping), R.adapt_transcript(record, mapping)
        assert fast == ref
        for built, pair in ((new, fast), (old, ref)):
            built.add_pair(row, row.key if index < len(hh_rows) else f"again:{index}", pair)
    assert new.pairs().equals(old.pairs())
    assert new.quarantine == old.quarantine


# -- heuristics -----------------------------------------------------------------------------------------
def test_fast_vader_scores_equal_the_library(hh_rows, responses):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    library, fast = SentimentIntensityAnalyzer(), analyzer()
    assert type(fast).__name__ == "FastVader"
    for text in responses + [r["chosen"] for r in hh_rows[:100]]:
        assert fast.polarity_scores(text) == library.polarity_scores(text), text
    vocab = ["no", "or", "nor", "least", "at", "very", "kind", "of", "but", "BUT", "never", "so", "this", "without"]
    vocab += ["doubt", "good", "GOOD", "bad", "love", "hate", "Horrible", "!", "?", ":)", ":D", "\U0001f601", "not"]
    vocab += ["isn't", "sort", "the", "shit", "bomb", "to", "die", "for", "yeah", "right", "kinda", "VERY", "!!"]
    rng = random.Random(1)
    for _ in range(2_000):
        text = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 14)))
        assert fast.polarity_scores(text) == library.polarity_scores(text), text


def test_wordpiece_counts_equal_encoding(responses):
    ref = HT.resolve_tokenizer(HT.DEFAULT_TOKENIZER)
    tok, counter = HT._tokenizer(ref)
    assert counter is not None
    alphabet = string.printable + "\x00\x01\x0b\x0c\x1c\x1f\x7f\u00e9\ufffd\u00b0\u4e2d" + W.UNICODE_PUNCTUATION * 3
    pieces = ["[CLS]", "[mask]", "##", "...", "!!!", "--", "a" * 120, "unbelievably", "don't", "3.14", "\t\n"]
    rng = random.Random(2)
    fuzz = [
        "".join(rng.choice(alphabet) if rng.random() < 0.8 else rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        for _ in range(2_000)
    ]
    texts = responses + fuzz
    expected = [len(e) for e in tok.encode_batch(texts, add_special_tokens=False)]
    assert counter.counts(texts).tolist() == expected
    assert HT.count_tokens(texts, ref).tolist() == expected


def test_wordpiece_counter_only_for_bert_pipelines():
    config = {
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "model": {"type": "WordPiece"},
    }
    assert W.supports(config)
    for part, value in (
        ("normalizer", {"type": "BertNormalizer", "clean_text": True, "lowercase": False}),
        ("pre_tokenizer", {"type": "ByteLevel"}),
        ("model", {"type": "BPE"}),
    ):
        assert not W.supports({**config, part: value})


def test_heuristic_labels_equal_the_reference_paths(responses, monkeypatch):
    """The whole heuristics feature set on every real response: fast paths == the code they replaced."""
    feature_set = load_feature_set("heuristics")
    with H.HeuristicLabeler(feature_set, workers=1) as labeler:
        fast = labeler.label_texts(responses)
    monkeypatch.setattr(HT, "FAST_VADER", False)
    monkeypatch.setattr(H, "count_tokens", R.count_tokens)
    with H.HeuristicLabeler(feature_set, workers=1) as labeler:
        reference = labeler.label_texts(responses)
    for name, values in reference.items():
        np.testing.assert_array_equal(fast[name], values, err_msg=name)


def _problem_rows(hh_rows):
    """Real rows with every kind of row problem and duplicate mixed in, as JSON lines."""
    lines = [json.dumps(r) for r in hh_rows[:300]]
    bad = [
        "{not json",
        "[1, 2]",
        "",
        json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: a\x00b", "rejected": "\n\nHuman: hi\n\nAssistant: c"}),
        '{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: \\ud800", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: x"}',
        json.dumps({"chosen": "no turns at all", "rejected": "\n\nHuman: q\n\nAssistant: a"}),
        json.dumps(
            {"chosen": "\n\nHuman: q\n\nAssistant: a\n\nHuman: more", "rejected": "\n\nHuman: q\n\nAssistant: b"}
        ),
        json.dumps({"chosen": 3, "rejected": "\n\nHuman: q\n\nAssistant: b"}),
        '{"chosen": "a", "chosen": "b", "rejected": "c"}',
    ]
    for k, line in enumerate(bad):
        lines.insert(7 + 31 * k, line)
    lines += lines[40:60]  # the same contents again (duplicate_in_source)
    return "\n".join(lines) + "\n"


def test_ingest_in_worker_processes_equals_in_process(hh_rows, tmp_path, monkeypatch):
    """The pool path (seal.ingest.row_work) writes the same pairs, flags and quarantine as the in-process path."""
    import seal
    from seal.ingest import row_work

    path = tmp_path / "mixed.jsonl"
    path.write_text(_problem_rows(hh_rows))
    monkeypatch.setattr(row_work, "PARALLEL_AFTER_ROWS", 25)
    monkeypatch.setattr(row_work, "CHUNK_ROWS", 40)
    chunks = []
    real_result = row_work.RowPipeline._result

    def counting(self, chunk, future):
        chunks.append((os.environ["SEAL_INGEST_WORKERS"], future is not None))
        return real_result(self, chunk, future)

    monkeypatch.setattr(row_work.RowPipeline, "_result", counting)
    stores = {}
    for workers in ("1", "2"):
        monkeypatch.setenv("SEAL_INGEST_WORKERS", workers)
        stores[workers] = seal.Store(tmp_path / f"store-{workers}")
        seal.ingest(stores[workers], str(path), name="mixed")
    in_pool = {w: sum(pooled for env, pooled in chunks if env == w) for w in ("1", "2")}
    assert in_pool["1"] == 0 and in_pool["2"] >= 6  # the second ingest ran its later chunks in the pool
    drop = ["ingest_run"]
    one, two = (stores[w].read().drop_columns(drop).sort_by("source_index") for w in ("1", "2"))
    assert one.num_rows >= 300 and one.equals(two)
    assert sum(one.column("flags").combine_chunks().field("duplicate_in_source").to_pylist()) == 20
    q1, q2 = (stores[w].quarantine().drop_columns(["run_id"]).to_pylist() for w in ("1", "2"))
    assert q1 == q2 and {q["reason"] for q in q1} >= {"invalid_json", "nul_byte", "invalid_unicode", "duplicate_key"}


# -- contradiction search -------------------------------------------------------------------------------
def test_two_level_inverted_file_finds_what_exact_search_finds(monkeypatch):
    """Above TWO_LEVEL_ABOVE partitions the candidate search finds partitions through a coarse level; on
    planted near-duplicates it still finds every pair exact search finds, and nothing else."""
    from seal.analysis import neighbors as N

    rng = np.random.default_rng(0)
    base = rng.standard_normal((3000, 48)).astype(np.float32)
    x = np.concatenate([base, base[:1000] + 0.05 * rng.standard_normal((1000, 48)).astype(np.float32)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = N.similar_pairs(x, 0.9, exact_below=10_000)
    monkeypatch.setattr(N, "TWO_LEVEL_ABOVE", 4)
    coarse, centroids, bounds = N.train_two_level(x, 36)
    assert len(coarse) == 6 and bounds[-1] == len(centroids) and abs(len(centroids) - 36) <= 6
    two_level = N.similar_pairs(x, 0.9, exact_below=0, nlist=36, nprobe=3)
    assert set(zip(*two_level[:2], strict=True)) == set(zip(*exact[:2], strict=True))
    np.testing.assert_allclose(np.sort(two_level[2]), np.sort(exact[2]), atol=1e-5)


def test_a_script_without_a_main_guard_runs_once_with_worker_processes(hh_rows, tmp_path):
    """spawn workers re-import the caller's script; seal's pools hide it, so a top-level `seal.ingest` in a
    script without `if __name__ == "__main__":` runs once, and its later chunks still go to the workers."""
    import subprocess
    import sys

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in hh_rows[:120]))
    marker = tmp_path / "runs.txt"
    script = tmp_path / "script.py"
    script.write_text(
        "import seal\n"
        "from seal.ingest import row_work\n"
        "row_work.PARALLEL_AFTER_ROWS, row_work.CHUNK_ROWS = 20, 25\n"
        f"open({str(marker)!r}, 'a').write('ran\\n')\n"
        "seen = []\n"
        "real = row_work.RowPipeline._result\n"
        "row_work.RowPipeline._result = lambda self, c, f: seen.append(f is not None) or real(self, c, f)\n"
        f"result = seal.ingest(seal.Store({str(tmp_path / 'store')!r}), {str(data)!r}, name='hh')\n"
        "print(result.ingested, sum(seen))\n"
    )
    env = {**os.environ, "SEAL_INGEST_WORKERS": "2"}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ingested, pooled = map(int, done.stdout.split())
    assert marker.read_text() == "ran\n" and ingested == 120 and pooled == 4
