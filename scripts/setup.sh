#!/usr/bin/env bash
# Install grpo and its dependencies on a fresh CPU machine (Python >= 3.10).
# torch first, pinned, so pip takes the local CPU build rather than a multi-GB CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[dev]"
