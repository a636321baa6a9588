"""Where seal finds its shipped files (JSON Schemas, feature sets).

In a checkout (and an editable install) they are the repo's `schemas/` folder beside the package. A wheel
installs them as data files under `<prefix>/share/seal-audit/schemas`, where `<prefix>` is the environment
(or `--prefix`, or `--user` base) whose `lib/pythonX.Y/site-packages` holds the package.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
DATA_SUBDIR = Path("share") / "seal-audit" / "schemas"
_MARKER = "experiment.schema.json"


def find_schemas_dir(package_dir: Path = PACKAGE_DIR) -> Path:
    """The folder of seal's schemas: the checkout's `schemas/`, else the installed data files; the checkout
    path when neither exists (so that a missing file is named where a developer would look)."""
    checkout = package_dir.parent / "schemas"
    if (checkout / _MARKER).is_file():
        return checkout
    # site-packages is <prefix>/lib/pythonX.Y/site-packages on POSIX and <prefix>/Lib/site-packages on Windows
    for depth in (3, 2):
        if depth >= len(package_dir.parents):
            continue
        installed = package_dir.parents[depth] / DATA_SUBDIR
        if (installed / _MARKER).is_file():
            return installed
    return checkout


SCHEMAS_DIR = find_schemas_dir()
CLI_SCHEMAS_DIR = SCHEMAS_DIR / "cli"
