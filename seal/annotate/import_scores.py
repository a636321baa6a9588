"""Import reward-model scores computed elsewhere (a GPU cluster, an API RM) into ``score_<alias>``.

The file (parquet, csv, jsonl/ndjson or json; optionally gzipped) holds one row per pair with a pair id and
the scores of the chosen and rejected responses. Everything is read and validated before anything is
written: unknown pair ids, duplicate ids, missing, NaN, infinite or non-numeric values make the whole import
fail with one line naming the first few offending ids and their count, and the store keeps its version.

A file may cover only some pairs (the others stay null; coverage is reported). The import is recorded in
`runs` like a scoring run (stage ``score``, name = alias) with recipe {origin file sha256, column map} and
provenance {role, origin: "imported", file}. Importing the same file again is a no-op; a different file, or
scores an RM run (`seal score`) produced, are only overwritten with ``replace=True``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from seal.catalog.models import ROLES, SCORE_TYPE, check_alias, score_column
from seal.errors import SealError, SourceError, StoreError
from seal.recipe import Recipe
from seal.store import RunRecord, Store, now_utc

KEYS = ("pair_id", "chosen", "rejected")
SUFFIXES = (".parquet", ".csv", ".jsonl", ".ndjson", ".json")
SHOW_IDS = 5
STAGE = "score"  # imported scores are recorded like scoring runs
STAGE_VERSION = 1
_NUMBER = r"^\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)\s*$"


class ScoreFileError(SourceError):
    """The score file cannot be imported as a whole (validation failed); nothing was written."""


@dataclass
class ImportResult:
    """What one import did; `to_json()` is the `seal import-scores --json` output."""

    alias: str
    column: str
    role: str
    origin: str
    status: str  # imported | replaced | unchanged | role_updated
    file: str
    sha256: str
    column_map: dict[str, str]
    rows_in_file: int
    pairs_scored: int
    pairs_total: int
    coverage: float
    fingerprint: str
    run_id: str | None
    pairs_version: int | None
    replaced: dict[str, Any] | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        what = {
            "imported": "imported",
            "replaced": "replaced the scores of",
            "unchanged": "unchanged (same file already imported):",
            "role_updated": "same file already imported; role updated for",
        }[self.status]
        line = (
            f"{what} `{self.alias}` (role {self.role}) from {self.file}: {self.pairs_scored:,} of "
            f"{self.pairs_total:,} pairs scored ({100 * self.coverage:.1f}%) in column {self.column}"
        )
        if self.pairs_version is not None and self.status in ("imported", "replaced"):
            line += f"; pairs table now at version {self.pairs_version}"
        return line


# -- options ------------------------------------------------------------------------------------
def parse_column_map(items: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["chosen=score_a", ...]`` (or a mapping) -> {pair_id, chosen, rejected: file column}."""
    mapping = dict(zip(KEYS, KEYS, strict=True))
    if not items:
        return mapping
    pairs = items.items() if isinstance(items, Mapping) else (_split_map(item) for item in items)
    seen: set[str] = set()
    for key, column in pairs:
        if key not in KEYS:
            raise SealError(f"unknown --map key `{key}`", hint=f"map one of {', '.join(KEYS)}, e.g. chosen=score_a")
        if key in seen:
            raise SealError(f"--map {key}=… given twice")
        if not column:
            raise SealError(f"--map {key}= needs a column name")
        seen.add(key)
        mapping[key] = column
    if len(set(mapping.values())) < len(KEYS):
        raise SealError(f"--map sends two keys to one column: {mapping}")
    return mapping


def _split_map(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise SealError(f"bad --map `{item}`", hint="write KEY=COLUMN, e.g. chosen=score_a")
    key, column = item.split("=", 1)
    return key.strip(), column.strip()


# -- reading ------------------------------------------------------------------------------------
def _suffix(path: Path) -> tuple[str, bool]:
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), gz


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_bytes(path: Path, gz: bool) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        return gzip.decompress(data) if gz else data
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise SourceError(f"{path}: corrupt or truncated gzip data ({err})") from None
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err.strerror or err}") from None


