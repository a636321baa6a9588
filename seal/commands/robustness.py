"""`seal robustness`: how reward models react to meaning-preserving rewrites."""

from __future__ import annotations

import click

from seal import api
from seal.commands.common import emit_json, get_store, json_option
from seal.commands.options import confidence_option, correction_option


@click.command("robustness")
@click.option("--model", help="Only this RM (default: every scored RM).")
@click.option("--method", help="Only this perturbation (default: every perturbation in the store).")
@click.option("--include-dissimilar", is_flag=True, help="Keep variants below their --min-similarity.")
@click.option("--feature-set", help="Feature set for the robustness score (default: every labelled one).")
@click.option("--logit", is_flag=True, help="Logit instead of the linear-probability model for the robustness score.")
@click.option(
    "--min-flips",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="A feature flip enters the robustness-score regression when at least this many pairs have it.",
)
@correction_option("Multiple-testing correction of the robustness-score p-values.")
@confidence_option("Confidence level of the Wilson and coefficient intervals.")
@click.option(
    "--semantic-floor",
    type=click.FloatRange(0.0001, 1),
    default=0.01,
    show_default=True,
    help="Lower bound of the mean semantic change in the sensitivity ratio.",
)
@click.option(
    "--population",
    type=click.Choice(["all", "aligned-before"]),
    default="all",
    show_default=True,
    help="Pairs of the robustness-score regression: all (the paper's π; a pair not aligned before has outcome 0) "
    "or aligned-before (only pairs the RM got right before rewriting).",
)
@click.option(
    "--ties",
    type=click.Choice(["exclude", "disagree"]),
    default="exclude",
    show_default=True,
    help="Tie rule, as in `seal resistance`: exclude = exact ties apart; disagree = a tie counts as disagreement.",
)
@json_option
@click.pass_context
def robustness_command(
    ctx: click.Context,
    model: str | None,
    method: str | None,
    include_dissimilar: bool,
    feature_set: str | None,
    logit: bool,
    min_flips: int,
    correction: str,
    confidence: float,
    semantic_floor: float,
    population: str,
    ties: str,
    json_: bool,
) -> None:
    """How reward models react to meaning-preserving rewrites: agreement before/after with CIs, flips with an
    exact McNemar test, reward correlation and change (in reward SDs), shift angle, sensitivity per
    perturbation, and (with labelled variants) SEAL's robustness score.

    \b
    Examples:
      seal robustness
      seal robustness --model oa_large_v2 --method llm --json
      seal robustness --population aligned-before   # π conditional on agreeing before
    """
    result = api.robustness(
        get_store(ctx),
        model=model,
        method=method,
        include_dissimilar=include_dissimilar,
        feature_set=feature_set,
        estimator="logit" if logit else "lpm",
        min_flips=min_flips,
        correction=correction,
        confidence=confidence,
        semantic_floor=semantic_floor,
        population=population,
        ties=ties,
    )
    if json_:
        emit_json(result.to_json())
        return
    click.echo(result.to_text())
