"""`seal export`: the store's pairs (optionally filtered) as files.

- `hf`: parquet shards of bounded size under `data/<config>/` (one config per dataset, or one named `config`) and
  a README.md dataset card (seal.export.card) that `datasets.load_dataset(DIR)` reads; an existing README.md in
  DIR is merged, not replaced (seal.export.merge).
- `parquet` / `jsonl`: the flat table in one file, `pairs.parquet` / `pairs.jsonl` (nested columns stay nested).
- `annotated-pairs`: `annotated_pairs.json`, the AnnotatedPairs format of Feedback Forensics.

Files are written into a staging folder inside DIR and moved into place at the end, so an interrupted export
leaves DIR as it was. Quarantined rows are counted in the card, never exported.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seal import __version__
from seal.catalog.models import list_models
from seal.errors import SealError
from seal.export import analyses as analyses_mod
from seal.export.annotated_pairs import annotated_pairs, write_annotated_pairs
from seal.export.card import CardInputs, ConfigInfo, metadata, preamble, sections
from seal.export.columns import ColumnDoc, config_name, describe_columns, select_columns
from seal.export.merge import merge_card, split_card
from seal.export.sources import SourceDoc, describe_sources, resolve_license
from seal.export.writers import (
    DEFAULT_MAX_SHARD_SIZE,
    Shard,
    combine_where,
    export_schema,
    parse_size,
    write_jsonl,
    write_parquet,
    write_shards,
)
from seal.sql_guard import check_where
from seal.store import Store

FORMATS = ("hf", "parquet", "jsonl", "annotated-pairs")
FILE_NAMES = {"parquet": "pairs.parquet", "jsonl": "pairs.jsonl", "annotated-pairs": "annotated_pairs.json"}
_SPLIT = re.compile(r"^\w+(\.\w+)*$")


@dataclass
class ExportResult:
    """What an export wrote."""

    format: str
    directory: str
    pairs: int
    pairs_in_store: int
    where: str | None
    columns: list[str]
    files: list[dict[str, Any]]
    configs: list[dict[str, Any]] = field(default_factory=list)
    license: str | None = None
    quarantined: int = 0
    seconds: float = 0.0
    card: str | None = None  # the README text (hf)
    inputs: CardInputs | None = None  # what the card says (hf), for publish

    @property
    def bytes(self) -> int:
        return sum(f["bytes"] for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "directory": self.directory,
            "pairs": self.pairs,
            "pairs_in_store": self.pairs_in_store,
            "where": self.where,
            "columns": self.columns,
            "configs": self.configs,
            "files": self.files,
            "bytes": self.bytes,
            "license": self.license,
            "quarantined": self.quarantined,
            "seconds": self.seconds,
        }


def _datasets(store: Store, where: str | None) -> Counter[str]:
    """Pairs per dataset among the rows matching `where`, in store order."""
    values = store.read(["dataset"], where).column("dataset")
    return Counter(values.to_pylist())


def _quarantined(store: Store, datasets: Sequence[str]) -> dict[str, dict[str, int]]:
    rows = store.quarantine(columns=["dataset", "reason"])
    if rows.num_rows == 0:
        return {}
    out: dict[str, dict[str, int]] = {}
    for row in rows.to_pylist():
        if row["dataset"] in datasets:
            reasons = out.setdefault(row["dataset"], {})
            reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    return out


def _split(source: SourceDoc) -> str:
    split = str(source.options.get("split") or "")
    return split if split and _SPLIT.match(split) else "train"


def _plan_configs(sources: Sequence[SourceDoc], config: str | None) -> list[ConfigInfo]:
    if config is not None:
        name = config_name(config)
        if name != config:
            raise SealError(f"bad config name `{config}`", hint="use letters, digits, -, _ and .")
        splits = {_split(s) for s in sources}
        return [ConfigInfo(name, splits.pop() if len(splits) == 1 else "train", [s.dataset for s in sources])]
    configs: dict[str, ConfigInfo] = {}
    for s in sources:
        name = config_name(s.dataset)
        if name in configs:
            raise SealError(
                f"datasets `{configs[name].datasets[0]}` and `{s.dataset}` map to the same config name `{name}`",
                hint="export them into one config with --config NAME, or one at a time with --where",
            )
        configs[name] = ConfigInfo(name, _split(s), [s.dataset])
    return list(configs.values())


def _card_license(card: str | None) -> str | None:
    """The `license` an existing card's metadata declares, if any."""
    if not card:
        return None
    value = split_card(card)[0].get("license")
    return value if isinstance(value, str) and value.strip() else None


def _features_yaml(store: Store, columns: Sequence[str]) -> list[dict[str, Any]]:
    """dataset_info features, as `datasets` writes them for this Arrow schema."""
    from datasets import Features

    return Features.from_arrow_schema(export_schema(store, columns))._to_yaml_list()


