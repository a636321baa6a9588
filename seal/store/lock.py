"""The store's writer lock: one seal process writes a store at a time.

Lance commits are optimistic: two processes that prepare a column merge from the same version conflict, and
a Merge commit retried against a newer version can replace the fragment list and drop the other writer's
column. seal serialises its writers instead. Every store write takes an exclusive `flock` on
``<store>/.seal-write.lock`` for the few seconds the commit needs (computation happens outside it), and
re-reads the latest version inside the lock, so the second writer merges onto the first one's result.
A process waiting for the lock says so on stderr, once, with the holder's pid. The lock is re-entrant
within a process (nested writes of one store share it) and released when the process dies.

A store on an object store (``s3://...``) has no folder to hold a lock file: its lock is a local file
named by a hash of the URI in `seal.store.location.lock_dir()` (``$SEAL_LOCK_DIR``). It serialises the
seal processes of one machine (or of machines sharing that folder); writers on other machines are kept
apart only by Lance's conditional-PUT commits, and a column merge that loses that race is redone against
the new version (seal.store.merge).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".seal-write.lock"
QUIET_WAIT_SECONDS = 0.5  # say nothing about waits shorter than this

_HELD: dict[str, tuple[int, int]] = {}  # resolved store path -> (fd, depth), in this process
_GUARD = threading.RLock()


@contextlib.contextmanager
def writer_lock(store_path: Path, lock_file: Path | None = None) -> Iterator[None]:
    """Hold the store's writer lock for the duration of the block (re-entrant per process). `lock_file`
    defaults to ``<store_path>/.seal-write.lock``; a remote store passes its local lock file."""
    if lock_file is None:
        store_path.mkdir(parents=True, exist_ok=True)
        lock_file = store_path / LOCK_FILE
    else:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
    key = str(lock_file.resolve())
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            _HELD[key] = (held[0], held[1] + 1)
            try:
                yield
            finally:
                fd, depth = _HELD[key]
                _HELD[key] = (fd, depth - 1)
            return
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _acquire(fd, store_path, lock_file)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            _HELD[key] = (fd, 1)
            try:
                yield
            finally:
                del _HELD[key]
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _acquire(fd: int, store_path: Path, lock_file: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    started = time.monotonic()
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if not told and time.monotonic() - started >= QUIET_WAIT_SECONDS:
                print(
                    f"seal: waiting for another seal process ({_holder(lock_file)}) to finish writing {store_path}",
                    file=sys.stderr,
                    flush=True,
                )
                told = True
            time.sleep(0.05)


def _holder(lock_file: Path) -> str:
    try:
        pid = lock_file.read_text().strip()
    except OSError:
        return "pid unknown"
    return f"pid {pid}" if pid else "pid unknown"
