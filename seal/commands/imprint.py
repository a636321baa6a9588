"""`seal imprint`."""

from __future__ import annotations

import click

from seal import api
from seal.commands.common import emit_json, get_store, info, json_option
from seal.commands.options import confidence_option, correction_option


@click.command("imprint")
@click.option("--model", metavar="ALIAS", help="The reward model (default: the one with role aligned).")
@click.option("--minus", metavar="ALIAS", help="Text level: regress r_model − r_ALIAS (the imprint change).")
@click.option(
    "--control", metavar="ALIAS", help="Pair level: also regress the shift angle θ from ALIAS's rewards to the model's."
)
@click.option(
    "--features",
    metavar="NAMES|SET",
    help="Comma-separated features (name, set.name, a unique suffix such as harmless) or feature set names "
    "(default: every labelled feature).",
)
@click.option(
    "--level",
    type=click.Choice(api.IMPRINT_LEVELS),
    default="text",
    show_default=True,
    help="text: one row per text, reward on features; pair: one row per pair, misalignment (and θ) on "
    "chosen- and rejected-side features.",
)
@click.option(
    "--fe",
    type=click.Choice(["pair"]),
    help="Text level: pair fixed effects (the within-pair estimator on chosen − rejected differences).",
)
@click.option(
    "--cov",
    type=click.Choice(api.IMPRINT_COV_TYPES),
    default="cluster",
    show_default=True,
    help="Standard errors: cluster-robust by pair, HC3, or classical.",
)
@correction_option("Multiple-testing adjustment over the feature coefficients of each regression.")
@click.option("--standardize", is_flag=True, help="Fit on z-scored outcome and regressors (β in SD units).")
@click.option(
    "--logit", is_flag=True, help="Pair level: a logit for misalignment instead of a linear probability model."
)
@click.option(
    "--categorical",
    type=click.Choice(api.IMPRINT_CATEGORICAL),
    default="ordinal",
    show_default=True,
    help="Category features: their numeric codes, or one dummy per category but the first.",
)
@click.option(
    "--min-count",
    type=click.IntRange(min=1),
    default=api.IMPRINT_DEFAULT_MIN_COUNT,
    show_default=True,
    help="List features: keep values present in at least N texts (one dummy each).",
)
@click.option(
    "--ties",
    type=click.Choice(api.IMPRINT_TIES),
    default="misaligned",
    show_default=True,
    help="Pair level: a pair the model scores equal on both sides counts as misaligned, aligned, or is left out.",
)
@confidence_option("Confidence level of the coefficient intervals.")
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    hidden=True,
    help="Deprecated: 1 − the confidence level (use --confidence).",
)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a coefficient plot (PNG) to FILE.")
@json_option
@click.pass_context
def imprint_command(ctx: click.Context, json_: bool, plot_path: str | None, **options: object) -> None:
    """Feature imprint: which labelled features a reward model rewards, with robust inference.

    Text level: r(text) = β0 + Σ β·x(text) + ε over both texts of every pair, SEs clustered by pair;
    --fe pair compares the two texts of each pair only (pair fixed effects). Pair level: whether the RM
    misorders a pair, and with --control the shift angle θ, on chosen- and rejected-side features.
    Output: β, SE, t, p, adjusted p, CI, standardised β, role and direction per term, plus N, R², the
    condition number, VIFs, dropped regressors and the exact formula.

    \b
    Examples:
      seal imprint --model oa_large_v2 --features seal_taxonomy
      seal imprint --model oa_large_v2 --minus oa_large --fe pair --standardize
      seal imprint --model oa_large_v2 --control oa_large --level pair --plot imprint.png
    """
    if options.get("alpha") is not None:
        if ctx.get_parameter_source("confidence") is not click.core.ParameterSource.DEFAULT:
            raise click.UsageError("--alpha (deprecated) and --confidence exclude each other; use --confidence")
        info("--alpha is deprecated: use --confidence (1 − alpha)")
    result = api.imprint(get_store(ctx), **options)  # type: ignore[arg-type]
    if plot_path:
        result.plot(plot_path)
        info(f"plot written to {plot_path}")
    if json_:
        emit_json(result.to_json())
        return
    click.echo(result.render())
