"""Ingest preference datasets from local files or the Hugging Face Hub into the pair store."""

from seal.ingest.core import IngestResult, ingest, pair_id_for

__all__ = ["IngestResult", "ingest", "pair_id_for"]
