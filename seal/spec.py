"""Experiment specs: load a YAML file, validate it against the JSON Schema, resolve paths.

Validation errors name the path in the document, e.g. ``reward_models[1].batch_size: must be a positive
integer``. A schema node may carry an ``errorMessage`` (as in ajv-errors): the message shown for any
violation of that node, instead of the validator's generic one.

Stages that bring a spec section of their own (one the shipped schema does not know) register its JSON
Schema with `register_section`; `seal.pipeline.register_stage(..., section_schema=...)` does this for them.

Overrides (`seal plan|run|validate --set KEY=VALUE`) change the document before it is validated: KEY is a
dotted path (`reward_models.pre.model`, `reward_models[0].model`, `dataset.limit`), VALUE is parsed as YAML
(`10` is a number, `true` a boolean, `null` or nothing removes the key). The overridden document is what is
validated, fingerprinted and run, so the fingerprint and every recipe include the override.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from seal.errors import SpecError
from seal.paths import SCHEMAS_DIR
from seal.recipe import canonical_json
from seal.spec_overrides import PATH_SUFFIXES as _PATH_SUFFIXES
from seal.spec_overrides import apply_overrides, format_path
from seal.spec_overrides import type_name as _type_name

SPEC_SCHEMA = SCHEMAS_DIR / "experiment.schema.json"

# Sections added at run time by stages that are not part of the shipped schema: name -> JSON Schema.
_EXTRA_SECTIONS: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class SpecProblem:
    """One validation problem: where in the document (`reward_models[1].batch_size`) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class SpecInvalid(SpecError):
    """A spec that cannot be used; `problems` lists every problem with its path in the document."""

    def __init__(self, where: str, problems: list[SpecProblem]):
        self.where = where
        self.problems = problems
        shown = "; ".join(map(str, problems))
        super().__init__(f"{where}: {len(problems)} problem(s): {shown}" if len(problems) > 1 else f"{where}: {shown}")


