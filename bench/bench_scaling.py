"""GRPO step time with 1, 2 and 4 CPU processes (FSDP2 over gloo), side by side in one invocation.

    python bench/bench_scaling.py                        # tiny recipe model + SmolLM2-135M
    python bench/bench_scaling.py --models tiny --worlds 1,2 --steps 4

Every run trains on the same global batch (prompts_per_step x n completions, the
completions a seeded function of the prompt: tests/dist/_fsdp_worker.FixedEngine), so the
only thing that changes is how many processes share it. 1 process is the plain run (no
torch.distributed); N > 1 is torchrun + FSDP2. Reported per model and process count: the
median step and update time over the steps after the first (warm-up), the speed-up over
1 process, the per-rank bytes of parameters + AdamW state (local shards) and their ratio
to 1 process, and what one unshard of the whole policy costs (grpo.dist.fsdp.gathered: what the
hf engine pays per generation under FSDP).

SmolLM2-135M needs ``python scripts/build_real_model.py`` first (skipped when absent).
On a machine with fewer cores than processes the ranks share cores: say so with the table.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "dist" / "_fsdp_worker.py"
REAL = Path(os.environ.get("GRPO_REAL_MODEL", Path.home() / ".cache/grpo/smollm2-135m-instruct"))


def models(names: list[str]) -> dict[str, str]:
    out = {}
    for n in names:
        if n == "tiny":
            out[n] = str(ROOT / "data" / "tiny_model")
        elif n == "smollm2":
            if (REAL / "config.json").exists():
                out["smollm2-135m"] = str(REAL)
            else:
                print(f"bench_scaling: {REAL} not built (python scripts/build_real_model.py); skipped", file=sys.stderr)
        else:
            out[n] = n                        # a model directory
    return out


def launch(world: int, path: str, args, tmp: Path) -> dict:
    sets = [f"model.path={path}", "rewards=[{name: '@RW:chars'}]", f"train.prompts_per_step={args.prompts}",
            f"rollout.n={args.n}", f"rollout.max_new_tokens={args.max_new}", "train.micro_batch_size=8",
            "train.micro_batch_tokens=null", "train.share_prompt=true", "algorithm.track_kl=false"]
    spec = tmp / f"spec-{world}.json"
    spec.write_text(json.dumps([{"name": "bench", "sets": sets, "steps": args.steps, "weights": False}]))
    out = tmp / f"out-{world}.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(WORKER), str(out), str(spec)]
    if world > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world),
               "--master-port", str(random.randint(20000, 60000)), *cmd[1:]]
    else:
        env.pop("WORLD_SIZE", None)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"bench_scaling: {world} processes failed:\n{r.stderr[-3000:]}")
    return torch.load(out, weights_only=False)["bench"]


def row(res: dict) -> dict:
    if any(m["update_skipped"] for m in res["metrics"]):
        raise SystemExit("bench_scaling: a step had nothing to learn (no update): not a step time")
    later = res["metrics"][1:] or res["metrics"]
    med = lambda k: statistics.median(m[k] for m in later)  # noqa: E731
    mem = max(m["params"] + m["optimizer"] for m in res["mem"])
    return {"step": med("time/step"), "update": med("time/update"), "mem": mem, "gather": res["gather_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="tiny,smollm2")
    ap.add_argument("--worlds", default="1,2,4")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=4, help="prompts per step (divisible by every world size)")
    ap.add_argument("--n", type=int, default=2, help="completions per prompt")
    ap.add_argument("--max-new", type=int, default=16)
    args = ap.parse_args()
    worlds = [int(w) for w in args.worlds.split(",")]
    print(f"# {os.cpu_count()} CPU cores; global batch {args.prompts} x {args.n} completions of 1..{args.max_new} "
          f"tokens; median of steps 2..{args.steps}")
    print(f"{'model':14} {'procs':>5} {'step s':>8} {'update s':>9} {'speed-up':>8} {'MiB/rank':>9} "
          f"{'mem ratio':>9} {'unshard s':>9}")
    for name, path in models(args.models.split(",")).items():
        with tempfile.TemporaryDirectory() as d:
            rows = {w: row(launch(w, path, args, Path(d))) for w in worlds}
        base = rows[worlds[0]]
        for w, r in rows.items():
            print(f"{name:14} {w:>5} {r['step']:>8.3f} {r['update']:>9.3f} {base['step'] / r['step']:>7.2f}x "
                  f"{r['mem'] / 2**20:>9.1f} {r['mem'] / base['mem']:>9.2f} {r['gather']:>9.4f}", flush=True)


if __name__ == "__main__":
    main()
