"""The spec section `findings:` -> the findings stage (seal.annotate.findings), registered without importing it:
the confusing-entries analysis it runs imports scipy, which `seal plan` and `seal run` of a spec without the
section need not pay for."""

from __future__ import annotations

from typing import Any

from seal.errors import SealError
from seal.pipeline import register_stage
from seal.spec import Spec


@register_stage("findings", section="findings", order=50)
def build_findings(entry: dict[str, Any] | None, spec: Spec) -> Any:
    """The spec's `findings:` section -> a `FindingsStage` (options as `seal confusing`)."""
    from seal.annotate.findings import FindingsStage

    options = dict(entry or {})
    kinds = options.pop("kinds", None)
    limit = options.pop("limit", 50)
    try:
        return FindingsStage(kinds, limit=limit, **options)
    except TypeError as err:  # an option the analysis does not take
        raise SealError(f"findings: {err}") from None
