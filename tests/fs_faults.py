"""Run seal commands against a store on a file system that refuses writes, in one process.

Used by test_store_write_errors.py as `python tests/fs_faults.py PLAN.json`, usually inside a private
mount namespace (`unshare -m`) so that its mounts (a read-only bind, a small tmpfs) vanish with it, or
as another user (`setpriv`). PLAN is a list of steps, run in order:

- `{"sh": "mount -t tmpfs -o size=1m tmpfs DIR"}`: a shell command; its exit status is recorded;
- `{"seal": ["--store", S, "label", "-s"]}`: a seal command through click's CliRunner (startup once).

Prints a JSON list with one result per step: `{"sh"|"seal", "exit_code", "stdout", "stderr"}` (and
`exception`: an exception that escaped seal's error handling, else null).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(plan_path: str) -> None:
    sys.path.insert(0, str(REPO))
    from click.testing import CliRunner

    from seal.cli import cli

    runner = CliRunner()
    results = []
    for step in json.loads(Path(plan_path).read_text()):
        if "sh" in step:
            done = subprocess.run(step["sh"], shell=True, capture_output=True, text=True)
            results.append(
                {"sh": step["sh"], "exit_code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
            )
        else:
            out = runner.invoke(cli, step["seal"], catch_exceptions=True)
            crashed = out.exception is not None and not isinstance(out.exception, SystemExit)
            results.append(
                {
                    "seal": step["seal"],
                    "exit_code": out.exit_code,
                    "stdout": out.stdout,
                    "stderr": out.stderr,
                    "exception": repr(out.exception) if crashed else None,
                }
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
