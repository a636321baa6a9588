"""docs/spec-reference.md is generated from the spec's JSON Schema and must not drift from it."""

from __future__ import annotations

import importlib.util

from conftest import REPO


def _generator():
    spec = importlib.util.spec_from_file_location("gen_spec_docs", REPO / "scripts" / "gen_spec_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_spec_reference_is_up_to_date():
    generated = _generator().render()
    on_disk = (REPO / "docs" / "spec-reference.md").read_text()
    assert on_disk == generated, "docs/spec-reference.md is stale: run python scripts/gen_spec_docs.py"


def test_every_section_and_nested_field_is_documented():
    from seal.spec import spec_schema

    schema = spec_schema()
    text = _generator().render(schema)
    for section in schema["properties"]:
        assert f"## `{section}`" in text
    # nested fields of list sections appear with their dotted path
    assert "`dataset[].source` (required)" in text
    assert "`reward_models[].model` (required)" in text


def test_refs_enums_and_lists_render_readably():
    gen = _generator()
    schema = {
        "properties": {
            "a": {"$ref": "#/$defs/thing", "description": "A thing."},
            "b": {"type": "array", "items": {"enum": ["x", "y"]}},
        },
        "required": ["a"],
        "$defs": {"thing": {"type": "object", "properties": {"k": {"type": "integer", "default": 3}}}},
    }
    text = gen.render(schema)
    assert "## `a` (required)" in text
    assert "| `a.k` | integer |  Default: `3`. |" in text
    assert 'list of `"x"`, `"y"`' in text
