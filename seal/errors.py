"""Domain errors. The CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations


class SealError(Exception):
    """Base class for errors shown to the user as one line, optionally with a fix hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def first_line(err: BaseException | None, limit: int = 300) -> str:
    """An exception's first line (its type name when the message is empty), for a one-line report."""
    if err is None:
        return "unknown error"
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:limit]


class SourceError(SealError):
    """A whole input source cannot be used: unreadable file, unknown format, bad mapping."""


class StoreError(SealError):
    """The store is missing, or lacks a table, column or row that was asked for."""


class SpecError(SealError):
    """An experiment spec does not validate; the message names the path in the document."""


class QueryError(SealError):
    """A filter or column selection that LanceDB rejected."""
