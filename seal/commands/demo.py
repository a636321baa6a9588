"""`seal demo`."""

from __future__ import annotations

from typing import Any

import click

from seal import api
from seal.commands.common import emit_json, info, json_option


@click.command("demo")
@click.option(
    "--out",
    default="seal-demo",
    show_default=True,
    metavar="DIR",
    help="Folder for the store, the probes, the analyses and the report.",
)
@click.option(
    "--pairs",
    type=click.IntRange(min=40, max=300),
    help="Use only the first N pairs of the shipped 300 (a seeded sample), e.g. for a quicker look.",
)
@click.option(
    "--perturb-sample",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Pairs rewritten by each rule perturbation (a seeded sample).",
)
@click.option("--force", is_flag=True, help="Start over: clear DIR first (only a folder an earlier demo made).")
@click.option(
    "--llm/--no-llm",
    default=None,
    help="Also run the LLM labeler and rewriter on a small sample (default: when OPENAI_BASE_URL or "
    "OPENAI_API_KEY is set).",
)
@click.option(
    "--llm-model",
    envvar="SEAL_LLM_MODEL",
    metavar="ID",
    help="Model of the LLM steps (env SEAL_LLM_MODEL; default gpt-4o-mini on the OpenAI API, else the "
    "endpoint's first model).",
)
@json_option
def demo_command(json_: bool, **options: Any) -> None:
    """Run the main job on shipped demo data, offline: probe RMs, analyses and the HTML report.

    Ingests a seeded slice of hh-rlhf harmless-base (300 test pairs, MIT) and a few planted confusing pairs,
    trains two probe reward models on its preferences (an aligned one on 80% of the pairs, a weaker one-layer
    control on 20%), scores every pair with both, labels heuristic features, embeds, rewrites a sample with two
    rule perturbations and re-scores them, then computes resistance, imprint, robustness and confusing entries
    and writes the HTML report. A few minutes on a laptop CPU; nothing is downloaded. A rerun on the same
    folder resumes; --force starts over. Progress goes to stderr.

    \b
    Examples:
      seal demo
      seal demo --out /tmp/seal-demo --pairs 100
      OPENAI_BASE_URL=http://127.0.0.1:8080/v1 seal demo --llm
    """
    result = api.demo(options.pop("out"), progress=info, **options)
    if json_:
        emit_json(result.to_json())
        return
    click.echo(f"store:  {result.store}")
    click.echo(f"report: {result.report or result.report_note}")
    empty = [name for name, status in result.report_sections.items() if status != "ok"]
    if empty:
        click.echo(f"        sections without data: {', '.join(empty)}")
    for alias, probe in result.probes.items():
        held = probe["heldout"]
        click.echo(
            f"{alias}: held-out agreement {held['agreement']:.3f} (95% CI {held['low']:.3f}-{held['high']:.3f}, "
            f"{held['n']} pairs; trained on {probe['pairs_train']})"
        )
    shares = ", ".join(f"{alias} {v['agreement']:.3f}" for alias, v in result.agreement.items())
    click.echo(f"agreement on every pair (most of them trained the probes): {shares}")
    regimes = result.regimes or {}
    if regimes.get("n"):
        parts = ", ".join(
            f"{name.replace('_', ' ')} {regimes[name]['share']:.0%}"
            for name in ("stayed_aligned", "got_aligned", "resists", "reversed")
        )
        p_value = (regimes.get("mcnemar") or {}).get("pvalue")
        tested = f" (McNemar p = {p_value:.3g})" if p_value is not None else ""
        click.echo(f"regimes of {' against '.join(result.agreement)} over {regimes['n']} pairs: {parts}{tested}")
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.confusing["counts"].items())
    planted = ", ".join(f"{k} {v['found']}/{v['planted']}" for k, v in result.confusing["planted"].items())
    click.echo(f"confusing entries: {counts}")
    click.echo(f"planted confusing pairs found: {planted}")
    llm = result.llm
    click.echo("LLM steps: " + (f"ran with {llm.get('model')}" if llm["ran"] else str(llm["reason"])))
    click.echo("try next:")
    for command in result.next:
        click.echo(f"  {command}")
    click.echo("wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    click.echo(f"total {result.seconds:.1f}s")
