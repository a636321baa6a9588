"""Experiment specs and the plan/run pipeline: validation paths, path resolution, the plan/run contract,
unavailable stages, stages registered from outside the runner, and --on-error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest
from conftest import REPO

from seal import pipeline
from seal.cli_schemas import validate_output
from seal.errors import SealError
from seal.pipeline import Plan, register_stage, unregister_stage
from seal.recipe import Recipe
from seal.spec import SpecInvalid, check_spec, parse_spec, validation_errors
from seal.store import RunRecord, Store, new_run_id, now_utc

EXAMPLE = REPO / "examples" / "tiny-hh.jsonl"


def write_spec(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def as_json(result) -> dict[str, Any]:
    return json.loads(result.stdout)


# -- validation --------------------------------------------------------------------------------------
OK = "dataset: {source: data.jsonl}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            OK + "reward_models:\n  - model: a\n  - model: b\n    batch_size: 0\n",
            "reward_models[1].batch_size: must be a positive integer",
        ),
        (
            OK + "reward_models: [{model: a, batch_size: big}]\n",
            "reward_models[0].batch_size: must be a positive integer or `auto`",
        ),
        (
            OK + "reward_models: [{model: a, batch_size: 2.5}]\n",
            "reward_models[0].batch_size: must be a positive integer or `auto`",
        ),
        ("name: x\n", "dataset: is required"),
        ("dataset: {}\n", "dataset.source: is required"),
        ("dataset: 5\n", "dataset: must be a mapping with a `source` key, or a non-empty list of them"),
        ("dataset: []\n", "dataset: must have at least 1 item(s)"),
        ("dataset: {source: a, limt: 3}\n", "dataset.limt: unknown key (did you mean `limit`?)"),
        ("dataset: {source: a, limit: 0}\n", "dataset.limit: must be a positive integer"),
        ("dataset: {source: a, limit: ten}\n", "dataset.limit: must be a positive integer"),
        ("dataset: {source: ''}\n", "dataset.source: must not be empty"),
        (
            "dataset: [{source: a}, {source: b, format: xml}]\n",
            "dataset[1].format: must be one of auto, transcript, prompt-response, messages, pairwise (got 'xml')",
        ),
        ("dataset: {source: a, map: {answer: col}}\n", "dataset.map.answer: unknown key (allowed: prompt, chosen,"),
        ("dataset: {source: a, label_map: {'1': first}}\n", "dataset.label_map.1: must be one of a, b, tie"),
        (OK + "reward_model: [{model: a}]\n", "reward_model: unknown key (did you mean `reward_models`?)"),
        (OK + "reward_models: {model: a}\n", "reward_models: must be of type array (got mapping)"),
        (OK + "reward_models: [{alias: a}]\n", "reward_models[0].model: is required"),
        (OK + "reward_models: [{model: a, alias: bad-alias}]\n", "reward_models[0].alias: must match"),
        (
            OK + "reward_models: [{model: a, truncation: middle}]\n",
            "reward_models[0].truncation: must be one of left, right",
        ),
        (
            OK + "reward_models: [{model: a, alias: x}, {model: b, alias: x}]\n",
            "reward_models[1].alias: `x` is already used by reward_models[0]",
        ),
        (
            "dataset: [{source: a, name: n}, {source: b, name: n}]\n",
            "dataset[1].name: `n` is already used by dataset[0]",
        ),
        (OK + "embeddings: {fields: []}\n", "embeddings.fields: must have at least 1 item(s)"),
        (
            OK + "embeddings: {fields: [bogus]}\n",
            "embeddings.fields[0]: must be one of context, chosen, rejected, pair",
        ),
        (OK + "embeddings: {dtype: float64}\n", "embeddings.dtype: must be one of auto, float32, bfloat16, float16"),
        (OK + "embeddings: {max_seq_length: 4}\n", "embeddings.max_seq_length: must be >= 8"),
        (OK + "features: [{feature_set: taxonomy}]\n", "features[0].labeler: is required"),
        (OK + "features: [{labeler: llm, api_key_env: my_key}]\n", "features[0].api_key_env: must match"),
        (OK + "perturbations: [{method: typo, min_similarity: 2}]\n", "perturbations[0].min_similarity: must be <= 1"),
        (OK + "analysis: {imprint: {cov: robust}}\n", "analysis.imprint.cov: must be one of cluster, hc3, nonrobust"),
        (OK + "prices: {gpt: {input: -1}}\n", "prices.gpt.input: must be >= 0"),
        (OK + "version: 2\n", "version: must be 1 (got 2)"),
        ("- a\n- b\n", "(document): a spec is a YAML mapping (got list)"),
        ("dataset: [unclosed\n", "(document): invalid YAML at line"),
    ],
)
def test_validation_names_the_path(text, expected):
    with pytest.raises(SpecInvalid) as info:
        parse_spec(text, Path("spec.yaml"))
    messages = [str(p) for p in info.value.problems]
    assert any(m.startswith(expected) for m in messages), messages
    assert "\n" not in str(info.value)


def test_every_problem_is_reported():
    text = "dataset: {source: a, limit: 0}\nreward_models: [{model: a, batch_size: 0}, {model: b, dtype: int8}]\n"
    assert validation_errors(__import__("yaml").safe_load(text)) == [
        "dataset.limit: must be a positive integer",
        "reward_models[0].batch_size: must be a positive integer",
        "reward_models[1].dtype: must be one of auto, float32, bfloat16, float16 (got 'int8')",
    ]


def test_a_full_spec_is_valid():
    text = """
