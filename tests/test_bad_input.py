"""A corpus of malformed (and tricky-but-valid) inputs, each with its exact ingest outcome.

Row-level problems go to the `quarantine` table with a reason and the rest of the source is ingested;
file-level problems raise one `SourceError` that names the file and leaves the store exactly as it was.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import seal
from seal.errors import SourceError

MB = 1_000_000


# -- building fixture files -------------------------------------------------------------------------
def hh(*turns: str) -> str:
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


def good(i: int) -> dict:
    return {"chosen": hh(f"question {i}", f"good answer {i}"), "rejected": hh(f"question {i}", f"bad answer {i}")}


GOOD = [good(i) for i in range(3)]
GOOD_CHOSEN = [f"good answer {i}" for i in range(3)]


def line(value: Any) -> bytes:
    return json.dumps(value).encode() + b"\n"


def jsonl(*items: dict | bytes) -> bytes:
    """JSON lines: dicts are encoded, bytes are written as they are (a raw, possibly broken, line)."""
    return b"".join(item if isinstance(item, bytes) else line(item) for item in items)


def parquet(rows: list[dict] | pa.Table) -> bytes:
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def csv_text(text: str) -> bytes:
    return text.encode()


def msgs(*pairs: tuple[str, Any]) -> list[dict]:
    return [{"role": role, "content": content} for role, content in pairs]


def trl(i: int) -> dict:
    return {
        "chosen": msgs(("user", f"question {i}"), ("assistant", f"good answer {i}")),
        "rejected": msgs(("user", f"question {i}"), ("assistant", f"bad answer {i}")),
    }


TRL = [trl(i) for i in range(3)]


def with_messages(chosen: Any) -> dict[str, bytes]:
    """A TRL conversational file: three good rows and one whose `chosen` is the given value."""
    return {"d.jsonl": jsonl(*TRL, {"chosen": chosen, "rejected": trl(9)["rejected"]})}


def vote(i: int, label: Any) -> dict:
    return {"input": f"question {i}", "output_1": f"good answer {i}", "output_2": f"bad answer {i}", "label": label}


PAIRWISE = {
    "column_map": ["prompt=input", "a=output_1", "b=output_2", "label=label"],
    "label_map": ["1=a", "2=b", "0=tie"],
}
VOTES = [vote(i, 1) for i in range(3)]

CSV_HEADER = "prompt,chosen,rejected\n"
CSV_GOOD = "".join(f"question {i},good answer {i},bad answer {i}\n" for i in range(3))


def truncated_gzip(data: bytes) -> bytes:
    packed = gzip.compress(data)
    return packed[: len(packed) // 2]


# -- row-level cases: quarantine with a reason, the rest ingested ------------------------------------
@dataclass
class RowCase:
    id: str
    files: dict[str, bytes]
    ingested: int
    reasons: dict[str, int] = field(default_factory=dict)  # exact quarantine reasons and counts
    survivors: list[str] = field(default_factory=lambda: GOOD_CHOSEN)  # chosen texts that must be ingested
    options: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    fmt: str | None = None
    valid: bool = False  # tricky but valid input: nothing may be quarantined


BIG = "x" * (MB + 10)

ROW_CASES = [
    RowCase("invalid-json-line", {"d.jsonl": jsonl(GOOD[0], b'{"chosen": "oops\n', GOOD[1], GOOD[2])}, 3,
            {"invalid_json": 1}),
    RowCase("json-line-not-an-object", {"d.jsonl": jsonl(GOOD[0], b"[1, 2]\n", b'"text"\n', *GOOD[1:])}, 3,
            {"not_an_object": 2}),
    RowCase("invalid-utf8-bytes", {"d.jsonl": jsonl(*GOOD, b'{"chosen": "\xff\xfe bad", "rejected": "x"}\n')}, 3,
            {"invalid_utf8": 1}),
    RowCase("raw-nul-byte-in-line", {"d.jsonl": jsonl(*GOOD, b'{"chosen": "a\x00b", "rejected": "x"}\n')}, 3,
            {"invalid_json": 1}),
    RowCase("escaped-nul-in-text", {"d.jsonl": jsonl(*GOOD, {"chosen": hh("q", "a\x00b"), "rejected": hh("q", "c")})},
            3, {"nul_byte": 1}),
    RowCase("nul-in-context", {"d.jsonl": jsonl(*GOOD, {"chosen": hh("q\x00", "a"), "rejected": hh("q\x00", "c")})},
            3, {"nul_byte": 1}),
    RowCase("missing-column-in-one-row", {"d.jsonl": jsonl(*GOOD, {"chosen": hh("q", "a")})}, 3,
            {"missing_column": 1}),
    RowCase("null-chosen", {"d.jsonl": jsonl(*GOOD, {"chosen": None, "rejected": hh("q", "b")})}, 3,
            {"missing_value": 1}),
    RowCase("numeric-chosen", {"d.jsonl": jsonl(*GOOD, {"chosen": 42, "rejected": hh("q", "b")})}, 3,
            {"wrong_type": 1}),
    RowCase("first-row-broken-does-not-decide-format",
            {"d.jsonl": jsonl({"chosen": None, "rejected": None}, {"chosen": 7, "rejected": 8}, *GOOD)}, 3,
            {"missing_value": 1, "wrong_type": 1}),
    RowCase("empty-transcript", {"d.jsonl": jsonl(*GOOD, {"chosen": "", "rejected": hh("q", "b")})}, 3,
            {"empty_text": 1}),
    RowCase("whitespace-transcript", {"d.jsonl": jsonl(*GOOD, {"chosen": hh("q", "a"), "rejected": " \n\n "})}, 3,
            {"empty_text": 1}),
    RowCase("only-human-turns", {"d.jsonl": jsonl(*GOOD, {"chosen": hh("q", "a"), "rejected": hh("q")})}, 3,
            {"no_assistant_turn": 1}),
    RowCase("human-turn-after-last-assistant",
            {"d.jsonl": jsonl(*GOOD, {"chosen": hh("q", "a", "more?"), "rejected": hh("q", "b")})}, 3,
            {"final_turn_not_assistant": 1}),
    RowCase("row-over-1mb-jsonl", {"d.jsonl": jsonl(GOOD[0], {"chosen": hh("q", BIG), "rejected": "x"}, *GOOD[1:])},
            3, {"row_too_large": 1}),
    RowCase("row-over-1mb-json-list", {"d.json": json.dumps([*GOOD, {"chosen": hh("q", BIG), "rejected": "x"}])
            .encode()}, 3, {"row_too_large": 1}),
    RowCase("row-over-1mb-parquet", {"d.parquet": parquet([*GOOD, {"chosen": hh("q", BIG), "rejected": "x"}])}, 3,
            {"row_too_large": 1}),
    RowCase("row-over-1mb-csv", {"d.csv": csv_text(CSV_HEADER + CSV_GOOD + f"q,{BIG},b\n")}, 3,
            {"row_too_large": 1}),
    RowCase("unknown-message-role", with_messages(msgs(("wizard", "q"), ("assistant", "a"))), 3, {"unknown_role": 1}),
    RowCase("message-without-role", with_messages([{"content": "q"}, {"role": "assistant", "content": "a"}]), 3,
            {"bad_message": 1}),
    RowCase("message-not-an-object", with_messages(["q", "a"]), 3, {"bad_message": 1}),
    RowCase("empty-message-list", with_messages([]), 3, {"empty_messages": 1}),
    RowCase("messages-end-with-user", with_messages(msgs(("user", "q"))), 3, {"final_turn_not_assistant": 1}),
    RowCase("message-content-null", with_messages(msgs(("user", "q"), ("assistant", None))), 3,
            {"missing_value": 1}),
    RowCase("message-image-content", with_messages(msgs(("user", "q"), ("assistant", [{"type": "image_url"}]))), 3,
            {"unsupported_content": 1}),
    RowCase("messages-as-a-string", with_messages("a string"), 3, {"wrong_type": 1}),
    RowCase("label-not-in-map", {"d.jsonl": jsonl(*VOTES, vote(8, 3), vote(9, "b"))}, 3, {"label_not_mapped": 2},
            options=PAIRWISE),
    RowCase("tie", {"d.jsonl": jsonl(*VOTES, vote(9, 0))}, 3, {"tie": 1}, options=PAIRWISE),
    RowCase("null-label", {"d.jsonl": jsonl(*VOTES, vote(9, None))}, 3, {"missing_value": 1}, options=PAIRWISE),
    RowCase("pairwise-null-response", {"d.jsonl": jsonl(*VOTES, {**vote(9, 2), "output_2": None})}, 3,
            {"missing_value": 1}, options=PAIRWISE),
    RowCase("null-prompt", {"d.jsonl": jsonl({"prompt": None, "chosen": "a", "rejected": "b"},
                                             *({"prompt": f"q{i}", "chosen": c, "rejected": "b"}
                                               for i, c in enumerate(GOOD_CHOSEN)))}, 3, {"missing_value": 1}),
    RowCase("csv-wrong-field-count", {"d.csv": csv_text(CSV_HEADER + CSV_GOOD + "q,only two\nq,a,b,extra\n")}, 3,
            {"invalid_csv_row": 2}),
    RowCase("csv-unclosed-quote", {"d.csv": csv_text(CSV_HEADER + CSV_GOOD + '"q,a,b\nq2,a2,b2\n')}, 3,
            {"invalid_csv_row": 1}),
    RowCase("csv-invalid-utf8-cell", {"d.csv": CSV_HEADER.encode() + CSV_GOOD.encode() + b"q,\xff\xfe,b\n"}, 3,
            {"invalid_utf8": 1}),
    RowCase("json-list-item-not-object", {"d.json": json.dumps([*GOOD, "a string", 5]).encode()}, 3,
            {"not_an_object": 2}),
    RowCase("parquet-null-chosen", {"d.parquet": parquet([*GOOD, {"chosen": None, "rejected": hh("q", "b")}])}, 3,
            {"missing_value": 1}),
    RowCase("duplicate-key", {"d.jsonl": jsonl(*({"id": i, **g} for i, g in enumerate(GOOD)), {"id": 0, **good(9)})},
            3, {"duplicate_key": 1}, options={"column_map": ["key=id"]}),
    RowCase("duplicate-rows-are-flagged-not-quarantined", {"d.jsonl": jsonl(*GOOD, GOOD[1], GOOD[1])}, 5, {},
            flags={"duplicate_in_source": 2}),
    RowCase("identical-responses-are-flagged", {"d.jsonl": jsonl(*GOOD, {"chosen": hh("q", "same"),
                                                                         "rejected": hh("q", "same")})}, 4, {},
            flags={"identical_responses": 1}),
    RowCase("context-mismatch-is-flagged", {"d.jsonl": jsonl(*GOOD, {"chosen": hh("q", "x", "q2", "a"),
                                                                     "rejected": hh("q", "y", "q2", "b")})}, 4, {},
            flags={"context_mismatch": 1}),
    RowCase("lone-surrogate-escape", {"d.jsonl": jsonl(*GOOD, b'{"chosen": "\\n\\nHuman: q\\n\\nAssistant: \\ud800",'
                                                          b' "rejected": "\\n\\nAssistant: b"}\n')}, 3,
            {"invalid_unicode": 1}),
    RowCase("json-nested-too-deeply", {"d.jsonl": jsonl(*GOOD, b"[" * 100_000 + b"]" * 100_000 + b"\n")}, 3,
            {"invalid_json": 1}),
    RowCase("json-lines-as-json-with-bad-line", {"d.json": jsonl(GOOD[0], b'{"chosen": tru\n', *GOOD[1:])}, 3,
            {"invalid_json": 1}),
    RowCase("folder-with-a-bad-row", {"dir/a.jsonl": jsonl(*GOOD[:2]), "dir/b.jsonl": jsonl(b"{\n", GOOD[2])}, 3,
            {"invalid_json": 1}),
    # -- valid input that must not be quarantined --
    RowCase("csv-embedded-newlines-and-commas",
            {"d.csv": csv_text(CSV_HEADER + CSV_GOOD + '"multi\nline, prompt","line one\nline two","say ""no"""\n')},
            4, survivors=[*GOOD_CHOSEN, "line one\nline two"], fmt="prompt-response", valid=True),
    RowCase("csv-crlf-bom-and-blank-lines",
            {"d.csv": b"\xef\xbb\xbf" + (CSV_HEADER + CSV_GOOD + "\n").replace("\n", "\r\n").encode()}, 3,
            fmt="prompt-response", valid=True),
    RowCase("csv-columns-with-spaces-via-map",
            {"d.csv": csv_text("the prompt,first answer,second answer,who won\n"
                               + "".join(f"q{i},good answer {i},bad answer {i},A\n" for i in range(3)))}, 3,
            options={"column_map": ["prompt=the prompt", "a=first answer", "b=second answer", "label=who won"],
                     "label_map": ["A=a", "B=b"]}, fmt="pairwise", valid=True),
    RowCase("csv-numeric-looking-cells-stay-text",
            {"d.csv": csv_text("prompt,chosen,rejected,label\n007,1.50,true,1.0\n")}, 1, survivors=["1.50"],
            options={"column_map": ["a=chosen", "b=rejected"], "label_map": ["1.0=a"]}, valid=True),
    RowCase("json-file-holding-json-lines", {"d.json": jsonl(*GOOD)}, 3, fmt="transcript", valid=True),
    RowCase("json-object-wrapping-records", {"d.json": json.dumps({"version": 2, "data": GOOD}).encode()}, 3,
            valid=True),
    RowCase("jsonl-bom-crlf-blank-lines", {"d.jsonl": b"\xef\xbb\xbf" + jsonl(*GOOD).replace(b"\n", b"\r\n\r\n")}, 3,
            valid=True),
    RowCase("ndjson", {"d.ndjson": jsonl(*GOOD)}, 3, valid=True),
    RowCase("jsonl-gz", {"d.jsonl.gz": gzip.compress(jsonl(*GOOD))}, 3, valid=True),
    RowCase("json-gz", {"d.json.gz": gzip.compress(json.dumps(GOOD).encode())}, 3, valid=True),
    RowCase("json-lines-gz-as-json", {"d.json.gz": gzip.compress(jsonl(*GOOD))}, 3, valid=True),
    RowCase("csv-gz", {"d.csv.gz": gzip.compress((CSV_HEADER + CSV_GOOD).encode())}, 3, valid=True),
    RowCase("parquet", {"d.parquet": parquet(GOOD)}, 3, fmt="transcript", valid=True),
    RowCase("parquet-gz", {"d.parquet.gz": gzip.compress(parquet(GOOD))}, 3, valid=True),
    RowCase("parquet-messages", {"d.parquet": parquet(TRL)}, 3, fmt="messages", valid=True),
    RowCase("parquet-float-labels", {"d.parquet": parquet([vote(i, 1.0) for i in range(3)])}, 3, options=PAIRWISE,
            valid=True),
    RowCase("uppercase-extension", {"D.JSONL": jsonl(*GOOD)}, 3, valid=True),
    RowCase("empty-final-response-is-data",
            {"d.jsonl": jsonl(*GOOD, {"chosen": hh("q", ""), "rejected": hh("q", "b")})}, 4,
            survivors=[*GOOD_CHOSEN, ""], valid=True),
    RowCase("sharegpt-system-role", {"d.json": json.dumps([
        {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": f"question {i}"}],
         "chosen": {"from": "gpt", "value": f"good answer {i}"}, "rejected": {"from": "gpt", "value": "no"}}
        for i in range(3)]).encode()}, 3, fmt="messages", valid=True),
    RowCase("folder-of-files", {"dir/a.jsonl": jsonl(GOOD[0]), "dir/b.json": json.dumps(GOOD[1:2]).encode(),
            "dir/sub/c.parquet.gz": gzip.compress(parquet(GOOD[2:])), "dir/notes.txt": b"ignored",
            "dir/._a.jsonl": b"\x00\x05\x16\x07 AppleDouble", "dir/.git/x.jsonl": b"{",
            "dir/__MACOSX/y.jsonl": b"{"}, 3,
            fmt="transcript", valid=True),
]  # fmt: skip


