"""Shared fixtures: a fresh store per test, the shared real data folder, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SEAL_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test reads or writes ./seal-store or the user's Hub cache, and nothing goes online."""
    monkeypatch.delenv("SEAL_STORE", raising=False)
    monkeypatch.delenv("SEAL_DEBUG", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def store_path(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_path):
    import seal

    return seal.Store(store_path)


@pytest.fixture
def shared_data() -> Path:
    """The shared real-data folder; tests that use it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def run_cli(store_path):
    """Invoke `seal --store STORE ARGS...`; returns the click Result (stdout and stderr separate)."""
    from seal.cli import cli

    runner = CliRunner()

    def invoke(*args: str, store: Path | None = store_path, input: str | None = None):
        prefix = ["--store", str(store)] if store is not None else []
        return runner.invoke(cli, [*prefix, *map(str, args)], input=input, catch_exceptions=False)

    return invoke
