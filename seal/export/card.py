"""The dataset card seal writes: YAML metadata (configs, dataset_info features, license, task categories, tags,
size category) and the body's seal sections: overview, columns, recipes, analyses and provenance.

Nothing here depends on time or the machine (no timestamps, no absolute temp paths), so publishing the same
store twice gives the same card and the Hub sees no change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seal.export.analyses import render as render_analyses
from seal.export.columns import ColumnDoc
from seal.export.sources import SourceDoc
from seal.export.writers import Shard

TAGS = ("seal", "preference-data", "reward-modeling", "rlhf")
TASK_CATEGORIES = ("text-classification", "reinforcement-learning")
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


@dataclass
class ConfigInfo:
    """One config of an `hf` export: its datasets, split and shards."""

    name: str
    split: str
    datasets: list[str]
    shards: list[Shard] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)  # dataset_info features as YAML

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.shards)

    @property
    def data_dir(self) -> str:
        return f"data/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "split": self.split,
            "datasets": self.datasets,
            "rows": self.rows,
            "files": [s.path for s in self.shards],
            "bytes": sum(s.bytes for s in self.shards),
        }


@dataclass
class CardInputs:
    """Everything the card says."""

    title: str
    license: str
    configs: list[ConfigInfo]
    columns: list[ColumnDoc]
    sources: list[SourceDoc]
    quarantined: dict[str, dict[str, int]]  # dataset -> reason -> rows
    analyses: Mapping[str, Any]
    where: str | None
    pairs_in_store: int
    store_version: int
    seal_version: str
    load_id: str  # repo id or folder for the load_dataset example
    report: str | None = None  # path of the HTML report next to the card


def size_category(rows: int) -> str:
    for limit, name in _SIZES:
        if rows < limit:
            return name
    return "1M<n<10M" if rows < 10_000_000 else "n>10M"


def metadata(inputs: CardInputs) -> dict[str, Any]:
    """The card's YAML metadata."""
    configs, infos = [], []
    for i, c in enumerate(inputs.configs):
        entry: dict[str, Any] = {"config_name": c.name}
        if i == 0 and len(inputs.configs) > 1:
            entry["default"] = True
        entry["data_files"] = [{"split": c.split, "path": f"{c.data_dir}/{c.split}-*"}]
        configs.append(entry)
        infos.append(
            {
                "config_name": c.name,
                "features": c.features,
                "splits": [
                    {"name": c.split, "num_bytes": sum(s.memory_bytes for s in c.shards), "num_examples": c.rows}
                ],
                "download_size": sum(s.bytes for s in c.shards),
                "dataset_size": sum(s.memory_bytes for s in c.shards),
            }
        )
    return {
        "license": inputs.license,
        "task_categories": list(TASK_CATEGORIES),
        "tags": list(TAGS),
        "size_categories": [size_category(sum(c.rows for c in inputs.configs))],
        "configs": configs,
        "dataset_info": infos,
    }


def preamble(inputs: CardInputs) -> str:
    """The title and a first line: written once, for a new card; the user may edit both."""
    kinds = {c.kind for c in inputs.columns}
    held = [text for kind, text in _KIND_TEXTS if kind in kinds]
    what = f" with {', '.join(held[:-1])}{' and ' if len(held) > 1 else ''}{held[-1]}" if held else ""
    return (
        f"# {inputs.title}\n\n"
        f"Preference pairs exported by seal (systematic error analysis of reward models){what}; the card documents "
        "each column with the recipe that made it and summarises what the analyses found."
    )


_KIND_TEXTS = (
    ("score", "reward-model scores"),
    ("features", "feature labels"),
    ("embedding", "embeddings"),
    ("variants", "meaning-preserving rewrites"),
    ("findings", "confusing-entry findings"),
)


def sections(inputs: CardInputs) -> list[tuple[str, str]]:
    """(name, markdown) of each seal-owned section, in order."""
    return [
        ("overview", _overview(inputs)),
        ("columns", _columns(inputs)),
        ("recipes", _recipes(inputs)),
        ("analyses", "## What the analyses found\n\n" + "\n".join(render_analyses(inputs.analyses))),
        ("provenance", _provenance(inputs)),
    ]


