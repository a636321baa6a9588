"""`seal demo` end to end on a reduced size (40 of the 300 shipped pairs, 6 pairs per rewrite): real probes,
real scores, every analysis and the report, with real numbers; the planted confusing pairs are found; the LLM
steps run against a local OpenAI-compatible server; a rerun through the CLI resumes and its `--json` validates
against schemas/cli/demo.schema.json; the three suggested commands run."""

from __future__ import annotations

import gzip
import json
import re
import shlex

import llm_servers
import pytest

import seal
from seal.cli_schemas import validate_output
from seal.demo import MARKER, PLANTED, SLICE, next_commands
from seal.errors import SealError

REWRITE = re.compile(r"<text>\n(.*?)\n</text>", re.S)


class FakeLLM(llm_servers.FakeOpenAI):
    """The labeler's fake OpenAI-compatible server (deterministic labels, requests counted), which also answers
    the rewriter's paraphrase requests: "In other words, <text>"."""

    def completion(self, body, fault):
        match = REWRITE.search(body["messages"][-1]["content"])
        if match is None:
            return super().completion(body, fault)
        message = {"role": "assistant", "content": "In other words, " + match.group(1)}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
        return 200, {"id": "chatcmpl-x", "object": "chat.completion", "choices": [choice], "usage": usage}, {}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo on 40 of the shipped pairs, 6 pairs per rule rewrite, once for the module, with an
    OpenAI-compatible endpoint configured in the environment (a local fake server; no model named)."""
    out = tmp_path_factory.mktemp("demo") / "seal-demo"
    lines: list[str] = []
    with FakeLLM() as fake:
        env = {"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "test-key"}
        result = seal.demo(out, pairs=40, perturb_sample=6, llm_samples=(12, 4), environment=env, progress=lines.append)
    return out, result.to_json(), "\n".join(lines), fake


def test_the_shipped_data_is_small_licensed_and_as_documented():
    folder = SLICE.parent
    with gzip.open(SLICE, "rt") as lines:
        rows = [json.loads(line) for line in lines]
    planted = [json.loads(line) for line in PLANTED.read_text().splitlines()]
    assert len(rows) == 300 and len({r["hh_test_line"] for r in rows}) == 300
    assert {p["planted"] for p in planted} == {"identical", "near-identical", "contradictory", "opposite-duplicate"}
    assert not {p["hh_test_line"] for p in planted} & {r["hh_test_line"] for r in rows}
    assert sum(p.stat().st_size for p in folder.iterdir()) < 200_000
    assert "MIT License" in (folder / "LICENSE").read_text() and "Anthropic" in (folder / "LICENSE").read_text()
    readme = (folder / "README.md").read_text()
    assert "hh-rlhf" in readme and "MIT" in readme and "planted" in readme


def test_the_demo_json_validates_and_has_real_numbers(demo_run):
    out, result, stderr, _ = demo_run
    validate_output("demo", result)
    assert result["status"] == "done" and result["pairs"] == {"hh-harmless": 40, "demo-planted": 9}
    aligned, control = result["probes"]["probe_aligned"], result["probes"]["probe_control"]
    assert (aligned["pairs_train"], aligned["pairs_heldout"]) == (32, 8)
    assert (control["pairs_train"], control["pairs_heldout"]) == (8, 32)
    for probe in (aligned, control):
        assert 0 <= probe["heldout"]["low"] <= probe["heldout"]["agreement"] <= probe["heldout"]["high"] <= 1
        assert probe["scorer_check"]["max_abs_diff"] <= 1e-4
    for alias in ("probe_aligned", "probe_control"):
        value = result["agreement"][alias]
        assert value["decided"] == 48 and 0 < value["agreement"] < 1  # the identical pair is excluded
    gamma = result["gamma"]
    assert gamma["features"] == ["heuristics.is_refusal", "heuristics.has_apology"] and gamma["pairs"] == 48
    assert sum(gamma["rows"][g]["n"] for g in "cir") == gamma["rows"]["all"]["n"] == 48
    regimes = result["regimes"]
    assert sum(regimes[k]["count"] for k in ("stayed_aligned", "got_aligned", "resists", "reversed")) == regimes["n"]
    for alias in ("probe_aligned", "probe_control"):
        rows = result["imprint"][alias]
        assert rows and all(r["ci_low"] <= r["beta"] <= r["ci_high"] for r in rows)
        assert {r["role"] for r in rows} <= {"target", "spoiler"}
    methods = {(r["model"], r["method"]) for r in result["robustness"] if r["status"] == "ok"}
    assert methods == {(m, p) for m in ("probe_aligned", "probe_control") for p in ("typos", "filler", "llm")}
    assert all(r["pairs"] and 0 <= r["agreement_after"] <= 1 for r in result["robustness"])
    # every analysis saved its whole result; the stderr progress names every stage with its time
    assert set(result["analyses"]) >= {"resistance", "robustness", "confusing", "imprint-probe_aligned"}
    imprint = json.loads((out / "analyses" / "imprint-probe_aligned.json").read_text())
    assert imprint["regressions"][0]["n"] == 2 * 49  # every text: the LLM's sampled labels are not regressed on
    assert json.loads((out / "analyses" / "resistance.json").read_text())["model"]["alias"] == "probe_aligned"
    for stage in ("ingest", "train probe_aligned", "score probe_control", "embed", "perturb typos", "report"):
        assert f"[{stage}] done in" in stderr and result["timings"][stage] >= 0
    assert result["seconds"] >= sum(result["timings"].values()) * 0.99


def test_with_an_endpoint_in_the_environment_the_llm_steps_run(demo_run, run_cli):
    out, result, stderr, fake = demo_run
    llm = result["llm"]
    assert llm["ran"] and llm["model"] == "fake" and llm["base_url"] == fake.url  # the server's first model
    assert fake.counts["GET /models"] == 1 and fake.chat_requests > 0
    assert llm["label"]["status"] == "done" and llm["perturb"]["status"] == "done"
    assert "[llm label] done in" in stderr and "[llm perturb] done in" in stderr
    labelled = seal.api.query(out / "store", where="features_seal_taxonomy IS NOT NULL", select=["pair_id"], limit=None)
    assert labelled.num_rows == 12


def test_the_planted_confusing_pairs_are_found(demo_run):
    _, result, _, _ = demo_run
    planted = result["confusing"]["planted"]
    assert planted == {
        "identical": {"planted": 1, "found": 1},
        "near-identical": {"planted": 2, "found": 2},
        "contradictory": {"planted": 4, "found": 4},
        "opposite-duplicate": {"planted": 2, "found": 2},
    }
    counts = result["confusing"]["counts"]
    assert counts["identical"] >= 1 and counts["contradictory"] >= 3 and counts["near_identical"] >= 2


def test_the_report_is_written(demo_run):
    out, result, _, _ = demo_run
    if result["report"] is None:  # seal.api.report not there yet: the demo says so
        assert "report" in result["report_note"]
        return
    page = (out / "report.html").read_text()
    assert result["report"] == str(out / "report.html") and "probe_aligned" in page
    assert set(result["report_sections"].values()) == {"ok"}, result["report_sections"]  # every section has data


def test_the_three_next_commands_run(demo_run, run_cli):
    out, result, _, _ = demo_run
    assert result["next"] == next_commands(out / "store")
    outputs = []
    for command in result["next"]:
        args = shlex.split(command)
        assert args[:3] == ["seal", "--store", str(out / "store")]
        done = run_cli(*args[3:], store=out / "store")
        assert done.exit_code == 0, (command, done.output)
        outputs.append(done.stdout)
    assert "hh-harmless" in outputs[0] and "demo-planted" in outputs[0]
    assert "contradictory" in outputs[1]


def test_a_rerun_through_the_cli_resumes_and_its_json_validates(demo_run, tmp_path):
    from click.testing import CliRunner

    from seal.cli import cli

    out, first, _, fake = demo_run
    requests = fake.chat_requests
    args = ["demo", "--out", str(out), "--pairs", "40", "--perturb-sample", "6", "--no-llm", "--json"]
    done = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    again = json.loads(done.stdout)
    validate_output("demo", again)
    assert again["status"] == "resumed" and "[score probe_aligned] done in" in done.stderr
    assert {p["status"] for p in again["probes"].values()} == {"up-to-date"}
    assert again["pairs"] == first["pairs"] and again["agreement"] == first["agreement"]
    assert again["llm"] == {"ran": False, "reason": "turned off (--no-llm)"} and fake.chat_requests == requests
    assert json.loads((out / MARKER).read_text())["status"] == "done"
    with pytest.raises(SealError, match="other options"):
        seal.demo(out, pairs=50, perturb_sample=6, llm=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    for force in (False, True):
        with pytest.raises(SealError, match="not a seal demo folder"):
            seal.demo(tmp_path / "mine", pairs=40, force=force, llm=False)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"
    with pytest.raises(SealError, match="out of range"):
        seal.demo(tmp_path / "new", pairs=10)
