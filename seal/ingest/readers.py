"""Readers: turn a source (local files, a folder of them, or a Hub dataset) into raw records.

A reader yields `RawRow`s lazily. A row that cannot be decoded carries a `problem` instead of a
record (it goes to quarantine); a file that cannot be read at all raises `SourceError`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from seal.errors import SourceError

# Rows above this size (a JSON line's bytes; a record's JSON or CSV text otherwise) are quarantined as
# `row_too_large` instead of being read: one runaway row (a file saved on a single line, a generation that
# never stopped) would otherwise take the memory of thousands and be truncated by every model anyway.
# `seal ingest --max-row-bytes N` changes it.
MAX_ROW_BYTES = 1_000_000
SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".csv")
SNIPPET_CHARS = 300
# Keys of a top-level JSON object that hold the list of records (``{"data": [...]}``).
CONTAINER_KEYS = ("data", "rows", "records", "examples", "instances", "items", "pairs")
_CSV_FIELD_LIMIT = 2**31 - 1


def one_line(err: object) -> str:
    """An exception's text on one line (error messages are printed as a single line)."""
    return re.sub(r"\s+", " ", str(err)).strip()


def looks_local(location: str) -> bool:
    """True when a source string is clearly a local path (never a Hub dataset id)."""
    path = Path(location)
    return (
        location.startswith((".", "/", "~")) or path.is_absolute() or suffix_of(path)[0] in SUFFIXES or "\\" in location
    )


@dataclass(frozen=True)
class RawRow:
    """One record of a source: its position, stable key, and the record or the reason it failed."""

    index: int
    key: str
    record: dict[str, Any] | None
    problem: tuple[str, str] | None = None  # (reason, detail)
    snippet: str = ""
    text: str | None = None  # a JSON line not decoded yet (`Source.rows(defer_json=True)`; see `decode_row`)


def decode_row(row: RawRow) -> RawRow:
    """The row with its JSON line decoded, as reading it without `defer_json` gives it (others as they are)."""
    if row.text is None:
        return row
    decoded = _decode_json_line(row.text, row.key)
    return RawRow(row.index, row.key, decoded.record, decoded.problem, decoded.snippet)


@dataclass
class Source:
    """A readable source of records, with a description recorded as provenance."""

    location: str
    kind: str  # "file", "folder", "datasets"
    files: list[Path] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    max_row_bytes: int = MAX_ROW_BYTES

    def rows(self, defer_json: bool = False) -> Iterator[RawRow]:
        """Every row, in order. `defer_json`: JSON lines come undecoded (`RawRow.text`), for `decode_row`
        where the work is done (ingest decodes them in its worker processes)."""
        if self.kind == "datasets":
            yield from _datasets_rows(self.location, limit=self.max_row_bytes, **self.options)
            return
        index = 0
        root = Path(self.location) if self.kind == "folder" else None
        for path in self.files:
            name = path.relative_to(root).as_posix() if root else path.name
            for row in _file_rows(path, name, self.max_row_bytes, defer_json):
                yield RawRow(index, row.key, row.record, row.problem, row.snippet, row.text)
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
    max_row_bytes: int = MAX_ROW_BYTES,
) -> Source:
    """Resolve a source string: an existing local path reads as files; anything else goes to `datasets`.

    A missing path that is clearly local (``./x``, ``/x``, ``~/x``, ``x.jsonl``) is an error here rather
    than a confusing failure of `datasets.load_dataset`.
    """
    path = Path(os.path.expanduser(location))
    use_files = loader == "files" or (loader == "auto" and (path.exists() or looks_local(location)))
    if not use_files:
        return Source(
            location,
            "datasets",
            options={"split": split, "subset": subset, "data_dir": data_dir, "revision": revision},
            max_row_bytes=max_row_bytes,
        )
    if not path.exists():
        raise SourceError(
            f"no such file or folder: {location}",
            hint="check the path; a Hugging Face dataset id looks like owner/name",
        )
    location = str(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_data_file(p.relative_to(path)))
        if not files:
            raise SourceError(
                f"the folder {location} holds no {'/'.join(SUFFIXES)} files (optionally .gz)",
                hint="to load it as a Hugging Face dataset repo, pass --loader datasets",
            )
        return Source(location, "folder", files=files, max_row_bytes=max_row_bytes)
    suffix, _ = suffix_of(path)
    if suffix not in SUFFIXES:
        raise SourceError(
            f"unknown file type `{path.name}`", hint=f"seal reads {', '.join(SUFFIXES)} files, optionally .gz"
        )
    return Source(location, "file", files=[path], max_row_bytes=max_row_bytes)


