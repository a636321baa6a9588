"""Ingest preference datasets from local files or the Hugging Face Hub into the pair store.

`ingest` and friends are imported on first use: the format adapters and the transcript parser
(`seal.ingest.formats`, `seal.ingest.transcript`) then import without LanceDB.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_LAZY = {"IngestResult": "seal.ingest.core", "ingest": "seal.ingest.core", "pair_id_for": "seal.ingest.core"}

if TYPE_CHECKING:
    from seal.ingest.core import IngestResult, ingest, pair_id_for


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'seal.ingest' has no attribute {name!r}")


__all__ = ["IngestResult", "ingest", "pair_id_for"]
