"""`seal ingest`."""

from __future__ import annotations

import click

from seal.commands.common import emit_json, get_store, json_option, silent_option
from seal.ingest import ingest
from seal.ingest.formats import FORMATS


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
    type=click.Choice(["auto", *FORMATS]),
    default="auto",
    show_default=True,
    help="Input layout; auto detects it from the first record and says why.",
)
@click.option("--map", "column_map", multiple=True, metavar="KEY=COLUMN", help="Map a canonical key to a column.")
@click.option("--label-map", multiple=True, metavar="VALUE=a|b|tie", help="Pairwise label values.")
@click.option("--limit", type=click.IntRange(min=1), help="Read only the first N rows.")
@click.option("--sample", type=click.IntRange(min=1), help="Ingest a seeded random sample of N rows.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --sample.")
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
    """
    result = ingest(get_store(ctx), source, show_progress=not silent, **options)  # type: ignore[arg-type]
    if json_:
        emit_json(result.to_json())
        return
    click.echo(f"{result.dataset}: format {result.format} ({result.format_reason})")
    click.echo(
        f"read {result.read:,} rows: {result.ingested:,} new pair{'' if result.ingested == 1 else 's'}, "
        f"{result.already_present:,} already present, "
        f"{result.quarantined:,} quarantined in {result.seconds:.1f}s"
    )
    for reason, count in result.quarantine_reasons.items():
        click.echo(f"  quarantined {count:,} × {reason}")
    flagged = ", ".join(f"{name} {count:,}" for name, count in result.flags.items() if count)
    if flagged:
        click.echo(f"flags: {flagged}")
    if result.pairs_version is not None:
        click.echo(f"pairs table now at version {result.pairs_version}")
