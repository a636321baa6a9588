"""Domain errors. The CLI turns each into one line on stderr and an exit code.

Exit codes (documented in README.md, "Exit codes"): 0 success (a stage with some failed units included),
1 an error (`SealError`, or an unexpected exception), 2 a usage error (click), 3 a stage ran but none
of its units succeeded (`NothingSucceeded`).
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOTHING_SUCCEEDED = 0, 1, 2, 3


class SealError(Exception):
    """Base class for errors shown to the user as one line, optionally with a fix hint."""

    exit_code = EXIT_ERROR

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


class StoreWriteError(StoreError):
    """The file system refused a write to the store: read-only, no permission, or full."""


class SpecError(SealError):
    """An experiment spec does not validate; the message names the path in the document."""


class QueryError(SealError):
    """A filter or column selection that LanceDB rejected."""


class HubUnreachable(SealError):
    """The Hugging Face Hub cannot be reached (or offline mode is on) and the local cache lacks what is needed."""


class NothingSucceeded(SealError):
    """A stage ran but every unit of its work failed (every request refused, every rewrite failed).

    Its own exit code (3), so that a script can tell it from success (0) and from an error (1)."""

    exit_code = EXIT_NOTHING_SUCCEEDED


# -- file-system failures of store writes ----------------------------------------------------------
# Lance reports them as RuntimeError/OSError text, e.g. "lance error: LanceError(IO): Read-only file
# system (os error 30) at path \"/s/pairs.lance/data/.tmpX\", /root/.cargo/.../object_store.rs:1006:34".
_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_AT_PATH = re.compile(r'at path "([^"]+)"')
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
_FULL = (errno.ENOSPC, errno.EDQUOT)


def _errno_of(err: BaseException) -> int | None:
    """The OS error number of an exception: `OSError.errno`, or `(os error N)` in a Lance message."""
    if isinstance(err, OSError) and isinstance(err.errno, int):
        return err.errno
    match = _OS_ERROR.search(str(err))
    return int(match.group(1)) if match else None


def store_write_error(err: BaseException, store_path: str | Path | None = None) -> StoreWriteError | None:
    """The one-line error for a write the file system refused (read-only store, no permission, disk
    full), or None when `err` is something else. `store_path` is named in the message; without it, the
    path the error carries is."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:  # the OS error may be the cause of a wrapper
        seen.add(id(err))
        number = _errno_of(err)
        if number in _READ_ONLY or number in _FULL:
            break
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    else:
        return None
    carried = _path_in(err)
    if store_path and carried and not (_under(carried, store_path) or _under(store_path, carried)):
        return None  # a file outside the store and its folders (a model, a cache): not a store write
    where = str(store_path or carried or "this path")
    if number in _FULL:
        return StoreWriteError(
            f"no space left on the device holding {where}",
            hint="free space there or move the store, then rerun: committed work is kept, nothing is half-written",
        )
    detail = "read-only" if number == errno.EROFS else "read-only for this user (permission denied)"
    return StoreWriteError(
        f"the store at {where} is {detail}",
        hint="to write, point --store / SEAL_STORE at a writable copy; reading commands work on this one",
    )


def _path_in(err: BaseException) -> str | None:
    """The file an OS error names (`OSError.filename`, or `at path "..."` in a Lance message)."""
    if isinstance(err, OSError) and err.filename:
        return str(err.filename)
    match = _AT_PATH.search(str(err))
    return match.group(1) if match else None


def _under(path: str, root: str | Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return False
    return True