def read_score_file(path: Path, column_map: Mapping[str, str]) -> pa.Table:
    """The mapped columns of the file as a table with columns pair_id, chosen, rejected (raw types)."""
    suffix, gz = _suffix(path)
    if suffix not in SUFFIXES:
        raise SourceError(f"unknown score file type `{path.name}`", hint=f"use {', '.join(SUFFIXES)} (optionally .gz)")
    data = _read_bytes(path, gz)
    wanted = [column_map[k] for k in KEYS]
    try:
        if suffix == ".parquet":
            table = pq.read_table(io.BytesIO(data))
        elif suffix == ".csv":
            convert = pacsv.ConvertOptions(column_types=dict.fromkeys(wanted, pa.string()))
            table = pacsv.read_csv(io.BytesIO(data), convert_options=convert)
        else:
            table = _read_json(data, suffix)
    except pa.ArrowInvalid as err:
        raise SourceError(f"{path}: cannot parse as {suffix[1:]}: {err}") from None
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        keys = [k for k in KEYS if column_map[k] in missing]
        raise SourceError(
            f"{path.name} has no column {', '.join(f'`{c}`' for c in missing)} "
            f"(columns: {', '.join(table.column_names) or 'none'})",
            hint="name the file's columns with " + " ".join(f"--map {k}=COLUMN" for k in keys),
        )
    return pa.table({k: table.column(column_map[k]) for k in KEYS})


def _read_json(data: bytes, suffix: str) -> pa.Table:
    """JSON lines (or a JSON list of records). Arrow's reader first; Python's json module when the
    columns mix types (e.g. a number and a string), so that the bad values can be reported."""
    stripped = data.lstrip()
    if suffix == ".json" and stripped[:1] == b"[":
        return _records_table(_json_document(data))
    try:
        return pajson.read_json(io.BytesIO(data))
    except pa.ArrowInvalid:
        pass
    records = []
    for line_no, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SourceError(f"invalid JSON on line {line_no}: {err}") from None
        if not isinstance(value, dict):
            raise SourceError(f"line {line_no} is a {type(value).__name__}, not an object")
        records.append(value)
    return _records_table(records)