@pytest.mark.parametrize("case", ROW_CASES, ids=[c.id for c in ROW_CASES])
def test_row_level_case(case: RowCase, store, tmp_path):
    source = write_case(tmp_path / "input", case.files)
    result = seal.ingest(store, source, **case.options)
    assert result.ingested == case.ingested, result.quarantine_reasons
    assert result.quarantine_reasons == case.reasons
    assert result.quarantined == sum(case.reasons.values())
    if case.fmt:
        assert result.format == case.fmt
    for flag, count in case.flags.items():
        assert result.flags[flag] == count, result.flags
    pairs = store.read()
    assert pairs.num_rows == case.ingested
    chosen = pairs.column("chosen").to_pylist()
    for text in case.survivors:
        assert text in chosen, f"good row {text!r} did not survive"
    if not case.reasons:
        assert "quarantine" not in store.table_names()
        return
    quarantine = store.quarantine().to_pylist()
    assert sorted(q["reason"] for q in quarantine) == sorted(r for r, n in case.reasons.items() for _ in range(n))
    for q in quarantine:
        assert q["dataset"] == result.dataset
        assert q["detail"] and q["source_key"] and q["run_id"] == result.run_id
        assert len(q["snippet"]) <= 300
    if case.reasons:
        assert any(q["snippet"] for q in quarantine), "a quarantined row keeps a snippet of what it held"


