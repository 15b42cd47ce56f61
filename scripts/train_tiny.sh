#!/usr/bin/env bash
# Set up, then run the main job: R1-Zero-style GRPO on the shipped tiny model, on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
grpo train recipes/tiny/r1_zero.yaml "$@"
