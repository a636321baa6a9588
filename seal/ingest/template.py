"""Text built from several columns: ``--map "prompt={instruction}\\n\\n{input}"``.

A template is literal text with ``{column}`` fields (``{{`` and ``}}`` are literal braces; ``\\n``, ``\\t``
and ``\\\\`` are escapes, so a shell argument can hold a newline). Each field owns the literal text just
before it: a field whose column is empty (absent, null or blank) is dropped together with that text, so
``{instruction}\\n\\n{input}`` gives only the instruction for a row whose `input` is empty. The result is
stripped of surrounding whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seal.errors import SourceError

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}
_ESCAPE = re.compile(r"\\(.)")


class TemplateValueError(ValueError):
    """A field's value cannot be written as text (a list or an object)."""

    def __init__(self, column: str, kind: str):
        super().__init__(f"`{column}` is {kind}, not text")
        self.column = column


def looks_like_template(value: str) -> bool:
    """True when a --map value has a ``{column}`` field (a plain column name never has one)."""
    return any(m.group(1) for m in _FIELD.finditer(value) if m.group(1) is not None)


def unescape(text: str) -> str:
    """``\\n``, ``\\t`` and ``\\\\`` as the characters they name; any other backslash stays as written."""
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), text)


@dataclass(frozen=True)
class Template:
    """A parsed template: ``parts`` are (literal text before the field, column); ``tail`` follows the last."""

    source: str
    parts: tuple[tuple[str, str], ...]
    tail: str

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column for _, column in self.parts)

    def render(self, record: Mapping[str, Any]) -> str:
        """The text for one record; a list or object value raises TemplateValueError."""
        out: list[str] = []
        for lead, column in self.parts:
            text = _field_text(record.get(column), column)
            if text:
                out.append(lead + text)
        return ("".join(out) + self.tail).strip() if out else ""


def _field_text(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value if value.strip() else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    raise TemplateValueError(column, type(value).__name__)


def parse_template(key: str, text: str) -> Template:
    """Parse the value of ``--map KEY=TEMPLATE``; a stray brace or an empty field is a one-line error."""
    parts: list[tuple[str, str]] = []
    literal: list[str] = []
    pos = 0
    for match in _FIELD.finditer(text):
        literal.append(unescape(text[pos : match.start()]))
        pos = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif match.group(1) is None:
            raise SourceError(
                f"bad --map {key}={text}: unmatched `{token}`",
                hint="write a literal brace as {{ or }}, and fields as {column}",
            )
        elif not match.group(1).strip():
            raise SourceError(f"bad --map {key}={text}: an empty field {{}}", hint="name a column: {instruction}")
        else:
            parts.append(("".join(literal), match.group(1)))
            literal = []
    literal.append(unescape(text[pos:]))
    return Template(text, tuple(parts), "".join(literal))
