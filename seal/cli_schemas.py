"""The JSON Schemas of seal's machine interface: the `--json` output of every command.

`schemas/cli/<command>.schema.json` (draft 2020-12). Schemas may refer to each other by file name
(`"$ref": "plan.schema.json#/$defs/plan"`); `validator(name)` resolves those references.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
from referencing import Registry, Resource

from seal.paths import CLI_SCHEMAS_DIR

SUFFIX = ".schema.json"


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