version: 1
name: hh-audit
store: ./store
dataset:
  - {source: Anthropic/hh-rlhf, data_dir: harmless-base, split: test, limit: 100}
  - {source: votes.csv, format: pairwise, map: {a: out1, b: out2, label: lab}, label_map: {'1': a, '2': b}}
reward_models:
  - {model: OpenAssistant/reward-model-deberta-v3-large-v2, alias: post, role: aligned, batch_size: auto}
  - {model: OpenAssistant/reward-model-deberta-v3-large, alias: pre, role: control, batch_size: 16}
embeddings: {model: sentence-transformers/all-MiniLM-L6-v2, fields: [context, chosen]}
features: [{labeler: llm, feature_set: seal, base_url: 'http://localhost:8000/v1', api_key_env: OPENAI_API_KEY}]
perturbations: [{method: typos, sides: both, min_similarity: 0.8}]
analysis: {imprint: {model: post, minus: pre, cov: cluster}, resistance: {model: post, control: pre}}
prices: {gpt-4o-mini: {input: 0.15, output: 0.6}}
"""
    spec = parse_spec(text, Path("/tmp/exp/spec.yaml"))
    assert [e for e, _ in spec.entries("dataset")] == ["dataset[0]", "dataset[1]"]
    assert [e for e, _ in spec.entries("embeddings")] == ["embeddings"]
    assert spec.store_path() == "/tmp/exp/store"
    assert spec.fingerprint() == parse_spec(text, Path("elsewhere.yaml")).fingerprint()


def test_spec_paths_resolve_against_the_spec_folder(tmp_path):
    spec = parse_spec(OK, tmp_path / "a" / "spec.yaml")
    base = str(tmp_path / "a")
    assert spec.resolve("data.jsonl") == f"{base}/data.jsonl"  # a data file, even before it exists
    assert spec.resolve("../x/train.parquet") == str(tmp_path / "x" / "train.parquet")
    assert spec.resolve("Anthropic/hh-rlhf") == "Anthropic/hh-rlhf"  # a Hub id
    (tmp_path / "a" / "repo").mkdir(parents=True)
    assert spec.resolve("repo") == f"{base}/repo"  # an existing folder next to the spec
    assert spec.resolve("org/name", is_path=True) == f"{base}/org/name"
    assert spec.resolve("/abs/file.jsonl") == "/abs/file.jsonl"


def test_check_spec_reports_unreadable_files(tmp_path):
    spec, problems = check_spec(tmp_path / "missing.yaml")
    assert spec is None and problems[0].path == "(document)" and "cannot read the spec" in problems[0].message


# -- plan and run through the CLI ----------------------------------------------------------------------
def test_relative_source_and_store_resolve_against_the_spec(run_cli, tmp_path, monkeypatch):
    data = tmp_path / "project" / "data"
    data.mkdir(parents=True)
    (data / "hh.jsonl").write_bytes(EXAMPLE.read_bytes())
    spec = write_spec(
        tmp_path / "project" / "specs" / "exp.yaml", "store: ../store\ndataset: {source: ../data/hh.jsonl}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run_cli("run", spec, "--json", store=None)
    assert result.exit_code == 0, result.output
    out = as_json(result)
    assert out["store"] == str(tmp_path / "project" / "store")
    assert out["stages"][0]["result"]["ingested"] == 8
    assert out["stages"][0]["result"]["recipe"]["params"]["source"] == str(data / "hh.jsonl")
    assert Store(tmp_path / "project" / "store").exists()
    assert not (elsewhere / "seal-store").exists()


def test_store_option_wins_over_the_spec(run_cli, tmp_path, store_path):
    spec = write_spec(tmp_path / "spec.yaml", f"store: spec-store\ndataset: {{source: {EXAMPLE}}}\n")
    out = as_json(run_cli("run", spec, "--json"))
    assert out["store"] == str(store_path)
    assert not (tmp_path / "spec-store").exists()


def test_plan_run_rerun_and_recipe_change(run_cli, tmp_path, store):
    spec = write_spec(tmp_path / "spec.yaml", f"dataset:\n  source: {EXAMPLE}\n  name: hh\n")

    def plan_of():
        result = run_cli("plan", spec, "--json")
        assert result.exit_code == 0, result.output
        out = as_json(result)
        validate_output("plan", out)
        return out["stages"][0]

    first = plan_of()
    assert (first["stage"], first["name"], first["status"], first["entry"]) == ("ingest", "hh", "pending", "dataset")

    ran = run_cli("run", spec)
    assert ran.exit_code == 0, ran.output
    assert "hh: read 8 rows (transcript): 8 new pairs, 0 already present, 0 quarantined" in ran.stdout
    version = store.version()

    assert plan_of()["status"] == "up-to-date"
    again = as_json(run_cli("run", spec, "--json"))
    validate_output("run", again)
    assert again["stages"][0]["status"] == "skipped" and again["stages"][0]["result"] is None
    assert Store(store.path).version() == version  # skipped: no new table version

    spec.write_text(f"dataset:\n  source: {EXAMPLE}\n  name: hh\n  limit: 5\n")
    stale = plan_of()
    assert stale["status"] == "stale" and stale["changed"] == ["limit"] and "limit" in stale["reason"]
    rerun = as_json(run_cli("run", spec, "--json"))
    assert rerun["stages"][0]["status"] == "done"
    assert rerun["stages"][0]["result"]["ingested"] == 0 and rerun["stages"][0]["result"]["already_present"] == 5
    assert plan_of()["status"] == "up-to-date"  # the no-op run was recorded
    assert Store(store.path).version() == version


def test_ingest_then_plan_agrees_with_the_cli(run_cli, tmp_path):
    assert run_cli("ingest", EXAMPLE, "--name", "hh").exit_code == 0
    spec = write_spec(tmp_path / "spec.yaml", f"dataset: {{source: {EXAMPLE}, name: hh}}\n")
    assert as_json(run_cli("plan", spec, "--json"))["stages"][0]["status"] == "up-to-date"


@pytest.fixture
def without_score_and_embed(monkeypatch):
    """The registry as it was before scoring and embedding stages existed."""
    for name in ("score", "embed"):
        monkeypatch.delitem(pipeline._REGISTRY, name, raising=False)


def test_unavailable_stages_are_reported_and_do_not_fail(run_cli, tmp_path, without_score_and_embed):
    spec = write_spec(
        tmp_path / "spec.yaml",
        f"dataset: {{source: {EXAMPLE}}}\nreward_models: [{{model: some/rm, alias: rm}}]\n"
        "embeddings: {fields: [chosen]}\n",
    )
    plan = as_json(run_cli("plan", spec, "--json"))
    assert [(s["entry"], s["stage"], s["status"]) for s in plan["stages"]] == [
        ("dataset", "ingest", "pending"),
        ("reward_models[0]", "score", "unavailable"),
        ("embeddings", "embed", "unavailable"),
    ]
    result = run_cli("run", spec)
    assert result.exit_code == 0, result.output
    assert "unavailable" in result.stdout and "8 new pairs" in result.stdout
    out = as_json(run_cli("run", spec, "--json"))
    assert out["ok"] and [s["status"] for s in out["stages"]] == ["skipped", "unavailable", "unavailable"]


# -- stages registered from outside the runner -------------------------------------------------------------
class ShoutStage:
    """A test stage: writes `shout_len`, the length of the upper-cased chosen response."""

    calls: ClassVar[list[int]] = []  # rows computed per run

    def __init__(self, entry: dict[str, Any], spec: Any):
        self.recipe = Recipe("shout", entry.get("name", "shout"), {"exclaim": entry.get("exclaim", False)})

    def plan(self, store: Store) -> Plan:
        fingerprint = self.recipe.fingerprint()
        stage, name = self.recipe.stage, self.recipe.name
        if any(r["fingerprint"] == fingerprint for r in store.runs(stage)):
            return Plan(stage, name, fingerprint, pipeline.UP_TO_DATE, "done", 0, "shout_len")
        return Plan(stage, name, fingerprint, pipeline.PENDING, "not computed", None, "shout_len")

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> dict[str, Any]:
        started = now_utc()
        rows = store.read(["pair_id", "chosen"])
        bang = "!" if self.recipe.params["exclaim"] else ""
        lengths = [len((text or "").upper() + bang) for text in rows.column("chosen").to_pylist()]
        values = pa.table({"pair_id": rows.column("pair_id"), "shout_len": pa.array(lengths, pa.int64())})
        version = store.materialize_column("shout_len", values)
        store.record_run(
            RunRecord(
                new_run_id(),
                self.recipe.stage,
                self.recipe.name,
                plan.fingerprint,
                self.recipe.to_dict(),
                {},
                "done",
                len(lengths),
                version,
                started,
                now_utc(),
            )
        )
        ShoutStage.calls.append(len(lengths))
        return {"rows": len(lengths), "summary": f"shouted {len(lengths)} responses"}


SHOUT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "exclaim": {"type": "boolean"}},
}


@pytest.fixture
def shout_stage():
    ShoutStage.calls = []
    register_stage("shout", section="shout", order=5, section_schema=SHOUT_SCHEMA)(ShoutStage)
    try:
        yield ShoutStage
    finally:
        unregister_stage("shout")


def test_a_registered_stage_plugs_in(run_cli, tmp_path, shout_stage, store):
    spec = write_spec(tmp_path / "spec.yaml", f"dataset: {{source: {EXAMPLE}}}\nshout: {{exclaim: true}}\n")
    plan = as_json(run_cli("plan", spec, "--json"))
    assert [(s["stage"], s["status"], s["entry"]) for s in plan["stages"]] == [
        ("ingest", "pending", "dataset"),
        ("shout", "pending", "shout"),
    ]
    result = run_cli("run", spec)
    assert result.exit_code == 0, result.output
    assert "shouted 8 responses" in result.stdout
    rows = as_json(run_cli("query", "--select", "chosen,shout_len", "--limit", "0", "--json"))
    assert all(r["shout_len"] == len(r["chosen"].upper()) + 1 for r in rows)
    out = as_json(run_cli("run", spec, "--json"))
    validate_output("run", out)
    assert [s["status"] for s in out["stages"]] == ["skipped", "skipped"]
    assert shout_stage.calls == [8]  # first run computes, rerun computes nothing

    spec.write_text(f"dataset: {{source: {EXAMPLE}}}\nshout: {{exclaim: false}}\n")
    assert as_json(run_cli("plan", spec, "--json"))["stages"][1]["status"] == "pending"
    assert run_cli("run", spec).exit_code == 0
    assert shout_stage.calls == [8, 8]  # recipe change recomputes


def test_a_registered_section_is_validated_and_removed_with_its_stage(shout_stage):
    with pytest.raises(SpecInvalid, match=r"shout.exclaim: must be of type boolean"):
        parse_spec("dataset: {source: a}\nshout: {exclaim: loud}\n")
    unregister_stage("shout")
    with pytest.raises(SpecInvalid, match=r"shout: unknown key"):
        parse_spec("dataset: {source: a}\nshout: {exclaim: true}\n")


def test_register_stage_refuses_ambiguity():
    pipeline.registered_stages()  # the built-in stages register on first use
    with pytest.raises(ValueError, match="already registered"):
        register_stage("ingest", section="elsewhere", section_schema={"type": "object"})(ShoutStage)
    with pytest.raises(ValueError, match="already handled by stage `ingest`"):
        register_stage("ingest2", section="dataset")(ShoutStage)
    with pytest.raises(ValueError, match="not a spec section"):
        register_stage("mystery", section="mystery")(ShoutStage)
    with pytest.raises(ValueError, match="already exists"):
        register_stage("analyse", section="analysis", section_schema={"type": "object"})(ShoutStage)
    assert "ingest2" not in pipeline.registered_stages() and "mystery" not in pipeline.registered_stages()


def test_a_stage_for_a_known_section_replaces_unavailable(run_cli, tmp_path, monkeypatch):
    pipeline.registered_stages()
    monkeypatch.delitem(pipeline._REGISTRY, "perturb", raising=False)  # a real one may exist

    class FakePerturb(ShoutStage):
        def __init__(self, entry, spec):
            self.recipe = Recipe("perturb", entry["method"], {"exclaim": True})

    register_stage("perturb", section="perturbations")(FakePerturb)
    try:
        assert pipeline.registered_stages()["perturb"].order == pipeline.KNOWN_SECTIONS["perturbations"][1]
        spec = write_spec(
            tmp_path / "spec.yaml", f"dataset: {{source: {EXAMPLE}}}\nperturbations: [{{method: typo}}]\n"
        )
        plan = as_json(run_cli("plan", spec, "--json"))
        assert [(s["stage"], s["name"], s["status"]) for s in plan["stages"]][1] == ("perturb", "typo", "pending")
    finally:
        unregister_stage("perturb")


# -- failures and --on-error ----------------------------------------------------------------------------
def test_on_error_fail_and_keep_going(run_cli, tmp_path, store):
    spec = write_spec(
        tmp_path / "spec.yaml",
        f"dataset:\n  - {{source: missing.jsonl, name: gone}}\n  - {{source: {EXAMPLE}, name: hh}}\n",
    )
    plan = run_cli("plan", spec, "--json")
    assert plan.exit_code == 1 and "dataset[0] (ingest) cannot be planned: no such file" in plan.stderr
    validate_output("plan", as_json(plan))

    failed = run_cli("run", spec, "--json")
    assert failed.exit_code == 1
    out = as_json(failed)
    validate_output("run", out)
    assert not out["ok"] and [s["status"] for s in out["stages"]] == ["failed", "not-run"]
    assert "Error: stage dataset[0] (ingest gone) failed: no such file" in failed.stderr
    assert not store.exists()  # fail: nothing ran

    kept = run_cli("run", spec, "--on-error", "keep-going")
    assert kept.exit_code == 1
    assert "8 new pairs" in kept.stdout and len(kept.stderr.strip().splitlines()) == 1
    assert Store(store.path).count() == 8


@pytest.fixture
def failing_stage():
    class Failing(ShoutStage):
        error: Exception = SealError("the model is missing", hint="check reward_models")

        def __init__(self, entry, spec):
            self.recipe = Recipe("fail", "boom", {})

        def run(self, store, plan, show_progress=False):
            raise Failing.error

    register_stage("fail", section="fail", order=-1, section_schema={"type": "object"})(Failing)
    try:
        yield Failing
    finally:
        unregister_stage("fail")


def test_a_failing_stage_stops_the_run_or_not(run_cli, tmp_path, failing_stage, store):
    spec = write_spec(tmp_path / "spec.yaml", f"fail: {{}}\ndataset: {{source: {EXAMPLE}}}\n")
    result = run_cli("run", spec, "--json")
    out = as_json(result)
    assert [(s["plan"]["stage"], s["status"]) for s in out["stages"]] == [("fail", "failed"), ("ingest", "not-run")]
    assert out["stages"][1]["plan"]["status"] == "pending"
    assert result.stderr.strip() == "Error: stage fail (fail boom) failed: the model is missing (check reward_models)"
    assert not store.exists()

    kept = as_json(run_cli("run", spec, "--on-error", "keep-going", "--json"))
    assert [s["status"] for s in kept["stages"]] == ["failed", "done"]


def test_unexpected_exceptions(run_cli, tmp_path, failing_stage, store):
    failing_stage.error = RuntimeError("CUDA out of memory")
    spec = write_spec(tmp_path / "spec.yaml", f"fail: {{}}\ndataset: {{source: {EXAMPLE}}}\n")
    result = run_cli("run", spec)
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("Error: unexpected RuntimeError: CUDA out of memory")
    kept = as_json(run_cli("run", spec, "--on-error", "keep-going", "--json"))
    assert kept["stages"][0]["error"] == "unexpected RuntimeError: CUDA out of memory"
    assert kept["stages"][1]["status"] == "done"


def test_python_api(tmp_path):
    store = Store(tmp_path / "api-store")
    spec = parse_spec(f"dataset: {{source: {EXAMPLE}, name: hh}}\n", tmp_path / "spec.yaml")
    assert [p.status for p in pipeline.plan(store, spec)] == ["pending"]
    report = pipeline.run(store, spec)
    assert report.ok and report.stages[0]["result"]["ingested"] == 8
    assert [p.status for p in pipeline.plan(store, spec)] == ["up-to-date"]
    with pytest.raises(SealError, match="unknown on_error"):
        pipeline.run(store, spec, on_error="maybe")


def test_the_demo_spec_runs(run_cli):
    """README: `seal run examples/demo.yaml` ingests the shipped example and prints what each stage did."""
    demo = REPO / "examples" / "demo.yaml"
    assert run_cli("validate", demo).exit_code == 0
    result = run_cli("run", demo)
    assert result.exit_code == 0, result.output
    assert "tiny-hh: read 8 rows (transcript): 8 new pairs" in result.stdout
    assert "up-to-date" in run_cli("plan", demo).stdout
