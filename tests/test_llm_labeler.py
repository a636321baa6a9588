"""The `llm` labeler: prompts, the client's retry policy, the cache, failures, Batch API, plan/dry-run,
against a fault-injecting fake server (exact request counts) and against llama.cpp's real server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from llm_servers import FakeOpenAI, expected_value, start_llama_server

import seal
from seal.annotate.features.llm import build_llm_stage, label_llm, plan_llm
from seal.annotate.features.llm_cache import BatchBook, FailureLog, LabelCache
from seal.annotate.features.prompts import (
    build_messages,
    conversation,
    feature_hash,
    parse_answer,
    prompt_hash,
    text_hash,
)
from seal.catalog.featuresets import Feature, InvalidLabel, load_feature_set
from seal.cli_schemas import validate_output
from seal.engines.llm.client import ChatClient, LLMRequestError, parse_retry_after
from seal.errors import SealError
from seal.pipeline import PENDING, STALE, UP_TO_DATE

MINI = """\
name: mini
version: {version}
labeler: llm
features:
  - name: is_polite
    type: bool
    role: target
    instruction: Is the final response polite?
  - name: tone
    type: category
    values: {{negative: -1, neutral: 0, positive: 1}}
    role: spoiler
    instruction: {tone_instruction}
{extra}"""

TOPICS = """\
  - name: topics
    type: list
    scope: conversation
    values: [cooking, travel, music]
    instruction: Which topics does the conversation touch?
