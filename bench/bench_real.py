"""grpo against TRL's GRPOTrainer on a real pretrained model: SmolLM2-135M-Instruct
(scripts/build_real_model.py), recipes/cpu/smollm2_gsm8k.yaml's prompt format and rewards,
on a local GSM8K-format file, with the same B, G, max completion length, learning rate,
temperature, loss (token-mean), truncation masking, no KL, and gradient checkpointing on
both or off both. Every variant runs in a fresh subprocess (bench_rollout.py's driver);
the whole comparison runs twice in one invocation.

    ~/.cache/grpo/vllm-env/bin/python bench/bench_real.py   # B=4, G=4, 64 new tokens (vllm + TRL)
    python bench/bench_real.py --variants hf,hf-overlap,trl        # without vLLM
    python bench/bench_real.py --grad-ckpt        # gradient checkpointing on both
    python bench/bench_real.py --prompts 8 --n 8 --max-new-tokens 128

Variants: ``vllm`` (grpo, rollout.engine=vllm, on-policy), ``vllm-overlap`` (vllm, one-step
off-policy: sampling overlaps the update), ``hf`` (grpo, transformers generate, on-policy,
share_prompt), ``hf-overlap``, ``trl`` (GRPOTrainer, use_vllm=False). On-policy variants and
TRL run at 1 and 2 torch threads (best against best); the overlap variants at 1 (the
sampler's thread and the trainer's take one core each of this project's 2).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_rollout  # noqa: E402
from build_real_model import build  # noqa: E402

RECIPE = ROOT / "recipes" / "cpu" / "smollm2_gsm8k.yaml"


def gsm8k_file(n: int, seed: int = 0) -> str:
    """``n`` GSM8K-format rows (question, answer "... #### N") of small word problems."""
    import random
    rng = random.Random(seed)
    q, a = [], []
    for _ in range(n):
        x, y = rng.randint(2, 20), rng.randint(2, 20)
        q.append(f"Sam has {x} marbles and finds {y} more. How many marbles does Sam have now?")
        a.append(f"{x} + {y} = <<{x}+{y}={x + y}>>{x + y}\n#### {x + y}")
    path = Path(tempfile.gettempdir()) / f"bench_real_gsm8k_{n}.parquet"
    pd.DataFrame({"question": q, "answer": a}).to_parquet(path)
    return str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--variant-threads", default="vllm-overlap=1,hf-overlap=1")
    ap.add_argument("--rounds", type=int, default=2, help="times the whole comparison runs")
    ap.add_argument("--variants", default="vllm,vllm-overlap,hf,hf-overlap,trl")
    ap.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing on both tools")
    a = ap.parse_args(argv)
    model = str(build())
    # Equal work: a length-shaped reward gives every group variance, and no truncation mask,
    # so that grpo never skips an update (item 4 of issue 12) that TRL runs.
    extra = [f"data.source={gsm8k_file(256)}", "rollout.temperature=1.0", f"train.micro_batch_size={a.prompts * a.n}",
             "rewards=[{name: math_accuracy}, {name: cosine_length, weight: 0.1, kwargs: {max_len: "
             f"{a.max_new_tokens}}}}}]", "algorithm.mask_truncated=false"]
    if a.grad_ckpt:
        extra += ["model.gradient_checkpointing=true", "train.share_prompt=false"]
    else:
        extra += ["model.gradient_checkpointing=false"]
    args = ["--recipe", str(RECIPE), "--model", model, "--variants", a.variants, "--prompts", str(a.prompts),
            "--n", str(a.n), "--max-new-tokens", str(a.max_new_tokens), "--steps", str(a.steps),
            "--warmup", str(a.warmup), "--threads", a.threads, "--variant-threads", a.variant_threads,
            "--rows", "256"]
    args += [x for o in extra for x in ("--set", o)]
    rc = 0
    for r in range(a.rounds):
        print(f"\n===== round {r + 1} of {a.rounds} (gradient checkpointing {'on' if a.grad_ckpt else 'off'}, "
              f"both tools) =====", flush=True)
        rc |= bench_rollout.main(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
