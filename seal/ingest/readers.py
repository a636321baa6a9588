"""Readers: turn a source (local files, a folder of them, or a Hub dataset) into raw records.

A reader yields `RawRow`s lazily. A row that cannot be decoded carries a `problem` instead of a
record (it goes to quarantine); a file that cannot be read at all raises `SourceError`.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from seal.errors import SourceError

MAX_ROW_BYTES = 1_000_000
SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".csv")
SNIPPET_CHARS = 300


@dataclass(frozen=True)
class RawRow:
    """One record of a source: its position, stable key, and the record or the reason it failed."""

    index: int
    key: str
    record: dict[str, Any] | None
    problem: tuple[str, str] | None = None  # (reason, detail)
    snippet: str = ""


@dataclass
class Source:
    """A readable source of records, with a description recorded as provenance."""

    location: str
    kind: str  # "file", "folder", "datasets"
    files: list[Path] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> Iterator[RawRow]:
        if self.kind == "datasets":
            yield from _datasets_rows(self.location, **self.options)
            return
        index = 0
        root = Path(self.location) if self.kind == "folder" else None
        for path in self.files:
            name = path.relative_to(root).as_posix() if root else path.name
            for row in _file_rows(path, name):
                yield RawRow(index, row.key, row.record, row.problem, row.snippet)
                index += 1


def suffix_of(path: Path) -> tuple[str, bool]:
    """The data suffix of a file (``.jsonl``, ...) and whether it is gzipped."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), gz


def open_source(
    location: str,
    loader: str = "auto",
    split: str | None = None,
    subset: str | None = None,
    data_dir: str | None = None,
    revision: str | None = None,
) -> Source:
    """Resolve a source string: an existing local path reads as files; anything else goes to `datasets`."""
    path = Path(location)
    use_files = loader == "files" or (loader == "auto" and path.exists())
    if not use_files:
        return Source(
            location,
            "datasets",
            options={"split": split, "subset": subset, "data_dir": data_dir, "revision": revision},
        )
    if not path.exists():
        raise SourceError(f"no such file or folder: {location}")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and suffix_of(p)[0] in SUFFIXES)
        if not files:
            raise SourceError(
                f"the folder {location} holds no {'/'.join(SUFFIXES)} files (optionally .gz)",
                hint="to load it as a Hugging Face dataset repo, pass --loader datasets",
            )
        return Source(location, "folder", files=files)
    suffix, _ = suffix_of(path)
    if suffix not in SUFFIXES:
        raise SourceError(
            f"unknown file type `{path.name}`", hint=f"seal reads {', '.join(SUFFIXES)} files, optionally .gz"
        )
    return Source(location, "file", files=[path])


# -- local files --------------------------------------------------------------------------------
def _open_binary(path: Path, gz: bool) -> io.BufferedIOBase:
    try:
        return gzip.open(path, "rb") if gz else open(path, "rb")
    except OSError as err:
        raise SourceError(f"cannot open {path}: {err.strerror or err}") from None


def _file_rows(path: Path, name: str) -> Iterator[RawRow]:
    suffix, gz = suffix_of(path)
    try:
        if suffix in (".jsonl", ".ndjson"):
            yield from _jsonl_rows(path, name, gz)
        elif suffix == ".json":
            yield from _json_rows(path, name, gz)
        elif suffix == ".parquet":
            yield from _parquet_rows(path, name, gz)
        else:
            yield from _csv_rows(path, name, gz)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise SourceError(f"{path}: corrupt or truncated gzip data ({err})") from None
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err}") from None


def _check_record(value: Any, key: str, text: str) -> RawRow:
    if not isinstance(value, dict):
        return RawRow(0, key, None, ("not_an_object", f"a {type(value).__name__}, not an object"), text)
    return RawRow(0, key, value)


def _jsonl_rows(path: Path, name: str, gz: bool) -> Iterator[RawRow]:
    with _open_binary(path, gz) as handle:
        for line_no, raw in enumerate(handle, start=1):
            key = f"{name}:{line_no}"
            if len(raw) > MAX_ROW_BYTES:
                snippet = raw[:SNIPPET_CHARS].decode("utf-8", "replace")
                detail = f"the line has {len(raw):,} bytes (limit {MAX_ROW_BYTES:,})"
                yield RawRow(0, key, None, ("row_too_large", detail), snippet)
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                snippet = raw[:SNIPPET_CHARS].decode("utf-8", "replace")
                yield RawRow(0, key, None, ("invalid_utf8", str(err)), snippet)
                continue
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                yield RawRow(0, key, None, ("invalid_json", err.msg), text[:SNIPPET_CHARS])
                continue
            yield _check_record(value, key, text[:SNIPPET_CHARS])