def export(
    store: Store,
    directory: str | os.PathLike[str],
    *,
    format: str = "hf",
    where: str | None = None,
    columns: Sequence[str] | None = None,
    embeddings: bool = True,
    config: str | None = None,
    license: str | None = None,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    load_id: str | None = None,
    title: str | None = None,
    existing_card: str | None = None,
    report_link: str | None = None,
) -> ExportResult:
    """Export the pairs matching `where` (all by default) to `directory` in `format` (hf | parquet | jsonl |
    annotated-pairs). `columns`: top-level columns to keep (default all but internal ones); `embeddings=False`
    drops the `emb_*` vectors; `config`: one config of that name instead of one per dataset (hf); `license`:
    the card's license when the sources state none; `load_id`: the repo id the card's example loads;
    `existing_card`: the README the card is merged into (default: DIR/README.md when present); `report_link`:
    the path of an HTML report next to the card, linked from it."""
    t0 = time.perf_counter()
    if format not in FORMATS:
        raise SealError(f"unknown export format `{format}`", hint=f"use one of {', '.join(FORMATS)}")
    store.require()
    where = check_where(where)
    max_bytes = parse_size(max_shard_size)
    selected = select_columns(store.schema(), columns, embeddings)
    per_dataset = _datasets(store, where)
    if not per_dataset:
        raise SealError("no pairs match --where", hint="check the filter with `seal query --where ...`")
    runs = store.runs()
    sources = describe_sources(runs, list(per_dataset))
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".seal-export-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    pairs_in_store = store.count()
    try:
        if format != "hf":
            result = _export_flat(store, format, staging, folder, selected, where, per_dataset, runs)
        else:
            readme = folder / "README.md"
            if existing_card is None and readme.is_file():
                existing_card = readme.read_text(encoding="utf-8")
            result = _export_hf(
                store,
                staging,
                folder,
                selected,
                where,
                sources,
                config,
                license,
                max_bytes,
                load_id,
                title,
                runs,
                existing_card,
                report_link,
            )
        result.pairs_in_store, result.where = pairs_in_store, where
        result.seconds = round(time.perf_counter() - t0, 3)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_flat(
    store: Store,
    format: str,
    staging: Path,
    folder: Path,
    selected: list[str],
    where: str | None,
    per_dataset: Counter[str],
    runs: list[dict[str, Any]],
) -> ExportResult:
    name = FILE_NAMES[format]
    if format == "parquet":
        shard = write_parquet(store, selected, where, staging / name)
    elif format == "jsonl":
        shard = write_jsonl(store, selected, where, staging / name)
    else:
        models = list_models(store)
        document = annotated_pairs(
            store,
            selected,
            where,
            dataset_name="+".join(per_dataset),
            description=f"seal export of {sum(per_dataset.values()):,} preference pairs ({', '.join(per_dataset)}): "
            "the human label, each reward model and each boolean feature as annotators.",
            models=models,
        )
        size = write_annotated_pairs(document, staging / name)
        shard = Shard(name, len(document["comparisons"]), size, size)
    (staging / name).replace(folder / name)
    files = [{"path": shard.path, "rows": shard.rows, "bytes": shard.bytes}]
    return ExportResult(format, str(folder), shard.rows, 0, where, selected, files)


def _export_hf(
    store: Store,
    staging: Path,
    folder: Path,
    selected: list[str],
    where: str | None,
    sources: list[SourceDoc],
    config: str | None,
    license: str | None,
    max_bytes: int,
    load_id: str | None,
    title: str | None,
    runs: list[dict[str, Any]],
    existing: str | None,
    report_link: str | None,
) -> ExportResult:
    license_id = resolve_license(sources, license, _card_license(existing))
    configs = _plan_configs(sources, config)
    features = _features_yaml(store, selected)
    for c in configs:
        c.features = features
        c.shards = write_shards(
            store, selected, combine_where(where, c.datasets), staging, c.data_dir, c.split, max_bytes
        )
    models = list_models(store)
    docs: list[ColumnDoc] = describe_columns(store, selected, runs)
    quarantined = _quarantined(store, [s.dataset for s in sources])
    inputs = CardInputs(
        title=title or f"{' + '.join(s.dataset for s in sources)} (annotated with seal)",
        license=license_id,
        configs=configs,
        columns=docs,
        sources=sources,
        quarantined=quarantined,
        analyses=analyses_mod.summarise(store, models),
        where=where,
        pairs_in_store=store.count(),
        store_version=store.version(),
        seal_version=__version__,
        load_id=load_id or str(folder),
        report=report_link,
    )
    readme = folder / "README.md"
    card = merge_card(existing, metadata(inputs), sections(inputs), preamble(inputs))
    (staging / "README.md").write_text(card, encoding="utf-8")
    for c in configs:  # replace each written config's data folder as a whole
        target = folder / c.data_dir
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        (staging / c.data_dir).replace(target)
    (staging / "README.md").replace(readme)
    files = [{"path": s.path, "rows": s.rows, "bytes": s.bytes} for c in configs for s in c.shards]
    files.append({"path": "README.md", "rows": 0, "bytes": readme.stat().st_size})
    return ExportResult(
        "hf",
        str(folder),
        sum(c.rows for c in configs),
        0,
        where,
        selected,
        files,
        configs=[c.to_json() for c in configs],
        license=license_id,
        quarantined=sum(sum(r.values()) for r in quarantined.values()),
        card=card,
        inputs=inputs,
    )