def _overview(inputs: CardInputs) -> str:
    total = sum(c.rows for c in inputs.configs)
    lines = ["## Contents", ""]
    if inputs.where:
        lines += [f"The pairs matching `{inputs.where}`: {total:,} of the store's {inputs.pairs_in_store:,}.", ""]
    lines += ["| config | split | pairs | files | size |", "|---|---|---:|---:|---:|"]
    for c in inputs.configs:
        size = sum(s.bytes for s in c.shards)
        lines.append(f"| {c.name} | {c.split} | {c.rows:,} | {len(c.shards)} | {size / 1e6:.1f} MB |")
    first = inputs.configs[0]
    config_arg = f', "{first.name}"' if len(inputs.configs) > 1 else ""
    lines += [
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'pairs = load_dataset("{inputs.load_id}"{config_arg}, split="{first.split}")',
        "```",
        "",
    ]
    quarantined = sum(sum(r.values()) for r in inputs.quarantined.values())
    if quarantined:
        detail = "; ".join(
            f"{d}: " + ", ".join(f"{n:,} {reason}" for reason, n in sorted(reasons.items()))
            for d, reasons in sorted(inputs.quarantined.items())
        )
        rows = "source row" if quarantined == 1 else "source rows"
        lines.append(f"Not included: {quarantined:,} {rows} that could not become pairs (quarantined; {detail}).")
    else:
        lines.append("No source row was quarantined.")
    lines += ["", f"License: `{inputs.license}`" + _license_note(inputs.sources) + "."]
    if inputs.report:
        lines += ["", f"The HTML report of the analyses: [{inputs.report}]({inputs.report})."]
    return "\n".join(lines)


def _license_note(sources: Sequence[SourceDoc]) -> str:
    stated = [f"{s.dataset}: {s.license}" for s in sources if s.license]
    return f" (the sources state: {', '.join(stated)})" if stated else " (given at export)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _columns(inputs: CardInputs) -> str:
    lines = ["## Columns", "", "| column | type | what it holds |", "|---|---|---|"]
    for c in inputs.columns:
        lines.append(f"| `{c.name}` | `{_cell(c.type)}` | {_cell(c.description)} |")
    return "\n".join(lines)


def _fact(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"`{json.dumps(value, sort_keys=True)}`"
    return f"`{value}`"


def _recipes(inputs: CardInputs) -> str:
    lines = [
        "## How each annotation was made",
        "",
        "Every annotation column was written by one recorded seal run; its recipe (everything that determines "
        "the values) is fingerprinted, so the same recipe gives the same column.",
    ]
    made = [c for c in inputs.columns if c.kind != "ingest"]
    if not made:
        lines += ["", "The export holds no annotation columns."]
    for c in made:
        lines += ["", f"### `{c.name}`", "", c.description, ""]
        lines += [f"- {key.replace('_', ' ')}: {_fact(value)}" for key, value in c.facts.items()]
        if c.run_id:
            lines.append(f"- run: `{c.run_id}`, recipe fingerprint `{c.fingerprint}`")
        if c.recipe:
            lines += [
                "",
                "<details><summary>full recipe</summary>",
                "",
                "```json",
                json.dumps(c.recipe, sort_keys=True, indent=1),
                "```",
                "",
                "</details>",
            ]
    return "\n".join(lines)


def _provenance(inputs: CardInputs) -> str:
    lines = ["## Provenance", ""]
    for s in inputs.sources:
        lines.append(f"### {s.dataset}")
        lines.append("")
        if s.source is None:
            lines += ["No ingest run is recorded for this dataset.", ""]
            continue
        lines.append(f"- source: `{s.source}`" + (f" (loader: {s.loader})" if s.loader else ""))
        for key, value in s.options.items():
            lines.append(f"- {key.replace('_', ' ')}: {_fact(value)}")
        if s.resolved_commit:
            lines.append(f"- resolved revision: `{s.resolved_commit}`")
        counts = s.counts
        if counts:
            lines.append(
                f"- rows read: {counts.get('read', 'n/a')}, pairs ingested: {counts.get('ingested', 'n/a')}, "
                f"quarantined: {counts.get('quarantined', 0)}"
            )
        lines.append(f"- ingest run: `{s.run_id}`" + (f" (latest of {s.ingests})" if s.ingests > 1 else ""))
        lines.append("")
    lines.append(
        f"Exported by seal {inputs.seal_version} from version {inputs.store_version} of the store's pairs table."
    )
    return "\n".join(lines)
