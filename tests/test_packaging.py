"""A wheel built from this repo works without the checkout: the schemas and feature sets at the repo's top
(`schemas/`) are installed as data files and found from the installed package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seal installed from a wheel (no dependencies: those of this environment serve) under a fresh prefix."""
    root = tmp_path_factory.mktemp("wheel")
    # built from a copy, so that setuptools' build/ and egg-info folders stay out of the checkout
    source = root / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("seal", "schemas"):
        shutil.copytree(REPO / name, source / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (root / "dist").glob("seal_audit-*.whl")
    # --ignore-installed: without it pip would first uninstall this environment's (editable) seal-audit
    install = [*pip, "install", "--no-deps", "--ignore-installed", "--prefix", str(root / "prefix"), str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    return root / "prefix"


def _run_installed(prefix: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    (site,) = prefix.glob("lib/python3*/site-packages")
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_wheel_installs_every_schema_file(installed):
    shipped = sorted(p.relative_to(REPO / "schemas").as_posix() for p in (REPO / "schemas").rglob("*") if p.is_file())
    data = installed / "share" / "seal-audit" / "schemas"
    got = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
    assert got == shipped, "pyproject's [tool.setuptools.data-files] misses files of schemas/"


def test_the_installed_package_finds_its_schemas_and_validates_a_spec(installed, tmp_path):
    code = f"""
import sys
import seal, seal.paths
from seal.catalog.featuresets import load_feature_set
print(seal.__file__)
print(seal.paths.SCHEMAS_DIR)
print(load_feature_set("seal-taxonomy").name)
from seal.cli import cli
sys.argv = ["seal", "validate", {str(REPO / "examples" / "demo.yaml")!r}]
cli(standalone_mode=True)
"""
    done = _run_installed(installed, code, tmp_path)
    assert done.returncode == 0, done.stderr
    package, schemas, feature_set, *rest = done.stdout.splitlines()
    assert Path(package).is_relative_to(installed), f"imported {package}, not the installed wheel"
    assert Path(schemas) == installed / "share" / "seal-audit" / "schemas"
    assert feature_set == "seal_taxonomy"
    assert rest, "seal validate printed nothing"
