"""The import contract of docs/architecture.md, checked on the source: every `import` statement, at module level
or inside a function, of every module under seal/ (and the root cli.py).

- only the store room imports lancedb or lance;
- engines (the reward-model scorer, the text encoder, the LLM client) import no store and no stage;
- analyses never import stages (they read through the store's read API and shared pieces);
- commands call the Python API: they import no stage, analysis, pipeline or catalog module;
- the import graph between seal's own modules has no cycles (function-level imports included, so a cycle
  cannot hide behind a deferred import).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "seal"

STORE_ROOM = ("seal.store",)
ENGINES = ("seal.engines",)
STAGES = ("seal.ingest", "seal.annotate", "seal.pipeline")
ANALYSES = ("seal.analysis",)
# Outputs turn stored columns and analysis results into files (exports, the Hub card, the HTML report): they read
# like analyses and never run a stage.
OUTPUTS = ("seal.export", "seal.report")
LANCE = ("lancedb", "lance", "lance_ray")
COMMANDS = ("seal.commands",)
# What a command may import of seal: the Python API, the other command modules (shared options), errors and
# rendering, the CLI's JSON Schemas, the device choices of --device/--dtype and the exit rule of a stage's result.
COMMANDS_MAY_IMPORT = (
    "seal.api",
    "seal.commands",
    "seal.errors",
    "seal.render",
    "seal.cli_schemas",
    "seal.engines.device",
    "seal.outcome",
)
# ... and never these, whose work a command reaches through seal.api.
COMMANDS_NEVER_IMPORT = (
    "seal.annotate",
    "seal.ingest",
    "seal.analysis",
    "seal.pipeline",
    "seal.views",
    "seal.similarity",
    "seal.catalog",
)


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, resolved to absolute module names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:  # `from seal.x import y` may import the submodule seal.x.y
                yield f"{target}.{alias.name}", node.lineno


def in_room(module: str, room: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in room)


def edges() -> dict[str, dict[str, int]]:
    known = modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in known.items():
        out: dict[str, int] = {}
        for target, line in imports(path, name):
            if target in known and target != name:
                out.setdefault(target, line)
        graph[name] = out
    return graph


def test_only_the_store_touches_lance():
    offenders = []
    for name, path in modules().items():
        if in_room(name, STORE_ROOM):
            continue
        for target, line in imports(path, name):
            if target.split(".")[0] in LANCE:
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not offenders, "only seal.store may import lancedb/lance:\n" + "\n".join(offenders)


def test_engines_know_no_store_and_no_stage():
    offenders = []
    for name, path in modules().items():
        if not in_room(name, ENGINES):
            continue
        for target, line in imports(path, name):
            if in_room(target, STORE_ROOM) or (in_room(target, STAGES) and not in_room(target, ENGINES)):
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not offenders, "engines import neither the store nor a stage:\n" + "\n".join(offenders)


def test_analyses_and_outputs_never_import_stages():
    offenders = []
    for name, path in modules().items():
        if not (in_room(name, ANALYSES) or in_room(name, OUTPUTS)):
            continue
        for target, line in imports(path, name):
            if in_room(target, STAGES):
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not offenders, "analyses and outputs read through the store; they import no stage:\n" + "\n".join(offenders)


def test_commands_call_the_python_api():
    assert not any(in_room(allowed, COMMANDS_NEVER_IMPORT) for allowed in COMMANDS_MAY_IMPORT)
    offenders = []
    for name, path in modules().items():
        if not in_room(name, COMMANDS):
            continue
        for target, line in imports(path, name):
            if target == "seal" or not target.startswith("seal."):  # `from seal import api`: the name follows
                continue
            if in_room(target, COMMANDS_NEVER_IMPORT) or not in_room(target, COMMANDS_MAY_IMPORT):
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not offenders, "commands do their work through seal.api:\n" + "\n".join(offenders)


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package_parents(graph: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Drop edges into a package's own __init__ from its submodules (`from seal import x` in seal.y is the
    package re-exporting, not a dependency loop between modules) and edges from a package __init__ to its
    own submodules."""
    pruned: dict[str, dict[str, int]] = {}
    for source, targets in graph.items():
        pruned[source] = {
            t: line for t, line in targets.items() if not source.startswith(t + ".") and not t.startswith(source + ".")
        }
    return pruned


def test_no_import_cycles():
    cycles = _cycles(_package_parents(edges()))
    graph = edges()
    described = []
    for component in cycles:
        links = [f"{a} -> {b} (line {graph[a][b]})" for a in component for b in component if b in graph.get(a, {})]
        described.append("; ".join(links))
    assert not cycles, "import cycles between seal's modules:\n" + "\n".join(described)


@pytest.mark.parametrize("limit", [600])
def test_no_module_over_the_size_limit(limit):
    long = {
        str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > limit
    }
    assert not long, f"modules over {limit} lines (split them along their seams): {long}"


def test_the_contract_sees_real_imports():
    """The checks above are only as good as the parser: it must see deferred imports and relative ones."""
    graph = edges()
    assert "seal.errors" in graph["seal.store.base"]
    assert any(in_room(t, STORE_ROOM) for src in graph for t in graph[src] if in_room(src, STAGES))
    deferred = [src for src in graph if any(t == "seal.catalog.models" for t in graph[src])]
    assert deferred, "imports of the catalog are seen"


LEAKS = re.compile(r"\.to_lance\(|\bstore\.db\b|\bstore\.pairs\(\)|\bstore\.table\(|\bwork_table\(|\bside_table\(")


def test_no_module_reaches_past_the_store_api():
    """Outside seal/store, nobody holds a LanceDB table or Lance dataset: no `.pairs()`, `.table(...)`,
    `.db`, `.to_lance()`, `work_table(...)` or `side_table(...)`."""
    offenders = []
    for name, path in modules().items():
        if in_room(name, STORE_ROOM):
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if LEAKS.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "use the store's read/write API instead:\n" + "\n".join(offenders)