"""

FAST = {"backoff_base": 0.01, "timeout": 5.0}


def write_feature_set(
    folder: Path, version: int = 1, topics: bool = True, tone: str = "The tone of the reply."
) -> Path:
    path = folder / f"mini-v{version}-{int(topics)}-{abs(hash(tone)) % 1000}.yaml"
    path.write_text(MINI.format(version=version, extra=TOPICS if topics else "", tone_instruction=tone))
    return path


def make_store(folder: Path, responses: list[tuple[str, str]], question: str = "How do I cook pasta?") -> seal.Store:
    """A store with one pair per (chosen, rejected) final response, all after the same question."""
    source = folder / "pairs.jsonl"
    with source.open("w") as out:
        for i, (chosen, rejected) in enumerate(responses):
            human = f"\n\nHuman: {question} ({i})\n\nAssistant: "
            out.write(json.dumps({"chosen": human + chosen, "rejected": human + rejected}) + "\n")
    store = seal.Store(folder / "store")
    seal.ingest(store, source, name="t")
    return store


def column(store: seal.Store, name: str = "features_mini") -> list[dict]:
    table = store.read()
    order = {pid: i for i, pid in enumerate(table.column("pair_id").to_pylist())}
    rows = table.select(["pair_id", "source_index", name]).to_pylist()
    return [r[name] for r in sorted(rows, key=lambda r: (r["source_index"], order[r["pair_id"]]))]


def expected(response: str, topics: bool = True) -> dict:
    out = {
        "is_polite": expected_value("is_polite", "bool", [], response),
        "tone": expected_value("tone", "category", ["negative", "neutral", "positive"], response),
    }
    if topics:
        out["topics"] = expected_value("topics", "list", ["cooking", "travel", "music"], response)
    return out


CLEAN = [
    ("A polite and positive answer about cooking.", "Boil water. neutral."),
    ("Happy to help, travel and music are polite topics.", "negative and rude."),
    ("Positive: cook it al dente.", "I do not know."),
]


# -- prompts and parsing ------------------------------------------------------------------------------


def test_prompt_shows_the_conversation_and_scoped_questions(tmp_path):
    fs = load_feature_set(str(write_feature_set(tmp_path)))
    turns = conversation(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Q?"},
        ],
        "The answer.",
    )
    system, user = build_messages(turns, fs.features)
    assert system["role"] == "system" and "JSON object" in system["content"]
    text = user["content"]
    assert text.index("[human]\nHi") < text.index("[assistant]\nHello") < text.index("[human]\nQ?")
    assert "[assistant: final response]\nThe answer." in text
    assert '- tone (one of "negative", "neutral", "positive"; final response):' in text
    assert "- topics (a list drawn from" in text and "whole conversation)" in text
    assert text.rstrip().endswith("exactly these keys: is_polite, tone, topics.")


def test_hashes_cover_what_changes_answers_and_nothing_else():
    a = conversation([{"role": "user", "content": "Q"}], "R")
    assert text_hash(a) == text_hash(conversation([{"role": "user", "content": "Q"}], "R"))
    assert text_hash(a) != text_hash(conversation([{"role": "user", "content": "Q2"}], "R"))
    base = Feature(name="x", type="bool", instruction="Is it x?")
    assert feature_hash(base) == feature_hash(Feature(name="x", type="bool", instruction="Is it x?", role="target"))
    assert feature_hash(base) == feature_hash(Feature(name="x", type="bool", instruction="Is it x?", sign=-1))
    assert feature_hash(base) != feature_hash(Feature(name="x", type="bool", instruction="Is it really x?"))
    assert feature_hash(base) != feature_hash(
        Feature(name="x", type="bool", instruction="Is it x?", scope="conversation")
    )
    assert prompt_hash(0.0, None) != prompt_hash(0.7, None) != prompt_hash(0.7, 1)


def test_parse_answer_accepts_fences_and_rejects_wrong_types(tmp_path):
    fs = load_feature_set(str(write_feature_set(tmp_path)))
    good = {"is_polite": True, "tone": "Positive", "topics": ["music", "cooking"]}
    assert parse_answer(json.dumps(good), fs.features) == {
        "is_polite": True,
        "tone": "positive",
        "topics": ["cooking", "music"],
    }
    assert parse_answer("```json\n" + json.dumps(good) + "\n```", fs.features)["tone"] == "positive"
    assert parse_answer("Sure: " + json.dumps(good) + " done", fs.features)["is_polite"] is True
    with pytest.raises(InvalidLabel, match="not a JSON object"):
        parse_answer("no json here", fs.features)
    with pytest.raises(InvalidLabel) as err:
        parse_answer(json.dumps({"is_polite": "perhaps", "tone": "angry", "extra": 1}), fs.features)
    message = str(err.value)
    assert "is_polite: expected true or false" in message and "tone: expected one of" in message
    assert "topics: missing" in message and "unknown keys: extra" in message


# -- the client --------------------------------------------------------------------------------------


def test_retry_after_forms():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({}) is None
    assert 0 <= parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


def test_client_does_not_retry_a_bad_request():
    with FakeOpenAI() as fake:

        async def go():
            async with ChatClient(fake.url, "m", backoff_base=0.01) as client:
                with pytest.raises(LLMRequestError) as err:
                    await client.chat(_prompt_for("{fault:400:*}"))
                return err.value, client.stats

        error, stats = asyncio.run(go())
    assert error.status == 400 and "context length" in str(error)
    assert fake.chat_requests == 1 and stats.retries == 0


def _prompt_for(response: str) -> list[dict[str, str]]:
    return build_messages(conversation([{"role": "user", "content": "Q"}], response), [])


def test_retry_after_is_honoured(tmp_path):
    store = make_store(tmp_path, [("polite {fault:429:1}", "fine")])
    with FakeOpenAI() as fake:
        fake.retry_after = "1"
        result = label_llm(store, str(write_feature_set(tmp_path)), model="m", base_url=fake.url, **FAST)
        times = [t for t, response in fake.request_times if "429" in response]
    assert result.retry_reasons == {"rate_limited": 1} and result.failures == 0
    assert len(times) == 2 and times[1] - times[0] >= 0.95


# -- interactive labelling against the fake server ---------------------------------------------------


def test_labels_every_side_and_a_rerun_sends_nothing(tmp_path):
    store = make_store(tmp_path, CLEAN)
    fs_path = str(write_feature_set(tmp_path))
    with FakeOpenAI() as fake:
        first = label_llm(store, fs_path, model="m", base_url=fake.url, concurrency=3, **FAST)
        assert fake.chat_requests == 6
        assert (first.requests, first.cache_hits, first.labelled, first.failures) == (6, 0, 6, 0)
        assert first.status == "done" and first.rows_complete == 3 and first.tokens["total"] > 0
        fake.reset_counts()
        again = label_llm(store, fs_path, model="m", base_url=fake.url, concurrency=3, **FAST)
        assert fake.chat_requests == 0
    assert (again.requests, again.cache_hits, again.status, again.column_written) == (0, 6, "nothing-to-do", False)
    for row, (chosen, rejected) in zip(column(store), CLEAN, strict=True):
        for name, value in expected(chosen).items():
            assert row[name]["chosen"] == value
        for name, value in expected(rejected).items():
            assert row[name]["rejected"] == value
    runs = [r for r in store.runs("label") if r["name"] == "mini"]
    assert len(runs) == 1 and runs[0]["provenance"]["counters"]["requests"] == 6
    assert runs[0]["recipe"]["params"]["model"] == "m"


def test_identical_sides_share_one_request(tmp_path):
    store = make_store(tmp_path, [("Same polite text.", "Same polite text.")])
    with FakeOpenAI() as fake:
        result = label_llm(store, str(write_feature_set(tmp_path)), model="m", base_url=fake.url, **FAST)
        assert fake.chat_requests == 1
    assert result.texts == 1 and result.sides == 2
    row = column(store)[0]
    assert row["is_polite"] == {"chosen": True, "rejected": True}


def test_transient_faults_and_invalid_answers_are_retried_exactly(tmp_path):
    faults = [
        ("polite {fault:429:1}", "{fault:500:2}"),
        ("{fault:503:1} positive", "{fault:timeout:1}"),
        ("{fault:truncated:1}", "{fault:badbody:1} travel"),
        ("{fault:malformed:1}", "{fault:schema:1}"),
        ("{fault:missing:1} music", "clean and neutral"),
    ]
    store = make_store(tmp_path, faults)
    with FakeOpenAI(timeout_sleep=1.0) as fake:
        result = label_llm(
            store, str(write_feature_set(tmp_path)), model="m", base_url=fake.url, concurrency=4,
            backoff_base=0.01, timeout=0.4, max_retries=3,
        )  # fmt: skip
        # 10 texts + 7 transport retries (429, 500×2, 503, timeout, truncated, badbody) + 3 re-asks
        assert fake.chat_requests == 20
    assert result.requests == 20 and result.retries == 7 and result.reasks == 3
    assert result.retry_reasons == {
        "bad_body": 1,
        "http_500": 2,
        "http_503": 1,
        "rate_limited": 1,
        "timeout": 1,
        "truncated": 1,
    }
    assert result.failures == 0 and result.labelled == 10 and result.rows_complete == 5
    for row, (chosen, rejected) in zip(column(store), faults, strict=True):
        assert row["tone"] == {"chosen": expected(chosen)["tone"], "rejected": expected(rejected)["tone"]}


def test_reask_feeds_the_error_back(tmp_path):
    store = make_store(tmp_path, [("{fault:schema:1} polite", "ok")])
    with FakeOpenAI() as fake:
        label_llm(store, str(write_feature_set(tmp_path)), model="m", base_url=fake.url, concurrency=1, **FAST)
        reask = [b for b in fake.chat_bodies if len(b["messages"]) == 4]
    assert len(reask) == 1
    assert reask[0]["messages"][2] == {
        "role": "assistant",
        "content": json.dumps(dict.fromkeys(["is_polite", "tone", "topics"], "perhaps")),
    }
    assert "is_polite: expected true or false, got 'perhaps'" in reask[0]["messages"][3]["content"]


def test_failures_are_recorded_and_a_rerun_asks_only_for_them(tmp_path):
    pairs = [*CLEAN[:2], ("{fault:schema:*} bad types", "{fault:500:*} server down"), ("{fault:400:*}", "fine")]
    store = make_store(tmp_path, pairs)
    fs_path = str(write_feature_set(tmp_path))
    options = {"model": "m", "concurrency": 2, "max_retries": 1, "max_invalid_retries": 1, **FAST}
    with FakeOpenAI() as fake:
        first = label_llm(store, fs_path, base_url=fake.url, **options)
        # 5 clean texts + schema (ask + 1 re-ask) + 500 (1 + 1 retry) + 400 (not retried)
        assert fake.chat_requests == 5 + 2 + 2 + 1
        assert first.status == "partial" and first.failures == 3 and first.labelled == 5
        assert first.failure_reasons == {"http_400": 1, "http_500": 1, "invalid": 1}
        failures = {(f["side"], f["kind"]): f for f in FailureLog(store).list("mini")}
        assert set(failures) == {("chosen", "invalid"), ("rejected", "http_500"), ("chosen", "http_400")}
        assert "is_polite: expected true or false" in failures[("chosen", "invalid")]["reason"]
        assert "gave up after 2 attempts" in failures[("rejected", "http_500")]["reason"]
        rows = column(store)
        assert rows[2] is None and rows[3]["is_polite"]["chosen"] is None
        assert rows[3]["is_polite"]["rejected"] is not None

        fake.faults_enabled = False
        fake.reset_counts()
        second = label_llm(store, fs_path, base_url=fake.url, **options)
        assert fake.chat_requests == 3
        asked = sorted(r for _, r in fake.request_times)
        assert asked == sorted([pairs[2][0], pairs[2][1], pairs[3][0]])
        assert (second.requests, second.cache_hits, second.failures, second.status) == (3, 5, 0, "done")
        assert FailureLog(store).list("mini") == []
        assert second.rows_complete == 4

        fake.reset_counts()
        third = label_llm(store, fs_path, base_url=fake.url, **options)
        assert fake.chat_requests == 0 and third.requests == 0 and third.cache_hits == 8


def test_a_fatal_answer_stops_the_run_and_keeps_what_was_labelled(tmp_path, monkeypatch):
    store = make_store(tmp_path, [*CLEAN, ("x", "y")])
    fs_path = str(write_feature_set(tmp_path))
    with FakeOpenAI() as fake:
        original = fake.completion

        def refuse_after_three(body, fault):
            if len(fake.chat_bodies) > 3 and fake.faults_enabled:
                return 401, {"error": {"message": "Incorrect API key provided"}}, {}
            return original(body, fault)

        monkeypatch.setattr(fake, "completion", refuse_after_three)
        with pytest.raises(SealError, match=r"HTTP 401.*labels received before the error are saved: 3"):
            label_llm(store, fs_path, model="m", base_url=fake.url, concurrency=1, **FAST)
        assert fake.chat_requests == 4
        assert LabelCache(store).count() == 3 * 3
        fake.faults_enabled = False
        fake.reset_counts()
        result = label_llm(store, fs_path, model="m", base_url=fake.url, concurrency=1, **FAST)
        assert fake.chat_requests == 5 and result.cache_hits == 3 and result.status == "done"


def test_a_widened_feature_set_asks_only_for_the_new_feature(tmp_path):
    store = make_store(tmp_path, CLEAN[:2])
    narrow, wide = write_feature_set(tmp_path, 1, topics=False), write_feature_set(tmp_path, 2, topics=True)
    with FakeOpenAI() as fake:
        label_llm(store, str(narrow), model="m", base_url=fake.url, **FAST)
        assert fake.chat_requests == 4
        assert set(column(store)[0]) == {"is_polite", "tone"}
        plan = plan_llm(store, load_feature_set(str(wide)), _config(fake))
        assert plan.status == STALE and plan.rows_todo == 4 and "feature_set_version" in plan.reason
        fake.reset_counts()
        result = label_llm(store, str(wide), model="m", base_url=fake.url, **FAST)
        assert fake.chat_requests == 4
        for body in fake.chat_bodies:
            assert list(body["response_format"]["json_schema"]["schema"]["properties"]) == ["topics"]
        assert result.cached_labels == 8 and result.cache_hits == 0
        row = column(store)[0]
        assert row["topics"]["chosen"] == ["cooking"] and row["is_polite"]["chosen"] is True
        # editing one instruction re-asks that feature only
        fake.reset_counts()
        edited = write_feature_set(tmp_path, 3, topics=True, tone="Overall emotional tone of the final reply?")
        label_llm(store, str(edited), model="m", base_url=fake.url, **FAST)
        assert fake.chat_requests == 4
        assert {tuple(b["response_format"]["json_schema"]["schema"]["properties"]) for b in fake.chat_bodies} == {
            ("tone",)
        }


def _config(fake, **kw):
    from seal.annotate.features.llm_config import LLMConfig

    return LLMConfig.from_options({"model": kw.pop("model", "m"), "base_url": fake.url, **kw})


def test_another_model_or_temperature_is_another_cache_entry(tmp_path):
    store = make_store(tmp_path, CLEAN[:1])
    fs_path = str(write_feature_set(tmp_path))
    with FakeOpenAI() as fake:
        label_llm(store, fs_path, model="m", base_url=fake.url, **FAST)
        label_llm(store, fs_path, model="other", base_url=fake.url, **FAST)
        label_llm(store, fs_path, model="other", base_url=fake.url, temperature=0.5, **FAST)
        assert fake.chat_requests == 6
        fake.reset_counts()
        back = label_llm(store, fs_path, model="m", base_url=fake.url, **FAST)
        assert fake.chat_requests == 0 and back.column_written  # rebuilt from the cache: the recipe changed back
    assert store.runs("label")[-1]["recipe"]["params"]["model"] == "m"


@pytest.mark.parametrize("status", [400, 500])
def test_structured_output_steps_down_when_the_server_rejects_json_schema(tmp_path, status):
    """OpenAI's older models answer 400, llama-cpp-python's server 500 (a validation error): either way
    the run switches once to JSON mode with a `schema` field, without retrying the rejection."""
    store = make_store(tmp_path, CLEAN[:2])
    fs_path = str(write_feature_set(tmp_path))
    with FakeOpenAI() as fake:
        fake.reject_json_schema = status
        result = label_llm(store, fs_path, model="m", base_url=fake.url, concurrency=1, **FAST)
        formats = [(b["response_format"]["type"], "schema" in b["response_format"]) for b in fake.chat_bodies]
    assert formats == [("json_schema", False)] + [("json_object", True)] * 4
    assert result.structured_output == "json_object_schema" and result.retries == 0
    assert result.failures == 0 and result.labelled == 4 and result.requests == 5


def test_concurrency_bounds_requests_in_flight(tmp_path):
    store = make_store(tmp_path, CLEAN)
    with FakeOpenAI(latency=0.15) as fake:
        label_llm(store, str(write_feature_set(tmp_path)), model="m", base_url=fake.url, concurrency=3, **FAST)
        assert fake.max_in_flight == 3


def test_sample_is_a_stable_subset_that_grows(tmp_path):
    store = make_store(tmp_path, CLEAN)
    fs_path = str(write_feature_set(tmp_path))
    with FakeOpenAI() as fake:
        one = label_llm(store, fs_path, model="m", base_url=fake.url, sample=1, **FAST)
        two = label_llm(store, fs_path, model="m", base_url=fake.url, sample=2, **FAST)
        assert fake.chat_requests == 4
    assert (one.pairs, one.requests, two.pairs, two.requests, two.cache_hits) == (1, 2, 2, 2, 2)
    assert sum(r is not None for r in column(store)) == 2


# -- key handling, dry run and plan -----------------------------------------------------------------


def test_the_api_key_is_sent_and_never_stored(tmp_path, monkeypatch):
    secret = "sk-test-SECRET-4f9a1c"
    monkeypatch.setenv("SEAL_TEST_KEY", secret)
    store = make_store(tmp_path, [("polite {fault:500:*}", "fine")])
    with FakeOpenAI() as fake:
        result = label_llm(
            store, str(write_feature_set(tmp_path)), model="m", base_url=fake.url, api_key_env="SEAL_TEST_KEY",
            max_retries=1, **FAST,
        )  # fmt: skip
        assert fake.authorization == {f"Bearer {secret}"}
    assert secret not in json.dumps(result.to_json())
    for path in store.path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    run = store.runs("label")[-1]
    assert run["provenance"]["api_key_env"] == "SEAL_TEST_KEY"


def test_openai_needs_a_key_but_a_dry_run_does_not(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    store = make_store(tmp_path, CLEAN[:1])
    fs_path = str(write_feature_set(tmp_path))
    with pytest.raises(SealError, match="OPENAI_API_KEY is not set"):
        label_llm(store, fs_path, model="gpt-4o-mini")
    dry = label_llm(store, fs_path, model="gpt-4o-mini", dry_run=True)
    assert dry.status == "dry-run" and dry.requests == 0 and dry.estimate["requests"] == 2


def test_dry_run_prints_requests_tokens_and_cost(tmp_path):
    store = make_store(tmp_path, CLEAN)
    fs_path = str(write_feature_set(tmp_path))
    prices = {"m": {"input": 2.0, "output": 8.0}}
    with FakeOpenAI() as fake:
        dry = label_llm(store, fs_path, model="m", base_url=fake.url, dry_run=True, prices=prices)
        batch = label_llm(store, fs_path, model="m", base_url=fake.url, dry_run=True, prices=prices, batch_api=True)
        assert sum(fake.counts.values()) == 0
    estimate = dry.estimate
    assert estimate["requests"] == 6 and estimate["input_tokens"] > 6 * 100 and estimate["output_tokens"] > 6 * 5
    cost = (estimate["input_tokens"] * 2.0 + estimate["output_tokens"] * 8.0) / 1e6
    assert estimate["cost_usd"] == pytest.approx(cost, rel=1e-4)
    assert batch.estimate["cost_usd"] == pytest.approx(cost / 2, rel=1e-4)
    sample = dry.sample_requests[0]
    assert sample["model"] == "m" and sample["response_format"]["type"] == "json_schema"
    assert "[assistant: final response]" in sample["messages"][1]["content"]
    assert store.runs("label") == []


def test_plan_pending_then_up_to_date_then_stale(tmp_path):
    store = make_store(tmp_path, CLEAN[:2])
    fs = load_feature_set(str(write_feature_set(tmp_path)))
    with FakeOpenAI() as fake:
        before = plan_llm(store, fs, _config(fake), prices={"m": {"input": 1, "output": 1}})
        assert before.status == PENDING and before.rows_todo == 4 and before.estimate["cost_usd"] > 0
        label_llm(store, fs, model="m", base_url=fake.url, **FAST)
        assert plan_llm(store, fs, _config(fake)).status == UP_TO_DATE
        stale = plan_llm(store, fs, _config(fake, temperature=0.3))
        assert stale.status == STALE and "temperature" in stale.reason and stale.rows_todo == 4
        assert fake.chat_requests == 4


def test_build_llm_stage_from_a_spec(tmp_path):
    from seal.spec import load_spec

    store = make_store(tmp_path, CLEAN[:1])
    with FakeOpenAI() as fake:
        spec_path = tmp_path / "spec.yaml"
        spec_path.write_text(
            f"""
