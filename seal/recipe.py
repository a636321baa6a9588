"""Recipes: everything that determines a stage's output, hashed from canonical JSON."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RECIPE_SCHEMA_VERSION = 1


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace; refuses values JSON cannot represent exactly."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"recipe values must be plain JSON (str, number, bool, null, list, dict): {err}") from None


@dataclass(frozen=True)
class Recipe:
    """What determines a stage's output. Provenance that does not (timings, batch size) stays out."""

    stage: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    stage_version: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe_schema": RECIPE_SCHEMA_VERSION,
            "stage": self.stage,
            "stage_version": self.stage_version,
            "name": self.name,
            "params": dict(self.params),
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:16]

    def label(self) -> str:
        """A short readable handle, e.g. ``ingest:hh@1-3fa9c2e1``."""
        return f"{self.stage}:{self.name}@{self.stage_version}-{self.fingerprint()[:8]}"
