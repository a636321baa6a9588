"""Write schemas/cli/bundled/<command>.schema.json: each CLI schema with its references to the others inlined.

    python scripts/bundle_cli_schemas.py           # regenerate the bundles
    python scripts/bundle_cli_schemas.py --check   # exit 1 when a bundle is missing, stale or extra

The sources in schemas/cli/ refer to each other by file name, which a plain validator cannot resolve;
a bundle has only local `#/$defs/...` references (see seal.cli_schemas.bundle_cli_schema), so
`jsonschema.validate(output, bundle)` works as is. Rerun this after editing any schema in schemas/cli/;
tests/test_cli_schema_bundles.py fails while the bundles are out of date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from seal.cli_schemas import BUNDLED_DIR, SUFFIX, bundle_cli_schema, cli_schema_names  # noqa: E402


def render(name: str) -> str:
    """The text of the bundle of `seal <name> --json`'s schema."""
    return json.dumps(bundle_cli_schema(name), indent=2, ensure_ascii=False) + "\n"


def expected() -> dict[str, str]:
    """File name -> text of every bundle."""
    return {f"{name}{SUFFIX}": render(name) for name in cli_schema_names()}


def differences(folder: Path = BUNDLED_DIR) -> list[str]:
    """What differs between `folder` and freshly bundled schemas (empty when up to date)."""
    wanted = expected()
    present = {p.name for p in folder.glob(f"*{SUFFIX}")} if folder.is_dir() else set()
    problems = [f"missing {name}" for name in sorted(set(wanted) - present)]
    problems += [f"extra {name} (no source schema)" for name in sorted(present - set(wanted))]
    problems += [
        f"stale {name}" for name in sorted(present & set(wanted)) if (folder / name).read_text() != wanted[name]
    ]
    return problems


def main(argv: list[str]) -> int:
    rel = BUNDLED_DIR.relative_to(REPO)
    if "--check" in argv:
        problems = differences()
        for problem in problems:
            print(f"{rel}: {problem}", file=sys.stderr)
        if problems:
            print("run python scripts/bundle_cli_schemas.py", file=sys.stderr)
        return 1 if problems else 0
    BUNDLED_DIR.mkdir(parents=True, exist_ok=True)
    wanted = expected()
    for path in BUNDLED_DIR.glob(f"*{SUFFIX}"):
        if path.name not in wanted:
            path.unlink()
    for name, text in wanted.items():
        path = BUNDLED_DIR / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    print(f"wrote {len(wanted)} bundles to {rel}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
