"""`seal score` and `seal models`."""

from __future__ import annotations

from typing import Any

import click

from seal import api
from seal.commands.common import emit_json, get_store, info, json_option, silent_option
from seal.commands.options import batch_size_option, device_option, dtype_option, engine_options
from seal.render import table


@click.command("score")
@click.option("--model", "model", required=True, metavar="ID_OR_PATH", help="Hub model id or local model folder.")
@click.option("--alias", help="Column suffix: scores go to score_<alias> (default: from the model name).")
@click.option(
    "--role",
    type=click.Choice(api.ROLES),
    help="aligned (the RM under audit), control (its base) or other (default: the alias's last role, else other).",
)
@click.option("--revision", help="Hub revision (branch, tag or commit); the resolved commit is recorded.")
@batch_size_option(help_text="Texts per batch, or auto (a token budget per batch). Does not change the scores.")
@click.option("--max-length", type=click.IntRange(min=8), help="Token limit per text (default: the model's, ≤4096).")
@click.option(
    "--truncation",
    type=click.Choice(api.TRUNCATION_SIDES),
    default="left",
    show_default=True,
    help="left: drop context tokens from the start (keeps the whole response); right: drop from the end.",
)
@device_option()
@dtype_option()
@click.option(
    "--input-format",
    type=click.Choice(api.INPUT_FORMATS),
    default="auto",
    show_default=True,
    help="pair: tokenizer(context, response) (OpenAssistant RMs); chat: the tokenizer's chat template; "
    "auto: chat when the tokenizer has a chat template, else pair.",
)
@click.option("--trust-remote-code", is_flag=True, help="Allow the model's own Python code (custom RMs).")
@click.option("--head-index", type=click.IntRange(min=0), help="Output to use for a multi-output (multi-objective) RM.")
@click.option(
    "--prefix-sharing",
    "prefix_sharing",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Run the context that chosen and rejected share once, with a KV cache, for a causal chat-format RM "
    "(same scores, fewer FLOPs). auto: on any device when the model computes at least "
    f"{api.SHARING_MIN_FLOP_PER_KV_BYTE:,} FLOPs per byte of KV cache (2 x non-embedding parameters over the "
    "cache bytes per token); on: whenever the model allows it; off: never. Encoders never share; --compile "
    "turns it off.",
)
@click.option(
    "--compile",
    is_flag=True,
    help="Run the model through torch.compile: a one-off compile (tens of seconds to minutes) that pays on "
    "large runs (DeBERTa-v3-large on an H200: 1.56x after a 133 s compile).",
)
@click.option("--replace", is_flag=True, help="Rescore every pair when the alias was scored with another recipe.")
@engine_options
@json_option
@silent_option
@click.pass_context
def score_command(ctx: click.Context, json_: bool, silent: bool, engine: Any, **options: Any) -> None:
    """Score both responses of every pair with a reward model, into column score_<alias>.

    Resumable and idempotent: a killed run resumes with the pairs it had not committed, a re-run
    scores only pairs added since. Batch size and device are not part of the recipe.

    \b
    Examples:
      seal score --model OpenAssistant/reward-model-deberta-v3-large-v2 --alias oa_large_v2 --role aligned
      seal score --model OpenAssistant/reward-model-deberta-v3-large --alias oa_large --role control
      seal score --model Skywork/Skywork-Reward-Llama-3.1-8B-v0.2 --dtype bfloat16 --batch-size 16
    """

    def announce(stage: Any) -> None:
        info(f"{stage.column}: input format {stage.rm.input_format} ({stage.rm.input_format_reason})")

    model = options.pop("model")
    if engine is not None:
        options["engine"] = engine
    result = api.score(get_store(ctx), model, on_start=announce, show_progress=not silent, **options)
    if json_:
        emit_json(result.to_json())
        return
    click.echo(f"{result.column} ({result.model}, role {result.role})")
    click.echo(f"input format {result.input_format}: {result.input_format_reason}")
    if result.status == "up-to-date":
        click.echo(f"up to date: {result.reason}")
        return
    click.echo(
        f"scored {result.pairs_scored:,} pairs ({result.texts_scored:,} texts) in {result.seconds:.1f}s"
        + (f", {result.pairs_per_second:,.1f} pairs/s" if result.pairs_per_second else "")
        + f" on {result.device}, batch size {result.batch_size}"
    )
    if result.pairs_resumed:
        click.echo(f"kept {result.pairs_resumed:,} pairs committed by an interrupted run")
    if result.prefix_sharing:
        saved = f" ({result.prefix_tokens_saved:,} prefix tokens not recomputed)" if result.shared_texts else ""
        click.echo(f"prefix sharing {result.prefix_sharing}{saved}")
    if result.replaced:
        click.echo("replaced the scores of an earlier recipe")
    click.echo(f"truncated {result.texts_truncated:,} texts to {result.max_length} tokens ({result.truncation})")
    if result.non_finite:
        click.echo(f"warning: {result.non_finite:,} scores are not finite (NaN or inf)")
    click.echo(f"coverage {result.pairs_kept + result.pairs_scored + result.pairs_resumed:,} / {result.pairs_total:,}")
    if result.pairs_version is not None:
        click.echo(f"pairs table now at version {result.pairs_version}")


@click.command("models")
@json_option
@click.pass_context
def models_command(ctx: click.Context, json_: bool) -> None:
    """The reward models the store has scores for: role, recipe and coverage."""
    store = get_store(ctx)
    models = api.models(store)
    if json_:
        emit_json({"store": str(store.path), "models": models})
        return
    if not models:
        click.echo("no reward model scores yet (see `seal score --help`)")
        return
    rows = []
    for m in models:
        params = m["recipe"].get("params", {}) if isinstance(m["recipe"], dict) else {}
        rows.append(
            {
                "alias": m["alias"],
                "role": m["role"],
                "origin": m["origin"],
                "model": params.get("model") or params.get("file") or "",
                "format": params.get("input_format", ""),
                "max_length": params.get("max_length"),
                "dtype": params.get("dtype", ""),
                "scored": f"{m['scored_pairs']:,}/{m['total_pairs']:,}",
                "coverage": m["coverage"],
                "fingerprint": m["fingerprint"],
            }
        )
    click.echo(table(rows, width=60))
