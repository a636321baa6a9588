"""Did a stage's units of work succeed? One rule for every command and for `seal run`.

A stage that works unit by unit (the llm labeler's texts, an llm rewriter's variants) keeps going when
one unit fails, records the failure and lets a rerun retry it. When *every* unit it tried failed (a server
that refuses the connection or answers 400 to everything), the command must not look like a success:
it exits with `NothingSucceeded` (exit code 3) after printing its result. Some units failing is `partial`
and exits 0 (the failures are in the result and retried by a rerun).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seal.errors import NothingSucceeded

FAILED = "failed"


def nothing_succeeded(result: Mapping[str, Any]) -> str | None:
    """Why no unit of a stage's run succeeded (one line), or None when something did or nothing was tried.

    Understands `status: failed` with a `failure_reasons` count (the llm labeler) and `variants` counts
    where every variant failed in a run that wrote variants (perturb)."""
    if result.get("status") == FAILED:
        n = result.get("failures")
        units = f"every one of the {n:,} text(s) sent" if isinstance(n, int) and n else "every unit"
        return f"{units} failed{_reasons(result.get('failure_reasons'))}"
    variants = result.get("variants")
    if result.get("status") == "done" and isinstance(variants, Mapping):
        total, failed = int(variants.get("total") or 0), int(variants.get("failed") or 0)
        if total and failed == total:
            return f"every one of the {total:,} variant(s) failed"
    return None


def _reasons(reasons: Any) -> str:
    if not isinstance(reasons, Mapping) or not reasons:
        return ""
    return " (" + ", ".join(f"{kind}: {n:,}" for kind, n in sorted(reasons.items())) + ")"


def check(what: str, result: Mapping[str, Any], hint: str | None = None) -> None:
    """Raise `NothingSucceeded` (exit code 3) when no unit of `what` succeeded; call after printing."""
    reason = nothing_succeeded(result)
    if reason is not None:
        raise NothingSucceeded(f"{what}: {reason}", hint=hint or "fix the cause and rerun: failed units are retried")
