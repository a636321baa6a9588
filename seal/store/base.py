"""What every part of the store shares: table names, run records, durations, the write-error translation
and the Arrow helpers that give rows a table's exact schema."""

from __future__ import annotations

import functools
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from seal import schema
from seal.errors import SealError, StoreError, store_write_error

DEFAULT_STORE = "./seal-store"
PAIRS, QUARANTINE, RUNS = "pairs", "quarantine", "runs"
OWN_TABLES = (PAIRS, QUARANTINE, RUNS)
WORK_PREFIX = "work__"
INGEST_OWNED = frozenset(schema.INGEST_COLUMNS)
SCHEMAS = {PAIRS: schema.PAIRS, QUARANTINE: schema.QUARANTINE, RUNS: schema.RUNS}
# Versions newer than this survive the clean-up at the end of a stage, so a reader that opened an
# older version a moment ago keeps working; tagged versions are always kept. `$SEAL_KEEP_VERSIONS`.
DEFAULT_KEEP_VERSIONS = timedelta(hours=1)
# Lance operations that `optimize` commits (compaction reserves fragment ids in a bare BaseOperation first).
MAINTENANCE_OPERATIONS = frozenset({"Rewrite", "CreateIndex", "BaseOperation"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

Where = str | pc.Expression | None  # a LanceDB SQL filter or a pyarrow compute expression


def parse_duration(text: str) -> timedelta:
    """`0`, `90s`, `30m`, `1h`, `7d` or `2w` as a timedelta (a bare number is seconds)."""
    match = _DURATION.match(str(text))
    if not match:
        raise SealError(f"cannot read `{text}` as a duration", hint="write e.g. 0, 30m, 1h, 7d or 2w")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"])


def default_keep_versions() -> timedelta:
    """How long old versions are kept by the clean-up at the end of a stage."""
    value = os.environ.get("SEAL_KEEP_VERSIONS")
    return parse_duration(value) if value else DEFAULT_KEEP_VERSIONS


def default_store_path() -> str:
    """The store path used when none is given: `$SEAL_STORE`, else `./seal-store`."""
    return os.environ.get("SEAL_STORE") or DEFAULT_STORE


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    return now_utc().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class RunRecord:
    """One row of the `runs` table: what a write did and what determined it."""

    run_id: str
    stage: str
    name: str
    fingerprint: str
    recipe: Mapping[str, Any]
    provenance: Mapping[str, Any]
    status: str
    rows_written: int
    pairs_version: int | None
    started_at: datetime
    finished_at: datetime

    def to_row(self) -> dict[str, Any]:
        row = dict(self.__dict__)
        row["recipe"] = json.dumps(self.recipe, sort_keys=True)
        row["provenance"] = json.dumps(self.provenance, sort_keys=True, default=str)
        return row

    @classmethod
    def finished(
        cls,
        stage: str,
        name: str,
        recipe: Any,
        provenance: Mapping[str, Any] | None = None,
        *,
        rows_written: int = 0,
        status: str = "done",
        pairs_version: int | None = None,
        started_at: datetime | None = None,
        run_id: str | None = None,
    ) -> RunRecord:
        """A record of a run that ends now. `recipe` is a `seal.recipe.Recipe` (or anything with
        `fingerprint()` and `to_dict()`), or a plain mapping whose fingerprint is left empty."""
        if hasattr(recipe, "fingerprint"):
            fingerprint, recipe_dict = recipe.fingerprint(), recipe.to_dict()
        else:
            fingerprint, recipe_dict = "", dict(recipe)
        end = now_utc()
        return cls(
            run_id=run_id or new_run_id(),
            stage=stage,
            name=name,
            fingerprint=fingerprint,
            recipe=recipe_dict,
            provenance=dict(provenance or {}),
            status=status,
            rows_written=int(rows_written),
            pairs_version=pairs_version,
            started_at=started_at or end,
            finished_at=end,
        )


_F = TypeVar("_F", bound=Callable[..., Any])


def writes(method: _F) -> _F:
    """Mark a Store method that writes: it runs under the store's writer lock (two seal processes writing
    one store take turns), and a write the file system refuses (read-only store, no permission, disk full)
    becomes one `StoreWriteError` line instead of Lance's RuntimeError with a Rust source path. Lance
    commits a version only after its files are written, so a refused write leaves the last version."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with self.writing():
                return method(self, *args, **kwargs)
        except SealError:
            raise
        except Exception as err:
            translated = store_write_error(err, self.path)
            if translated is None:
                raise
            raise translated from err

    return wrapper  # type: ignore[return-value]


def last_per_key(values: pa.Table, key: str) -> pa.Table:
    """Keep the last row of each key (a batch committed twice must not duplicate a pair)."""
    keys = values.column(key)
    if pc.count_distinct(keys).as_py() == values.num_rows:
        return values
    indexed = values.append_column("__row", pa.array(range(values.num_rows), pa.int64()))
    last = indexed.group_by(key).aggregate([("__row", "max")]).column("__row_max")
    return values.take(last)


def align(rows: pa.Table, target: pa.Schema) -> pa.Table:
    """Give `rows` exactly the target schema: missing columns become nulls, extra ones are an error."""
    extra = set(rows.column_names) - set(target.names)
    if extra:
        raise StoreError(f"columns not in the table schema: {sorted(extra)}")
    columns = []
    for field in target:
        if field.name in rows.column_names:
            columns.append(rows.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(rows.num_rows, type=field.type))
    return pa.Table.from_arrays(columns, schema=target)
