"""`seal report`."""

from __future__ import annotations

import click

from seal import api
from seal.commands.common import emit_json, get_store, json_option
from seal.commands.options import confidence_option


@click.command("report")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    default="report.html",
    show_default=True,
    help="The HTML file to write (replaced atomically when it exists).",
)
@click.option("--model", metavar="ALIAS", help="RM to audit (default: the RM with role aligned, else the only RM).")
@click.option("--control", metavar="ALIAS", help="RM to compare with (default: the RM with role control, if any).")
@confidence_option("Confidence level of every interval in the report.")
@click.option(
    "--ties",
    type=click.Choice(["exclude", "disagree"]),
    default="exclude",
    show_default=True,
    help="Tie rule, as in `seal resistance`: exclude = ties and identical pairs apart; disagree = they count as "
    "disagreement.",
)
@click.option(
    "--gamma-features",
    metavar="NAMES",
    default="harmless,helpful",
    show_default=True,
    help="Target features of the labeler preference γ, most important first (as `seal resistance --labeler-regime`).",
)
@click.option(
    "--max-text",
    type=click.IntRange(min=20),
    default=600,
    show_default=True,
    help="Characters of a context turn or response shown in example pairs (longer ones are cut, with a marker).",
)
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Example pairs per kind of confusing finding and per top cluster.",
)
@json_option
@click.pass_context
def report_command(
    ctx: click.Context,
    out: str,
    model: str | None,
    control: str | None,
    confidence: float,
    ties: str,
    gamma_features: str,
    max_text: int,
    examples: int,
    json_: bool,
) -> None:
    """One self-contained HTML page of the store: dataset and flags, agreement and regimes, γ × regime, imprint,
    reward vectors and shift angles, robustness, confusing pairs and clusters, and the recipe of every column.

    Plots are embedded, nothing is fetched: the file opens from disk or on the Hub. A section without data says
    which command fills it. Every text from the data is escaped and long texts are cut.

    \b
    Examples:
      seal report
      seal report --out audit.html --model post --control pre
      seal report --json
    """
    result = api.report(
        get_store(ctx),
        out,
        model=model,
        control=control,
        confidence=confidence,
        ties=ties,
        gamma_features=gamma_features,
        max_text=max_text,
        examples=examples,
    )
    if json_:
        emit_json(result)
        return
    filled = [s for s in result["sections"] if s["status"] == "ok"]
    click.echo(f"wrote {result['path']} ({result['bytes'] / 1024:,.0f} KiB, {result['plots']} plots)")
    click.echo(f"{len(filled)} of {len(result['sections'])} sections with data")
    for s in result["sections"]:
        if s["status"] != "ok":
            click.echo(f"  {s['title']}: no data yet; filled by: {s['hint']}")
