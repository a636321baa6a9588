"""`seal train-probe`."""

from __future__ import annotations

from typing import Any

import click

from seal import api
from seal.commands.common import emit_json, get_store, info, json_option, silent_option
from seal.commands.options import device_option

DEFAULTS = api.PROBE_DEFAULTS


@click.command("train-probe")
@click.option("--out", required=True, metavar="DIR", help="Folder to save the probe in (a model folder).")
@click.option("--where", metavar="SQL", help="Train on the pairs matching this LanceDB SQL filter (default: all).")
@click.option(
    "--split",
    default=DEFAULTS["split"],
    show_default=True,
    metavar="train:FRACTION",
    help="Share of the selected pairs that train; the rest is held out for the agreement.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split (per pair id).")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=DEFAULTS["epochs"],
    show_default=True,
    help="L-BFGS iterations at most, each a pass over all training pairs.",
)
@click.option(
    "--l2",
    type=click.FloatRange(min=0),
    default=DEFAULTS["l2"],
    show_default=True,
    help="L2 penalty on the head's weights (on standardised features).",
)
@click.option(
    "--layers",
    type=click.IntRange(min=0),
    default=DEFAULTS["layers"],
    show_default=True,
    help="Encoder layers kept (the first ones; 0: all six).",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=8, max=512),
    default=DEFAULTS["max_length"],
    show_default=True,
    help="Token limit per text (context truncated from the left), also the probe's scoring limit.",
)
@click.option("--force", is_flag=True, help="Replace what --out holds (another probe or recipe).")
@device_option()
@json_option
@silent_option
@click.pass_context
def train_probe_command(ctx: click.Context, out: str, json_: bool, silent: bool, **options: Any) -> None:
    """Train a probe reward model on the store's human preferences and save it as a model folder.

    A Bradley–Terry linear head on a frozen MiniLM encoder (the all-MiniLM-L6-v2 package, its first
    layers), fitted on the pairs selected by --where and --split/--seed, with held-out agreement and a
    Wilson interval. The folder is an ordinary BertForSequenceClassification that `seal score --model DIR`
    loads like any reward model (its revision is the hash of its files); seal_probe.json records the
    recipe, the split and the agreement. Pairs whose responses are identical are left out. A rerun with
    the same recipe and data leaves the folder as it is.

    \b
    Examples:
      seal train-probe --out probes/base --split train:0.5 --seed 0
      seal train-probe --out probes/hh --where "dataset = 'hh'" --l2 3 --json
      seal score --model probes/base --alias probe --role aligned
    """
    progress = None if silent else info
    result = api.train_probe(get_store(ctx), out, progress=progress, **options)
    if json_:
        emit_json(result.to_json())
        return
    held, train = result.heldout, result.train
    if result.status == "up-to-date":
        click.echo(f"up to date: {result.path} already holds this probe (recipe {result.fingerprint})")
    else:
        click.echo(f"probe saved at {result.path} (recipe {result.fingerprint})")
    click.echo(f"pairs: {result.pairs_train:,} train, {result.pairs_heldout:,} held out")
    interval = f" (95% CI {held['low']:.3f}-{held['high']:.3f})" if held.get("low") is not None else ""
    click.echo(f"held-out agreement {_share(held)}{interval} on {held['n']:,} pairs")
    click.echo(f"train agreement {_share(train)} on {train['n']:,} pairs")
    check = result.scorer_check
    if check.get("pairs"):
        click.echo(f"scorer check: the ordinary scorer reproduces its rewards within {check['max_abs_diff']:.1e}")
    click.echo(f"next: seal score --model {result.path} --alias probe")


def _share(value: dict[str, Any]) -> str:
    return "n/a" if value.get("agreement") is None else f"{value['agreement']:.3f}"
