"""Opening the store's tables. Reads go straight to the Lance datasets (pylance: a few hundred milliseconds
to import), writes through a LanceDB connection (seconds to import, so opened only when a write needs it).
Nothing here leaves the store package: callers get Arrow tables and plain values."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from seal.errors import StoreError
from seal.store import location
from seal.store.base import PAIRS, SCHEMAS, default_store_path
from seal.store.location import RemotePath, store_location
from seal.store.lock import writer_lock


class Tables:
    """Connection, table listing and creation; the base of `Store`."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        storage_options: Iterable[str] | Mapping[str, str] | None = None,
    ):
        """`path`: a folder, ``file://...`` or an object-store URI (``s3://bucket/prefix``). `storage_options`
        (``KEY=VALUE`` strings or a mapping) add to those the environment sets; they are used for remote
        stores only and are never written anywhere (see seal.store.location)."""
        self.path: Any = store_location(path or default_store_path())
        self.remote = isinstance(self.path, RemotePath)
        self.storage_options: dict[str, str] = location.storage_options(storage_options) if self.remote else {}
        self._db: Any = None

    def __getstate__(self) -> dict[str, Any]:  # no open connection in a pickle (nor in a Ray task)
        return {**self.__dict__, "_db": None, "_search_cache": {}}

    # -- connection --------------------------------------------------------------------------------
    def _options(self) -> dict[str, str] | None:
        return dict(self.storage_options) if self.remote else None

    def _connection(self) -> Any:
        """The LanceDB connection (writes, indexes, full-text search)."""
        if self._db is None:
            import lancedb

            self._db = lancedb.connect(str(self.path), storage_options=self._options())
        return self._db

    def _uri(self, name: str) -> str:
        return str(self.path / f"{name}.lance")

    def _dataset(self, name: str, version: int | str | None = None) -> Any:
        """The Lance dataset of table `name` at its latest (or a given) version."""
        if self.remote:
            ds = self._open_remote(name, version)
            if ds is None:
                raise StoreError(f"the store at {self.path} has no `{name}` table")
            return ds
        import lance

        if self._missing(name):
            raise StoreError(f"the store at {self.path} has no `{name}` table")
        return lance.dataset(self._uri(name), version=version)

    def _open_remote(self, name: str, version: int | str | None = None) -> Any:
        """The dataset of a remote table, or None when it has no committed version; an error reaching the
        object store (bad endpoint, refused credentials) is one line without secrets."""
        import lance

        try:
            return lance.dataset(self._uri(name), version=version, storage_options=self._options())
        except (ValueError, FileNotFoundError) as err:
            if _not_found(err):
                return None
            raise StoreError(self.redact(f"cannot read `{name}` at {self.path}: {_first_line(err)}")) from None
        except OSError as err:
            if _not_found(err):
                return None
            raise StoreError(
                self.redact(f"cannot reach the store at {self.path}: {_first_line(err)}"),
                hint="check the endpoint and credentials (AWS_* variables or --storage-option KEY=VALUE)",
            ) from None

    def redact(self, text: str) -> str:
        """`text` without the values of secret storage options."""
        return location.redact(text, self.storage_options)

    def _table(self, name: str) -> Any:
        """The LanceDB table `name` (latest version), for writes."""
        return self._connection().open_table(name)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the writer lock (see seal.store.lock) for a block of writes."""
        if self.remote:
            with writer_lock(self.path, location.lock_dir() / location.lock_key(str(self.path))):
                yield
        else:
            with writer_lock(self.path):
                yield

    # -- tables ------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return not self._missing(PAIRS)

    def table_names(self) -> list[str]:
        """The tables of the store (a folder `<name>.lance` with at least one committed version)."""
        if self.remote:
            listed = self._connection().list_tables()
            listed = getattr(listed, "tables", listed)
            return sorted(n for n in listed if not self._missing(n))
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
        if self.remote:
            return self._open_remote(name) is None
        versions = self.path / f"{name}.lance" / "_versions"
        return not versions.is_dir() or not any(versions.glob("*.manifest"))

    def _create_table(self, name: str, schema: pa.Schema) -> Any:
        """Create an empty table; a create that fails leaves no folder behind."""
        if self.remote:
            return self._connection().create_table(name, schema=schema, exist_ok=True)
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


def _not_found(err: BaseException) -> bool:
    text = str(err).lower()
    return "not found" in text or "does not exist" in text or "no such file" in text


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
