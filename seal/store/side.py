"""Tables beside `pairs`: stage checkpoints (``work__<column>``: batches appended as they finish, so a killed
run resumes) and side tables that a stage keeps (an LLM response cache, stored findings)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from seal.errors import StoreError
from seal.store.base import OWN_TABLES, WORK_PREFIX, Where, align, writes
from seal.store.writes import Writes


class SideTables(Writes):
    """Checkpoint and side-table methods of `Store`."""

    # -- checkpoints ---------------------------------------------------------------------------------
    def work_exists(self, column: str) -> bool:
        return not self._missing(WORK_PREFIX + column)

    def work_read(self, column: str, columns: Sequence[str] | None = None, where: Where = None) -> pa.Table | None:
        """The checkpoint rows of the stage filling `column` (None when it has no checkpoint)."""
        if not self.work_exists(column):
            return None
        return self.read(columns, where, table=WORK_PREFIX + column)

    def work_count(self, column: str, where: Where = None) -> int:
        return self.count(where, table=WORK_PREFIX + column)

    def work_schema(self, column: str) -> pa.Schema | None:
        return self.schema(WORK_PREFIX + column) if self.work_exists(column) else None

    @writes
    def work_append(self, column: str, rows: pa.Table, row_schema: pa.Schema) -> None:
        """Append a finished batch to the checkpoint of the stage filling `column` (created on first use)."""
        table = self._open_or_create(WORK_PREFIX + column, row_schema)
        if rows.num_rows:
            table.add(align(rows, table.schema))

    @writes
    def work_delete(self, column: str, where: Where) -> None:
        """Delete the checkpoint rows of `column` matching `where` (e.g. rows of another recipe)."""
        if self.work_exists(column):
            self._dataset(WORK_PREFIX + column).delete(where)

    @writes
    def drop_work_table(self, column: str) -> None:
        name = WORK_PREFIX + column
        if not self._missing(name):
            self._connection().drop_table(name)

    # -- side tables -----------------------------------------------------------------------------------
    def _side_name(self, name: str) -> str:
        if name in OWN_TABLES or name.startswith(WORK_PREFIX):
            raise StoreError(f"`{name}` is one of the store's own tables")
        return name

    def side_exists(self, name: str) -> bool:
        return not self._missing(self._side_name(name))

    def side_read(self, name: str, columns: Sequence[str] | None = None, where: Where = None) -> pa.Table | None:
        """Rows of side table `name` (None when it does not exist)."""
        if not self.side_exists(name):
            return None
        return self.read(columns, where, table=name)

    def side_count(self, name: str, where: Where = None) -> int:
        return self.count(where, table=self._side_name(name)) if self.side_exists(name) else 0

    @writes
    def side_append(self, name: str, rows: pa.Table, table_schema: pa.Schema) -> None:
        """Append rows to side table `name`, created with `table_schema` on first use."""
        table = self._open_or_create(self._side_name(name), table_schema)
        if rows.num_rows:
            table.add(align(rows, table.schema))

    @writes
    def side_delete(self, name: str, where: Where) -> None:
        """Delete the rows of side table `name` matching `where`."""
        if self.side_exists(name):
            self._dataset(name).delete(where)

    @writes
    def side_upsert(self, name: str, rows: pa.Table, table_schema: pa.Schema, key: str | Sequence[str]) -> None:
        """Insert rows into side table `name`, replacing those with the same `key`."""
        table = self._open_or_create(self._side_name(name), table_schema)
        if rows.num_rows:
            keys = [key] if isinstance(key, str) else list(key)
            table.merge_insert(keys).when_matched_update_all().when_not_matched_insert_all().execute(
                align(rows, table.schema)
            )
