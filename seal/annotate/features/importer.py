"""`seal import-features`: labels computed elsewhere (e.g. the SEAL paper's GPT-4 labels) into ``features_<set>``.

Two layouts, detected from the columns:

- long: one row per text, ``pair_id, side, <feature>...`` with side ``chosen`` or ``rejected``;
- wide: one row per pair, ``{"pair_id": ..., "chosen": {<feature>: ...}, "rejected": {...}}``.

Files: JSON Lines (``.jsonl``, ``.ndjson``, optionally gzipped), JSON (a list of rows), CSV / TSV
(list features as a JSON list or ``a;b``; empty cells are missing) and Parquet. Rows are keyed by
``pair_id`` (default), or by ``source_key`` / ``source_index`` of one ingested dataset.

Every row is validated with `FeatureSet.check` (types, allowed values, missing and unknown keys), every
pair must have exactly one chosen and one rejected side, and every key must name a pair of the store.
Any problem: an `InvalidLabels` error listing the rows, and nothing is written. A re-import of the same
file into the same set is up to date (the file's hash is in the recipe); another file replaces the set.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seal.annotate.features.writer import (
    InvalidLabels,
    current_fingerprint,
    latest_label_run,
    read_labels,
    summarize_labels,
    write_labels,
)
from seal.catalog.features import LABEL_STAGE
from seal.catalog.featuresets import Feature, FeatureSet, InvalidLabel, load_feature_set
from seal.errors import SealError, SourceError, StoreError
from seal.pipeline import DONE, PENDING, STALE, UP_TO_DATE, Plan, run_stage
from seal.recipe import Recipe
from seal.store import Store, now_utc

SIDES = ("chosen", "rejected")
KEYS = ("pair_id", "source_key", "source_index")
IMPORT_STAGE_VERSION = 1


@dataclass
class ImportResult:
    """What `seal import-features` did (or, with dry_run, would do)."""

    feature_set: str
    column: str
    file: str
    layout: str
    key: str
    fingerprint: str
    status: str  # done | up-to-date | dry-run
    rows_read: int
    pairs_imported: int
    pairs_total: int
    ignored_columns: list[str] = field(default_factory=list)
    replaced: bool = False  # the set held labels of another recipe, now replaced
    run_id: str | None = None
    pairs_version: int | None = None
    seconds: float = 0.0
    means: dict[str, Any] = field(default_factory=dict)  # per feature and side: labelled pairs and mean

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One human line."""
        if self.status == UP_TO_DATE:
            return f"{self.column}: {Path(self.file).name} already imported"
        verb = "would import" if self.status == "dry-run" else "imported"
        replaced = " (replacing labels of another recipe)" if self.replaced else ""
        return (
            f"{self.column}: {verb} {self.pairs_imported:,} pairs of {self.pairs_total:,} from {Path(self.file).name} "
            f"({self.layout}, {self.rows_read:,} rows){replaced}"
        )


# -- reading files -------------------------------------------------------------------------------------
def _suffixes(path: Path) -> tuple[str, bool]:
    name = path.name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    return (name.rsplit(".", 1)[-1] if "." in name else ""), gz


