"""The HTML report (`seal report`): one self-contained page of everything the store holds — the dataset,
agreement and regimes, γ × regime, imprint, reward vectors and shift angles, robustness, confusing findings
and the recipe of every column. It reads like an analysis (store read API, catalog, the analyses' results)
and writes nothing but the page.

Modules: `gather` (the data of each section), `sections_rm` and `sections_data` (their HTML), `plots`
(matplotlib to embedded PNG), `markup` and `escape` (safe HTML), `page` (the document), `build` (all of it).
`build_report` is imported on first use, so that `import seal` (which loads this package to keep the verb
`seal.report` a function) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_LAZY = {"DEFAULT_OUT": "seal.report.build", "build_report": "seal.report.build", "SECTIONS": "seal.report.gather"}

if TYPE_CHECKING:
    from seal.report.build import DEFAULT_OUT, build_report
    from seal.report.gather import SECTIONS


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'seal.report' has no attribute {name!r}")


__all__ = ["DEFAULT_OUT", "SECTIONS", "build_report"]