def _is_data_file(relative: Path) -> bool:
    """A file of a folder source: a data suffix, and no hidden part (``.git/``, ``._x.jsonl``, ``__MACOSX/``)."""
    hidden = any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)
    return not hidden and suffix_of(relative)[0] in SUFFIXES


# -- local files --------------------------------------------------------------------------------
# Lines of a .gz are iterated in C over 1 MiB reads of the decompressed stream (GzipFile's own 8 KiB reads
# and Python-level readline cost a third more).
GZIP_BUFFER = 1 << 20


def _open_binary(path: Path, gz: bool) -> io.BufferedIOBase:
    try:
        return io.BufferedReader(gzip.GzipFile(path, "rb"), GZIP_BUFFER) if gz else open(path, "rb")
    except OSError as err:
        raise SourceError(f"cannot open {path}: {one_line(err.strerror or err)}") from None


def _file_rows(path: Path, name: str, limit: int = MAX_ROW_BYTES, defer_json: bool = False) -> Iterator[RawRow]:
    suffix, gz = suffix_of(path)
    try:
        if suffix in (".jsonl", ".ndjson"):
            yield from _jsonl_rows(path, name, gz, limit, defer_json)
        elif suffix == ".json":
            yield from _json_rows(path, name, gz, limit)
        elif suffix == ".parquet":
            yield from _parquet_rows(path, name, gz, limit)
        else:
            yield from _csv_rows(path, name, gz, limit)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise SourceError(
            f"{path}: corrupt or truncated gzip data ({one_line(err)})",
            hint="download or compress the file again; `gzip -t FILE` checks it",
        ) from None
    except OSError as err:
        raise SourceError(f"cannot read {path}: {one_line(err)}") from None


def _check_record(value: Any, key: str, text: str) -> RawRow:
    if not isinstance(value, dict):
        return RawRow(0, key, None, ("not_an_object", f"a {type(value).__name__}, not an object"), text)
    return RawRow(0, key, value)


class _DuplicateKey(ValueError):
    """A JSON object names a key twice; `json` would keep the last value without a word."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


class _Repeated(dict):  # type: ignore[type-arg]
    """A decoded JSON object that named `repeated` more than once (the last value kept)."""

    repeated = ""


def _first_repeat(pairs: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    return ""


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook for a JSON line: the object as a dict, or _DuplicateKey when a key repeats."""
    record = dict(pairs)
    if len(record) != len(pairs):
        raise _DuplicateKey(_first_repeat(pairs))
    return record


_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_strict_object)


def _duplicate_detail(key: str) -> str:
    return f"the JSON object names the key `{key}` more than once (a JSON reader keeps only the last value)"


def _jsonl_rows(
    path: Path, name: str, gz: bool, limit: int = MAX_ROW_BYTES, defer_json: bool = False
) -> Iterator[RawRow]:
    with _open_binary(path, gz) as handle:
        for line_no, raw in enumerate(handle, start=1):
            key = f"{name}:{line_no}"
            if len(raw) > limit:
                snippet = raw[:SNIPPET_CHARS].decode("utf-8", "replace")
                detail = f"the line has {len(raw):,} bytes (limit {limit:,}; see --max-row-bytes)"
                yield RawRow(0, key, None, ("row_too_large", detail), snippet)
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                snippet = raw[:SNIPPET_CHARS].decode("utf-8", "replace")
                yield RawRow(0, key, None, ("invalid_utf8", str(err)), snippet)
                continue
            if line_no == 1 and text.startswith("\ufeff"):
                text = text[1:]  # a UTF-8 byte-order mark (files saved by some Windows editors)
            if not text.strip():
                continue
            yield RawRow(0, key, None, text=text) if defer_json else _decode_json_line(text, key)


def _decode_json_line(text: str, key: str) -> RawRow:
    """The row of one non-blank JSON line: its record, or why it has none."""
    try:
        value = _STRICT_JSON.decode(text)
    except json.JSONDecodeError as err:
        return RawRow(0, key, None, ("invalid_json", f"{err.msg} at column {err.colno}"), text[:SNIPPET_CHARS])
    except _DuplicateKey as dup:
        return RawRow(0, key, None, ("duplicate_key", _duplicate_detail(dup.key)), text[:SNIPPET_CHARS])
    except RecursionError:
        return RawRow(0, key, None, ("invalid_json", "the JSON is nested too deeply"), text[:SNIPPET_CHARS])
    return _check_record(value, key, text[:SNIPPET_CHARS])