version: 1
name: t
dataset: {{source: pairs.jsonl, name: t}}
features:
  - labeler: llm
    feature_set: {write_feature_set(tmp_path)}
    base_url: {fake.url}
    model: m
    concurrency: 2
prices:
  m: {{input: 1.0, output: 4.0}}
"""
        )
        spec = load_spec(spec_path)
        stage = build_llm_stage(spec.section("features")[0], spec)
        plan = stage.plan(store)
        assert plan.status == PENDING and plan.rows_todo == 2 and plan.estimate["cost_usd"] > 0
        result = stage.run(store, plan).to_json()
        assert result["requests"] == 2 and result["cost_usd"] > 0
        assert stage.plan(store).status == UP_TO_DATE
        assert stage.recipe.fingerprint() == store.runs("label")[-1]["fingerprint"]
    # analyses find the set's definition (roles) in the run, as for every labeler
    from seal.catalog.features import stored_feature_sets

    assert stored_feature_sets(store)["mini"].feature("is_polite").role == "target"


# -- OpenAI Batch API --------------------------------------------------------------------------------


def test_batch_api_submits_once_resumes_polling_and_collects(tmp_path):
    pairs = [*CLEAN[:2], ("{fault:schema:*} odd", "{fault:500:*} lost")]
    store = make_store(tmp_path, pairs)
    fs_path = str(write_feature_set(tmp_path))
    options = {"model": "m", "batch_api": True, **FAST}
    with FakeOpenAI() as fake:
        fake.batch_polls_to_complete = 3
        first = label_llm(store, fs_path, base_url=fake.url, **options)
        assert dict(fake.counts) == {"POST /files": 1, "GET /batches": 1, "POST /batches": 1, "GET /batches/{id}": 1}
        assert first.status == "batch-pending" and first.batch["submitted"] == 6 and first.labelled == 0
        uploaded = next(iter(fake.files.values()))
        lines = [json.loads(line) for line in uploaded["content"].decode().splitlines()]
        assert len(lines) == 6 and {line["url"] for line in lines} == {"/v1/chat/completions"}
        assert BatchBook(store).list("mini")[0]["status"] == "in_progress"

        fake.reset_counts()
        second = label_llm(store, fs_path, base_url=fake.url, **options)
        assert dict(fake.counts) == {"GET /batches/{id}": 1}
        assert second.status == "batch-pending" and second.batch["resumed"] == 1

        fake.reset_counts()
        third = label_llm(store, fs_path, base_url=fake.url, **options)
        assert dict(fake.counts) == {"GET /batches/{id}": 1, "GET /files/{id}/content": 2}
        assert (third.labelled, third.failures, third.status) == (4, 2, "partial")
        assert third.failure_reasons == {"batch_error": 1, "invalid": 1}
        assert third.tokens["total"] > 0 and BatchBook(store).list("mini")[0]["collected"] is True
        rows = column(store)
        assert rows[0]["tone"]["chosen"] == "positive" and rows[2] is None

        fake.reset_counts()
        interactive = {**options, "batch_api": False, "max_retries": 0, "max_invalid_retries": 0}
        label_llm(store, fs_path, base_url=fake.url, **interactive)
        assert fake.chat_requests == 2  # the two failures, retried interactively: they still fail
        fake.reset_counts()
        fake.faults_enabled = False
        fake.batch_polls_to_complete = 1
        fourth = label_llm(
            store, fs_path, base_url=fake.url, **{**options, "batch_wait": 5, "batch_poll_interval": 0.05}
        )
        assert fake.counts["POST /batches"] == 1 and fourth.batch["submitted"] == 2 and fourth.status == "done"
        fake.reset_counts()
        fifth = label_llm(store, fs_path, base_url=fake.url, **options)
        assert sum(fake.counts.values()) == 0 and fifth.status == "nothing-to-do" and fifth.cache_hits == 6


def test_batch_created_before_a_crash_is_found_not_resubmitted(tmp_path):
    store = make_store(tmp_path, CLEAN[:1])
    fs = load_feature_set(str(write_feature_set(tmp_path)))
    with FakeOpenAI() as fake:
        config = _config(fake, batch_api=True)
        # Simulate a run killed after creating the batch and before recording its id.
        from seal.annotate.features.llm_batch import _batch_submit
        from seal.annotate.features.llm_work import prepare_work

        work = prepare_work(store, fs, config)

        async def upload():
            async with config.endpoint.client(None) as client:
                return await _batch_submit(client, BatchBook(store), work)

        (sub,) = asyncio.run(upload())
        fake.add_batch(sub["input_file_id"], {"seal_submission": sub["submission_id"]})
        fake.reset_counts()
        result = label_llm(store, fs, model="m", base_url=fake.url, batch_api=True, **FAST)
        assert fake.counts["POST /batches"] == 0 and fake.counts["POST /files"] == 0
        assert result.status == "done" and result.labelled == 2


# -- a real server: llama.cpp with SmolLM2-135M ----------------------------------------------------


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama.cpp's server on a free port for this module's tests (skips if llama_cpp is missing)."""
    yield from start_llama_server(tmp_path_factory.mktemp("llama"))


