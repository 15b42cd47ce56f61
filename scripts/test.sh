#!/usr/bin/env bash
# Set up, then run the default test suite (CPU; slow and GPU tests are deselected).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m pytest -q "$@"