def _json_rows(path: Path, name: str, gz: bool, limit: int = MAX_ROW_BYTES) -> Iterator[RawRow]:
    with _open_binary(path, gz) as handle:
        data = handle.read()
    repeats: list[str] = []

    def marking_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        record = dict(pairs)
        if len(record) != len(pairs):
            marked = _Repeated(record)
            marked.repeated = _first_repeat(pairs)
            repeats.append(marked.repeated)
            return marked
        return record

    try:
        document = json.loads(data, object_pairs_hook=marking_object)
    except UnicodeDecodeError as err:
        raise SourceError(f"{path}: not UTF-8 text ({one_line(err)})", hint="save the file as UTF-8") from None
    except RecursionError:
        raise SourceError(f"{path}: the JSON is nested too deeply to read", hint="save records as JSON lines") from None
    except json.JSONDecodeError as err:
        if _is_json_lines(data):  # JSON lines saved as .json
            yield from _jsonl_rows(path, name, gz, limit)
            return
        raise SourceError(
            f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}",
            hint="fix the document, or save one record per line as .jsonl",
        ) from None
    if isinstance(document, dict):
        document = _records_of_object(document, path)
    if not isinstance(document, list):
        raise SourceError(
            f"{path}: the JSON document is a {_JSON_TYPES.get(type(document), 'value')}, not a list of records",
            hint="save the records as a JSON list or as JSON lines",
        )
    for i, value in enumerate(document):
        repeated = _find_repeated(value) if repeats else None
        if repeated is not None:
            snippet = json.dumps(value, ensure_ascii=False, default=str)[:SNIPPET_CHARS]
            yield RawRow(0, f"{name}:{i}", None, ("duplicate_key", _duplicate_detail(repeated)), snippet)
            continue
        yield _sized(_check_record(value, f"{name}:{i}", ""), value, limit)


def _find_repeated(value: Any) -> str | None:
    """The first key named twice in an object of this record (nested ones too), or None."""
    if isinstance(value, _Repeated):
        return value.repeated
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        found = _find_repeated(item)
        if found is not None:
            return found
    return None


def _is_json_lines(data: bytes) -> bool:
    """True when the first non-blank line of a document that failed to parse is a JSON object on its own."""
    for raw in data.splitlines():
        line = raw.strip().removeprefix(b"\xef\xbb\xbf")
        if not line:
            continue
        try:
            return isinstance(json.loads(line), dict)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False
    return False


_JSON_TYPES = {int: "number", float: "number", str: "string", bool: "boolean", type(None): "null"}


def _records_of_object(document: dict[str, Any], path: Path) -> Any:
    """The records of a top-level JSON object: the list it wraps (``{"data": [...]}``), or the object
    itself when it is a single record (it has no list of records, or it has `chosen`/`rejected`)."""
    lists = [k for k, v in document.items() if isinstance(v, list)]
    containers = [k for k in lists if k in CONTAINER_KEYS]
    if len(document) == 1 and lists:
        return document[lists[0]]
    if len(containers) == 1:
        return document[containers[0]]
    if not lists or {"chosen", "rejected"} & set(document):
        return [document]
    if len(lists) == 1:
        return document[lists[0]]
    raise SourceError(
        f"{path}: a JSON object with several lists ({', '.join(lists)}), not a list of records",
        hint="save the records as a JSON list or as JSON lines",
    )


def _sized(row: RawRow, value: Any, limit: int = MAX_ROW_BYTES) -> RawRow:
    """Quarantine records whose JSON form exceeds the row size limit; add a snippet to problems."""
    if row.problem is not None:
        return RawRow(row.index, row.key, None, row.problem, json.dumps(value)[:SNIPPET_CHARS])
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > limit:
        detail = f"the row has {len(text):,} characters (limit {limit:,}; see --max-row-bytes)"
        return RawRow(row.index, row.key, None, ("row_too_large", detail), text[:SNIPPET_CHARS])
    return row


def _arrow_rows(table: pa.Table, name: str, start: int = 0, limit: int = MAX_ROW_BYTES) -> Iterator[RawRow]:
    for batch in table.to_batches(max_chunksize=2048):
        for offset, record in enumerate(batch.to_pylist()):
            yield _sized(RawRow(0, f"{name}:{start + offset}", record), record, limit)
        start += batch.num_rows


def _parquet_rows(path: Path, name: str, gz: bool, limit: int = MAX_ROW_BYTES) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        with _open_binary(path, gz) as handle:
            source = io.BytesIO(handle.read()) if gz else handle
            table = pq.read_table(source)
    except (pa.ArrowInvalid, OSError) as err:
        raise SourceError(
            f"{path}: not a readable parquet file ({one_line(err)})",
            hint="check that the file is complete; seal reads a file by its extension",
        ) from None
    yield from _arrow_rows(table, name, limit=limit)