def test_llama_cpp_chat_roundtrip(llama_server):
    async def go():
        async with ChatClient(llama_server.base_url, llama_server.model, timeout=60) as client:
            t0 = time.perf_counter()
            result = await client.chat([{"role": "user", "content": "Say hello."}], max_tokens=8)
            return result, time.perf_counter() - t0, client.stats

    result, seconds, stats = asyncio.run(go())
    assert isinstance(result.content, str) and result.content.strip()
    assert result.prompt_tokens > 0 and 0 < result.completion_tokens <= 8
    assert stats.requests == 1 and seconds < 30


def test_llama_cpp_labels_pairs_and_a_rerun_sends_nothing(tmp_path, llama_server):
    """A real server: SmolLM2 is weak, so the assertions are about the client and the bookkeeping (every
    text ends labelled with valid values or failed with a reason; a rerun asks only for failures)."""
    store = make_store(tmp_path, CLEAN[:1])
    fs_path = tmp_path / "two.yaml"
    fs_path.write_text(
        """
name: two
features:
  - name: is_polite
    type: bool
    instruction: Is the final response polite?
  - name: tone
    type: category
    values: {negative: -1, neutral: 0, positive: 1}
    instruction: The tone of the final response.
"""
    )
    options = {"model": llama_server.model, "base_url": llama_server.base_url, "concurrency": 1, "timeout": 60}
    result = label_llm(store, str(fs_path), max_tokens=40, max_invalid_retries=1, **options)
    assert result.texts == 2 and result.requests >= 2
    assert result.labelled + result.failures == 2
    assert result.tokens["prompt"] > 0 and result.tokens["completion"] > 0
    failures = FailureLog(store).list("two")
    assert len(failures) == result.failures and all(f["reason"] for f in failures)
    labelled = [row for row in column(store, "features_two") if row is not None]
    assert labelled or result.failures == 2
    for row in labelled:
        for side in ("chosen", "rejected"):
            assert row["is_polite"][side] in (True, False, None)
            assert row["tone"][side] in ("negative", "neutral", "positive", None)
    again = label_llm(store, str(fs_path), max_tokens=40, max_invalid_retries=1, **options)
    assert again.cache_hits == result.labelled
    assert again.to_label == result.failures


