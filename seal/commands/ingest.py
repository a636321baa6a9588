"""`seal ingest`."""

from __future__ import annotations

from typing import Any

import click

from seal import api
from seal.commands.common import emit_json, get_store, info, json_option, silent_option


@click.command("ingest")
@click.argument("source")
@click.option("--name", help="Dataset name stored with every pair (default: from the file or Hub id).")
@click.option("--split", help="Split to load (Hub datasets); all splits when omitted.")
@click.option("--subset", help="Dataset configuration name (Hub datasets).")
@click.option("--data-dir", help="Sub-folder of the dataset repo, e.g. harmless-base.")
@click.option("--revision", help="Hub revision (branch, tag or commit).")
@click.option(
    "--loader",
    type=click.Choice(["auto", "files", "datasets"]),
    default="auto",
    show_default=True,
    help="files: read local files; datasets: datasets.load_dataset (Hub id or dataset folder); "
    "auto: files when SOURCE exists locally.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", *api.INGEST_FORMATS]),
    default="auto",
    show_default=True,
    help="Input layout; auto detects it from the first record and says why.",
)
@click.option(
    "--map",
    "column_map",
    multiple=True,
    metavar="KEY=COLUMN",
    help="Map a canonical key to a column. prompt and system also take a template of several columns, "
    "e.g. 'prompt={instruction}\\n\\n{input}' (empty fields are dropped with the text before them).",
)
@click.option("--label-map", multiple=True, metavar="VALUE=a|b|tie", help="Pairwise label values.")
@click.option(
    "--label-from",
    metavar="COL[,COL...]",
    help="Pairwise label column(s): several are several annotators (a column may also hold a list of votes); "
    "PKU-SafeRLHF: --label-from better_response_id.",
)
@click.option(
    "--label-agg",
    type=click.Choice(api.LABEL_AGGREGATIONS),
    default="majority",
    show_default=True,
    help="Several annotators: the majority label, only unanimous rows, or one pair per annotator (each).",
)
@click.option(
    "--pairs",
    type=click.Choice(api.PAIRINGS),
    help="Rated lists (UltraFeedback `completions`): best-worst (default), best-random or all pairs with "
    "different ratings; unpaired KTO rows: by-prompt.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Read only the first N rows.")
@click.option("--sample", type=click.IntRange(min=1), help="Ingest a seeded random sample of N rows.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --sample and --pairs best-random.")
@click.option(
    "--max-row-bytes",
    type=click.IntRange(min=1),
    default=api.MAX_ROW_BYTES,
    show_default=True,
    help="Quarantine rows larger than this (row_too_large) instead of reading them: one runaway row would "
    "take the memory of thousands, and every model truncates it anyway.",
)
@click.option(
    "--on-change",
    type=click.Choice(["refuse", "update"]),
    default="refuse",
    show_default=True,
    help="When stored keys now hold other content (an edited source): refuse, or update those pairs in place "
    "(same ids; their annotations are cleared for the stages to recompute; the version before is tagged).",
)
@click.option(
    "--prune", is_flag=True, help="With --on-change update: delete pairs whose rows left the source (default: flag)."
)
@json_option
@silent_option
@click.pass_context
def ingest_command(ctx: click.Context, source: str, json_: bool, silent: bool, **options: object) -> None:
    """Add the pairs of SOURCE (local file/folder or Hub dataset id) to the store.

    \b
    Examples:
      seal ingest ../shared/data/hh-rlhf-harmless-base/test.jsonl.gz
      seal ingest Anthropic/hh-rlhf --data-dir harmless-base --split test
      seal ingest votes.csv --format pairwise --map prompt=input --map a=output_1 \\
          --map b=output_2 --map label=label --label-map 1=a --label-map 2=b --label-map 0=tie
      seal ingest pku.jsonl --label-from better_response_id --name pku-better
      seal ingest edited.jsonl --on-change update
    """
    result = api.ingest(get_store(ctx), source, show_progress=not silent, **options)  # type: ignore[arg-type]
    for warning in result.warnings:
        info(f"warning: {warning}")
    if json_:
        emit_json(result.to_json())
        return
    _print(result)


def _print(result: Any) -> None:
    click.echo(f"{result.dataset}: format {result.format} ({result.format_reason})")
    click.echo(
        f"read {result.read:,} rows: {result.ingested:,} new pair{'' if result.ingested == 1 else 's'}, "
        f"{result.already_present:,} already present, "
        f"{result.quarantined:,} quarantined in {result.seconds:.1f}s"
    )
    for reason, count in result.quarantine_reasons.items():
        click.echo(f"  quarantined {count:,} × {reason}")
    for reason, count in result.skipped_pairs.items():
        click.echo(f"  skipped {count:,} candidate pair{'' if count == 1 else 's'} × {reason}")
    if result.update is not None:
        u = result.update
        fate = (
            f" ({u['pruned']:,} deleted)" if u["pruned"] else " (flagged removed_from_source)" if u["removed"] else ""
        )
        click.echo(
            f"update: {u['new']:,} new, {u['changed']:,} changed (annotations cleared), {u['moved']:,} moved, "
            f"{u['unchanged'] + u['refreshed']:,} unchanged, {u['removed']:,} removed from the source{fate}"
        )
        if u["removed_keys"]:
            shown = ", ".join(u["removed_keys"][:5]) + (", …" if u["removed"] > 5 else "")
            click.echo(f"  removed keys: {shown}")
        if u["tag"]:
            click.echo(f"  the version before the update is tagged {u['tag']}")
    flagged = ", ".join(f"{name} {count:,}" for name, count in result.flags.items() if count)
    if flagged:
        click.echo(f"flags: {flagged}")
    if result.pairs_version is not None:
        click.echo(f"pairs table now at version {result.pairs_version}")
