"""The scoring core and the ingest adapters import on a machine without the store's dependencies.

A bare GPU machine has torch and transformers but not LanceDB; benchmarks/score.py runs there.
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
for name in ("lancedb", "lance"):
    sys.modules[name] = None  # any import of them now fails
import seal
from seal.annotate.scoring_model import RewardModel, render_transcript
from seal.ingest.formats import ColumnMap, adapt_transcript
record = {"chosen": "\\n\\nHuman: hi\\n\\nAssistant: yes", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: no"}
row = adapt_transcript(record, ColumnMap({}, {}))
assert render_transcript(row.context) == "\\n\\nHuman: hi", row.context
assert not hasattr(seal, "Store")
print("ok")
"""


def test_scoring_core_imports_without_lancedb():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_full_package_still_exports_store_and_ingest():
    import seal

    assert callable(seal.ingest) and seal.Store.__name__ == "Store"
