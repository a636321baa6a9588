"""seal: audit reward models against preference datasets (SEAL, Revel et al., AAAI 2025).

The Python API (seal.api): `open_store`, the stages `ingest`, `score`, `import_scores`, `label`, `import_features`,
`embed`, `perturb`, the analyses `resistance`, `imprint`, `robustness`, `confusing`, the store's readers (`stats`,
`show`, `query`, `models`, `findings`, `similar`, `search`, ...) and `plan`/`run` for a spec — the same functions,
with the same options, that the `seal` commands call. Everything is imported on first use: `import seal` stays
cheap (the CLI's `--version` and `--help` need nothing else), and on a machine without the store's dependencies
the scoring core and the transcript parser still import; there the names that need them are absent.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from seal.errors import SealError

__version__ = "0.1.0"

_NOT_VERBS = frozenset({"IngestResult", "SealError", "Store", "__version__"})
# Modules whose absence makes the lazy names absent instead of an import error (a bare GPU machine).
_OPTIONAL = frozenset({"lancedb", "lance", "pyarrow", "pandas", "datasets"})

if TYPE_CHECKING:
    from seal.api import (
        confusing,
        demo,
        embed,
        engine_options,
        export,
        findings,
        import_features,
        import_scores,
        imprint,
        ingest,
        label,
        labeler_regime,
        models,
        open_store,
        optimize,
        perturb,
        perturb_ops,
        plan,
        publish,
        quarantined,
        query,
        report,
        resistance,
        robustness,
        run,
        score,
        search,
        show,
        similar,
        stats,
        tag,
        train_probe,
        validate_spec,
        versions,
    )
    from seal.ingest import IngestResult
    from seal.store import Store

# `seal.ingest` names both a subpackage and the function. Load the package now (cheap: it imports its
# contents on first use) and drop the name it binds here, so that `seal.ingest` is the function (found
# by `__getattr__`); a later `import seal.ingest.x` does not bind the package again.
import_module("seal.ingest")
del globals()["ingest"]
# The same for `seal.export` (the outputs package, whose __init__ imports nothing) and the verb `seal.export`.
import_module("seal.export")
del globals()["export"]
# The same for `seal.demo` (the demo's orchestration module, which imports nothing heavy) and the verb `seal.demo`.
import_module("seal.demo")
del globals()["demo"]
# The same for `seal.report` (the HTML report package, whose __init__ imports nothing) and the verb `seal.report`.
import_module("seal.report")
del globals()["report"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'seal' has no attribute {name!r}")
    try:
        value = getattr(import_module(_LAZY[name]), name)
    except ModuleNotFoundError as err:
        if err.name not in _OPTIONAL:
            raise
        raise AttributeError(f"seal.{name} needs {err.name}, which is not installed") from err
    globals()[name] = value
    return value


__all__ = [
    "IngestResult",
    "SealError",
    "Store",
    "__version__",
    "confusing",
    "demo",
    "embed",
    "engine_options",
    "export",
    "findings",
    "import_features",
    "import_scores",
    "imprint",
    "ingest",
    "label",
    "labeler_regime",
    "models",
    "open_store",
    "optimize",
    "perturb",
    "perturb_ops",
    "plan",
    "publish",
    "quarantined",
    "query",
    "report",
    "resistance",
    "robustness",
    "run",
    "score",
    "search",
    "show",
    "similar",
    "stats",
    "tag",
    "train_probe",
    "validate_spec",
    "versions",
]

# Every exported name but these few is a verb of the Python API (seal.api), imported on first use.
_LAZY = {
    "IngestResult": "seal.ingest",
    "Store": "seal.store",
    **{name: "seal.api" for name in __all__ if name not in _NOT_VERBS},
}