# -- the command line ---------------------------------------------------------------------------------


def test_cli_label_llm_json_counters_and_rerun(tmp_path, run_cli, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    source = tmp_path / "cli-pairs.jsonl"
    with source.open("w") as out:
        for i, (chosen, rejected) in enumerate(CLEAN):
            human = f"\n\nHuman: question {i}\n\nAssistant: "
            out.write(json.dumps({"chosen": human + chosen, "rejected": human + rejected}) + "\n")
    assert run_cli("ingest", source).exit_code == 0
    fs_path = write_feature_set(tmp_path)
    prices = tmp_path / "prices.yaml"
    prices.write_text("m: {input: 0.15, output: 0.6}\n")
    with FakeOpenAI() as fake:
        common = ["label", "--labeler", "llm", "--feature-set", fs_path, "--model", "m", "--base-url", fake.url]
        dry = run_cli(*common, "--dry-run", "--prices", prices, "--json")
        assert dry.exit_code == 0, dry.output
        planned = json.loads(dry.stdout)
        assert planned["mode"] == "dry-run" and planned["estimate"]["requests"] == 6
        assert planned["estimate"]["cost_usd"] > 0 and fake.chat_requests == 0
        human = run_cli(*common, "--dry-run", "--prices", prices)
        assert "would send 6 request(s)" in human.stdout

        first = run_cli(*common, "--concurrency", "2", "--prices", prices, "--json")
        assert first.exit_code == 0, first.output
        done = json.loads(first.stdout)
        assert (done["requests"], done["cache_hits"], done["failures"], done["retries"]) == (6, 0, 0, 0)
        assert done["tokens"]["total"] > 0 and done["cost_usd"] > 0 and fake.chat_requests == 6
        for output in (planned, done):
            validate_output("label", output)

        again = json.loads(run_cli(*common, "--json").stdout)
        assert (again["requests"], again["cache_hits"], again["status"]) == (0, 6, "nothing-to-do")
        assert fake.chat_requests == 6
        line = run_cli(*common).stdout
        assert "0 request(s)" in line and "6 from the cache" in line

    mixed = run_cli("label", "--model", "m")
    assert mixed.exit_code != 0 and "--labeler llm" in mixed.output
    missing = run_cli("label", "--labeler", "llm", "--feature-set", fs_path)
    assert missing.exit_code == 1 and "needs a model" in missing.stderr


def test_seal_plan_and_run_with_an_llm_entry(tmp_path, run_cli):
    source = tmp_path / "spec-pairs.jsonl"
    with source.open("w") as out:
        for chosen, rejected in CLEAN[:2]:
            human = "\n\nHuman: hello\n\nAssistant: "
            out.write(json.dumps({"chosen": human + chosen, "rejected": human + rejected}) + "\n")
    fs_path = write_feature_set(tmp_path)
    with FakeOpenAI() as fake:
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            f"""
version: 1
name: llm-demo
dataset: {{source: spec-pairs.jsonl, name: demo}}
features:
  - labeler: llm
    feature_set: {fs_path.name}
    base_url: {fake.url}
    model: m
prices:
  m: {{input: 2.5, output: 10}}
"""
        )
        run_cli("ingest", source, "--name", "demo")
        planned = run_cli("plan", spec, "--json")
        assert planned.exit_code == 0, planned.output
        validate_output("plan", json.loads(planned.stdout))
        (label,) = [s for s in json.loads(planned.stdout)["stages"] if s["stage"] == "label"]
        assert label["status"] == "pending" and label["rows_todo"] == 4 and label["estimate"]["cost_usd"] > 0
        assert fake.chat_requests == 0

        ran = run_cli("run", spec, "--json")
        assert ran.exit_code == 0, ran.output
        (stage,) = [s for s in json.loads(ran.stdout)["stages"] if s["plan"]["stage"] == "label"]
        assert stage["status"] == "done" and stage["result"]["requests"] == 4 and fake.chat_requests == 4

        again = json.loads(run_cli("plan", spec, "--json").stdout)
        assert [s["status"] for s in again["stages"] if s["stage"] == "label"] == ["up-to-date"]
        rerun = json.loads(run_cli("run", spec, "--json").stdout)
        assert [s["status"] for s in rerun["stages"] if s["plan"]["stage"] == "label"] == ["skipped"]
        assert fake.chat_requests == 4


