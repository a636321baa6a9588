"""Which module defines each `seal` command, and a click group that imports a command only when needed.

Importing every command module costs seconds (torch, transformers, LanceDB, statsmodels...), and
`seal --version` or `seal --help` needs none of them. `LazyGroup` lists commands from the static table
`COMMANDS` (name, module, attribute, short help) and imports a module only when its command runs or
its own `--help` is asked for. tests/test_lazy_commands.py checks that the table matches the modules.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import click

from seal.commands.common import SealGroup


@dataclass(frozen=True)
class LazyCommand:
    """Where a command is defined, and its one-line help as `seal --help` lists it."""

    module: str
    attr: str
    short_help: str

    def load(self) -> click.Command:
        command = getattr(import_module(self.module), self.attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.module}.{self.attr} is not a click command")
        return command


_EMBED, _INSPECT, _LABEL, _PERTURB = (
    "seal.commands.embed",
    "seal.commands.inspect",
    "seal.commands.label",
    "seal.commands.perturb",
)
_RESISTANCE, _SCORE, _SPEC = "seal.commands.resistance", "seal.commands.score", "seal.commands.spec"
_CONFUSING, _ROBUSTNESS = "seal.commands.confusing", "seal.commands.robustness"

# The short help is the first sentence of the command's docstring, as click would shorten it.
COMMANDS: dict[str, LazyCommand] = {
    "confusing": LazyCommand(
        _CONFUSING,
        "confusing_command",
        "Confusing entries: identical and near-identical responses, duplicates, contradictions "
        "(near-duplicate pairs with opposite preferences) and clusters ranked by excess RM resistance.",
    ),
    "demo": LazyCommand(
        "seal.commands.demo",
        "demo_command",
        "Run the main job on shipped demo data, offline: probe RMs, analyses and the HTML report.",
    ),
    "embed": LazyCommand(
        _EMBED,
        "embed_command",
        "Embed every pair's context, responses and the pair (emb_<field> columns), then index them.",
    ),
    "export": LazyCommand(
        "seal.commands.export",
        "export_command",
        "Export the pairs and their annotations to DIRECTORY: a Hub-ready dataset with a card, parquet, JSON Lines "
        "or Feedback Forensics' AnnotatedPairs.",
    ),
    "findings": LazyCommand(
        _CONFUSING,
        "findings_command",
        "Findings stored by `seal confusing`, strongest first (without recomputing anything).",
    ),
    "import-features": LazyCommand(_LABEL, "import_features_command", "Import labels computed elsewhere (e.g."),
    "import-scores": LazyCommand(
        _RESISTANCE,
        "import_scores_command",
        "Import reward-model scores computed elsewhere from FILE (parquet, csv, jsonl; optionally .gz).",
    ),
    "imprint": LazyCommand(
        "seal.commands.imprint",
        "imprint_command",
        "Feature imprint: which labelled features a reward model rewards, with robust inference.",
    ),
    "ingest": LazyCommand(
        "seal.commands.ingest",
        "ingest_command",
        "Add the pairs of SOURCE (local file/folder or Hub dataset id) to the store.",
    ),
    "label": LazyCommand(
        _LABEL, "label_command", "Label both responses of every pair with a feature set, into column features_<set>."
    ),
    "models": LazyCommand(
        _SCORE, "models_command", "The reward models the store has scores for: role, recipe and coverage."
    ),
    "optimize": LazyCommand(
        _INSPECT, "optimize_command", "Compact the store's files, update its indexes and delete old versions."
    ),
    "perturb": LazyCommand(
        _PERTURB,
        "perturb_command",
        "Rewrite responses of (a sample of) the pairs and re-score the variants with every scored RM.",
    ),
    "plan": LazyCommand(_SPEC, "plan_command", "Show what `seal run SPEC` would do, stage by stage, and why."),
    "publish": LazyCommand(
        "seal.commands.export",
        "publish_command",
        "Publish the pairs to a Hugging Face Hub dataset repo: data and card in one commit.",
    ),
    "quarantine": LazyCommand(_INSPECT, "quarantine_command", "Rows that could not become pairs, with the reason."),
    "query": LazyCommand(_INSPECT, "query_command", "Filter and select pairs with LanceDB SQL."),
    "report": LazyCommand(
        "seal.commands.report",
        "report_command",
        "One self-contained HTML page of the store: dataset and flags, agreement and regimes, γ × regime, "
        "imprint, reward vectors and shift angles, robustness, confusing pairs and clusters, and the recipe of "
        "every column.",
    ),
    "resistance": LazyCommand(
        _RESISTANCE,
        "resistance_command",
        "How often an RM prefers the human-chosen response, and how that changed from a control RM.",
    ),
    "robustness": LazyCommand(
        _ROBUSTNESS,
        "robustness_command",
        "How reward models react to meaning-preserving rewrites: agreement before/after with CIs, flips "
        "with an exact McNemar test, reward correlation and change (in reward SDs), shift angle, "
        "sensitivity per perturbation, and (with labelled variants) SEAL's robustness score.",
    ),
    "run": LazyCommand(_SPEC, "run_command", "Compute every annotation the spec asks for that is missing or stale."),
    "score": LazyCommand(
        _SCORE,
        "score_command",
        "Score both responses of every pair with a reward model, into column score_<alias>.",
    ),
    "search": LazyCommand(
        _CONFUSING,
        "search_command",
        "Pairs whose context or responses match TEXT: by meaning (vector), words (text, BM25) or both "
        "(hybrid, reciprocal-rank fusion).",
    ),
    "show": LazyCommand(
        _INSPECT, "show_command", "Show one pair: its conversation, both responses, flags and annotations."
    ),
    "similar": LazyCommand(
        _CONFUSING,
        "similar_command",
        "The pairs nearest to PAIR_ID by embedding (cosine), with RM margins when scored.",
    ),
    "stats": LazyCommand(
        _INSPECT, "stats_command", "Pairs per dataset, flag counts, column coverage and quarantine counts."
    ),
    "tag": LazyCommand(_INSPECT, "tag_command", "Tag a version of the pairs table (the current one by default)."),
    "train-probe": LazyCommand(
        "seal.commands.probe",
        "train_probe_command",
        "Train a probe reward model on the store's human preferences and save it as a model folder.",
    ),
    "validate": LazyCommand(
        _SPEC, "validate_command", "Check an experiment spec against schemas/experiment.schema.json."
    ),
    "versions": LazyCommand(
        _INSPECT,
        "versions_command",
        "Versions of the pairs table, the operation and seal run that made each, and tags.",
    ),
}


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters at a word boundary with "...", as click shortens a short help."""
    if len(text) <= limit:
        return text
    if limit < len("..."):
        return "..."
    return textwrap.shorten(text, limit, placeholder="...", break_on_hyphens=False)


class LazyGroup(SealGroup):
    """A `SealGroup` whose commands (besides any added eagerly) come from a table of `LazyCommand`s."""

    def __init__(self, *args: Any, lazy_commands: dict[str, LazyCommand] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            return self.lazy_commands[cmd_name].load()
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `--help`, from the table: no command module is imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            if name in self.commands:
                command = self.commands[name]
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, shorten(self.lazy_commands[name].short_help, limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
