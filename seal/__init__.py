"""seal: audit reward models against preference datasets (SEAL, Revel et al., AAAI 2025)."""

from seal.errors import SealError
from seal.ingest import IngestResult, ingest
from seal.store import Store

__version__ = "0.1.0"

__all__ = ["IngestResult", "SealError", "Store", "__version__", "ingest"]
