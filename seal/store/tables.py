"""Opening the store's tables. Reads go straight to the Lance datasets (pylance: a few hundred milliseconds
to import), writes through a LanceDB connection (seconds to import, so opened only when a write needs it).
Nothing here leaves the store package: callers get Arrow tables and plain values."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from seal.errors import StoreError
from seal.store.base import PAIRS, SCHEMAS, default_store_path
from seal.store.lock import writer_lock


class Tables:
    """Connection, table listing and creation; the base of `Store`."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path or default_store_path())
        self._db: Any = None

    # -- connection --------------------------------------------------------------------------------
    def _connection(self) -> Any:
        """The LanceDB connection (writes, indexes, full-text search)."""
        if self._db is None:
            import lancedb

            self._db = lancedb.connect(str(self.path))
        return self._db

    def _uri(self, name: str) -> str:
        return str(self.path / f"{name}.lance")

    def _dataset(self, name: str, version: int | str | None = None) -> Any:
        """The Lance dataset of table `name` at its latest (or a given) version."""
        import lance

        if self._missing(name):
            raise StoreError(f"the store at {self.path} has no `{name}` table")
        return lance.dataset(self._uri(name), version=version)

    def _table(self, name: str) -> Any:
        """The LanceDB table `name` (latest version), for writes."""
        return self._connection().open_table(name)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the writer lock (see seal.store.lock) for a block of writes."""
        with writer_lock(self.path):
            yield

    # -- tables ------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return not self._missing(PAIRS)

    def table_names(self) -> list[str]:
        """The tables of the store (a folder `<name>.lance` with at least one committed version)."""
        if not self.path.is_dir():
            return []
        names = []
        for entry in sorted(self.path.iterdir()):
            if entry.suffix == ".lance" and entry.is_dir() and not self._missing(entry.stem):
                names.append(entry.stem)
        return names

    def _missing(self, name: str) -> bool:
        """No committed version of table `name`: it is absent, or its create failed (disk full) or was killed.
        Looks at that table's folder only, so a read need not list the whole store."""
        versions = self.path / f"{name}.lance" / "_versions"
        return not versions.is_dir() or not any(versions.glob("*.manifest"))

    def _create_table(self, name: str, schema: pa.Schema) -> Any:
        """Create an empty table; a create that fails leaves no folder behind."""
        self.path.mkdir(parents=True, exist_ok=True)
        folder = self.path / f"{name}.lance"
        if folder.exists() and self._missing(name):  # left by an earlier failed create
            shutil.rmtree(folder)
        try:
            return self._connection().create_table(name, schema=schema)
        except Exception:
            if folder.exists() and self._missing(name):
                shutil.rmtree(folder, ignore_errors=True)
            raise

    def _open_or_create(self, name: str, schema: pa.Schema | None = None) -> Any:
        if not self._missing(name):
            return self._table(name)
        return self._create_table(name, schema if schema is not None else SCHEMAS[name])

    def require(self) -> None:
        """Raise a helpful error when there is no store (or no pairs) at this path."""
        if not self.exists():
            raise StoreError(
                f"no seal store with pairs at {self.path}",
                hint="run `seal ingest SOURCE` first, or point --store / SEAL_STORE at an existing store",
            )
