"""Reward-model scoring: the core (formats, truncation, batch invariance, heads), the resumable `score`
stage, `seal score` / `seal models` and a spec's `reward_models` section. Tiny RMs from tiny_models.py."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import REPO
from tiny_models import build_deberta_rm, build_headless_model, build_llama_rm

from seal.annotate.scores import ScoreOptions, ScoreStage, run_score, score
from seal.catalog.models import list_models
from seal.engines.scoring import (
    ModelError,
    RewardModel,
    chat_messages,
    render_transcript,
    score_texts,
)
from seal.errors import SealError
from seal.ingest import ingest
from seal.pipeline import PENDING, STALE, UP_TO_DATE
from seal.store import WORK_PREFIX

EXAMPLE = REPO / "examples" / "tiny-hh.jsonl"
_TEXT = (
    "the a cat dog sun rain tree river stone happy quick slow bright dark green blue water fire wind city"
    " road book letter music garden friend mother window kitchen mountain ocean"
)
WORDS = tuple(_TEXT.split())


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def rms(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rms")
    headless = build_headless_model(root / "headless")
    # A checkpoint that claims to be a classifier but lacks the head weights.
    no_head = build_headless_model(root / "no_head")
    config = json.loads((no_head / "config.json").read_text())
    config.update(architectures=["DebertaV2ForSequenceClassification"], num_labels=1)
    config.pop("id2label", None), config.pop("label2id", None)
    (no_head / "config.json").write_text(json.dumps(config))
    return {
        "deberta": build_deberta_rm(root / "deberta", seed=1),
        "llama": build_llama_rm(root / "llama", seed=2),
        "deberta3": build_deberta_rm(root / "deberta3", seed=3, num_labels=3),
        "headless": headless,
        "no_head": no_head,
    }


def _sentence(i: int, n: int) -> str:
    return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(n))


def pair_rows(n: int, start: int = 0) -> list[dict[str, str]]:
    """hh-style transcript pairs with varied lengths (some with two turns of context)."""
    rows = []
    for i in range(start, start + n):
        context = f"\n\nHuman: {_sentence(i, 3 + i % 9)}?"
        if i % 3 == 0:
            context += f"\n\nAssistant: {_sentence(i + 1, 4)}.\n\nHuman: {_sentence(i + 2, 2 + i % 4)}?"
        chosen = f"{context}\n\nAssistant: {_sentence(i + 3, 2 + (i * 5) % 13)}."
        rejected = f"{context}\n\nAssistant: {_sentence(i + 4, 1 + (i * 3) % 11)}!"
        rows.append({"chosen": chosen, "rejected": rejected})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def pairs_store(store, tmp_path):
    """A store with 24 generated pairs."""
    ingest(store, str(write_jsonl(tmp_path / "pairs.jsonl", pair_rows(24))), name="gen")
    return store


def example_items() -> list[tuple[list[dict[str, str]], str]]:
    from seal.ingest.transcript import split_final_response

    items = []
    for line in EXAMPLE.read_text().splitlines():
        row = json.loads(line)
        for side in ("chosen", "rejected"):
            split = split_final_response(row[side])
            items.append((split.context, split.response))
    items.append(([{"role": "user", "content": "tell me about " + _sentence(5, 60)}], "a short answer"))
    items.append(([], "a response with no context at all"))
    return items


def column_values(store, column: str) -> dict[str, tuple[float, float]]:
    rows = store.read(["pair_id", column]).to_pylist()
    return {r["pair_id"]: (r[column]["chosen"], r[column]["rejected"]) for r in rows if r[column] is not None}


def validate(name: str, value) -> None:
    schema = json.loads((REPO / "schemas" / "cli" / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(value)


# -- the scoring core -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["deberta", "llama"])
def test_scores_do_not_depend_on_batch_size(rms, kind):
    rm = RewardModel(str(rms[kind]), max_length=64)
    items = example_items()
    reference = score_texts(rm, items, batch_size=1)
    assert reference.shape == (len(items),) and reference.dtype == np.float64
    assert np.isfinite(reference).all() and reference.std() > 0.1  # seeded weights give varied scores
    for batch_size in (3, 8, "auto"):
        other = rm.score(items, batch_size=batch_size)
        assert np.abs(other - reference).max() <= 1e-4, batch_size
    assert rm.stats.truncated > 0  # the long item was truncated each time
    assert len(score_texts(rm, [])) == 0


def test_pair_format_is_the_tokenizer_sentence_pair(rms):
    rm = RewardModel(str(rms["deberta"]))
    assert rm.input_format == "pair" and "no chat template" in rm.input_format_reason
    items = example_items()[:4]
    encoded = rm.encode(items)
    for (context, response), ids in zip(items, encoded.input_ids, strict=True):
        text = render_transcript(context)
        assert text.startswith("\n\nHuman: ")
        assert list(ids) == rm.tokenizer(text, response)["input_ids"]
    assert render_transcript([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]) == (
        "\n\nHuman: hi\n\nAssistant: yo"
    )


def test_chat_format_is_the_chat_template(rms):
    rm = RewardModel(str(rms["llama"]))
    assert rm.input_format == "chat" and "chat template" in rm.input_format_reason
    items = example_items()[:4]
    encoded = rm.encode(items)
    for (context, response), ids in zip(items, encoded.input_ids, strict=True):
        expected = rm.tokenizer.apply_chat_template(chat_messages(context, response), tokenize=True)
        expected = expected["input_ids"] if hasattr(expected, "keys") else expected
        assert list(ids) == list(expected)
    forced = RewardModel(str(rms["llama"]), input_format="pair")
    assert forced.input_format == "pair" and forced.recipe_params()["input_format"] == "pair"
    with pytest.raises(ModelError, match="no chat template"):
        RewardModel(str(rms["deberta"]), input_format="chat")


def test_left_truncation_keeps_the_response_and_the_end_of_the_context(rms):
    long_context = [{"role": "user", "content": _sentence(1, 120)}]
    response = "the cat sat by the window"
    rm = RewardModel(str(rms["deberta"]), max_length=32)
    full = rm.tokenizer(render_transcript(long_context), response)["input_ids"]
    enc = rm.encode([(long_context, response)])
    ids = list(enc.input_ids[0])
    assert enc.truncated.tolist() == [True] and enc.lengths_before[0] == len(full) > 32 and len(ids) == 32
    response_ids = rm.tokenizer(response, add_special_tokens=False)["input_ids"]
    sep, cls = rm.tokenizer.sep_token_id, rm.tokenizer.cls_token_id
    assert ids[0] == cls and ids[-1] == sep
    assert ids[-1 - len(response_ids) : -1] == response_ids  # the whole response
    context_kept = ids[1 : -2 - len(response_ids)]
    assert context_kept == full[1 : len(full) - 2 - len(response_ids)][-len(context_kept) :]  # its end

    right = RewardModel(str(rms["deberta"]), max_length=32, truncation="right")
    rids = list(right.encode([(long_context, response)]).input_ids[0])
    assert rids == [*full[:30], sep, sep]  # the start of the context is kept, special tokens stay

    chat = RewardModel(str(rms["llama"]), max_length=24)
    cids = list(chat.encode([(long_context, response)]).input_ids[0])
    full_chat = chat.tokenizer.apply_chat_template(chat_messages(long_context, response), tokenize=True)
    full_chat = list(full_chat["input_ids"] if hasattr(full_chat, "keys") else full_chat)
    assert len(cids) == 24 and cids[0] == chat.tokenizer.bos_token_id and cids[1:] == full_chat[-23:]


def test_a_multi_output_model_needs_a_head_index(rms):
    path = str(rms["deberta3"])
    with pytest.raises(ModelError, match=r"3 outputs.*--head-index"):
        RewardModel(path)
    with pytest.raises(ModelError, match="out of range"):
        RewardModel(path, head_index=3)
    rm = RewardModel(path, head_index=2)
    items = example_items()[:5]
    values = rm.score(items, batch_size=2)
    import torch

    model = rm.model
    for (context, response), value in zip(items, values, strict=True):
        inputs = rm.tokenizer(render_transcript(context), response, return_tensors="pt")
        with torch.no_grad():
            expected = model(**inputs).logits[0, 2].item()
        assert value == pytest.approx(expected, abs=1e-4)
    assert rm.recipe_params()["head_index"] == 2


def test_a_model_without_a_reward_head_is_refused(rms):
    with pytest.raises(ModelError, match="not a sequence classifier"):
        RewardModel(str(rms["headless"]))
    rm = RewardModel(str(rms["no_head"]))  # the config claims a classifier: caught when weights load
    with pytest.raises(ModelError, match=r"lacks \d+ weight\(s\).*classifier"):
        rm.load()
    with pytest.raises(ModelError, match="cannot load the config"):
        RewardModel(str(rms["deberta"].parent / "absent"))


def test_recipe_holds_what_determines_scores_only(rms):
    a = RewardModel(str(rms["deberta"]), device="cpu", max_length=64).recipe_params()
    b = RewardModel(str(rms["deberta"]), device="auto", max_length=64).recipe_params()
    assert a == b and a["dtype"] == "float32" and a["padding_side"] == "right" and a["truncation"] == "left"
    assert a["files_sha256"] and a["commit"] is None and a["model"] == str(rms["deberta"].resolve())
    assert "batch_size" not in a and "device" not in a
    with pytest.raises(ModelError, match="exceeds"):
        RewardModel(str(rms["llama"]), max_length=100_000)


def test_a_hub_id_loads_from_the_cache_and_records_its_commit(rms, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.constants as hub_constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tinyorg--tiny-rm"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for path in rms["deberta"].iterdir():
        shutil.copy(path, snapshot / path.name)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)

    rm = RewardModel("tinyorg/tiny-rm", revision="main")
    params = rm.recipe_params()
    assert (params["model"], params["revision"], params["commit"], params["files_sha256"]) == (
        "tinyorg/tiny-rm",
        "main",
        commit,
        None,
    )
    items = example_items()[:4]
    local = RewardModel(str(rms["deberta"]))
    assert np.abs(rm.score(items) - local.score(items)).max() <= 1e-6
    assert rm.weights_format == "safetensors"


def test_auto_batches_shrink_on_out_of_memory(rms, monkeypatch):
    import torch

    rm = RewardModel(str(rms["deberta"]), max_length=64)
    items = example_items()
    reference = rm.score(items, batch_size=4)
    original = RewardModel._forward

    def small_memory(self, model, encoded, idx):
        if len(idx) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, model, encoded, idx)

    monkeypatch.setattr(RewardModel, "_forward", small_memory)
    assert np.abs(rm.score(items, batch_size="auto") - reference).max() <= 1e-4
    assert rm.stats.oom_retries > 0
    with pytest.raises(ModelError, match="out of memory"):
        rm.score(items, batch_size=8)


# -- the stage --------------------------------------------------------------------------------------
class Crash(RuntimeError):
    pass


def crash_after(n: int):
    def hook(commits: int, rows: int) -> None:
        if commits >= n:
            raise Crash(f"killed after {commits} commits ({rows} pairs)")

    return hook


def count_texts(monkeypatch) -> list[int]:
    """Record how many texts each RewardModel.score call gets."""
    calls: list[int] = []
    original = RewardModel.score

    def counting(self, items, **kwargs):
        calls.append(len(items))
        return original(self, items, **kwargs)

    monkeypatch.setattr(RewardModel, "score", counting)
    return calls


def test_a_killed_run_resumes_with_only_the_missing_pairs(rms, pairs_store, store_path, tmp_path, monkeypatch):
    model = str(rms["deberta"])
    with pytest.raises(Crash):
        score(pairs_store, model, alias="deb", batch_size=3, commit_rows=5, after_commit=crash_after(2))
    work = pairs_store.work_read("score_deb")
    assert work.num_rows == 10 and len(set(work.column("pair_id").to_pylist())) == 10
    assert "score_deb" not in pairs_store.columns() and pairs_store.runs("score") == []
    plan = ScoreStage(ScoreOptions(model, alias="deb")).plan(pairs_store)
    assert plan.status == PENDING and plan.rows_todo == 14 and "interrupted" in plan.reason

    calls = count_texts(monkeypatch)
    result = score(pairs_store, model, alias="deb", batch_size=8, commit_rows=5)
    assert sum(calls) == 2 * 14  # only the missing pairs went through the model
    assert (result.pairs_scored, result.pairs_resumed, result.commits) == (14, 10, 3)
    assert WORK_PREFIX + "score_deb" not in pairs_store.table_names()
    assert pairs_store.count() == 24
    resumed = column_values(pairs_store, "score_deb")
    assert len(resumed) == 24
    [run] = pairs_store.runs("score")
    assert run["rows_written"] == 24 and run["provenance"]["role"] == "other"
    assert run["provenance"]["origin"] == "scored" and run["provenance"]["batch_size"] == 8

    from seal import Store

    other = Store(tmp_path / "uninterrupted")
    ingest(other, str(tmp_path / "pairs.jsonl"), name="gen")
    score(other, model, alias="deb", batch_size="auto")
    straight = column_values(other, "score_deb")
    assert straight.keys() == resumed.keys()
    diff = max(abs(a - b) for k in straight for a, b in zip(straight[k], resumed[k], strict=True))
    assert diff <= 1e-4


def test_rows_committed_under_another_recipe_are_never_mixed_in(rms, pairs_store):
    model = str(rms["deberta"])
    with pytest.raises(Crash):
        score(pairs_store, model, alias="deb", max_length=64, commit_rows=5, after_commit=crash_after(1))
    stage = ScoreStage(ScoreOptions(model, alias="deb", max_length=32), commit_rows=5, after_commit=crash_after(1))
    assert stage.plan(pairs_store).rows_todo == 24
    with pytest.raises(Crash):
        run_score(pairs_store, stage)
    work = pairs_store.work_read("score_deb")
    assert set(work.column("fingerprint").to_pylist()) == {stage.recipe.fingerprint()} and work.num_rows == 5
    result = score(pairs_store, model, alias="deb", max_length=32)
    assert (result.pairs_resumed, result.pairs_scored) == (5, 19)
    assert [r["recipe"]["params"]["max_length"] for r in pairs_store.runs("score")] == [32]


def test_a_rerun_scores_nothing_and_new_pairs_only_get_scored(rms, pairs_store, tmp_path, monkeypatch):
    model = str(rms["llama"])
    first = score(pairs_store, model, alias="llama", role="aligned", batch_size=4, max_length=48)
    assert first.status == "done" and first.pairs_scored == 24 and first.input_format == "chat"
    before = column_values(pairs_store, "score_llama")

    calls = count_texts(monkeypatch)
    stage = ScoreStage(ScoreOptions(model, alias="llama", batch_size=16, device="cpu", max_length=48))
    assert stage.plan(pairs_store).status == UP_TO_DATE  # batch size and device are not in the recipe
    again = run_score(pairs_store, stage)
    assert again.status == "up-to-date" and again.pairs_scored == 0 and again.role == "aligned" and calls == []
    assert len(pairs_store.runs("score")) == 1

    ingest(pairs_store, str(write_jsonl(tmp_path / "more.jsonl", pair_rows(3, start=100))), name="more")
    plan = stage.plan(pairs_store)
    assert plan.status == PENDING and plan.rows_todo == 3
    more = run_score(pairs_store, stage)
    assert more.pairs_scored == 3 and more.pairs_kept == 24 and sum(calls) == 6
    after = column_values(pairs_store, "score_llama")
    assert len(after) == 27 and all(after[k] == before[k] for k in before)
    info = list_models(pairs_store)["llama"]
    assert info["role"] == "aligned" and info["coverage"] == 1.0 and info["origin"] == "scored"


def test_a_different_recipe_is_refused_unless_replace(rms, pairs_store):
    model = str(rms["deberta"])
    score(pairs_store, model, alias="deb", max_length=64)
    stale = ScoreStage(ScoreOptions(model, alias="deb", max_length=32))
    plan = stale.plan(pairs_store)
    assert plan.status == STALE and "max_length" in plan.reason and "--replace" in plan.reason
    assert "max_length" in plan.changed
    with pytest.raises(SealError, match=r"max_length: 64 → 32") as err:
        score(pairs_store, model, alias="deb", max_length=32)
    assert "--replace" in str(err.value)
    replaced = score(pairs_store, model, alias="deb", max_length=32, replace=True)
    assert replaced.replaced and replaced.pairs_scored == 24 and replaced.pairs_kept == 0
    runs = pairs_store.runs("score")
    assert [r["recipe"]["params"]["max_length"] for r in runs] == [64, 32]
    assert list_models(pairs_store)["deb"]["fingerprint"] == stale.recipe.fingerprint()
    assert score(pairs_store, model, alias="deb", max_length=32).status == "up-to-date"


def test_role_change_is_recorded_without_rescoring(rms, pairs_store, monkeypatch):
    model = str(rms["deberta"])
    score(pairs_store, model, alias="deb", role="control", max_length=64)
    calls = count_texts(monkeypatch)
    result = score(pairs_store, model, alias="deb", role="aligned", max_length=64)
    assert calls == [] and result.status == "done" and result.pairs_scored == 0
    assert list_models(pairs_store)["deb"]["role"] == "aligned"


def test_truncated_texts_are_counted_and_recorded(rms, store, tmp_path):
    rows = pair_rows(3)
    rows.append(
        {
            "chosen": f"\n\nHuman: {_sentence(2, 150)}?\n\nAssistant: yes indeed.",
            "rejected": f"\n\nHuman: {_sentence(2, 150)}?\n\nAssistant: no.",
        }
    )
    ingest(store, str(write_jsonl(tmp_path / "long.jsonl", rows)), name="long")
    result = score(store, str(rms["deberta"]), alias="deb", max_length=40)
    assert result.texts_truncated == 2 and result.texts_scored == 8
    [run] = store.runs("score")
    assert run["provenance"]["texts_truncated"] == 2


# -- CLI and spec -----------------------------------------------------------------------------------
def test_cli_score_and_models(rms, run_cli):
    assert run_cli("ingest", EXAMPLE, "--json").exit_code == 0
    model = str(rms["deberta"])
    done = run_cli("score", "--model", model, "--alias", "deb", "--role", "aligned", "--batch-size", "3", "--json")
    assert done.exit_code == 0, done.output
    payload = json.loads(done.stdout)
    validate("score", payload)
    assert payload["status"] == "done" and payload["pairs_scored"] == 8 and payload["input_format"] == "pair"
    assert "input format pair" in done.stderr

    again = run_cli("score", "--model", model, "--alias", "deb", "--json")
    validate("score", json.loads(again.stdout))
    assert json.loads(again.stdout)["status"] == "up-to-date"

    human = run_cli("score", "--model", str(rms["llama"]), "--max-length", "24", "--silent")
    assert human.exit_code == 0, human.output
    assert "truncated 16 texts to 24 tokens" in human.stdout and "input format chat" in human.stdout

    refused = run_cli("score", "--model", model, "--alias", "deb", "--max-length", "64")
    assert refused.exit_code == 1 and refused.stderr.count("\n") <= 2
    assert "max_length: 512 → 64" in refused.stderr and "--replace" in refused.stderr

    bad = run_cli("score", "--model", str(rms["deberta3"]))
    assert bad.exit_code == 1 and "--head-index" in bad.stderr

    models = run_cli("models", "--json")
    listing = json.loads(models.stdout)
    validate("models", listing)
    by_alias = {m["alias"]: m for m in listing["models"]}
    assert set(by_alias) == {"deb", "llama"} and by_alias["deb"]["role"] == "aligned"
    assert by_alias["llama"]["coverage"] == 1.0 and by_alias["llama"]["recipe"]["params"]["max_length"] == 24
    table = run_cli("models")
    assert "deb" in table.stdout and "aligned" in table.stdout


def test_cli_prefix_sharing_is_reported_and_gives_the_same_scores(rms, run_cli, store):
    assert run_cli("ingest", EXAMPLE, "--silent").exit_code == 0
    model = str(rms["llama"])
    shared = run_cli("score", "--model", model, "--alias", "shared", "--prefix-sharing", "on", "--json")
    assert shared.exit_code == 0, shared.output
    payload = json.loads(shared.stdout)
    validate("score", payload)
    assert payload["prefix_sharing"] == "on: causal `llama` with a KV cache"
    assert payload["shared_texts"] == 16 and payload["prefix_tokens_saved"] > 0
    plain = json.loads(
        run_cli("score", "--model", model, "--alias", "plain", "--prefix-sharing", "off", "--json").stdout
    )
    assert plain["prefix_sharing"] == "off: not requested" and plain["shared_texts"] == 0
    a, b = column_values(store, "score_shared"), column_values(store, "score_plain")
    assert max(abs(x - y) for pid in a for x, y in zip(a[pid], b[pid], strict=True)) <= 1e-4
    text = run_cli("score", "--model", model, "--alias", "again", "--prefix-sharing", "on").stdout
    assert "prefix sharing on: causal `llama` with a KV cache (" in text and "prefix tokens not recomputed" in text


def test_seal_run_scores_the_reward_models_of_a_spec(rms, run_cli, tmp_path):
    spec = tmp_path / "experiment.yaml"
    data = write_jsonl(tmp_path / "data.jsonl", pair_rows(6))
    entries = [
        {
            "model": str(rms["deberta"]),
            "alias": "deb",
            "role": "aligned",
            "revision": "main",
            "batch_size": 4,
            "max_length": 64,
            "truncation": "left",
            "device": "cpu",
            "dtype": "float32",
            "input_format": "pair",
            "head_index": 0,
            "trust_remote_code": False,
        },
        {"model": str(rms["llama"]), "alias": "llama", "role": "control", "batch_size": "auto"},
    ]
    import yaml

    spec.write_text(yaml.safe_dump({"dataset": {"source": data.name, "name": "gen"}, "reward_models": entries}))
    first = run_cli("run", spec, "--json", "--silent")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    scored = [s for s in report["stages"] if s["plan"]["stage"] == "score"]
    assert [s["status"] for s in scored] == ["done", "done"]
    for stage in scored:
        validate("score", stage["result"])
        assert stage["result"]["pairs_scored"] == 6
    try:
        from seal.cli_schemas import validate_output
    except ImportError:  # pragma: no cover - the CLI schema helper ships with seal run
        validate_output = None
    if validate_output is not None:
        validate_output("run", report)

    second = json.loads(run_cli("run", spec, "--json", "--silent").stdout)
    assert [s["status"] for s in second["stages"] if s["plan"]["stage"] == "score"] == ["skipped", "skipped"]
    plans = json.loads(run_cli("plan", spec, "--json").stdout)["stages"]
    assert [p["status"] for p in plans if p["stage"] == "score"] == [UP_TO_DATE, UP_TO_DATE]
    models = json.loads(run_cli("models", "--json").stdout)["models"]
    assert {m["alias"]: m["role"] for m in models} == {"deb": "aligned", "llama": "control"}


def test_a_compiled_model_gives_the_same_scores(rms):
    """--compile: torch.compile with dynamic shapes (a real inductor compile on the CPU, ~40 s)."""
    items = example_items()
    reference = RewardModel(str(rms["deberta"]), max_length=64).score(items, batch_size=1)
    rm = RewardModel(str(rms["deberta"]), max_length=64, compile=True)
    for batch_size in (3, "auto"):  # two batch shapes: one dynamic compile serves both
        assert np.abs(rm.score(items, batch_size=batch_size) - reference).max() <= 1e-4
    provenance = rm.provenance()
    assert provenance["compiled"] is True and rm.prefix_sharing == "off: the forward is compiled (--compile)"
    assert "compile" not in rm.recipe_params()  # the same scores: provenance, not recipe
