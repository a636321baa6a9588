"""`seal similar`, `seal search`, `seal confusing` and `seal findings`: reading embeddings and findings."""

from __future__ import annotations

import json

import click

from seal import api
from seal.commands.common import emit_json, get_store, info, json_option
from seal.render import table, to_jsonable

FIELD_CHOICES = ("context", "chosen", "rejected", "pair")


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
    result = api.similar(get_store(ctx), pair_id, k=k, field=field, where=where)
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
    result = api.search(get_store(ctx), text, k=k, mode=mode, fields=fields or None, where=where)
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
    options = {
        "threshold": threshold,
        "edit_threshold": edit_threshold,
        "n_clusters": n_clusters,
        "method": method,
        "seed": seed,
        "limit": limit,
    }
    result = api.confusing(get_store(ctx), kinds or None, save=not no_store, **options)
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
    store = get_store(ctx)
    rows = api.findings(store, kind, pair_id)
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