def _json_rows(path: Path, name: str, gz: bool) -> Iterator[RawRow]:
    with _open_binary(path, gz) as handle:
        data = handle.read()
    try:
        document = json.loads(data)
    except UnicodeDecodeError as err:
        raise SourceError(f"{path}: not UTF-8 text ({err})") from None
    except json.JSONDecodeError as err:
        if data.lstrip()[:1] == b"{":  # JSON lines saved as .json
            yield from _jsonl_rows(path, name, gz)
            return
        raise SourceError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    if isinstance(document, dict):
        lists = [v for v in document.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise SourceError(f"{path}: a JSON object, not a list of records", hint="save the records as a list")
        document = lists[0]
    if not isinstance(document, list):
        raise SourceError(f"{path}: the JSON document is a {type(document).__name__}, not a list of records")
    for i, value in enumerate(document):
        yield _sized(_check_record(value, f"{name}:{i}", ""), value)


def _sized(row: RawRow, value: Any) -> RawRow:
    """Quarantine records whose JSON form exceeds the row size limit; add a snippet to problems."""
    if row.problem is not None:
        return RawRow(row.index, row.key, None, row.problem, json.dumps(value)[:SNIPPET_CHARS])
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > MAX_ROW_BYTES:
        detail = f"the row has {len(text):,} characters (limit {MAX_ROW_BYTES:,})"
        return RawRow(row.index, row.key, None, ("row_too_large", detail), text[:SNIPPET_CHARS])
    return row


def _arrow_rows(table: pa.Table, name: str, start: int = 0) -> Iterator[RawRow]:
    for batch in table.to_batches(max_chunksize=2048):
        for offset, record in enumerate(batch.to_pylist()):
            yield _sized(RawRow(0, f"{name}:{start + offset}", record), record)
        start += batch.num_rows


def _parquet_rows(path: Path, name: str, gz: bool) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        with _open_binary(path, gz) as handle:
            source = io.BytesIO(handle.read()) if gz else handle
            table = pq.read_table(source)
    except (pa.ArrowInvalid, OSError) as err:
        raise SourceError(f"{path}: not a readable parquet file ({err})") from None
    yield from _arrow_rows(table, name)


def _csv_rows(path: Path, name: str, gz: bool) -> Iterator[RawRow]:
    import pyarrow.csv as pacsv

    bad: list[RawRow] = []

    def on_invalid(row: Any) -> str:
        line = row.number if row.number is not None else -1
        detail = f"expected {row.expected_columns} fields, found {row.actual_columns}"
        bad.append(RawRow(0, f"{name}:line{line}", None, ("invalid_csv_row", detail), row.text[:SNIPPET_CHARS]))
        return "skip"

    try:
        with _open_binary(path, gz) as handle:
            table = pacsv.read_csv(
                handle,
                parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(strings_can_be_null=False),
            )
    except pa.ArrowInvalid as err:
        raise SourceError(f"{path}: not a readable CSV file ({err})") from None
    # Read every column as text: a CSV cell has no type of its own.
    table = pa.table({n: table.column(n).cast(pa.string()) for n in table.column_names})
    yield from bad
    yield from _arrow_rows(table, name)


# -- Hugging Face datasets ------------------------------------------------------------------------
def _datasets_rows(
    location: str,
    split: str | None = None,
    subset: str | None = None,
    data_dir: str | None = None,
    revision: str | None = None,
) -> Iterator[RawRow]:
    """Rows of a Hub dataset (or a local dataset folder) through `datasets.load_dataset`."""
    import datasets

    try:
        loaded = datasets.load_dataset(location, name=subset, data_dir=data_dir, split=split, revision=revision)
    except Exception as err:  # datasets raises many unrelated types for "cannot load"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SourceError(
            f"cannot load `{location}` with datasets.load_dataset: {first_line}",
            hint="check the dataset id, --subset, --data-dir, --split and --revision",
        ) from None
    splits = {split: loaded} if split is not None else dict(loaded)
    index = 0
    for split_name, dataset in splits.items():
        for row in _arrow_rows(dataset.data.table, str(split_name)):
            yield RawRow(index, row.key, row.record, row.problem, row.snippet)
            index += 1
