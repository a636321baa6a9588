"""TEMPORARY: the old methods that handed LanceDB tables out, kept only while the rest of seal moves to the
read/write API. Removed when no caller is left (tests/test_architecture.py checks)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from seal.store.base import PAIRS, SCHEMAS, WORK_PREFIX, writes


class Legacy:
    @property
    def db(self) -> Any:
        return self._connection()  # type: ignore[attr-defined]

    @writes
    def table(self, name: str, create: bool = False) -> Any:
        from seal.errors import StoreError

        if name in self.table_names():  # type: ignore[attr-defined]
            return self._table(name)  # type: ignore[attr-defined]
        if not create:
            raise StoreError(f"the store at {self.path} has no `{name}` table")  # type: ignore[attr-defined]
        return self._create_table(name, SCHEMAS[name])  # type: ignore[attr-defined]

    def pairs(self) -> Any:
        self.require()  # type: ignore[attr-defined]
        return self._table(PAIRS)  # type: ignore[attr-defined]

    @writes
    def work_table(self, column: str, row_schema: pa.Schema) -> Any:
        return self._open_or_create(WORK_PREFIX + column, row_schema)  # type: ignore[attr-defined]

    @writes
    def side_table(self, name: str, schema: pa.Schema, create: bool = True) -> Any:
        if self.side_exists(name):  # type: ignore[attr-defined]
            return self._table(name)  # type: ignore[attr-defined]
        if not create:
            return None
        return self._create_table(name, schema)  # type: ignore[attr-defined]
