"""The store: one `pairs` row per preference pair, plus `quarantine`, `runs`, stage checkpoints and side
tables, in one folder of Lance tables.

This package is the only place that touches LanceDB or Lance. Everything else reads and writes through
`Store`'s methods and gets Arrow tables and plain values back:

- reads (seal.store.reads): `read`, `scan`, `count`, `schema`, `version`, `columns`, `runs`, `quarantine`;
- writes (seal.store.writes): `add_pairs`, `replace_pairs`, `write_column` (an annotation column and the run
  that made it), `record_run`, ...; every write holds the writer lock (seal.store.lock);
- checkpoints and side tables (seal.store.side), versions/tags/optimize (seal.store.maintenance), indexes
  and vector/full-text search (seal.store.indexes);
- where the store lives (seal.store.location: a folder or an ``s3://``/``gs://``/``az://`` URI and its
  storage options), the column merges seal commits itself (seal.store.merge) and the planned rows as a
  Ray Dataset for the Ray engine (seal.store.ray_reads, lance-ray).
"""

from __future__ import annotations

from seal.store.base import (
    DEFAULT_KEEP_VERSIONS,
    DEFAULT_STORE,
    INGEST_OWNED,
    PAIRS,
    QUARANTINE,
    RUNS,
    WORK_PREFIX,
    RunRecord,
    default_keep_versions,
    default_store_path,
    new_run_id,
    now_utc,
    parse_duration,
)
from seal.store.indexes import Indexes
from seal.store.location import is_remote, parse_storage_options
from seal.store.merge import PreparedMerge
from seal.store.ray_reads import RayReads


class Store(Indexes, RayReads):
    """A seal store at a folder path or object-store URI (``s3://bucket/prefix``). Opening never creates
    anything; writes create tables on demand."""


__all__ = [
    "DEFAULT_KEEP_VERSIONS",
    "DEFAULT_STORE",
    "INGEST_OWNED",
    "PAIRS",
    "QUARANTINE",
    "RUNS",
    "WORK_PREFIX",
    "PreparedMerge",
    "RunRecord",
    "Store",
    "default_keep_versions",
    "default_store_path",
    "is_remote",
    "new_run_id",
    "now_utc",
    "parse_duration",
    "parse_storage_options",
]
