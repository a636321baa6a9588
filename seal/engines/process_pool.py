"""A spawn process pool whose workers do not re-run the caller's script.

A `spawn` worker starts a fresh interpreter and, to find functions defined in the caller's script, first
re-imports that script as `__main__` (unless it was run as a module or interactively). A script that calls
`seal.ingest` or `seal.label` at top level, without an ``if __name__ == "__main__":`` guard, would then run
again in every worker. seal's pools only ever run functions of seal's own modules, so `spawn_pool` starts each
worker with the caller's script hidden from the start-up: the workers import nothing of it. (`fork` would not
re-import it either, but forking a process that runs LanceDB's or torch's threads can deadlock the child.)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

_MISSING = object()


@contextmanager
def _script_hidden() -> Iterator[None]:
    """`__main__` without the `__file__` and `__spec__` that tell a spawn child to re-import it."""
    main = sys.modules.get("__main__")
    saved = {name: getattr(main, name, _MISSING) for name in ("__file__", "__spec__")}
    try:
        if main is not None:
            if saved["__file__"] is not _MISSING:
                del main.__file__
            main.__spec__ = None
        yield
    finally:
        if main is not None:
            for name, value in saved.items():
                if value is _MISSING:
                    if hasattr(main, name):
                        delattr(main, name)
                else:
                    setattr(main, name, value)


class SealProcessPool(ProcessPoolExecutor):
    """A `ProcessPoolExecutor` of spawn workers that start without re-running the caller's script."""

    def _spawn_process(self) -> Any:
        with _script_hidden():
            return super()._spawn_process()  # type: ignore[misc]


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` spawn processes for seal's own functions (see the module docstring)."""
    return SealProcessPool(max_workers=workers, mp_context=get_context("spawn"))
