"""On-policy vs overlap vs fully async, all on one stock vLLM server (rollout.engine=openai).

    python bench/bench_async.py                         # the tiny R1-Zero recipe, 60 steps per mode
    python bench/bench_async.py --steps 20 --modes on-policy,async-2

One ``python -m vllm.entrypoints.openai.api_server`` (what ``vllm serve`` runs; the vLLM venv
of scripts/setup_vllm.sh) serves data/tiny_model with the grpo_gloo weight-transfer engine.
Each mode then trains the same recipe from the same initial weights (the engine pushes the
policy's weights when it joins), with the same seed, data, B, G, lr and steps, one after the
other in this process (the server is shared, so the modes are measured side by side):

- ``on-policy``: sample, then train; the server idles during the update.
- ``overlap``: rollout.overlap (overlap.py's Prefetcher): step s+1's whole batch is one blocking
  generate on a thread while step s trains; the sync waits for it (one step off-policy).
- ``async-k``: rollout.fully_async, max_staleness k (stream.py): every prompt of the next k steps
  is its own request in the server, weights are pushed in flight (pause keep / resume).

Reported per mode: completions/s and seconds per step over the steps after ``--warmup``
(sum of ``time/step``: rollout wait, reward, update, sync, log), the share of samples whose
request spanned an update, the largest staleness, the training reward of the first and last
10 steps, and pass@1 on the recipe's held-out rows (grpo.stages.eval.eval_config: fresh problems of
another seed, k samples each at temperature 0.6 / top-p 0.95, hf engine) before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RECIPE = ROOT / "recipes" / "tiny" / "r1_zero.yaml"
VENV_PY = Path(os.environ.get("GRPO_VLLM_ENV", Path.home() / ".cache" / "grpo" / "vllm-env")) / "bin" / "python"
MODES = {"on-policy": [], "overlap": ["rollout.overlap=true"],
         "async-1": ["rollout.fully_async=true", "rollout.max_staleness=1"],
         "async-2": ["rollout.fully_async=true", "rollout.max_staleness=2"]}


def overrides(a, out: str, url: str, mode: str, seed: int = 0) -> list[str]:
    return [f"model.path={a.model}", f"output.dir={out}", f"output.name={mode}-{seed}", f"train.steps={a.steps}",
            f"train.seed={seed}",
            "rollout.engine=openai", f"rollout.server_url={url}", "rollout.broadcast_port=0",
            f"output.save_every={a.steps}", "output.sample_every=100000", "output.tensorboard=false",
            "algorithm.track_kl=false", *MODES[mode]]


def held_out(cfg, model: str, a) -> float:
    from grpo.stages.eval import eval_config
    return eval_config(cfg, model=model, k=a.k, n=a.eval_n, engine="hf", progress=False)["pass@1"]


def run_mode(a, url: str, mode: str, out: str, seed: int) -> dict:
    from grpo.config import load_config
    from grpo.train.trainer import Trainer
    cfg = load_config(RECIPE, overrides(a, out, url, mode, seed))
    t0 = time.perf_counter()
    run_dir = Trainer(cfg).train()
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    timed = rows[a.warmup:]
    step_s = sum(r["time/step"] for r in timed)
    per_step = cfg.train.prompts_per_step * cfg.rollout.n
    acc = [r.get("reward/math_accuracy/mean", r["reward/mean"]) for r in rows]
    return {"mode": mode, "seed": seed, "wall_s": wall, "step_s": step_s / len(timed), "completions_per_s": per_step * len(timed) / step_s,
            "inflight_frac": sum(r.get("rollout/inflight_update_frac", 0.0) for r in timed) / len(timed),
            "staleness_max": max(r.get("rollout/staleness_max", r.get("rollout/stale_steps", 0)) for r in rows),
            "train_acc_first10": sum(acc[:10]) / len(acc[:10]), "train_acc_last10": sum(acc[-10:]) / len(acc[-10:]),
            "held_out": held_out(cfg, str(run_dir / "checkpoints" / f"step-{a.steps}"), a)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "data" / "tiny_model"))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--seeds", default="0", help="training seeds (train.seed; each has its own held-out rows)")
    ap.add_argument("--k", type=int, default=4, help="held-out samples per problem")
    ap.add_argument("--eval-n", type=int, default=200, help="held-out problems")
    ap.add_argument("--vllm-python", default=str(VENV_PY))
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    modes, seeds = a.modes.split(","), [int(x) for x in a.seeds.split(",")]
    if unknown := [m for m in modes if m not in MODES]:
        raise SystemExit(f"unknown mode {unknown[0]!r}; choose from {', '.join(MODES)}")
    from grpo.config import load_config
    from grpo.rollout import http
    from grpo.rollout.openai import serve_vllm
    base, res = {}, []
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        try:
            with serve_vllm(a.model, Path(out) / "server.log", python=a.vllm_python, max_model_len=512) as url:
                print(f"vLLM server up in {time.perf_counter() - t0:.0f} s at {url}", flush=True)
                for seed in seeds:
                    base[seed] = held_out(load_config(RECIPE, overrides(a, out, url, modes[0], seed)), a.model, a)
                    print(f"seed {seed}: held-out pass@1 of the initial model: {base[seed]:.3f}", flush=True)
                    for m in modes:
                        res.append(run_mode(a, url, m, out, seed))
                        print(json.dumps(res[-1]), flush=True)
        except http.ServerError as e:  # the server did not come up, or failed mid-run: one line
            raise SystemExit(str(e))
    table(a, modes, seeds, base, res)
    if a.json:
        Path(a.json).write_text(json.dumps({"base": base, "results": res}, indent=1))


def table(a, modes, seeds, base, res) -> None:
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    by = {m: [r for r in res if r["mode"] == m] for m in modes}
    ref = mean([r["completions_per_s"] for r in by[modes[0]]])
    print(f"\n{a.steps} steps, tiny R1-Zero recipe, seeds {seeds}; held-out pass@1 before: "
          f"{' / '.join(f'{base[s]:.3f}' for s in seeds)} ({a.eval_n} problems x {a.k})")
    print(f"| mode | completions/s | vs {modes[0]} | s/step | in-flight updates | max staleness | "
          "train acc first -> last 10 | held-out pass@1 after (per seed) | mean gain |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in modes:
        rs = by[m]
        cps = mean([r["completions_per_s"] for r in rs])
        after = " / ".join(f"{r['held_out']:.3f}" for r in rs)
        print(f"| {m} | {cps:.1f} | {cps / ref:.2f}x | {mean([r['step_s'] for r in rs]):.2f} | "
              f"{mean([r['inflight_frac'] for r in rs]):.0%} | {max(r['staleness_max'] for r in rs)} | "
              f"{mean([r['train_acc_first10'] for r in rs]):.3f} -> {mean([r['train_acc_last10'] for r in rs]):.3f} | "
              f"{after} | "
              f"{mean([r['held_out'] - base[r['seed']] for r in rs]):+.3f} |")


if __name__ == "__main__":
    main()
