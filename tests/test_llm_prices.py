"""`seal label --labeler llm --dry-run` states a cost for common hosted models (dated list prices in
seal/annotate/features/llm_prices.py) and for any model with `--price-in/--price-out`."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from seal.annotate.features.llm_prices import LIST_PRICES, PRICES_AS_OF, list_price, resolve_price
from seal.cli_schemas import validate_output
from seal.errors import SealError

EXAMPLE = REPO / "examples" / "tiny-hh.jsonl"
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


@pytest.fixture
def dry_run(run_cli, tmp_path):
    assert run_cli("ingest", EXAMPLE, "--silent").exit_code == 0
    feature_set = tmp_path / "mini.yaml"
    feature_set.write_text(FEATURE_SET)

    def invoke(model: str, *extra: str, json_: bool = True):
        args = ["label", "--labeler", "llm", "--feature-set", feature_set, "--model", model, "--dry-run", *extra]
        result = run_cli(*args, *(["--json"] if json_ else []))
        if json_ and result.exit_code == 0:
            out = json.loads(result.stdout)
            validate_output("label", out)
            return result, out["estimate"]
        return result, None

    return invoke


def expected_cost(estimate: dict, price_in: float, price_out: float, factor: float = 1.0) -> float:
    return round((estimate["input_tokens"] * price_in + estimate["output_tokens"] * price_out) / 1e6 * factor, 6)


def test_dry_run_prices_a_known_model_from_the_dated_list(dry_run):
    result, estimate = dry_run("gpt-4o-mini")
    assert result.exit_code == 0, result.output
    assert estimate["requests"] > 0 and estimate["input_tokens"] > 0
    assert estimate["price_per_million"] == {"input": 0.15, "output": 0.60}
    assert estimate["price_source"] == f"list price of gpt-4o-mini as of {PRICES_AS_OF}"
    assert estimate["cost_usd"] == expected_cost(estimate, 0.15, 0.60) > 0
    line = dry_run("gpt-4o-mini", json_=False)[0].stdout
    assert f"(${0.15:g}/${0.6:g} per million input/output tokens: list price of gpt-4o-mini as of" in line


def test_price_flags_override_the_list_and_price_any_model(dry_run):
    _, estimate = dry_run("gpt-4o-mini", "--price-in", "1", "--price-out", "2")
    assert estimate["price_per_million"] == {"input": 1.0, "output": 2.0} and estimate["price_source"] == "user"
    assert estimate["cost_usd"] == expected_cost(estimate, 1.0, 2.0)

    _, unknown = dry_run("my-local-model")
    assert unknown["cost_usd"] is None and "pass --price-in/--price-out" in unknown["note"]
    _, priced = dry_run("my-local-model", "--price-in", "0.2", "--price-out", "0.8")
    assert priced["cost_usd"] == expected_cost(priced, 0.2, 0.8)

    # One side given: the other from the list, or an error when there is none.
    _, half = dry_run("gpt-4.1", "--price-out", "5")
    assert half["price_per_million"] == {"input": 2.0, "output": 5.0}
    result, _ = dry_run("my-local-model", "--price-in", "0.2")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: no output price known for `my-local-model` (pass --price-out too (USD per million tokens))"
    )


def test_a_price_file_wins_over_the_list_and_the_flags_win_over_the_file(dry_run, tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("gpt-4o: {input: 3, output: 12}\n")
    _, estimate = dry_run("gpt-4o", "--prices", str(prices))
    assert estimate["price_per_million"] == {"input": 3.0, "output": 12.0} and estimate["price_source"] == "user"
    _, flagged = dry_run("gpt-4o", "--prices", str(prices), "--price-in", "4")
    assert flagged["price_per_million"] == {"input": 4.0, "output": 12.0}
    _, batch = dry_run("gpt-4o", "--batch-api")
    assert batch["cost_usd"] == expected_cost(batch, 2.5, 10.0, factor=0.5)


def test_model_ids_match_their_snapshots_aliases_and_provider_prefix():
    assert list_price("gpt-4o-2024-08-06") == ("gpt-4o", {"input": 2.5, "output": 10.0})
    assert list_price("gpt-4o-2024-05-13") == ("gpt-4o-2024-05-13", {"input": 5.0, "output": 15.0})
    assert list_price("openai/gpt-4.1-mini") == ("gpt-4.1-mini", {"input": 0.4, "output": 1.6})
    assert list_price("claude-3-5-haiku-latest") == ("claude-3-5-haiku", {"input": 0.8, "output": 4.0})
    assert list_price("claude-sonnet-4-20250514") == ("claude-sonnet-4", {"input": 3.0, "output": 15.0})
    assert list_price("gpt-4o-mini-2024-07-18")[0] == "gpt-4o-mini"
    assert list_price("SmolLM2-135M-Instruct") is None
    assert all(0 < i <= o for i, o in LIST_PRICES.values())  # output never cheaper than input
    with pytest.raises(SealError, match="no input price known"):
        resolve_price("x", None, None, 1.0)