def test_an_unreachable_endpoint_stops_after_consecutive_failures(tmp_path):
    from llm_servers import free_port

    store = make_store(tmp_path, CLEAN)
    fs_path = str(write_feature_set(tmp_path))
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(SealError, match=r"3 texts in a row failed.*cannot reach"):
        label_llm(
            store, fs_path, model="m", base_url=url, concurrency=1, max_retries=1, max_consecutive_failures=3, **FAST
        )
    failures = FailureLog(store).list("mini")
    assert len(failures) == 3 and {f["kind"] for f in failures} == {"connection"}
    with FakeOpenAI() as fake:
        result = label_llm(store, fs_path, model="m", base_url=fake.url, **FAST)
        assert fake.chat_requests == 6 and result.status == "done"
    assert FailureLog(store).list("mini") == []


def test_an_endpoint_echoing_the_key_gets_it_masked(tmp_path, monkeypatch):
    secret = "sk-echoed-7d2e"
    monkeypatch.setenv("SEAL_TEST_KEY", secret)
    store = make_store(tmp_path, CLEAN[:1])
    with FakeOpenAI() as fake:
        monkeypatch.setattr(
            fake, "completion", lambda body, fault: (401, {"error": {"message": f"Incorrect API key {secret}"}}, {})
        )
        with pytest.raises(SealError) as err:
            label_llm(
                store, str(write_feature_set(tmp_path)), model="m", base_url=fake.url, api_key_env="SEAL_TEST_KEY"
            )
    assert "HTTP 401" in str(err.value) and secret not in str(err.value) and "***" in str(err.value)
