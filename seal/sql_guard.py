"""Check what users pass as `--where` and `--select` before LanceDB sees it.

`--where` must be exactly one SQL expression (a LanceDB/DataFusion filter): no `;`, no comments (`--`,
`/* */`) and no statement keywords (DROP, DELETE, SELECT, ...) outside string literals and quoted
identifiers. `--select` must name existing columns, nested struct fields with dots
(`flags.identical_responses`). Everything else is refused with one line and a hint, so that
`--where "1=1; DROP TABLE pairs; --"` fails instead of quietly returning rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from seal.errors import QueryError

WHERE_HINT = "give one SQL expression, e.g. --where \"dataset = 'hh' AND flags.context_mismatch\"; quote text as '...'"
# Words that start a statement or combine queries; never part of a filter expression.
STATEMENT_WORDS = frozenset(
    {
        "ALTER",
        "ATTACH",
        "CALL",
        "COPY",
        "CREATE",
        "DELETE",
        "DETACH",
        "DROP",
        "EXEC",
        "EXECUTE",
        "GRANT",
        "INSERT",
        "MERGE",
        "PRAGMA",
        "REVOKE",
        "SELECT",
        "TRUNCATE",
        "UNION",
        "UPDATE",
    }
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTES = {"'": "string literal", '"': "quoted identifier", "`": "quoted identifier"}


def _bare_parts(text: str) -> Iterable[tuple[int, str]]:
    """(offset, text) of the stretches outside string literals and quoted identifiers.
    A quote doubled inside its own kind ('it''s') is an escaped quote."""
    start, i, n = 0, 0, len(text)
    while i < n:
        quote = text[i]
        if quote not in _QUOTES:
            i += 1
            continue
        yield start, text[start:i]
        j = i + 1
        while True:
            j = text.find(quote, j)
            if j < 0:
                raise QueryError(f"--where: unterminated {_QUOTES[quote]} starting at character {i + 1}", WHERE_HINT)
            if j + 1 < n and text[j + 1] == quote:  # doubled: an escaped quote
                j += 2
                continue
            break
        i = start = j + 1
    yield start, text[start:]


def check_where(where: str | None) -> str | None:
    """`where` unchanged when it is one SQL expression (None or blank: no filter, None); else QueryError."""
    if where is None or not where.strip():
        return None
    for offset, part in _bare_parts(where):
        for token, what in ((";", "`;` (one expression only, not statements)"), ("--", "a `--` comment")):
            at = part.find(token)
            if at >= 0:
                raise QueryError(f"--where: {what} at character {offset + at + 1}", WHERE_HINT)
        for token in ("/*", "*/"):
            at = part.find(token)
            if at >= 0:
                raise QueryError(f"--where: a `/* */` comment at character {offset + at + 1}", WHERE_HINT)
        for match in _WORD.finditer(part):
            if match.group().upper() in STATEMENT_WORDS:
                raise QueryError(
                    f"--where: `{match.group()}` at character {offset + match.start() + 1} starts a statement; "
                    "a filter is one expression",
                    WHERE_HINT,
                )
    return where


def column_paths(schema: Any) -> list[str]:
    """Every selectable name of an Arrow schema: top-level columns and dotted struct fields."""
    import pyarrow as pa

    out: list[str] = []

    def walk(prefix: str, fields: Iterable[pa.Field]) -> None:
        for field in fields:
            name = f"{prefix}{field.name}"
            out.append(name)
            if pa.types.is_struct(field.type):
                walk(name + ".", (field.type.field(i) for i in range(field.type.num_fields)))

    walk("", schema)
    return out


def check_select(select: Sequence[str] | None, schema: Any) -> list[str] | None:
    """`select` unchanged when every name is a column or dotted struct field of `schema`; else QueryError."""
    if not select:
        return None
    known = column_paths(schema)
    allowed = set(known)
    top = [name for name in known if "." not in name]
    for name in select:
        if name not in allowed:
            shown = ", ".join(top[:12]) + (", ..." if len(top) > 12 else "")
            raise QueryError(
                f"--select: no column `{name}`",
                f"columns: {shown}; nested fields with dots (flags.identical_responses); see `seal stats`",
            )
    return list(select)
