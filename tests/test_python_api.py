"""The Python API: the README's notebook-style example runs as written, and `python -m seal` is the CLI."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
from conftest import REPO


def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- python-api-example -->\s*```python\n(.*?)```\s*<!-- /python-api-example -->", text, re.S)
    assert match, "README.md lost its marked Python API example"
    return match.group(1)


def test_the_readme_example_runs_and_computes_real_results(tmp_path, monkeypatch, capsys):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "resistance of `toy`" in out and "tie rule: exclude" in out
    pairs = namespace["pairs"]
    longer = (pairs.chosen.str.len() > pairs.rejected.str.len()).sum()
    decided = (pairs.chosen.str.len() != pairs.rejected.str.len()).sum()
    assert namespace["agreement"] == longer / decided  # the toy RM's agreement, recomputed by hand
    frame = namespace["imprint"].to_frame()
    assert len(frame) and np.isfinite(frame.select_dtypes("number").to_numpy(dtype=float)).any()


def test_every_verb_is_exported_and_documented():
    import seal
    import seal.api

    for name in seal.api.__all__:
        verb = getattr(seal, name)
        assert verb is getattr(seal.api, name) and verb.__doc__, name


def test_python_dash_m_seal_is_the_command_line():
    done = subprocess.run([sys.executable, "-m", "seal", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("seal, version")
