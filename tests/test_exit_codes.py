"""A stage whose every unit failed must not look like success: `seal label --labeler llm`, `seal perturb`
with an llm rewriter and `seal run` exit 3 (status `failed`) when an endpoint refuses the connection or
answers 400 to every request; some failures are `partial` and exit 0; errors exit 1. Real servers on
127.0.0.1: nothing listening (connection refused) and FakeOpenAI (tests/llm_servers.py) answering 400."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_servers import FakeOpenAI, free_port

import seal
from seal.annotate.features.llm import label_llm
from seal.cli_schemas import validate_output
from seal.errors import EXIT_NOTHING_SUCCEEDED, NothingSucceeded
from seal.ingest import ingest
from seal.outcome import nothing_succeeded

FEATURE_SET = """\
name: mini
version: 1
labeler: llm
features:
  - name: is_polite
    type: bool
    role: target
    instruction: Is the final response polite?
"""
REPLIES = [
    ("Boil salted water, then add the pasta.", "No."),
    ("Thank you for asking: about ten minutes.", "Whatever."),
    ("Use a big pot, please.", "I don't know."),
]


def write_pairs(folder: Path, replies: list[tuple[str, str]], suffix: str = "") -> Path:
    """One pair per (chosen, rejected); `suffix` is appended to every final response (fault markers)."""
    source = folder / "pairs.jsonl"
    with source.open("w") as out:
        for i, (chosen, rejected) in enumerate(replies):
            human = f"\n\nHuman: How do I cook pasta? ({i})\n\nAssistant: "
            record = {"chosen": human + chosen + suffix, "rejected": human + rejected + suffix}
            out.write(json.dumps(record) + "\n")
    return source


@pytest.fixture
def feature_set(tmp_path) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text(FEATURE_SET)
    return path


def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connection refused


def label_args(feature_set: Path, url: str) -> list[str]:
    return [
        "label",
        "--labeler",
        "llm",
        "--feature-set",
        str(feature_set),
        "--model",
        "m",
        "--base-url",
        url,
        "--max-retries",
        "0",
        "--timeout",
        "5",
        "--json",
        "--silent",
    ]


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_label_exits_3_when_the_endpoint_refuses_every_connection(run_cli, tmp_path, feature_set):
    assert run_cli("ingest", write_pairs(tmp_path, REPLIES), "--silent").exit_code == 0
    result = run_cli(*label_args(feature_set, refused_url()))
    assert result.exit_code == EXIT_NOTHING_SUCCEEDED == 3, result.output
    out = json.loads(result.stdout)  # the result is still printed, for scripts and people
    validate_output("label", out)
    assert out["status"] == "failed" and out["labelled"] == 0 and out["failures"] == 6
    assert out["failure_reasons"] == {"connection": 6} and not out["column_written"]
    line = one_error_line(result)
    assert "every one of the 6 text(s) sent failed (connection: 6)" in line and "check --base-url" in line


def test_label_exits_3_when_the_endpoint_answers_400_to_everything(run_cli, tmp_path, feature_set):
    assert run_cli("ingest", write_pairs(tmp_path, REPLIES, suffix=" {fault:400:*}"), "--silent").exit_code == 0
    with FakeOpenAI() as fake:
        result = run_cli(*label_args(feature_set, fake.url))
        assert fake.chat_requests == 6
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "failed" and out["failure_reasons"] == {"http_400": 6}
    assert "(http_400: 6)" in one_error_line(result)


def test_label_with_some_failures_is_partial_and_exits_0(run_cli, tmp_path, feature_set):
    replies = [*REPLIES[:2], (REPLIES[2][0] + " {fault:400:*}", REPLIES[2][1] + " {fault:400:*}")]
    assert run_cli("ingest", write_pairs(tmp_path, replies), "--silent").exit_code == 0
    with FakeOpenAI() as fake:
        result = run_cli(*label_args(feature_set, fake.url))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "partial" and out["labelled"] == 4 and out["failures"] == 2
    assert result.stderr.strip() == ""


def test_a_run_stopped_by_consecutive_failures_with_nothing_labelled_is_nothing_succeeded(tmp_path, feature_set):
    store = seal.Store(tmp_path / "store")
    ingest(store, str(write_pairs(tmp_path, REPLIES)), name="t")
    with pytest.raises(NothingSucceeded, match=r"no text labelled: 2 texts in a row failed") as caught:
        label_llm(
            store,
            str(feature_set),
            model="m",
            base_url=refused_url(),
            concurrency=1,
            max_retries=0,
            max_consecutive_failures=2,
        )
    assert caught.value.exit_code == 3


def spec_text(fake_or_url: str, extra: str = "") -> str:
    return f"""
version: 1
dataset: {{source: pairs.jsonl, name: demo}}
features:
  - labeler: llm
    feature_set: mini.yaml
    base_url: {fake_or_url}
    model: m
    max_retries: 0
    timeout: 5
{extra}"""


def test_run_exits_3_when_a_stage_ran_but_nothing_succeeded(run_cli, tmp_path, feature_set):
    write_pairs(tmp_path, REPLIES)
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(refused_url(), "  - labeler: heuristics\n    feature_set: heuristics\n"))
    result = run_cli("run", spec, "--on-error", "keep-going", "--json", "--silent")
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    validate_output("run", out)
    by_stage = {(s["plan"]["stage"], s["plan"]["name"]): s for s in out["stages"]}
    llm = by_stage[("label", "mini")]
    assert out["ok"] is False and llm["status"] == "failed" and llm["result"]["status"] == "failed"
    assert llm["error"].startswith("every one of the 6 text(s) sent failed")
    assert by_stage[("ingest", "demo")]["status"] == "done" and by_stage[("label", "heuristics")]["status"] == "done"
    assert "failed: every one of the 6 text(s) sent failed" in one_error_line(result)


def test_run_exits_1_when_a_stage_failed_with_an_error(run_cli, tmp_path, feature_set):
    write_pairs(tmp_path, REPLIES)
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(refused_url(), "reward_models:\n  - {model: ./no-such-model, alias: rm}\n"))
    result = run_cli("run", spec, "--on-error", "keep-going", "--json", "--silent")
    assert result.exit_code == 1, result.output  # one stage had an error: an error, not "nothing succeeded"


def test_perturb_with_an_llm_that_refuses_every_request_exits_3(run_cli, tmp_path):
    assert run_cli("ingest", write_pairs(tmp_path, REPLIES), "--silent").exit_code == 0
    method = f"llm:model=m,base_url={refused_url()},max_retries=0,timeout=5"
    result = run_cli("perturb", "--method", method, "--sides", "chosen", "--json", "--silent")
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    validate_output("perturb", out)
    assert out["variants"]["failed"] == out["variants"]["total"] == 3
    assert "every one of the 3 variant(s) failed" in one_error_line(result)


def test_the_outcome_rule():
    assert nothing_succeeded({"status": "done", "variants": {"total": 3, "failed": 1}}) is None
    assert nothing_succeeded({"status": "up-to-date", "variants": {"total": 3, "failed": 3}}) is None
    assert nothing_succeeded({"status": "partial", "failures": 2}) is None
    assert nothing_succeeded({"status": "done"}) is None
    assert nothing_succeeded({"status": "failed", "failures": 2, "failure_reasons": {"timeout": 2}}) == (
        "every one of the 2 text(s) sent failed (timeout: 2)"
    )
