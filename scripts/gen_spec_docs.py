"""Write docs/spec-reference.md from the experiment spec's JSON Schema (with the sections stages register).

    python scripts/gen_spec_docs.py           # regenerate docs/spec-reference.md
    python scripts/gen_spec_docs.py --check   # exit 1 when docs/spec-reference.md is out of date

tests/test_spec_reference.py fails when the file differs from what this script would write, so the reference
cannot drift from the schema that `seal validate` enforces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "spec-reference.md"

HEADER = """# seal spec reference

Generated from the experiment spec's JSON Schema by `python scripts/gen_spec_docs.py`; do not edit by hand.
`seal validate SPEC` checks a spec against this schema (`schemas/experiment.schema.json` plus the sections that
stages register); `seal plan SPEC` shows what a spec would compute, `seal run SPEC` computes what is missing.
A field written `a[].b` is the key `b` of every item of the list `a`.
"""


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s (`#/$defs/name`) until a node without one."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        merged = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **merged}
        seen += 1
    return node


def _type_name(node: dict[str, Any], root: dict[str, Any]) -> str:
    node = _resolve(node, root)
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    for key in ("oneOf", "anyOf"):
        if key in node:
            return " or ".join(_type_name(option, root) for option in node[key])
    kind = node.get("type")
    if kind == "array":
        items = node.get("items")
        return f"list of {_type_name(items, root)}" if isinstance(items, dict) else "list"
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "object" and "properties" not in node and isinstance(node.get("additionalProperties"), dict):
        return f"mapping of {_type_name(node['additionalProperties'], root)}"
    return kind or "any"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _object_of(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any] | None:
    """The object schema a field holds directly, in a list, or as one option of a oneOf."""
    node = _resolve(node, root)
    if node.get("type") == "object" and "properties" in node:
        return node
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        return _object_of(node["items"], root)
    for key in ("oneOf", "anyOf"):
        for option in node.get(key, []):
            found = _object_of(option, root)
            if found is not None:
                return found
    return None


def _suffix(node: dict[str, Any], root: dict[str, Any]) -> str:
    node = _resolve(node, root)
    if node.get("type") == "array":
        return "[]"
    for key in ("oneOf", "anyOf"):
        if any(_resolve(o, root).get("type") == "array" for o in node.get(key, [])):
            return "[]"
    return ""


def _rows(obj: dict[str, Any], root: dict[str, Any], prefix: str, depth: int = 0) -> list[str]:
    rows: list[str] = []
    required = set(obj.get("required", []))
    for key, raw in obj.get("properties", {}).items():
        node = _resolve(raw, root)
        name = f"{prefix}{key}"
        mark = " (required)" if key in required else ""
        default = f" Default: `{json.dumps(node['default'])}`." if "default" in node else ""
        rows.append(
            f"| `{name}`{mark} | {_cell(_type_name(raw, root))} | {_cell(node.get('description', ''))}{default} |"
        )
        inner = _object_of(raw, root)
        if inner is not None and depth < 3:
            rows.extend(_rows(inner, root, f"{name}{_suffix(raw, root)}.", depth + 1))
    return rows


def render(schema: dict[str, Any] | None = None) -> str:
    """The text of docs/spec-reference.md."""
    if schema is None:
        sys.path.insert(0, str(REPO))
        import seal.api  # noqa: F401  (importing the API registers every stage's spec section)
        from seal.spec import spec_schema

        schema = spec_schema()
    parts = [HEADER]
    if schema.get("description"):
        parts.append(_cell(schema["description"]) + "\n")
    required = set(schema.get("required", []))
    for section, raw in schema.get("properties", {}).items():
        node = _resolve(raw, schema)
        title = f"## `{section}`" + (" (required)" if section in required else "")
        parts.append(title + "\n")
        parts.append(f"Type: {_type_name(raw, schema)}. {_cell(node.get('description', ''))}\n")
        inner = _object_of(raw, schema)
        if inner is not None and inner.get("properties"):
            table = ["| field | type | meaning |", "|---|---|---|"]
            table.extend(_rows(inner, schema, f"{section}{_suffix(raw, schema)}."))
            parts.append("\n".join(table) + "\n")
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not DOC.is_file() or DOC.read_text() != text:
            print(f"{DOC.relative_to(REPO)} is out of date: run python scripts/gen_spec_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
