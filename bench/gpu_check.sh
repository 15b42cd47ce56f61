#!/usr/bin/env bash
# Everything this repository needs a GPU to prove, in one run of under 10 minutes
# (GPU time is short: run it once, read the log, paste the numbers into README.md).
#
#   bash bench/gpu_check.sh            # on a CUDA machine (H100/H200 class for FP8)
#   bash bench/gpu_check.sh --dry-run  # CPU: the same steps at toy sizes, no GPU parts
#
# Steps (each under its own timeout, 570 s in all; a failed step is reported and the next runs):
#   1. pytest -m gpu: Triton quantize+permute kernel vs the torch path, CUDA dispatch,
#      torchao float8 linears, the trainer on GPU
#   2. FP8 dispatch quantizer throughput, Triton vs torch (bench_moe.py quant)
#      and grouped GEMM vs the expert loop (bench_moe.py gemm), dispatch bytes
#   3. one GRPO step with model.precision=fp8 (torchao float8) on a small dense model
#   4. colocated hf engine + trainer, bf16, random Qwen2.5-0.5B-shaped model:
#      tokens/s, step time, peak GPU memory
# The log is written to $OUT/gpu_check.log when $OUT is set, else ./gpu_check.log.
set -u
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
LOG="${OUT:-.}/gpu_check.log"
WORK="$(mktemp -d)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
FAILED=0
: >"$LOG"

step() {  # step NAME TIMEOUT_S CMD...
  local name=$1 t=$2; shift 2
  echo "=== $name" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$t" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s" | tee -a "$LOG"
  [ "$rc" = 0 ] || FAILED=$((FAILED + 1))
}

if [ $DRY = 1 ]; then
  SHAPE=tiny; TOKENS=256; HID="256"; PREC=default; STEPS=1
  GEMM="--tokens 256 --hidden 256 --experts 16 --inter 64"
  echo "dry run on CPU: toy sizes, GPU-only parts skipped" | tee -a "$LOG"
else
  SHAPE=qwen2.5-0.5b; TOKENS=8192; HID="2048 7168"; PREC=fp8; STEPS=3
  GEMM="--tokens 8192 --hidden 2048 --experts 32 --inter 512"
  step "device" 30 bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"'
  step "pytest -m gpu" 180 python -m pytest -q -m gpu tests/
fi

step "bench quant (torch vs triton)" 45 python bench/bench_moe.py --tokens "$TOKENS" --hidden $HID --topk 8 --iters 5
step "bench grouped gemm vs loop" 45 python bench/bench_moe.py --section gemm $GEMM --topk 8 --world 8 --iters 3
step "bench dispatch bytes" 30 python bench/bench_moe.py --section bytes --tokens 1024 --hidden 7168 --experts 256 --topk 8 --world 8 --topk-group 4
step "random models" 60 bash -c "python bench/make_random_model.py --shape tiny --out $WORK/small && { [ $SHAPE = tiny ] && ln -s $WORK/small $WORK/model || python bench/make_random_model.py --shape $SHAPE --out $WORK/model; }"

# one GRPO step (3: FP8 on the small dense model; 4: bf16 0.5B-shaped, colocated hf engine)
grpo_step() {  # grpo_step NAME MODEL PRECISION DTYPE STEPS TIMEOUT
  step "$1" "$6" python - "$2" "$3" "$4" "$5" "$WORK/$1" <<'PY'
import json, sys, time, torch
from grpo.config import load_config
from grpo.train.trainer import train
model, prec, dtype, steps, out = sys.argv[1:]
sets = [f"model.path={model}", f"model.precision={prec}", f"model.dtype={dtype}", f"train.steps={steps}",
        "train.prompts_per_step=8", "rollout.n=8", "rollout.max_new_tokens=64", "rollout.engine=hf",
        f"output.dir={out}", "output.name=run", "output.tensorboard=false", "data.num_samples=64",
        "algorithm.track_kl=false"]
cfg = load_config("recipes/tiny/r1_zero.yaml", sets)
if torch.cuda.is_available():
    torch.cuda.reset_peak_memory_stats()
t = time.time()
train(cfg)
rows = [json.loads(x) for x in open(f"{out}/run/metrics.jsonl")]
last = rows[-1]
peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
print(f"RESULT precision={prec} dtype={dtype} steps={len(rows)} wall={time.time() - t:.1f}s "
      f"step_time={last['time/step']:.2f}s rollout={last['time/rollout']:.2f}s update={last['time/update']:.2f}s "
      f"tokens/s={last['tokens_per_s']:.0f} loss={last['loss']} peak_mem={peak:.2f}GiB")
PY
}
grpo_step "grpo step $PREC small dense" "$WORK/small" "$PREC" bfloat16 1 90
grpo_step "grpo colocated hf bf16 $SHAPE" "$WORK/model" default bfloat16 "$STEPS" 120

echo "=== done: $FAILED step(s) failed; log: $LOG" | tee -a "$LOG"
rm -rf "$WORK"
exit $((FAILED > 0))
