"""Experiment specs: load a YAML file, validate it against the JSON Schema, fill defaults.

Validation errors name the path in the document, e.g. ``reward_models[1].batch_size: must be >= 1``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from seal.errors import SpecError
from seal.paths import SCHEMAS_DIR
from seal.recipe import canonical_json

SPEC_SCHEMA = SCHEMAS_DIR / "experiment.schema.json"


@dataclass(frozen=True)
class Spec:
    """A validated experiment spec. Relative paths in it are relative to `base_dir`."""

    document: dict[str, Any]
    path: Path | None
    base_dir: Path

    @property
    def datasets(self) -> list[dict[str, Any]]:
        entry = self.document.get("dataset", [])
        return entry if isinstance(entry, list) else [entry]

    def section(self, name: str) -> Any:
        return self.document.get(name)

    def resolve(self, value: str) -> str:
        """A path from the spec, made absolute against the spec's folder; other strings unchanged."""
        candidate = self.base_dir / value
        return str(candidate) if not Path(value).is_absolute() and candidate.exists() else value

    def store_path(self) -> str | None:
        store = self.document.get("store")
        return str(self.base_dir / store) if store and not Path(store).is_absolute() else store

    def fingerprint(self) -> str:
        return hashlib.sha256(canonical_json(self.document).encode()).hexdigest()[:16]


def _schema() -> dict[str, Any]:
    return json.loads(SPEC_SCHEMA.read_text())


def format_path(parts: Any) -> str:
    """`["reward_models", 1, "batch_size"]` -> `reward_models[1].batch_size`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _message(error: jsonschema.ValidationError) -> str:
    v, value = error.validator, error.validator_value
    if v == "type":
        return f"must be of type {value if isinstance(value, str) else ' or '.join(value)}"
    if v == "minimum":
        return f"must be >= {value}"
    if v == "exclusiveMinimum":
        return f"must be > {value}"
    if v == "maximum":
        return f"must be <= {value}"
    if v == "enum":
        return f"must be one of {', '.join(map(str, value))} (got {error.instance!r})"
    if v == "required":
        return error.message.replace("is a required property", "is required")
    if v == "additionalProperties":
        return error.message.replace("were unexpected", "are not allowed").replace("was unexpected", "is not allowed")
    if v == "minItems":
        return f"must have at least {value} item(s)"
    if v == "minLength":
        return "must not be empty"
    if v == "pattern":
        return f"must match {value}"
    return error.message


def validation_errors(document: Any) -> list[str]:
    """All schema violations of a spec document, each prefixed with its path."""
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    out = []
    for error in errors:
        # For oneOf/anyOf, the most specific sub-error says more than "is not valid under any".
        best = _deepest(error)
        out.append(f"{format_path(best.absolute_path)}: {_message(best)}")
    out.extend(_semantic_errors(document) if not out else [])
    return sorted(set(out), key=out.index)


def _semantic_errors(document: dict[str, Any]) -> list[str]:
    """Rules a JSON Schema cannot say: unique aliases, one aligned/control pairing."""
    errors = []
    aliases: dict[str, int] = {}
    for i, rm in enumerate(document.get("reward_models", []) or []):
        alias = rm.get("alias") or rm.get("model")
        if alias in aliases:
            errors.append(f"reward_models[{i}].alias: `{alias}` is already used by reward_models[{aliases[alias]}]")
        aliases.setdefault(alias, i)
    return errors


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec; raise SpecError naming every problem with its path."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError(f"cannot read spec {path}: {err.strerror or err}") from None
    return parse_spec(text, path)


def parse_spec(text: str, path: Path | None = None) -> Spec:
    """Validate a YAML spec given as text."""
    where = str(path) if path else "spec"
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{where}: invalid YAML{at}: {getattr(err, 'problem', err)}") from None
    if not isinstance(document, dict):
        raise SpecError(f"{where}: a spec is a YAML mapping (got {type(document).__name__})")
    errors = validation_errors(document)
    if errors:
        raise SpecError(f"{where}: {len(errors)} problem(s): " + "; ".join(errors))
    base = path.parent.resolve() if path else Path.cwd()
    return Spec(document=document, path=path, base_dir=base)


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For oneOf/anyOf failures, the sub-error deepest in the document explains the most."""
    if not error.context:
        return error
    candidates = [e for e in error.context if e.validator not in ("type", "const")] or list(error.context)
    return _deepest(max(candidates, key=lambda e: len(e.absolute_path)))
