"""Where seal finds its shipped files (JSON Schemas, feature sets)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = REPO_ROOT / "schemas"
CLI_SCHEMAS_DIR = SCHEMAS_DIR / "cli"
