"""The scoring core and the ingest adapters import on a machine without the store's dependencies.

A bare GPU machine has torch and transformers but not LanceDB; benchmarks/score.py runs there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

CODE = """
import sys
for name in ("lancedb", "lance"):
    sys.modules[name] = None  # any import of them now fails
import seal
from seal.engines.scoring import RewardModel, render_transcript
from seal.ingest.formats import ColumnMap, adapt_transcript
record = {"chosen": "\\n\\nHuman: hi\\n\\nAssistant: yes", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: no"}
row = adapt_transcript(record, ColumnMap({}, {}))
assert render_transcript(row.context) == "\\n\\nHuman: hi", row.context
# The store imports Lance only when it opens a table: without it, Store still imports and says what is missing.
try:
    seal.Store("/nonexistent-store").read(["pair_id"])
except Exception as err:
    assert "no seal store" in str(err) or "lance" in str(err), err
print("ok")
"""


def test_scoring_core_imports_without_lancedb():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_full_package_still_exports_store_and_ingest():
    import seal

    assert callable(seal.ingest) and seal.Store.__name__ == "Store"


def test_seal_ingest_stays_the_function_after_its_subpackage_loads():
    """`seal.ingest` is imported lazily; loading the subpackage's modules later must not rebind it."""
    code = "import seal, seal.ingest.core, seal.ingest.formats; assert callable(seal.ingest), seal.ingest"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_every_exported_name_is_the_api_function():
    """No verb is shadowed by a module of the same name (`seal.query`, `seal.search`, `seal.report`, ...), even
    after every module of seal has been imported."""
    code = """
import importlib, pkgutil, seal, seal.api
for info in pkgutil.walk_packages(seal.__path__, "seal."):
    if info.name.startswith(("seal.distributed.", "seal.__main__")):
        continue
    importlib.import_module(info.name)
for name in seal.__all__:
    if name in ("IngestResult", "SealError", "Store", "__version__"):
        continue
    assert getattr(seal, name) is getattr(seal.api, name), (name, getattr(seal, name))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# ---- the CLI: cheap commands import no ML stack ---------------------------------------------------

HEAVY = ("torch", "transformers", "datasets", "statsmodels", "sklearn", "sentence_transformers", "scipy")
STORE_STACK = ("lancedb", "lance", "pyarrow", "pandas")  # needed to read a store, not to print help

CLI_CODE = """
import json, sys
from seal.cli import cli
code = 0
try:
    cli(sys.argv[1:], prog_name="seal")
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
store_stack = sorted(m for m in {store_stack!r} if m in sys.modules)
commands = sorted(m for m in sys.modules if m.startswith("seal.commands."))
print("\\n" + json.dumps({{"code": code, "heavy": heavy, "store_stack": store_stack, "command_modules": commands}}))
"""


def _run_cli(*args: str, store=None) -> dict:
    """Run `seal ARGS` in a fresh interpreter; what it imported, from the last line of its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in {"SEAL_STORE", "SEAL_DEBUG"}}
    prefix = ["--store", str(store)] if store is not None else []
    done = subprocess.run(
        [sys.executable, "-c", CLI_CODE.format(heavy=HEAVY, store_stack=STORE_STACK), *prefix, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] in (0, None), (done.stdout, done.stderr)
    return report


@pytest.mark.parametrize("args", [["--version"], ["--help"]], ids=["version", "help"])
def test_version_and_help_import_no_command_module(args):
    report = _run_cli(*args)
    assert report["heavy"] == [] and report["store_stack"] == []
    assert report["command_modules"] == ["seal.commands.common", "seal.commands.registry"]


@pytest.mark.parametrize("args", [["stats"], ["stats", "--json"], ["query", "--limit", "3"]], ids=" ".join)
def test_store_readers_import_no_ml_stack(args, store):
    import seal

    seal.ingest(store, str(REPO / "examples" / "tiny-hh.jsonl"))
    report = _run_cli(*args, store=store.path)
    assert report["heavy"] == [], f"`seal {' '.join(args)}` imported {report['heavy']}"
