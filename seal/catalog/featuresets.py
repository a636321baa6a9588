"""Feature sets: load and validate the YAML, type each feature, check and encode label values.

Contract shared by every labeler and by the imprint analysis: the labels of feature set `S` live in
the top-level column ``features_<S>`` = struct{<feature>: struct{chosen: T, rejected: T}}, where T is
bool, string (category label), float64 (number) or list<string> (list). Writes are recorded in `runs`
with stage ``label`` and name ``S``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import yaml

from seal.errors import SealError, SpecError
from seal.paths import SCHEMAS_DIR

FEATURE_SETS_DIR = SCHEMAS_DIR / "features"
FEATURE_SET_SCHEMA = SCHEMAS_DIR / "feature-set.schema.json"
FEATURES_PREFIX = "features_"
_ARROW = {"bool": pa.bool_(), "category": pa.string(), "number": pa.float64(), "list": pa.list_(pa.string())}


class InvalidLabel(ValueError):
    """A label value that does not fit its feature's type or allowed values."""


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    values: Any = None  # category: {label: code}; list: [allowed]
    instruction: str = ""
    scope: str = "response"
    role: str = "none"
    sign: int = 1
    heuristic: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, f: dict[str, Any]) -> Feature:
        """A feature from its YAML/JSON form, with the defaults of schemas/feature-set.schema.json."""
        return cls(
            name=f["name"],
            type=f["type"],
            values=f.get("values"),
            instruction=f.get("instruction", ""),
            scope=f.get("scope", "response"),
            role=f.get("role", "none"),
            sign=f.get("sign", 1),
            heuristic=f.get("heuristic"),
            params=f.get("params", {}),
        )

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW[self.type]

    def check(self, value: Any) -> Any:
        """The value in its stored form, or InvalidLabel saying what is wrong."""
        if value is None:
            raise InvalidLabel(f"{self.name}: missing")
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
                return value.strip().lower() in ("true", "yes")
            raise InvalidLabel(f"{self.name}: expected true or false, got {value!r}")
        if self.type == "category":
            if isinstance(value, str) and value.strip().lower() in self.values:
                return value.strip().lower()
            raise InvalidLabel(f"{self.name}: expected one of {', '.join(self.values)}, got {value!r}")
        if self.type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidLabel(f"{self.name}: expected a number, got {value!r}")
            if value != value or value in (float("inf"), float("-inf")):
                raise InvalidLabel(f"{self.name}: expected a finite number, got {value!r}")
            return float(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidLabel(f"{self.name}: expected a list of strings, got {value!r}")
        unknown = [v for v in value if v not in self.values]
        if unknown:
            raise InvalidLabel(f"{self.name}: {', '.join(map(repr, unknown))} not among the allowed values")
        return sorted(set(value))

    def encode(self, value: Any) -> float | None:
        """A numeric encoding for regressions: bool 0/1, category code, number as is (lists: None)."""
        if value is None:
            return None
        if self.type == "bool":
            return float(value)
        if self.type == "category":
            return float(self.values[value])
        if self.type == "number":
            return float(value)
        return None


@dataclass(frozen=True)
class FeatureSet:
    name: str
    features: tuple[Feature, ...]
    version: int = 1
    description: str = ""
    labeler: str | None = None
    source: str | None = None

    @property
    def column(self) -> str:
        return FEATURES_PREFIX + self.name

    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise SealError(
            f"feature set `{self.name}` has no feature `{name}`", hint=f"features: {', '.join(self.names())}"
        )

    def arrow_type(self) -> pa.DataType:
        """struct{<feature>: struct{chosen, rejected}} for the features_<set> column."""
        return pa.struct(
            [pa.field(f.name, pa.struct([("chosen", f.arrow_type), ("rejected", f.arrow_type)])) for f in self.features]
        )

    def check(self, labels: dict[str, Any]) -> dict[str, Any]:
        """Validate one side's labels; raise InvalidLabel listing every problem (missing, unknown, bad)."""
        problems = []
        out = {}
        for f in self.features:
            try:
                out[f.name] = f.check(labels.get(f.name))
            except InvalidLabel as err:
                problems.append(str(err))
        unknown = sorted(set(labels) - set(self.names()))
        if unknown:
            problems.append(f"unknown keys: {', '.join(unknown)}")
        if problems:
            raise InvalidLabel("; ".join(problems))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Canonical form (part of labeler recipes)."""
        return {
            "name": self.name,
            "version": self.version,
            "features": [
                {k: v for k, v in f.__dict__.items() if v not in (None, "", {}) or k in ("name", "type")}
                for f in self.features
            ],
        }


def resolve_feature_set_path(name_or_path: str) -> Path:
    """A path as given, or the name of a shipped set (`seal-taxonomy`, `heuristics`)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    shipped = FEATURE_SETS_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    available = ", ".join(sorted(p.stem for p in FEATURE_SETS_DIR.glob("*.yaml")))
    raise SealError(f"no feature set `{name_or_path}`", hint=f"give a YAML path or one of: {available}")


def load_feature_set(name_or_path: str) -> FeatureSet:
    """Load and validate a feature set YAML (a path or a shipped set's name)."""
    path = resolve_feature_set_path(name_or_path)
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: invalid YAML: {err}") from None
    schema = json.loads(FEATURE_SET_SCHEMA.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        from seal.spec import format_path

        details = "; ".join(f"{format_path(e.absolute_path)}: {e.message}" for e in errors[:5])
        raise SpecError(f"{path}: invalid feature set: {details}")
    names = [f["name"] for f in document["features"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError(f"{path}: duplicate feature names: {', '.join(duplicates)}")
    features = tuple(Feature.from_dict(f) for f in document["features"])
    return FeatureSet(
        name=document["name"],
        features=features,
        version=document.get("version", 1),
        description=document.get("description", ""),
        labeler=document.get("labeler"),
        source=str(path),
    )
