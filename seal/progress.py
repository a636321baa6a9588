"""Progress bars on stderr that switch themselves off when not wanted or not on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class _Bar:
    def __init__(self, bar: Any | None):
        self._bar = bar

    def wrap(self, items: Iterable[T]) -> Iterator[T]:
        for item in items:
            if self._bar is not None:
                self._bar.update(1)
            yield item

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)


@contextmanager
def progress_bar(enabled: bool, total: int | None = None, **kwargs: Any) -> Iterator[_Bar]:
    """A tqdm bar on stderr when `enabled` and stderr is a terminal; a no-op otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield _Bar(None)
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, file=sys.stderr, mininterval=0.5, **kwargs) as bar:
        yield _Bar(bar)