def test_quarantine_detail_names_the_row(store, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(jsonl(GOOD[0], b'{"chosen": \n', {"chosen": 1, "rejected": "x"}))
    seal.ingest(store, path)
    rows = sorted(store.quarantine().to_pylist(), key=lambda q: q["source_key"])
    assert [(q["source_key"], q["reason"]) for q in rows] == [
        ("d.jsonl:2", "invalid_json"),
        ("d.jsonl:3", "wrong_type"),
    ]
    assert rows[0]["snippet"].startswith('{"chosen":')
    assert "`chosen`" in rows[1]["detail"] and "int" in rows[1]["detail"]


def test_csv_keys_count_records_not_lines(store, tmp_path):
    """A record keeps its key (and pair id) when an earlier record is fixed."""
    path = tmp_path / "d.csv"
    path.write_text(CSV_HEADER + 'q,"two\nlines",b\nq,broken\n' + CSV_GOOD)
    seal.ingest(store, path)
    keys = sorted(store.read().column("source_key").to_pylist())
    assert keys == ["d.csv:0", "d.csv:2", "d.csv:3", "d.csv:4"]
    path.write_text(CSV_HEADER + 'q,"two\nlines",b\nq,fixed,b\n' + CSV_GOOD)
    again = seal.ingest(store, path)
    assert (again.ingested, again.already_present) == (1, 4)


# -- file-level cases: one SourceError, store unchanged ---------------------------------------------
@dataclass
class FileCase:
    id: str
    files: dict[str, bytes]
    match: str  # regex the error message must contain
    options: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # relative to the input folder; default the only file
    names_file: bool = True  # the message names the file


FILE_CASES = [
    FileCase("truncated-gzip", {"d.jsonl.gz": truncated_gzip(jsonl(*GOOD * 200))}, "corrupt or truncated gzip"),
    FileCase("not-gzip-data", {"d.jsonl.gz": jsonl(*GOOD)}, "corrupt or truncated gzip"),
    FileCase("truncated-gzip-csv", {"d.csv.gz": truncated_gzip((CSV_HEADER + CSV_GOOD * 300).encode())},
             "corrupt or truncated gzip"),
    FileCase("unknown-file-type", {"d.txt": jsonl(*GOOD)}, "unknown file type", names_file=True),
    FileCase("missing-column-everywhere", {"d.jsonl": jsonl({"chosen": hh("q", "a")}, {"chosen": hh("q", "b")})},
             "cannot detect the format: no `rejected` column"),
    FileCase("bad-map-unknown-key", {"d.jsonl": jsonl(*GOOD)}, "unknown key `answer`",
             options={"column_map": ["answer=chosen"]}, names_file=False),
    FileCase("bad-map-no-equals", {"d.jsonl": jsonl(*GOOD)}, "bad --map `prompt`", options={"column_map": ["prompt"]},
             names_file=False),
    FileCase("bad-map-absent-column", {"d.jsonl": jsonl(*GOOD)}, "there is no column `winner`",
             options={"column_map": ["chosen=winner"]}),
    FileCase("bad-map-key-not-in-format", {"d.jsonl": jsonl(*GOOD)}, "format transcript has no `label`",
             options={"column_map": ["label=chosen"], "fmt": "transcript"}),
    FileCase("bad-label-map", {"d.jsonl": jsonl(*VOTES)}, "bad --label-map `1=first`",
             options={"column_map": PAIRWISE["column_map"], "label_map": ["1=first"]}, names_file=False),
    FileCase("label-map-matches-no-label", {"d.jsonl": jsonl(*VOTES)}, "no label .* is in the label map",
             options={"column_map": PAIRWISE["column_map"]}),
    FileCase("label-map-with-other-format", {"d.jsonl": jsonl(*GOOD)}, "--label-map only applies",
             options={"fmt": "transcript", "label_map": ["1=a"]}, names_file=False),
    FileCase("unknown-format", {"d.jsonl": jsonl(*GOOD)}, "unknown format `hh`", options={"fmt": "hh"},
             names_file=False),
    FileCase("format-does-not-fit", {"d.jsonl": jsonl(*GOOD)}, "needs column `prompt`",
             options={"fmt": "prompt-response"}),
    FileCase("undetectable-format", {"d.jsonl": jsonl({"chosen": "a", "rejected": "b"})}, "cannot detect the format"),
    FileCase("empty-file", {"d.jsonl": b""}, "no rows to ingest"),
    FileCase("only-blank-lines", {"d.jsonl": b"\n\n  \n"}, "no rows to ingest"),
    FileCase("no-row-decodes", {"d.jsonl": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4}, "none of the .* rows"),
    FileCase("broken-json-document", {"d.json": b'[{"chosen": "a", "rejected": "b"},\n {"chosen": '},
             "invalid JSON at line 2"),
    FileCase("broken-pretty-json-object", {"d.json": b'{\n  "data": [\n    {"chosen": "a",\n'}, "invalid JSON at line"),
    FileCase("json-scalar-document", {"d.json": b"42"}, "not a list of records"),
    FileCase("json-object-with-several-lists", {"d.json": json.dumps({"train": GOOD, "test": GOOD}).encode()},
             "several lists"),
    FileCase("not-a-parquet-file", {"d.parquet": jsonl(*GOOD)}, "not a readable parquet file"),
    FileCase("csv-empty", {"d.csv": b""}, "no header row"),
    FileCase("csv-duplicate-header", {"d.csv": csv_text("prompt,chosen,chosen,rejected\nq,a,b,c\n")},
             "names a column more than once"),
    FileCase("no-such-file", {}, "no such file or folder", source="missing.jsonl"),
    FileCase("folder-without-data-files", {"dir/README.md": b"hello"}, "holds no .jsonl", source="dir"),
    FileCase("limit-zero", {"d.jsonl": jsonl(*GOOD)}, "--limit must be a positive", options={"limit": 0},
             names_file=False),
]  # fmt: skip


def write_case(folder: Path, files: dict[str, bytes]) -> Path:
    """Write a case's files under `folder`; return the source to ingest (the file, or the top folder)."""
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    tops = {name.split("/")[0] for name in files}
    return folder / (tops.pop() if len(tops) == 1 else "")


def snapshot(store) -> dict[str, int]:
    """Every table of the store and its version: equal snapshots mean nothing was written."""
    return {name: store.version(name) for name in store.table_names()}


def prefill(store, tmp_path: Path) -> None:
    path = tmp_path / "existing" / "prefs.jsonl"
    path.parent.mkdir()
    path.write_bytes(jsonl(*GOOD, b"{broken\n"))
    result = seal.ingest(store, path)
    assert (result.ingested, result.quarantined) == (3, 1)


def case_source(case: FileCase, tmp_path: Path) -> Path:
    folder = tmp_path / "input"
    folder.mkdir()
    default = write_case(folder, case.files) if case.files else folder
    return folder / case.source if case.source else default


@pytest.mark.parametrize("prefilled", [False, True], ids=["empty-store", "store-with-data"])
@pytest.mark.parametrize("case", FILE_CASES, ids=[c.id for c in FILE_CASES])
def test_file_level_case(case: FileCase, prefilled: bool, store, tmp_path):
    if prefilled:
        prefill(store, tmp_path)
    before = snapshot(store)
    source = case_source(case, tmp_path)
    with pytest.raises(SourceError, match=case.match) as err:
        seal.ingest(store, source, **case.options)
    message = str(err.value)
    assert "\n" not in message
    if case.names_file:
        assert source.name in message, message
        assert err.value.hint, "a file-level error says how to fix it"
    assert snapshot(store) == before
    if not prefilled:
        assert store.table_names() == []
    else:
        assert store.count() == 3


def test_corpus_covers_at_least_twenty_kinds_of_bad_input():
    bad_rows = [c for c in ROW_CASES if not c.valid]
    assert len(bad_rows) + len(FILE_CASES) >= 20
    reasons = {r for c in bad_rows for r in c.reasons}
    assert len(reasons) >= 15, sorted(reasons)


# -- the CLI: one line on stderr, non-zero exit, store unchanged ------------------------------------
@pytest.mark.parametrize(
    "case",
    [c for c in FILE_CASES if c.id in {"truncated-gzip", "bad-map-absent-column", "unknown-file-type", "no-such-file"}],
    ids=lambda c: c.id,
)
def test_cli_file_level_error(case: FileCase, run_cli, store, tmp_path):
    prefill(store, tmp_path)
    before = snapshot(store)
    source = case_source(case, tmp_path)
    args = [f"--map={m}" for m in case.options.get("column_map", [])]
    result = run_cli("ingest", source, *args)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert snapshot(store) == before


def test_cli_bad_option_values_are_one_line_errors(run_cli, store, tmp_path):
    path = tmp_path / "votes.jsonl"
    path.write_bytes(jsonl(*VOTES))
    result = run_cli("ingest", path, "--map", "a=output_1", "--map", "b=output_2", "--label-map", "1=yes")
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines() == [
        "Error: bad --label-map `1=yes` (use VALUE=a, VALUE=b or VALUE=tie, e.g. 1=a)"
    ]
    assert store.table_names() == []


def test_cli_row_problems_are_reported_not_fatal(run_cli, store, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(jsonl(*GOOD, b"{nope\n", {"chosen": None, "rejected": "x"}))
    result = run_cli("ingest", path, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ingested"] == 3
    assert summary["quarantine_reasons"] == {"invalid_json": 1, "missing_value": 1}
    human = run_cli("ingest", path, "--name", "again")
    assert "quarantined 1 × invalid_json" in human.stdout
