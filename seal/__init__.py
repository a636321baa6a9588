"""seal: audit reward models against preference datasets (SEAL, Revel et al., AAAI 2025)."""

from seal.errors import SealError

__version__ = "0.1.0"

try:
    from seal.ingest import IngestResult, ingest
    from seal.store import Store
except ModuleNotFoundError as err:  # pragma: no cover - exercised on bare GPU machines
    # The scoring core and the transcript parser work without the store's dependencies, so a
    # machine with torch and transformers alone can still run `seal.annotate.scoring_model`.
    if err.name not in {"lancedb", "lance", "pyarrow", "pandas", "datasets"}:
        raise

__all__ = ["IngestResult", "SealError", "Store", "__version__", "ingest"]
