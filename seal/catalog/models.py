"""Which reward models a store holds scores for: alias, column, role, recipe and coverage.

Contract shared by `seal score` and `seal import-scores`: scores of RM `alias` live in the top-level
column ``score_<alias>`` (struct{chosen: float64, rejected: float64}); every write is recorded in
`runs` with stage ``score``, name = alias, the fingerprinted recipe, and provenance holding at least
``role`` (aligned | control | other) and ``origin`` (scored | imported).
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from seal.errors import SealError, StoreError
from seal.store import Store

SCORE_PREFIX = "score_"
ROLES = ("aligned", "control", "other")
ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")
SCORE_TYPE = pa.struct([("chosen", pa.float64()), ("rejected", pa.float64())])


def score_column(alias: str) -> str:
    return SCORE_PREFIX + alias


def check_alias(alias: str) -> str:
    if not ALIAS_PATTERN.match(alias):
        raise SealError(f"bad alias `{alias}`", hint="use letters, digits and underscores only")
    return alias


def default_alias(model: str) -> str:
    """An alias from a model id or path: its last component with other characters made `_`."""
    last = model.rstrip("/").split("/")[-1]
    return re.sub(r"[^A-Za-z0-9_]+", "_", last).strip("_") or "model"


def list_models(store: Store) -> dict[str, dict[str, Any]]:
    """Every scored or imported RM: {alias: {column, role, origin, fingerprint, recipe, provenance,
    scored_pairs, total_pairs, coverage, run_id}} from the latest `score` run per alias."""
    store.require()
    latest: dict[str, dict[str, Any]] = {}
    for run in store.runs("score"):
        latest[run["name"]] = run  # runs() is oldest first
    total = store.count()
    names = set(store.columns())
    out: dict[str, dict[str, Any]] = {}
    for alias, run in sorted(latest.items()):
        column = score_column(alias)
        if column not in names:
            continue
        done = store.count(f"`{column}`.chosen IS NOT NULL AND `{column}`.rejected IS NOT NULL")
        out[alias] = {
            "alias": alias,
            "column": column,
            "role": run["provenance"].get("role", "other"),
            "origin": run["provenance"].get("origin", "scored"),
            "fingerprint": run["fingerprint"],
            "recipe": run["recipe"],
            "provenance": run["provenance"],
            "run_id": run["run_id"],
            "scored_pairs": int(done),
            "total_pairs": int(total),
            "coverage": round(done / total, 6) if total else 0.0,
        }
    return out


def model_with_role(store: Store, role: str) -> str | None:
    """The alias of the one RM with this role, None if there is none; an error if ambiguous."""
    matches = [alias for alias, info in list_models(store).items() if info["role"] == role]
    if len(matches) > 1:
        raise StoreError(
            f"several reward models have role `{role}`: {', '.join(matches)}", hint="name one with --model/--control"
        )
    return matches[0] if matches else None