def read_rows(path: str | Path) -> tuple[list[dict[str, Any]], str]:
    """The rows of a label file as dicts, and its kind (jsonl, json, csv, tsv, parquet)."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"no such file: {path}")
    suffix, gz = _suffixes(path)
    opener: Any = gzip.open if gz else open
    try:
        if suffix in ("jsonl", "ndjson"):
            rows = []
            with opener(path, "rt", encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as err:
                            raise SourceError(f"{path}: line {number} is not JSON: {err.msg}") from None
            return _objects(rows, path), "jsonl"
        if suffix == "json":
            with opener(path, "rt", encoding="utf-8") as handle:
                document = json.load(handle)
            if isinstance(document, dict):
                document = next(
                    (document[k] for k in ("rows", "data", "labels") if isinstance(document.get(k), list)), None
                )
            if not isinstance(document, list):
                raise SourceError(f"{path}: expected a JSON list of rows (or an object with a `rows` list)")
            return _objects(document, path), "json"
        if suffix in ("csv", "tsv"):
            with opener(path, "rt", encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == "tsv" else ",")
                return [dict(row) for row in reader], suffix
        if suffix == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist(), "parquet"
    except (OSError, pa.ArrowInvalid, UnicodeDecodeError, EOFError, csv.Error) as err:
        raise SourceError(f"cannot read {path}: {err}") from None
    raise SourceError(f"{path}: unknown label file type", hint="use .jsonl, .json, .csv, .tsv or .parquet")


def _objects(rows: list[Any], path: Path) -> list[dict[str, Any]]:
    bad = [i + 1 for i, r in enumerate(rows) if not isinstance(r, dict)]
    if bad:
        raise SourceError(f"{path}: rows {', '.join(map(str, bad[:10]))} are not JSON objects")
    return rows


def _coerce(feature: Feature, value: Any, from_text: bool) -> Any:
    """Values as text files give them: CSV strings to numbers / lists, JSON-encoded lists."""
    if feature.type == "list" and isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return value
        return [v.strip() for v in text.split(";") if v.strip()] if from_text else value
    if not from_text or not isinstance(value, str):
        return value
    text = value.strip()
    if text == "":
        return None
    if feature.type == "number":
        try:
            return float(text)
        except ValueError:
            return value
    if feature.type == "bool" and text in ("0", "1"):
        return int(text)
    return value


# -- parsing rows into labels --------------------------------------------------------------------------
def detect_layout(rows: list[dict[str, Any]]) -> str:
    columns = {k for row in rows[:1000] for k in row}
    if "side" in columns:
        return "long"
    if {"chosen", "rejected"} <= columns:
        return "wide"
    raise SourceError(
        "cannot tell the layout of the label file",
        hint="long: columns pair_id, side, <features>; wide: {pair_id, chosen: {...}, rejected: {...}}",
    )


def parse_rows(
    rows: list[dict[str, Any]],
    feature_set: FeatureSet,
    key_map: Mapping[Any, str] | None,
    key: str = "pair_id",
    from_text: bool = False,
) -> tuple[pa.Table, str, list[str]]:
    """(labels table, layout, ignored columns); raises `InvalidLabels` listing every bad row.

    `key_map` maps the key values of the file to pair ids (None: the key is the pair id, unchecked)."""
    if not rows:
        raise SourceError("the label file has no rows")
    layout = detect_layout(rows)
    names = set(feature_set.names())
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if key not in columns:
        raise SourceError(f"the label file has no `{key}` column", hint="name the key column with --key")
    structural = {key, "side"} if layout == "long" else {key, *SIDES}
    if layout == "long":
        missing = sorted(names - set(columns))
        if missing:
            raise SourceError(
                f"the label file lacks columns for features of `{feature_set.name}`: {', '.join(missing)}",
                hint=f"features: {', '.join(feature_set.names())}",
            )
        ignored = [c for c in columns if c not in structural and c not in names]
    else:
        ignored = [c for c in columns if c not in structural]
    problems: list[str] = []
    per_pair: dict[str, dict[str, Any]] = {}
    first_row: dict[str, int] = {}
    invalid: set[str] = set()  # pairs with an invalid row: a missing side there is no news

    def resolve(value: Any, where: str) -> str | None:
        if value is None or value == "":
            problems.append(f"{where}: {key} missing")
            return None
        if key_map is None:
            return str(value)
        lookup = value
        if key == "source_index":
            try:
                lookup = int(value)
            except (TypeError, ValueError):
                problems.append(f"{where}: source_index {value!r} is not an integer")
                return None
        pair_id = key_map.get(lookup if key == "source_index" else str(value))
        if pair_id is None:
            problems.append(f"{where}: {key} {value!r} is not a pair of the store")
        return pair_id

    def check_side(raw: Any, where: str) -> dict[str, Any] | None:
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: expected an object of labels, got {raw!r}")
            return None
        values = {k: (_coerce(feature_set.feature(k), v, from_text) if k in names else v) for k, v in raw.items()}
        try:
            return feature_set.check(values)
        except InvalidLabel as err:
            problems.append(f"{where}: {err}")
            return None

    for number, row in enumerate(rows, 1):
        if layout == "long":
            side = str(row.get("side", "")).strip().lower()
            where = f"row {number} ({key} {row.get(key)!r}, side {row.get('side')!r})"
            pair_id = resolve(row.get(key), where)
            if side not in SIDES:
                problems.append(f"{where}: side must be chosen or rejected")
                if pair_id is not None:
                    invalid.add(pair_id)
                continue
            labels = check_side({k: v for k, v in row.items() if k in names}, where)
            if pair_id is None or labels is None:
                if pair_id is not None:
                    invalid.add(pair_id)
                continue
            sides = per_pair.setdefault(pair_id, {})
            first_row.setdefault(pair_id, number)
            if side in sides:
                problems.append(f"{where}: a second {side} row for this pair")
                continue
            sides[side] = labels
        else:
            where = f"row {number} ({key} {row.get(key)!r})"
            pair_id = resolve(row.get(key), where)
            chosen = check_side(row.get("chosen"), f"{where} chosen")
            rejected = check_side(row.get("rejected"), f"{where} rejected")
            if pair_id is None or chosen is None or rejected is None:
                continue
            if pair_id in per_pair:
                problems.append(f"{where}: the pair appears again (first at row {first_row[pair_id]})")
                continue
            first_row[pair_id] = number
            per_pair[pair_id] = {"chosen": chosen, "rejected": rejected}
    if layout == "long":
        for pair_id, sides in per_pair.items():
            for side in SIDES:
                if side not in sides and pair_id not in invalid:
                    problems.append(f"row {first_row[pair_id]} (pair {pair_id}): no {side} row for this pair")
    if problems:
        raise InvalidLabels(f"{len(problems)} invalid row(s) in the label file; nothing written", problems)
    ids = list(per_pair)
    structs = [
        {f: {"chosen": per_pair[p]["chosen"][f], "rejected": per_pair[p]["rejected"][f]} for f in feature_set.names()}
        for p in ids
    ]
    table = pa.table(
        {"pair_id": pa.array(ids, pa.string()), feature_set.column: pa.array(structs, type=feature_set.arrow_type())}
    )
    return table, layout, ignored


def key_map_for(store: Store, key: str, dataset: str | None = None) -> dict[Any, str] | None:
    """{key value: pair_id} for `key` (pair_id: all ids of the store), restricted to one dataset."""
    if key not in KEYS:
        raise SealError(f"unknown key `{key}`", hint=f"use one of {', '.join(KEYS)}")
    flt = None if dataset is None else pc.field("dataset") == dataset
    columns = ["pair_id"] if key == "pair_id" else ["pair_id", key]
    table = store.read(columns, flt)
    if dataset is not None and table.num_rows == 0:
        raise StoreError(f"the store has no pairs of dataset `{dataset}`")
    ids = table.column("pair_id").to_pylist()
    if key == "pair_id":
        return dict(zip(ids, ids, strict=True))
    values = table.column(key).to_pylist()
    mapping = dict(zip(values, ids, strict=True))
    if len(mapping) != len(values):
        raise SealError(
            f"`{key}` is not unique among the store's pairs", hint="restrict it to one dataset with --dataset"
        )
    return mapping


# -- the import as a stage -----------------------------------------------------------------------------
def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_recipe(
    path: str | Path, feature_set: FeatureSet, key: str = "pair_id", dataset: str | None = None
) -> Recipe:
    """The recipe of imported labels: the file's content hash, the key and the set's types."""
    definition = {
        "name": feature_set.name,
        "features": [
            {k: v for k, v in (("name", f.name), ("type", f.type), ("values", f.values)) if v is not None}
            for f in feature_set.features
        ],
    }
    params = {"labeler": "import", "file_sha256": file_sha256(path), "key": key, "dataset": dataset}
    return Recipe(LABEL_STAGE, feature_set.name, {**params, "feature_set": definition}, IMPORT_STAGE_VERSION)


class ImportStage:
    """Import one label file into one feature set (a `features:` entry with ``labeler: import``)."""

    def __init__(
        self, path: str | Path, feature_set: str | FeatureSet, key: str = "pair_id", dataset: str | None = None
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"no such file: {self.path}")
        self.feature_set = load_feature_set(feature_set) if isinstance(feature_set, str) else feature_set
        self.key, self.dataset = key, dataset
        self.recipe = import_recipe(self.path, self.feature_set, key, dataset)

    @property
    def column(self) -> str:
        return self.feature_set.column

    def plan(self, store: Store) -> Plan:
        fingerprint = self.recipe.fingerprint()
        name = self.feature_set.name
        current = current_fingerprint(store, name) if store.exists() else None
        if current == fingerprint:
            return Plan(
                LABEL_STAGE, name, fingerprint, UP_TO_DATE, f"{self.path.name} already imported", 0, self.column
            )
        if current is not None:
            last = latest_label_run(store, name) or {}
            how = last.get("recipe", {}).get("params", {}).get("labeler", "another recipe")
            reason = f"the set holds labels from {how}; importing {self.path.name} replaces them"
            return Plan(LABEL_STAGE, name, fingerprint, STALE, reason, None, self.column)
        return Plan(LABEL_STAGE, name, fingerprint, PENDING, f"{self.path.name} not imported yet", None, self.column)

    def _result(self, store: Store, plan: Plan, status: str) -> ImportResult:
        return ImportResult(
            feature_set=self.feature_set.name,
            column=self.column,
            file=str(self.path),
            layout="",
            key=self.key,
            fingerprint=plan.fingerprint or self.recipe.fingerprint(),
            status=status,
            rows_read=0,
            pairs_imported=0,
            pairs_total=store.count(),
            replaced=plan.status == STALE,
        )

    def up_to_date(self, store: Store, plan: Plan) -> ImportResult:
        """The result of a plan with nothing to do: the file was imported already."""
        result = self._result(store, plan, UP_TO_DATE)
        result.replaced = False
        last = latest_label_run(store, self.feature_set.name) or {}
        result.layout = last.get("provenance", {}).get("layout", "")
        return result

    def _parse(self, store: Store, result: ImportResult) -> tuple[pa.Table, str]:
        """Read and check the file (every problem raised at once); the labels and the file's kind."""
        rows, kind = read_rows(self.path)
        result.rows_read = len(rows)
        key_map = key_map_for(store, self.key, self.dataset)
        labels, layout, ignored = parse_rows(
            rows, self.feature_set, key_map, self.key, from_text=kind in ("csv", "tsv")
        )
        result.layout, result.ignored_columns = layout, ignored
        result.pairs_imported = labels.num_rows
        return labels, kind

    def dry_run(self, store: Store, plan: Plan) -> ImportResult:
        """Read and check the file as `run` would; write nothing."""
        if plan.status == UP_TO_DATE:
            return self.up_to_date(store, plan)
        result = self._result(store, plan, "dry-run")
        labels, _ = self._parse(store, result)
        result.means = summarize_labels(self.feature_set, labels)
        return result

    def run(self, store: Store, plan: Plan, show_progress: bool = False) -> ImportResult:
        """Read, check and write the file's labels (replacing the set's labels when the plan is stale)."""
        t0 = time.perf_counter()
        started = now_utc()
        store.require()
        fs = self.feature_set
        result = self._result(store, plan, "done")
        labels, kind = self._parse(store, result)
        provenance = {
            "labeler": "import",
            "origin": "imported",
            "file": str(self.path.resolve()),
            "file_kind": kind,
            "layout": result.layout,
            "rows_read": result.rows_read,
            "ignored_columns": result.ignored_columns,
            "feature_set_source": fs.source,
        }
        write = write_labels(store, fs, labels, self.recipe, provenance, merge=False, started_at=started)
        result.run_id, result.pairs_version = write.run_id, write.pairs_version
        result.means = summarize_labels(fs, read_labels(store, fs.name, non_null=True))
        result.seconds = round(time.perf_counter() - t0, 3)
        return result


def import_features(
    store: Store,
    path: str | Path,
    feature_set: str | FeatureSet,
    key: str = "pair_id",
    dataset: str | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Import the labels of `path` into `feature_set` (a shipped set's name or a YAML path), through
    `seal.pipeline.run_stage`; `dry_run` reads and checks the file and writes nothing."""
    t0 = time.perf_counter()
    store.require()
    stage = ImportStage(path, feature_set, key, dataset)
    if dry_run:
        result = stage.dry_run(store, stage.plan(store))
    else:
        outcome = run_stage(store, stage)
        if outcome.status == DONE:
            return outcome.result
        result = stage.up_to_date(store, outcome.plan)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result
