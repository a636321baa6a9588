"""`seal import-scores` (RM scores computed elsewhere) and `seal resistance` (agreement, regimes, shift)."""

from __future__ import annotations

import click

from seal import api
from seal.commands.common import emit_json, get_store, json_option
from seal.commands.options import confidence_option


@click.command("import-scores")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--alias", required=True, help="Name of the reward model; scores go to column score_<alias>.")
@click.option(
    "--role",
    type=click.Choice(api.ROLES),
    help="aligned (the RM under audit), control (e.g. before alignment training) or other. "
    "Default: the alias's current role, else other.",
)
@click.option(
    "--map",
    "column_map",
    multiple=True,
    metavar="KEY=COLUMN",
    help="Name the file's columns: pair_id=COL, chosen=COL, rejected=COL (default: those names).",
)
@click.option(
    "--replace", is_flag=True, help="Overwrite scores the alias already holds (another file, or `seal score`)."
)
@json_option
@click.pass_context
def import_scores_command(
    ctx: click.Context,
    file: str,
    alias: str,
    role: str | None,
    column_map: tuple[str, ...],
    replace: bool,
    json_: bool,
) -> None:
    """Import reward-model scores computed elsewhere from FILE (parquet, csv, jsonl; optionally .gz).

    FILE holds one row per pair: its pair_id and the scores of the chosen and rejected responses. Unknown
    or duplicate pair ids and missing, NaN or non-numeric scores fail the whole import (nothing is
    written); a file covering only some pairs is fine. Re-importing the same file is a no-op.

    \b
    Examples:
      seal import-scores post.parquet --alias post --role aligned
      seal import-scores pre.csv.gz --alias pre --role control --map chosen=r_c --map rejected=r_r
    """
    result = api.import_scores(get_store(ctx), file, alias, role=role, column_map=column_map, replace=replace)
    if json_:
        emit_json(result.to_json())
        return
    click.echo(result.summary())


@click.command("resistance")
@click.option("--model", help="RM to audit (default: the RM with role aligned, else the only RM).")
@click.option("--control", help="RM to compare with (default: the RM with role control, if any).")
@click.option("--no-control", is_flag=True, help="Analyse the model alone even if a control RM exists.")
@click.option(
    "--by",
    metavar="COLUMN",
    help="Per-group rates by a column of pairs, e.g. dataset or flags.context_mismatch (nested fields with a dot).",
)
@confidence_option("Confidence level of the Wilson intervals.")
@click.option(
    "--labeler-regime",
    metavar="FEATURES",
    help="Cross-tab the regimes with the labeler's preference γ from these target features, most important "
    "first (e.g. harmless,helpful).",
)
@click.option(
    "--ties",
    type=click.Choice(api.TIE_RULES),
    default=api.DEFAULT_TIE_RULE,
    show_default=True,
    help="One rule for every block: exclude = ties and identical responses are their own categories, never "
    "disagreement; disagree = the paper's strict counting (chosen > rejected, anything else disagrees).",
)
@json_option
@click.pass_context
def resistance_command(
    ctx: click.Context,
    model: str | None,
    control: str | None,
    no_control: bool,
    by: str | None,
    confidence: float,
    labeler_regime: str | None,
    ties: str,
    json_: bool,
) -> None:
    """How often an RM prefers the human-chosen response, and how that changed from a control RM.

    Agreement (chosen > rejected) over decided pairs with Wilson intervals, ties and identical responses
    as their own categories (--ties disagree: counted as disagreement, as the paper did); with a control:
    the four regimes (stayed aligned, got aligned, resists, reversed) with an exact McNemar test, the
    reward-vector shift angle θ (counter-clockwise positive, as the paper) and quadrants; margins per RM.

    \b
    Examples:
      seal resistance
      seal resistance --model post --control pre --by dataset --json
      seal resistance --labeler-regime harmless,helpful
      seal resistance --ties disagree      # the paper's strict counting
    """
    if no_control and control:
        raise click.UsageError("--control and --no-control exclude each other")
    store = get_store(ctx)
    result = api.resistance(store, model, control, by=by, use_control=not no_control, confidence=confidence, ties=ties)
    table = None
    if labeler_regime:
        control_alias = result.control.alias if result.control else None
        table = api.labeler_regime(
            store, result.model.alias, control_alias, labeler_regime, confidence=confidence, ties=ties
        )
    if json_:
        payload = result.to_json()
        if table is not None:
            payload["labeler_regime"] = table.to_json()
        emit_json(payload)
        return
    click.echo(result.to_text())
    if table is not None:
        click.echo("\n" + table.render())
