"""`seal label` and `seal import-features`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from seal import api, outcome
from seal.commands.common import emit_json, get_store, json_option, silent_option
from seal.commands.options import engine_options, llm_endpoint_options
from seal.render import table

LABELERS = ("heuristics", "llm")
DEFAULT_FEATURE_SETS = {"heuristics": "heuristics", "llm": "seal-taxonomy"}


# Options of `seal label --labeler llm`. Each becomes a keyword argument of
# `seal.api.label(store, feature_set, labeler="llm", sample=, seed=, dry_run=, show_progress=, **these)`;
# options left at None are not passed, so the LLM labeler's defaults apply. The endpoint's options (--base-url,
# --api-key-env, --concurrency, --timeout, --max-retries) are the shared `llm_endpoint_options`.
_LLM_OPTIONS = [
    click.option("--model", help="llm: model id sent to the endpoint (e.g. gpt-4o-mini). Part of the recipe."),
    llm_endpoint_options(prefix_help="llm: "),
    click.option("--temperature", type=click.FloatRange(min=0), help="llm: sampling temperature (default 0)."),
    click.option("--request-seed", type=int, help="llm: the API's `seed` parameter (best effort). Part of the recipe."),
    click.option("--max-tokens", type=click.IntRange(min=1), help="llm: reply budget per request (default: by set)."),
    click.option(
        "--max-invalid-retries",
        type=click.IntRange(min=0),
        help="llm: re-asks of an answer that fails validation, with the error fed back (2).",
    ),
    click.option(
        "--structured-output",
        type=click.Choice(["auto", "json_schema", "json_object_schema", "json_object", "none"]),
        help="llm: how to ask for JSON (default auto: a JSON schema, stepping down when the server refuses).",
    ),
    click.option(
        "--batch-api",
        is_flag=True,
        default=None,
        help="llm: use the OpenAI Batch API (half price, within 24h). Run again to poll and collect.",
    ),
    click.option(
        "--batch-wait",
        type=click.FloatRange(min=0),
        help="llm --batch-api: seconds to keep polling before returning (default 0: check once).",
    ),
    click.option("--batch-poll-interval", type=click.FloatRange(min=0), help="llm --batch-api: poll every S s (30)."),
    click.option(
        "--prices",
        type=click.Path(dir_okay=False, exists=True),
        help="llm: YAML/JSON price table {model: {input, output}} in USD per million tokens (or a spec "
        "with a `prices` section), for the cost in --dry-run and in the result.",
    ),
    click.option(
        "--price-in",
        type=click.FloatRange(min=0),
        metavar="USD",
        help="llm: USD per million input tokens for --model (overrides --prices and the built-in list prices "
        "of common OpenAI/Anthropic models, dated in seal/annotate/features/llm_prices.py).",
    ),
    click.option(
        "--price-out",
        type=click.FloatRange(min=0),
        metavar="USD",
        help="llm: USD per million output tokens for --model (overrides --prices and the list prices).",
    ),
    click.option("--dataset", help="llm: label only the pairs of this ingested dataset."),
]


def llm_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_LLM_OPTIONS):
        func = option(func)
    return func


@click.command("label")
@click.option(
    "--labeler",
    type=click.Choice(LABELERS),
    default="heuristics",
    show_default=True,
    help="heuristics: text measures without a model; llm: an LLM behind an OpenAI-compatible API.",
)
@click.option(
    "--feature-set",
    "feature_set",
    metavar="FILE|NAME",
    help="Feature set YAML or shipped set name (default: heuristics for --labeler heuristics, "
    "seal-taxonomy for --labeler llm).",
)
@click.option("--sample", type=click.IntRange(min=1), help="Label a seeded sample of N pairs (a larger N extends it).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --sample.")
@click.option("--dry-run", is_flag=True, help="Say what would be labelled; write nothing.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="heuristics: processes for the sentiment measure (default: CPUs, at most 8). Not part of the recipe.",
)
@llm_options
@engine_options
@json_option
@silent_option
@click.pass_context
def label_command(
    ctx: click.Context,
    labeler: str,
    feature_set: str | None,
    sample: int | None,
    seed: int,
    dry_run: bool,
    workers: int | None,
    json_: bool,
    silent: bool,
    engine: Any = None,
    **llm: Any,
) -> None:
    """Label both responses of every pair with a feature set, into column features_<set>.

    Resumable and idempotent: finished batches are checkpointed, a re-run labels only the pairs that
    lack labels made with the current recipe (0 when nothing changed), and a changed recipe (a feature's
    measure, pattern or tokenizer) relabels every pair. Roles (target/spoiler) are not part of the recipe.

    Exit code 0 when done or partial (some texts failed: see failures; a rerun retries them), 3 when
    every text sent to the LLM failed (status failed: e.g. the endpoint refused every request), 1 on
    an error.

    \b
    Examples:
      seal label                                   # the shipped heuristics set
      seal label --feature-set my-heuristics.yaml --sample 1000
      seal label --labeler llm --feature-set seal-taxonomy --dry-run
      seal label --labeler llm --model my-model --price-in 0.2 --price-out 0.8 --dry-run
    """
    store = get_store(ctx)
    store.require()
    feature_set = feature_set or DEFAULT_FEATURE_SETS[labeler]
    if labeler == "llm":
        if workers is not None:
            raise click.UsageError("--workers applies to --labeler heuristics")
        options = {k: v for k, v in llm.items() if v is not None}
        result: Any = api.label(
            store,
            feature_set,
            labeler="llm",
            sample=sample,
            seed=seed,
            dry_run=dry_run,
            show_progress=not silent,
            **options,
            **({"engine": engine} if engine is not None else {}),
        )
    else:
        if llm:
            given = [k for k, v in llm.items() if v not in (None, False, ())]
            if given:
                raise click.UsageError(f"options for --labeler llm given with --labeler heuristics: {', '.join(given)}")
        result = api.label(
            store,
            feature_set,
            labeler="heuristics",
            sample=sample,
            seed=seed,
            dry_run=dry_run,
            workers=workers,
            show_progress=not silent,
            **({"engine": engine} if engine is not None else {}),
        )
    if json_:
        emit_json(result.to_json())
    else:
        click.echo(result.summary())
        means = getattr(result, "means", None)
        if means:
            click.echo(_means_table(means))
    outcome.check(
        f"seal label {feature_set}",
        result.to_json(),
        hint="check --base-url, --model and the server; a rerun retries the failed texts",
    )


def _means_table(means: dict[str, Any]) -> str:
    rows = []
    for name, entry in means.items():
        rows.append(
            {
                "feature": name,
                "type": entry.get("type"),
                "role": entry.get("role"),
                "n": entry["chosen"]["n"],
                "mean chosen": entry["chosen"]["mean"],
                "mean rejected": entry["rejected"]["mean"],
            }
        )
    return table(rows)


@click.command("import-features")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--feature-set",
    "feature_set",
    required=True,
    metavar="FILE|NAME",
    help="The feature set the labels belong to (YAML path or shipped set name): types and allowed values "
    "are checked against it.",
)
@click.option(
    "--key",
    type=click.Choice(["pair_id", "source_key", "source_index"]),
    default="pair_id",
    show_default=True,
    help="The file's column that names the pair.",
)
@click.option("--dataset", help="With --key source_key/source_index: the ingested dataset the keys refer to.")
@click.option("--dry-run", is_flag=True, help="Read and validate the file; write nothing.")
@json_option
@click.pass_context
def import_features_command(
    ctx: click.Context, file: str, feature_set: str, key: str, dataset: str | None, dry_run: bool, json_: bool
) -> None:
    """Import labels computed elsewhere (e.g. GPT-4 labels of the SEAL paper) into features_<set>.

    FILE is JSON Lines, JSON, CSV/TSV or Parquet, either long (one row per text: pair_id, side,
    <features>) or wide (one row per pair: {pair_id, chosen: {...}, rejected: {...}}). Every value is
    checked against the feature set; any invalid row stops the import with a list of the problems, and
    nothing is written. Importing the same file again does nothing; another file replaces the set's labels.

    \b
    Examples:
      seal import-features gpt4-labels.jsonl --feature-set seal-taxonomy
      seal import-features labels.csv --feature-set my-set.yaml --key source_index --dataset hh-train
    """
    result = api.import_features(get_store(ctx), file, feature_set, key=key, dataset=dataset, dry_run=dry_run)
    if json_:
        emit_json(result.to_json())
        return
    click.echo(result.summary())
    if result.ignored_columns:
        click.echo(f"ignored columns: {', '.join(result.ignored_columns)}")
    if result.means:
        click.echo(_means_table(result.means))
