"""The JSON Schemas of seal's machine interface: the `--json` output of every command.

`schemas/cli/<command>.schema.json` (draft 2020-12). Schemas may refer to each other by file name
(`"$ref": "plan.schema.json#/$defs/plan"`); `validator(name)` resolves those references.
`bundle_cli_schema(name)` inlines them instead: the result has only local `#/$defs/...` references, so
a plain validator needs nothing else. `scripts/bundle_cli_schemas.py` writes those bundles to
`schemas/cli/bundled/` (tests check that they are up to date).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
from referencing import Registry, Resource

from seal.paths import CLI_SCHEMAS_DIR

SUFFIX = ".schema.json"
BUNDLED_DIR = CLI_SCHEMAS_DIR / "bundled"
_DEFS = "#/$defs/"


def cli_schema_names() -> list[str]:
    """Names of the commands that have a `--json` schema."""
    return sorted(p.name.removesuffix(SUFFIX) for p in CLI_SCHEMAS_DIR.glob(f"*{SUFFIX}"))


def load_cli_schema(name: str) -> dict[str, Any]:
    """The schema of `seal <name> --json` output."""
    path = CLI_SCHEMAS_DIR / f"{name}{SUFFIX}"
    if not path.is_file():
        raise KeyError(f"no CLI schema `{name}` (known: {', '.join(cli_schema_names())})")
    return json.loads(path.read_text())


@functools.cache
def _registry() -> Registry:
    resources = []
    for name in cli_schema_names():
        schema = load_cli_schema(name)
        resources.append((schema.get("$id", f"{name}{SUFFIX}"), Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator for `seal <name> --json` output that resolves references between the CLI schemas."""
    schema = load_cli_schema(name)
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def validate_output(name: str, value: Any) -> None:
    """Raise `jsonschema.ValidationError` when `value` does not match the schema of `seal <name> --json`."""
    validator(name).validate(value)


def bundle_cli_schema(name: str) -> dict[str, Any]:
    """The schema of `seal <name> --json` with every reference to another CLI schema inlined.

    `other.schema.json#/$defs/x` becomes `#/$defs/other.x` (a copy of that definition, whose own
    references are rewritten the same way), and a whole `other.schema.json` becomes `#/$defs/other`.
    References inside the schema itself are kept. Anything else (a pointer outside `$defs`, an
    `$anchor`) raises ValueError, so a schema the bundler cannot handle is noticed when bundling."""
    root = load_cli_schema(name)
    inlined: dict[str, Any] = {}

    def local(doc: str, ref_def: str | None) -> str:
        """The bundle's reference to definition `ref_def` of schema `doc` (its root when None),
        copying it into `inlined` on first use."""
        if doc == name:
            return "#" if ref_def is None else _DEFS + ref_def
        key = doc if ref_def is None else f"{doc}.{ref_def}"
        if key not in inlined:
            source = load_cli_schema(doc)
            if ref_def is None:
                value = {k: v for k, v in source.items() if k not in ("$schema", "$id", "$defs")}
            elif ref_def in source.get("$defs", {}):
                value = source["$defs"][ref_def]
            else:
                raise ValueError(f"{name}: {doc}{SUFFIX} has no $defs/{ref_def}")
            inlined[key] = {}  # reserve the key: a definition may refer to itself
            inlined[key] = rewrite(value, doc)
        return _DEFS + key

    def rewrite(value: Any, doc: str) -> Any:
        """`value` (from schema `doc`) with its references pointing into the bundle."""
        if isinstance(value, list):
            return [rewrite(v, doc) for v in value]
        if not isinstance(value, dict):
            return value
        if "$anchor" in value or "$dynamicRef" in value:
            raise ValueError(f"{name}: $anchor/$dynamicRef in {doc}{SUFFIX} cannot be bundled")
        return {k: rewrite_ref(v, doc) if k == "$ref" else rewrite(v, doc) for k, v in value.items()}

    def rewrite_ref(ref: str, doc: str) -> str:
        target, _, pointer = ref.partition("#")
        if target and not target.endswith(SUFFIX):
            raise ValueError(f"{doc}{SUFFIX}: cannot bundle the reference {ref!r} (not a CLI schema)")
        other = target.removesuffix(SUFFIX) if target else doc
        if not pointer:
            return local(other, None)
        if not pointer.startswith(_DEFS[1:]):
            raise ValueError(f"{doc}{SUFFIX}: cannot bundle the reference {ref!r} (only $defs are supported)")
        ref_def, _, rest = pointer.removeprefix(_DEFS[1:]).partition("/")
        return local(other, ref_def) + (f"/{rest}" if rest else "")

    bundled = {k: rewrite(v, name) for k, v in root.items() if k != "$defs"}
    own = {k: rewrite(v, name) for k, v in root.get("$defs", {}).items()}
    clash = sorted(set(own) & set(inlined))
    if clash:
        raise ValueError(f"{name}: definitions {clash} clash with inlined ones")
    if own or inlined:
        bundled["$defs"] = {**own, **dict(sorted(inlined.items()))}
    return bundled