def _csv_rows(path: Path, name: str, gz: bool, limit: int = MAX_ROW_BYTES) -> Iterator[RawRow]:
    """CSV rows as text records (a cell has no type of its own: `1` stays the string "1").

    Quoted fields may hold newlines and commas. A record with the wrong number of fields, or with bytes
    that are not UTF-8, is quarantined; its neighbours are read. Keys count records (not lines), so a
    record keeps its key when another one is fixed.
    """
    previous_limit = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        with _open_binary(path, gz) as handle:
            text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
            reader = csv.reader(text)
            try:
                header = next(reader, None)
            except csv.Error as err:
                raise SourceError(f"{path}: not a readable CSV file ({one_line(err)})") from None
            if header is None or not any(h.strip() for h in header):
                raise SourceError(
                    f"{path}: the CSV file has no header row", hint="the first line must name the columns"
                )
            if _has_surrogates("".join(header)):
                raise SourceError(f"{path}: the CSV header is not UTF-8 text", hint="save the file as UTF-8")
            duplicates = sorted({h for h in header if header.count(h) > 1})
            if duplicates:
                raise SourceError(
                    f"{path}: the CSV header names a column more than once: {', '.join(duplicates)}",
                    hint="give every column a distinct name",
                )
            yield from _csv_records(reader, header, name, path, limit)
    finally:
        csv.field_size_limit(previous_limit)


def _csv_records(reader: Any, header: list[str], name: str, path: Path, limit: int) -> Iterator[RawRow]:
    ordinal = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise SourceError(f"{path}: not a readable CSV file ({one_line(err)})") from None
        if not fields:
            continue  # a blank line
        key = f"{name}:{ordinal}"
        ordinal += 1
        joined = ",".join(fields)
        snippet = _clean(joined[:SNIPPET_CHARS])
        if len(joined) > limit:
            detail = f"the row has {len(joined):,} characters (limit {limit:,}; see --max-row-bytes)"
            yield RawRow(0, key, None, ("row_too_large", detail), snippet)
            continue
        if _has_surrogates(joined):
            yield RawRow(0, key, None, ("invalid_utf8", "the row holds bytes that are not UTF-8"), snippet)
            continue
        if len(fields) != len(header):
            detail = f"expected {len(header)} fields, found {len(fields)}"
            if len(fields) < len(header) and any("\n" in f for f in fields):
                detail += " (an unclosed quote may have joined the following lines into this field)"
            yield RawRow(0, key, None, ("invalid_csv_row", detail), snippet)
            continue
        yield RawRow(0, key, dict(zip(header, fields, strict=True)))


_SURROGATES = re.compile("[\udc80-\udcff]")


def _has_surrogates(text: str) -> bool:
    """True when undecodable bytes were smuggled in as surrogates (``errors="surrogateescape"``)."""
    return _SURROGATES.search(text) is not None


def _clean(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# -- Hugging Face datasets ------------------------------------------------------------------------
def _datasets_rows(
    location: str,
    split: str | None = None,
    subset: str | None = None,
    data_dir: str | None = None,
    revision: str | None = None,
    limit: int = MAX_ROW_BYTES,
) -> Iterator[RawRow]:
    """Rows of a Hub dataset (or a local dataset folder) through `datasets.load_dataset`. When the Hub
    is unreachable (seal.hub: one short probe, or HF_HUB_OFFLINE=1) only the local cache is tried, so the
    call fails in seconds rather than after datasets' retries."""
    import datasets

    from seal import hub

    local = Path(os.path.expanduser(location)).is_dir() or not hub.is_repo_id(location)
    offline = None if local else hub.unreachable()
    try:
        with hub.cache_only(offline is not None):
            loaded = datasets.load_dataset(location, name=subset, data_dir=data_dir, split=split, revision=revision)
    except Exception as err:  # datasets raises many unrelated types for "cannot load"
        if offline is not None:
            raise hub.unreachable_error(
                f"`{location}`",
                offline,
                "ingest a local copy instead: a .jsonl/.json/.parquet/.csv file or folder, or a dataset folder "
                "with --loader datasets (e.g. `hf download --repo-type dataset ID --local-dir DIR` where there "
                "is network)",
            ) from None
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SourceError(
            f"cannot load `{location}` with datasets.load_dataset: {first_line}",
            hint="check the dataset id, --subset, --data-dir, --split and --revision",
        ) from None
    splits = {split: loaded} if split is not None else dict(loaded)
    # Keys name the configuration and folder too, so two data dirs under one dataset name never collide.
    prefix = "/".join(p for p in (subset, data_dir) if p)
    index = 0
    for split_name, dataset in splits.items():
        name = f"{prefix}/{split_name}" if prefix else str(split_name)
        for row in _arrow_rows(dataset.data.table, name, limit=limit):
            yield RawRow(index, row.key, row.record, row.problem, row.snippet)
            index += 1
