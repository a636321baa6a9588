#!/usr/bin/env bash
# Install Feedback Forensics (PyPI `feedback-forensics`) into its own virtualenv, .venv-ff, for the test that
# opens seal's AnnotatedPairs export with that package's own loader (tests/test_export_annotated_pairs.py).
# Its dependencies (gradio, langchain, wandb, jupyter, alpaca-eval, ...) would pin seal's own environment, so
# it gets a separate one; the test runs .venv-ff/bin/python in a subprocess. Idempotent: skipped when the
# venv already imports the loader. $FF_VENV overrides the folder, $PYTHON the interpreter that creates it.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${FF_VENV:-.venv-ff}"
PYTHON="${PYTHON:-python3}"
VERSION="${FF_VERSION:-0.5.0}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import feedback_forensics.data.loader" >/dev/null 2>&1; then
    echo "feedback-forensics already installed in $VENV" >&2
    exit 0
fi
echo "installing feedback-forensics $VERSION into $VENV (a few minutes)..." >&2
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "feedback-forensics==$VERSION"
"$VENV/bin/python" -c "import feedback_forensics.data.loader" >&2
echo "feedback-forensics $VERSION installed in $VENV" >&2
