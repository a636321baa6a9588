"""The SEAL paper's setup as a spec (examples/seal-paper.yaml): `seal plan` offline with its estimates, `--set`
overrides, and the same spec run end to end with the Hub ids overridden to local models, the labeler and the
rewriter pointed at a local OpenAI-compatible server, every stage, analysis and the report checked."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from conftest import REPO
from spec_llm import SpecLLM, write_pairs
from tiny_models import build_deberta_rm

from seal.cli_schemas import validate_output
from seal.errors import SpecError
from seal.spec import SpecInvalid, load_spec, parse_spec

PAPER = REPO / "examples" / "seal-paper.yaml"


def as_json(result) -> dict:
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def sets(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


# -- the spec and `seal plan` offline ----------------------------------------------------------------------
def test_the_paper_spec_says_what_the_paper_did():
    spec = load_spec(PAPER)
    doc = spec.document
    assert doc["dataset"]["source"] == "Anthropic/hh-rlhf" and doc["dataset"]["data_dir"] == "harmless-base"
    models = {rm["alias"]: (rm["model"], rm["role"]) for rm in doc["reward_models"]}
    assert models == {
        "pre": ("OpenAssistant/reward-model-deberta-v3-large", "control"),
        "post": ("OpenAssistant/reward-model-deberta-v3-large-v2", "aligned"),
    }
    llm = [f for f in doc["features"] if f["labeler"] == "llm"]
    assert llm and llm[0]["feature_set"] == "seal-taxonomy"
    (rewrite,) = doc["perturbations"]
    assert rewrite["method"] == "llm" and rewrite["sample"] == "1%" and rewrite["seed"] == 0
    assert set(spec.section("analyses")) >= {"resistance", "imprint", "robustness", "confusing"}
    assert "report" in doc and "findings" in doc


def test_seal_plan_works_offline_and_estimates(run_cli, tmp_path):
    """No network (HF_HUB_OFFLINE=1, an empty Hub cache): the plan names the downloads and estimates the work
    from the published size of hh-rlhf harmless-base train; exit 0."""
    t0 = time.perf_counter()
    result = run_cli("plan", PAPER, "--json")
    seconds = time.perf_counter() - t0
    assert result.exit_code == 0, result.output
    out = as_json(result)
    validate_output("plan", out)
    stages = {(s["stage"], s["name"]): s for s in out["stages"]}
    ingest = stages[("ingest", "hh-rlhf-harmless")]["estimate"]
    assert ingest["pairs"] == 42_537 and ingest["estimated"] is True
    assert "published size, not downloaded" in ingest["basis"]
    for alias in ("pre", "post"):
        score = stages[("score", alias)]
        assert score["status"] == "pending" and score["reason"].startswith("needs a download")
        assert score["estimate"]["texts"] == 2 * 42_537
    llm = stages[("label", "seal_taxonomy")]["estimate"]
    assert llm["requests"] == 2 * 42_537 and llm["input_tokens"] > 500 * llm["requests"]
    assert llm["cost_usd"] > 0 and "list price of gpt-4o-mini" in llm["price_source"]
    rewrite = stages[("perturb", "llm_rewrite")]["estimate"]
    assert rewrite["sampled_pairs"] == math.ceil(42_537 / 100) and rewrite["requests"] == 2 * 426
    assert rewrite["rescore_texts"] == 2 * rewrite["rewrites"]  # both RMs re-score every rewrite
    assert stages[("embed", "all-MiniLM-L6-v2")]["estimate"]["texts"] == 4 * 42_537
    totals = out["totals"]
    assert {"dataset": "Anthropic/hh-rlhf", "data_dir": "harmless-base", "split": "train"} in totals["downloads"]
    assert {"model": "OpenAssistant/reward-model-deberta-v3-large-v2"} in totals["downloads"]
    assert totals["requests"] == llm["requests"] + rewrite["requests"]
    assert totals["cost_usd"] == pytest.approx(llm["cost_usd"] + rewrite["cost_usd"], abs=0.01)
    analyses = [s for s in out["stages"] if s["stage"] == "analysis"]
    assert len(analyses) == 8 and all(s["status"] == "pending" for s in analyses)
    print(f"seal plan (offline) took {seconds:.1f} s")

    human = run_cli("plan", PAPER)
    assert human.exit_code == 0
    assert "download: model OpenAssistant/reward-model-deberta-v3-large" in human.stdout
    assert "LLM: ~85,926 requests" in human.stdout and "~42,537 pairs" in human.stdout

    full = as_json(run_cli("plan", PAPER, "--json", *sets("dataset.data_dir=", "features.llm.model=gpt-4-turbo")))
    full_stages = {(s["stage"], s["name"]): s["estimate"] for s in full["stages"]}
    assert full_stages[("ingest", "hh-rlhf-harmless")]["pairs"] == 160_800  # the paper's 160,800 pairs
    assert full_stages[("label", "seal_taxonomy")]["cost_usd"] > 20 * llm["cost_usd"]  # gpt-4-turbo costs more


# -- --set ----------------------------------------------------------------------------------------------------
def test_set_overrides_select_by_index_or_name_and_parse_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-rm").mkdir()
    base = load_spec(PAPER)
    spec = load_spec(
        PAPER,
        [
            "reward_models.pre.model=my-rm",  # by alias; a path relative to the current folder
            "reward_models[1].batch_size=8",  # by index; an integer
            "features.seal-taxonomy.temperature=0.5",  # by feature set; a float
            "perturbations.llm_rewrite.params.base_url=http://127.0.0.1:9/v1",
            "dataset.limit=100",
            "dataset.split=",  # removes the key
            "report.out=r.html",
            "analyses.resistance.by=[dataset]",  # a YAML list
        ],
    )
    doc = spec.document
    assert doc["reward_models"][0]["model"] == str(tmp_path / "my-rm")
    assert doc["reward_models"][1]["batch_size"] == 8
    assert doc["features"][1]["temperature"] == 0.5
    assert doc["perturbations"][0]["params"]["base_url"] == "http://127.0.0.1:9/v1"
    assert doc["dataset"]["limit"] == 100 and "split" not in doc["dataset"]
    assert doc["report"]["out"] == str(tmp_path / "r.html")
    assert doc["analyses"]["resistance"]["by"] == ["dataset"]
    assert spec.fingerprint() != base.fingerprint() and len(spec.overrides) == 8
    assert load_spec(PAPER, ["dataset.limit=100"]).fingerprint() != load_spec(PAPER, ["dataset.limit=99"]).fingerprint()
    assert load_spec(PAPER).document == base.document  # the file is not changed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("reward_models.mid.model=x", "no item `mid` in `reward_models`"),
        ("reward_models[5].model=x", "`reward_models` has 2 item(s); no index 5"),
        ("dataset.source.deep=x", "`dataset.source` is a string, not a mapping or list"),
        ("dataset", "expected KEY=VALUE"),
        ("dataset..source=x", "bad key"),
        ("dataset.limit=[unclosed", "cannot parse the value"),
    ],
)
def test_set_errors_are_one_clear_line(override, message):
    with pytest.raises(SpecError) as info:
        load_spec(PAPER, [override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_set_values_are_validated_and_blamed():
    with pytest.raises(SpecInvalid) as info:
        load_spec(PAPER, ["reward_models.pre.modle=x", "dataset.limit=0"])
    messages = [str(p) for p in info.value.problems]
    assert "reward_models[0].modle: unknown key (did you mean `model`?) (from --set reward_models.pre.modle=x)" in (
        messages
    )
    assert "dataset.limit: must be a positive integer (from --set dataset.limit=0)" in messages


def test_validate_and_run_take_set(run_cli, tmp_path):
    out = as_json(run_cli("validate", PAPER, "--json", *sets("dataset.limit=5")))
    validate_output("validate", out)
    assert out["valid"] and out["overrides"] == ["dataset.limit=5"]
    bad = run_cli("validate", PAPER, *sets("dataset.limit=zero"))
    assert bad.exit_code == 1 and "dataset.limit: must be a positive integer (from --set dataset.limit=zero)" in (
        bad.stdout
    )
    spec = tmp_path / "s.yaml"
    spec.write_text(f"dataset: {{source: {REPO / 'examples' / 'tiny-hh.jsonl'}, name: a}}\n")
    ran = as_json(run_cli("run", spec, "--json", *sets("dataset.name=b", "dataset.limit=3")))
    validate_output("run", ran)
    assert ran["overrides"] == ["dataset.name=b", "dataset.limit=3"]
    assert ran["stages"][0]["result"]["dataset"] == "b" and ran["stages"][0]["result"]["ingested"] == 3


def test_old_analysis_section_still_reads_but_not_with_analyses():
    text = "dataset: {source: a.jsonl}\nanalysis: {resistance: {model: post}}\n"
    assert parse_spec(text).section("analyses") == {"resistance": {"model": "post"}}
    with pytest.raises(SpecInvalid, match="old name of `analyses`"):
        parse_spec(text + "analyses: {imprint: {}}\n")


# -- end to end ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_rms(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("rms")
    return build_deberta_rm(folder / "pre", seed=1), build_deberta_rm(folder / "post", seed=2)


def test_the_paper_spec_runs_end_to_end_on_local_models(run_cli, tmp_path, local_rms):
    """The paper's spec with its Hub ids overridden to local models and its LLM endpoints to a local server:
    every stage ran, every analysis wrote numbers, and a rerun does nothing."""
    pre, post = local_rms
    data = write_pairs(tmp_path / "pairs.jsonl", 40)
    store = tmp_path / "store"
    with SpecLLM() as llm:
        overrides = sets(
            f"dataset.source={data}",
            "dataset.name=mini",
            "dataset.data_dir=",
            "dataset.split=",
            f"reward_models.pre.model={pre}",
            f"reward_models.post.model={post}",
            f"features.seal-taxonomy.base_url={llm.url}",
            f"perturbations.llm_rewrite.params.base_url={llm.url}",
        )
        t0 = time.perf_counter()
        result = run_cli("run", PAPER, "--json", "--verbose", *overrides, store=store)
        seconds = time.perf_counter() - t0
        assert result.exit_code == 0, result.stderr
        out = as_json(result)
        validate_output("run", out)
        status = {(s["plan"]["stage"], s["plan"]["name"]): s["status"] for s in out["stages"]}
        report_ready = status.pop(("report", "report")) == "done"
        assert set(status.values()) == {"done"}, status
        results = {(s["plan"]["stage"], s["plan"]["name"]): s["result"] for s in out["stages"]}
        assert results[("ingest", "mini")]["ingested"] == 40
        assert results[("label", "seal_taxonomy")]["labelled"] > 0
        rewrite = results[("perturb", "llm_rewrite")]
        assert rewrite["pairs_sampled"] == 1 and rewrite["variants"]["total"] == 2  # 1 % of 40 pairs, rounded up
        assert len(llm.rewrites) == 2 and {r["alias"] for r in rewrite["rescored"]} == {"pre", "post"}
        assert "[2/17] score pre:" in result.stderr and "finished in" in result.stderr

        folder = tmp_path / "store-outputs"
        resistance = json.loads((folder / "resistance.json").read_text())
        validate_output("resistance", resistance)
        assert resistance["model"]["alias"] == "post" and resistance["control"]["alias"] == "pre"
        regimes = resistance["regimes"]
        assert regimes["n"] >= 38 and 0 <= regimes["resists"]["share"] <= 1
        assert (
            sum(regimes[k]["count"] for k in ("stayed_aligned", "got_aligned", "resists", "reversed")) == regimes["n"]
        )
        gamma = json.loads((folder / "resistance_labeler_regime.json").read_text())
        assert gamma["features"] and gamma["rows"]
        for name in ("imprint_post", "imprint_pre", "imprint_change", "imprint_pairs"):
            imprint = json.loads((folder / f"{name}.json").read_text())
            validate_output("imprint", imprint)
            coefficients = imprint["regressions"][0]["coefficients"]
            assert any(c["beta"] is not None and math.isfinite(c["beta"]) for c in coefficients[1:]), name
        assert json.loads((folder / "imprint_change.json").read_text())["minus"] == "pre"
        robustness = json.loads((folder / "robustness.json").read_text())
        validate_output("robustness", robustness)
        assert {r["model"] for r in robustness["results"]} == {"pre", "post"}
        confusing = json.loads((folder / "confusing.json").read_text())
        assert confusing["counts"]["identical"] == 1 and confusing["counts"]["contradictory"] >= 1
        manifest = json.loads((folder / "manifest.json").read_text())["outputs"]
        assert len(manifest) == 8 + report_ready
        if report_ready:
            assert (folder / "report.html").stat().st_size > 1000

        llm.reset_counts()
        again = as_json(run_cli("run", PAPER, "--json", *overrides, store=store))
        assert {s["status"] for s in again["stages"]} <= {"skipped", "unavailable"}, again["stages"]
        assert llm.chat_requests == 0
    print(f"paper spec end to end: {seconds:.1f} s")


# -- pieces: percentages, output steps, the findings stage --------------------------------------------------------
def test_percentage_samples_round_up():
    from seal.pipeline import percent_sample, sample_count

    assert percent_sample({"sample": "1%"}) == 1.0 and percent_sample({"sample": " 0.5 %"}) == 0.5
    assert percent_sample({"sample": 40}) is None and percent_sample({}) is None
    assert sample_count(1, 42_537) == 426 and sample_count(1, 160_800) == 1_608  # the paper's 1,608 rewrites
    assert sample_count(0.5, 1000) == 5 and sample_count(1, 0) == 1 and sample_count(100, 7) == 7
    with pytest.raises(SpecInvalid, match="must be a positive integer or a percentage"):
        parse_spec("dataset: {source: a.jsonl}\nperturbations: [{method: typos, sample: 1 percent}]\n")


def _import_scores(store, path: Path, alias: str, seed: int) -> None:
    import random

    import seal

    ids = store.pair_ids().to_pylist()
    rng = random.Random(seed)
    rows = [{"pair_id": i, "chosen": rng.gauss(0, 1), "rejected": rng.gauss(0, 1)} for i in ids]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    seal.import_scores(store, str(path), alias, role="aligned", replace=True)


def test_output_steps_are_current_until_the_store_or_their_options_change(run_cli, tmp_path, store):
    """An analysis result is remade only when the store changed or its options did; its file never half-written."""
    example = REPO / "examples" / "tiny-hh.jsonl"
    spec = tmp_path / "s.yaml"
    spec.write_text(
        f"dataset: {{source: {example}, name: hh}}\nfindings: {{kinds: [identical]}}\n"
        "analyses: {out: results, resistance: {confidence: 0.9}, confusing: {}}\n"
    )
    failed = run_cli("run", spec, "--on-error", "keep-going")  # no scores yet: resistance fails, nothing else
    assert failed.exit_code == 1 and "analyses.resistance (analysis resistance) failed" in failed.stderr
    assert (tmp_path / "results" / "confusing.json").exists()
    _import_scores(store, tmp_path / "a.jsonl", "rm", seed=1)
    first = as_json(run_cli("run", spec, "--json"))
    status = {s["plan"]["name"]: s["status"] for s in first["stages"]}
    assert status == {"hh": "skipped", "findings": "done", "resistance": "done", "confusing": "done"}, status
    results = tmp_path / "results"
    made = json.loads((results / "resistance.json").read_text())
    assert made["confidence"] == 0.9 and made["model"]["alias"] == "rm"
    plan = {s["name"]: s for s in as_json(run_cli("plan", spec, "--json"))["stages"]}
    assert {plan[n]["status"] for n in ("findings", "resistance", "confusing")} == {"up-to-date"}

    _import_scores(store, tmp_path / "b.jsonl", "rm", seed=2)  # the store changed
    plan = {s["name"]: s for s in as_json(run_cli("plan", spec, "--json"))["stages"]}
    assert plan["findings"]["status"] == "pending"  # findings depend on every column ...
    assert plan["resistance"]["reason"] == "runs after the 1 stage(s) above with work to do"  # ... analyses wait
    alone = sets("findings=", "analyses.confusing=")
    plan = {s["name"]: s for s in as_json(run_cli("plan", spec, "--json", *alone))["stages"]}
    assert plan["resistance"]["status"] == "pending"
    assert plan["resistance"]["reason"] == "the store changed since resistance.json was made"
    lower = [*alone, *sets("analyses.resistance.confidence=0.8")]
    plan = {s["name"]: s for s in as_json(run_cli("plan", spec, "--json", *lower))["stages"]}
    assert plan["resistance"]["status"] == "stale" and plan["resistance"]["changed"] == ["confidence"]
    assert run_cli("run", spec, *lower).exit_code == 0
    assert json.loads((results / "resistance.json").read_text())["confidence"] == 0.8
    assert not [p for p in results.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_findings_are_recomputed_when_their_table_is_incomplete(run_cli, tmp_path, store):
    """A run killed between writing the findings columns and the findings table leaves a plan with work."""
    data = write_pairs(tmp_path / "pairs.jsonl", 8)  # one pair with identical responses
    spec = tmp_path / "s.yaml"
    spec.write_text(f"dataset: {{source: {data}}}\nfindings: {{kinds: [identical]}}\n")
    assert run_cli("run", spec).exit_code == 0

    def findings_plan() -> dict:
        return next(s for s in as_json(run_cli("plan", spec, "--json"))["stages"] if s["stage"] == "findings")

    assert findings_plan()["status"] == "up-to-date"
    assert store.side_count("findings") == 1
    store.side_delete("findings", "kind IS NOT NULL")
    assert findings_plan()["status"] == "pending"
    assert run_cli("run", spec).exit_code == 0 and store.side_count("findings") == 1
    assert findings_plan()["status"] == "up-to-date"