@dataclass(frozen=True)
class Spec:
    """A validated experiment spec. Relative paths in it are relative to `base_dir` (the spec's folder)."""

    document: dict[str, Any]
    path: Path | None
    base_dir: Path
    overrides: tuple[str, ...] = ()  # the `--set KEY=VALUE` applied to the file's document, in order

    @property
    def datasets(self) -> list[dict[str, Any]]:
        return [entry for _, entry in self.entries("dataset")]

    def section(self, name: str) -> Any:
        if name == "analyses" and "analyses" not in self.document:
            return self.document.get("analysis")  # the old name
        return self.document.get(name)

    def entries(self, section: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The entries of a section with their path in the document: a single mapping is one entry
        (`dataset`, `embeddings`), a list gives one per item (`reward_models[0]`, ...)."""
        value = self.section(section)
        if value is None:
            return
        if isinstance(value, list):
            for i, entry in enumerate(value):
                yield f"{section}[{i}]", entry
        else:
            yield section, value

    def resolve(self, value: str, is_path: bool = False) -> str:
        """A local path from the spec, made absolute against the spec's folder; a Hub id is unchanged.

        A string is a path when `is_path`, when it is absolute or starts with `./`, `../` or `~`, when it
        names an existing file or folder next to the spec, or when it ends with a data-file suffix."""
        expanded = Path(value).expanduser()
        if expanded.is_absolute():
            return str(expanded)
        candidate = self.base_dir / value
        looks_like_path = (
            is_path
            or value.startswith(("./", "../", ".\\", "..\\"))
            or value in (".", "..")
            or value.lower().endswith(_PATH_SUFFIXES)
            or candidate.exists()
        )
        return os.path.normpath(candidate) if looks_like_path else value

    def store_path(self) -> str | None:
        store = self.document.get("store")
        return self.resolve(store, is_path=True) if store else None

    def fingerprint(self) -> str:
        return hashlib.sha256(canonical_json(self.document).encode()).hexdigest()[:16]


# -- sections registered by stages ------------------------------------------------------------------
def register_section(name: str, schema: dict[str, Any]) -> None:
    """Accept a new top-level section `name` in specs, validated by `schema` (JSON Schema, draft 2020-12)."""
    if name in _base_schema()["properties"] or name in _EXTRA_SECTIONS:
        raise ValueError(f"spec section `{name}` already exists")
    jsonschema.Draft202012Validator.check_schema(schema)
    _EXTRA_SECTIONS[name] = copy.deepcopy(schema)


def unregister_section(name: str) -> None:
    _EXTRA_SECTIONS.pop(name, None)


def known_sections() -> list[str]:
    return [*_base_schema()["properties"], *_EXTRA_SECTIONS]


@functools.cache
def _base_schema() -> dict[str, Any]:
    return json.loads(SPEC_SCHEMA.read_text())


def spec_schema() -> dict[str, Any]:
    """The experiment schema, with the sections stages registered at run time."""
    schema = copy.deepcopy(_base_schema())
    schema["properties"].update(copy.deepcopy(_EXTRA_SECTIONS))
    return schema


# -- messages ---------------------------------------------------------------------------------------
def _problem(error: jsonschema.ValidationError) -> SpecProblem:
    """A readable message for one (innermost) schema violation, and its path in the document."""
    path = list(error.absolute_path)
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    v, value = error.validator, error.validator_value
    if "propertyNames" in error.schema_path:  # the error is about a key of this mapping
        allowed = f" (allowed: {', '.join(map(str, value))})" if v == "enum" else ""
        return SpecProblem(format_path([*path, str(error.instance)]), f"unknown key{allowed}")
    if custom and v not in ("required", "additionalProperties"):
        return SpecProblem(format_path(path), custom)
    if v == "required":
        missing = [p for p in value if isinstance(error.instance, dict) and p not in error.instance]
        return SpecProblem(format_path([*path, missing[0]] if missing else path), "is required")
    if v == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        name = extra[0] if extra else "?"
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(known)}"
        return SpecProblem(format_path([*path, name]), f"unknown key ({hint})")
    if v == "type":
        wanted = value if isinstance(value, str) else " or ".join(value)
        return SpecProblem(format_path(path), f"must be of type {wanted} (got {_type_name(error.instance)})")
    if v == "minimum":
        return SpecProblem(format_path(path), f"must be >= {value}")
    if v == "exclusiveMinimum":
        return SpecProblem(format_path(path), f"must be > {value}")
    if v == "maximum":
        return SpecProblem(format_path(path), f"must be <= {value}")
    if v == "enum":
        return SpecProblem(format_path(path), f"must be one of {', '.join(map(str, value))} (got {error.instance!r})")
    if v == "const":
        return SpecProblem(format_path(path), f"must be {value!r} (got {error.instance!r})")
    if v == "minItems":
        return SpecProblem(format_path(path), f"must have at least {value} item(s)")
    if v == "minLength":
        return SpecProblem(format_path(path), "must not be empty")
    if v == "pattern":
        return SpecProblem(format_path(path), f"must match {value} (got {error.instance!r})")
    return SpecProblem(format_path(path), error.message)


def _innermost(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For oneOf/anyOf failures, follow the sub-error that explains the most: the deepest in the document,
    then one that is more than a type or const mismatch. When every branch fails only on type at this
    node, the node's `errorMessage` speaks for it ("must be a positive integer or `auto`")."""
    if not error.context:
        return error

    def weight(e: jsonschema.ValidationError) -> tuple[int, bool]:
        return len(e.absolute_path), e.validator not in ("type", "const")

    best = max(error.context, key=weight)
    only_type_here = weight(best) == (len(error.absolute_path), False)
    if only_type_here and isinstance(error.schema, dict) and error.schema.get("errorMessage"):
        return error
    return _innermost(best)


def validation_problems(document: Any) -> list[SpecProblem]:
    """Every problem of a spec document (schema, then rules a schema cannot say), each with its path."""
    if not isinstance(document, dict):
        return [SpecProblem("(document)", f"a spec is a YAML mapping (got {_type_name(document)})")]
    validator = jsonschema.Draft202012Validator(spec_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    problems: list[SpecProblem] = []
    for error in errors:
        problem = _problem(_innermost(error))
        if problem not in problems:
            problems.append(problem)
    if not problems:
        problems.extend(_semantic_problems(document))
    return problems


def validation_errors(document: Any) -> list[str]:
    """`validation_problems` as `path: message` strings."""
    return [str(p) for p in validation_problems(document)]


def _semantic_problems(document: dict[str, Any]) -> list[SpecProblem]:
    """Rules a JSON Schema cannot say: unique reward-model aliases and dataset names, one of `analysis` and
    `analyses`."""
    problems = []
    if "analysis" in document and "analyses" in document:
        problems.append(SpecProblem("analysis", "`analysis` is the old name of `analyses`: keep one of them"))
    aliases: dict[str, int] = {}
    for i, rm in enumerate(document.get("reward_models") or []):
        alias = rm.get("alias") or rm.get("model")
        if alias in aliases:
            problems.append(
                SpecProblem(
                    f"reward_models[{i}].alias", f"`{alias}` is already used by reward_models[{aliases[alias]}]"
                )
            )
        aliases.setdefault(alias, i)
    datasets = document.get("dataset")
    if isinstance(datasets, list):
        names: dict[str, int] = {}
        for i, entry in enumerate(datasets):
            name = entry.get("name")
            if name is None:
                continue
            if name in names:
                problems.append(
                    SpecProblem(f"dataset[{i}].name", f"`{name}` is already used by dataset[{names[name]}]")
                )
            names.setdefault(name, i)
    return problems


# -- loading ----------------------------------------------------------------------------------------
def check_spec(path: str | Path, overrides: Sequence[str] = ()) -> tuple[Spec | None, list[SpecProblem]]:
    """Load and validate a spec file (with `--set` overrides); return the spec (None when invalid) and every
    problem found."""
    try:
        return load_spec(path, overrides), []
    except SpecInvalid as err:
        return None, err.problems


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> Spec:
    """Read and validate a YAML spec, after applying `overrides` (`KEY=VALUE` strings, see the module
    docstring); raise SpecInvalid naming every problem with its path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SpecInvalid(str(path), [SpecProblem("(document)", f"cannot read the spec: {reason}")]) from None
    return parse_spec(text, path, overrides)


def parse_spec(text: str, path: Path | None = None, overrides: Sequence[str] = ()) -> Spec:
    """Validate a YAML spec given as text (after `overrides`); relative paths in it are relative to `path`'s
    folder, relative paths in an override's value to the current folder."""
    where = str(path) if path else "spec"
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecInvalid(where, [SpecProblem("(document)", f"invalid YAML{at}: {problem}")]) from None
    applied: list[tuple[str, str]] = []
    if overrides:
        document, applied = apply_overrides(document, overrides, where)
    problems = validation_problems(document)
    if problems:
        raise SpecInvalid(where, [_blame(p, applied) for p in problems])
    base = path.parent.resolve() if path else Path.cwd()
    return Spec(document=document, path=path, base_dir=base, overrides=tuple(overrides))


def _blame(problem: SpecProblem, applied: list[tuple[str, str]]) -> SpecProblem:
    """Name the `--set` that put a problem's value in the document."""
    for where, given in reversed(applied):
        if problem.path == where or problem.path.startswith((where + ".", where + "[")):
            return SpecProblem(problem.path, f"{problem.message} (from --set {given})")
    return problem