def _json_document(data: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SourceError(f"invalid JSON: {err}") from None
    if not isinstance(document, list) or not all(isinstance(v, dict) for v in document):
        raise SourceError("a .json score file must hold a list of objects (or JSON lines)")
    return document


def _records_table(records: list[dict[str, Any]]) -> pa.Table:
    """Records with possibly mixed value types: every column as strings, keeping numbers exact (repr)
    and marking values that are neither numbers nor strings so validation reports them."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    columns = {}
    for name in names:
        values = [_as_text(record.get(name)) for record in records]
        columns[name] = pa.array(values, type=pa.string())
    return pa.table(columns)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return f"<{str(value).lower()}>"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return value
    return f"<{type(value).__name__}>"


# -- validation ---------------------------------------------------------------------------------
@dataclass
class _Checked:
    pair_ids: pa.Array
    chosen: np.ndarray
    rejected: np.ndarray


def _as_float(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float64 values, missing mask, non-numeric mask) of a column of any Arrow type."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    typ = arr.type
    if pa.types.is_dictionary(typ):
        arr = arr.dictionary_decode()
        typ = arr.type
    n = len(arr)
    if pa.types.is_null(typ):
        return np.full(n, np.nan), np.ones(n, bool), np.zeros(n, bool)
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        missing = arr.is_null().to_numpy(zero_copy_only=False)
        floats = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        return floats, missing, np.zeros(n, bool)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        stripped = pc.utf8_trim_whitespace(arr)
        missing = pc.or_kleene(arr.is_null(), pc.equal(stripped, "")).fill_null(True)
        missing_np = missing.to_numpy(zero_copy_only=False)
        numeric = pc.match_substring_regex(stripped, _NUMBER, ignore_case=True).fill_null(False)
        numeric_np = numeric.to_numpy(zero_copy_only=False)
        floats = np.full(n, np.nan)
        if numeric_np.any():
            good = pc.filter(stripped, numeric)
            floats[numeric_np] = pc.cast(good, pa.float64()).to_numpy(zero_copy_only=False)
        return floats, missing_np, ~missing_np & ~numeric_np
    missing = arr.is_null().to_numpy(zero_copy_only=False)
    return np.full(n, np.nan), missing, ~missing


def _ids_text(shown: list[Any], total: int) -> str:
    more = f", … {total - SHOW_IDS:,} more" if total > SHOW_IDS else ""
    return ", ".join(str(v) for v in shown[:SHOW_IDS]) + more


def validate_scores(raw: pa.Table, known_ids: pa.Array, column_map: Mapping[str, str]) -> _Checked:
    """Check every row; raise one `ScoreFileError` listing all problems, or return the clean columns."""
    if raw.num_rows == 0:
        raise ScoreFileError("the score file has no rows")
    id_col = raw.column("pair_id").combine_chunks()
    if pa.types.is_dictionary(id_col.type):
        id_col = id_col.dictionary_decode()
    if not (pa.types.is_string(id_col.type) or pa.types.is_large_string(id_col.type)):
        id_col = pc.cast(id_col, pa.string())
    id_col = id_col.cast(pa.string())
    problems: list[str] = []

    def add(kind: str, mask: np.ndarray) -> None:
        where = np.flatnonzero(mask)
        if not len(where):
            return
        shown = id_col.take(pa.array(where[:SHOW_IDS])).to_pylist()
        labels = [pid if pid else f"row {i + 1}" for pid, i in zip(shown, where[:SHOW_IDS].tolist(), strict=True)]
        problems.append(f"{kind}: {len(where):,} ({_ids_text(labels, len(where))})")

    null_ids = pc.or_kleene(pc.is_null(id_col), pc.equal(pc.utf8_trim_whitespace(id_col), "")).fill_null(True)
    null_np = null_ids.to_numpy(zero_copy_only=False)
    add("rows without a pair id", null_np)
    present = ~null_np
    unknown = present & ~pc.is_in(id_col, value_set=known_ids).fill_null(False).to_numpy(zero_copy_only=False)
    add("unknown pair ids", unknown)
    if present.any():
        counts = pc.value_counts(pc.filter(id_col, pa.array(present)))
        dup_values = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
        if len(dup_values):
            n_rows = int(pc.sum(pc.filter(counts.field("counts"), pc.greater(counts.field("counts"), 1))).as_py())
            problems.append(
                f"duplicate pair ids: {len(dup_values):,} on {n_rows:,} rows "
                f"({_ids_text(dup_values.slice(0, SHOW_IDS).to_pylist(), len(dup_values))})"
            )
    values = {}
    for side in ("chosen", "rejected"):
        floats, missing, non_numeric = _as_float(raw.column(side))
        col = column_map[side]
        add(f"missing `{col}` values", missing)
        add(f"non-numeric `{col}` values", non_numeric)
        add(f"NaN `{col}` values", ~missing & ~non_numeric & np.isnan(floats))
        add(f"infinite `{col}` values", np.isinf(floats))
        values[side] = floats
    if problems:
        raise ScoreFileError("; ".join(problems))
    return _Checked(id_col, values["chosen"], values["rejected"])


# -- the import ---------------------------------------------------------------------------------
def import_recipe(alias: str, sha256: str, column_map: Mapping[str, str]) -> Recipe:
    params = {"origin": "imported", "file_sha256": sha256, "column_map": dict(column_map)}
    return Recipe(stage=STAGE, name=alias, params=params, stage_version=STAGE_VERSION)


def _latest_score_run(store: Store, alias: str) -> dict[str, Any] | None:
    latest = None
    for run in store.runs(STAGE):
        if run["name"] == alias:
            latest = run
    return latest


def _coverage(store: Store, column: str) -> tuple[int, int]:
    total = store.count()
    if column not in store.columns():
        return 0, total
    done = store.count(f"`{column}`.chosen IS NOT NULL AND `{column}`.rejected IS NOT NULL")
    return int(done), int(total)


def import_scores(
    store: Store,
    path: str | Path,
    alias: str,
    *,
    role: str | None = None,
    column_map: Sequence[str] | Mapping[str, str] | None = None,
    replace: bool = False,
) -> ImportResult:
    """Import the scores in `path` as RM `alias` (column ``score_<alias>``); see the module docstring.

    `role` defaults to the role the alias already has (``other`` for a new alias). `column_map` maps the keys
    pair_id / chosen / rejected to the file's column names (``["chosen=score_a", ...]`` or a dict).
    """
    started, t0 = now_utc(), time.perf_counter()
    check_alias(alias)
    if role is not None and role not in ROLES:
        raise SealError(f"unknown role `{role}`", hint=f"use one of {', '.join(ROLES)}")
    mapping = parse_column_map(column_map)
    store.require()
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"no such file: {path}")
    column = score_column(alias)
    sha = file_sha256(path)
    recipe = import_recipe(alias, sha, mapping)
    fingerprint = recipe.fingerprint()
    previous = _latest_score_run(store, alias)
    has_column = column in store.columns()
    if role is None:  # keep the role of the scores being re-imported or replaced
        role = str(previous["provenance"].get("role", "other")) if previous else "other"

    def result(status: str, run_id: str | None, version: int | None, rows: int, replaced: Any = None) -> ImportResult:
        done, total = _coverage(store, column)
        return ImportResult(
            alias=alias,
            column=column,
            role=role,
            origin="imported",
            status=status,
            file=str(path),
            sha256=sha,
            column_map=mapping,
            rows_in_file=rows,
            pairs_scored=done,
            pairs_total=total,
            coverage=round(done / total, 6) if total else 0.0,
            fingerprint=fingerprint,
            run_id=run_id,
            pairs_version=version,
            replaced=replaced,
            seconds=round(time.perf_counter() - t0, 3),
        )

    if previous is not None and has_column and previous["fingerprint"] == fingerprint:
        rows = int(previous["provenance"].get("rows_in_file", previous["rows_written"]))
        if previous["provenance"].get("role") == role:
            return result("unchanged", previous["run_id"], previous["pairs_version"], rows)
        # Same scores, new role: record the role without rewriting the column.
        provenance = {**previous["provenance"], "role": role, "role_changed_from": previous["provenance"].get("role")}
        record = RunRecord.finished(STAGE, alias, recipe, provenance, started_at=started)
        store.record_run(record)
        return result("role_updated", record.run_id, previous["pairs_version"], rows)

    replaced = None
    if has_column or previous is not None:
        origin = previous["provenance"].get("origin", "scored") if previous else "unknown"
        replaced = {
            "origin": origin,
            "fingerprint": previous["fingerprint"] if previous else None,
            "run_id": previous["run_id"] if previous else None,
            "file": previous["provenance"].get("file") if previous else None,
        }
        if not replace:
            if origin == "imported":
                what = f"scores imported from another file ({replaced['file']})"
            elif origin == "scored":
                model = (previous["recipe"].get("params") or {}).get("model") if previous else None
                what = "scores computed by `seal score`" + (f" with {model}" if model else "")
            else:
                what = f"a column {column} with no recorded run"
            raise StoreError(
                f"alias `{alias}` already holds {what}",
                hint="pass --replace to overwrite them, or import under another --alias",
            )

    raw = read_score_file(path, mapping)
    try:
        checked = validate_scores(raw, store.pair_ids().combine_chunks(), mapping)
    except ScoreFileError as err:
        raise ScoreFileError(f"{path.name}: nothing imported: {err.message}") from None
    struct = pa.StructArray.from_arrays(
        [pa.array(checked.chosen, pa.float64()), pa.array(checked.rejected, pa.float64())],
        fields=list(SCORE_TYPE),
    )
    values = pa.table({"pair_id": checked.pair_ids, column: struct})
    provenance = {
        "role": role,
        "origin": "imported",
        "file": str(path.resolve()),
        "rows_in_file": raw.num_rows,
        "replaced_run": replaced["run_id"] if replaced else None,
    }
    record = RunRecord.finished(STAGE, alias, recipe, provenance, rows_written=raw.num_rows, started_at=started)
    version = store.write_column(column, values, record)
    return result("replaced" if replaced else "imported", record.run_id, version, raw.num_rows, replaced)


__all__ = ["ImportResult", "ScoreFileError", "import_scores", "parse_column_map", "read_score_file", "validate_scores"]
