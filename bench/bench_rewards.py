"""Throughput of the math accuracy reward (answers scored per second).

    python bench/bench_rewards.py            # typical answers, 1 and 2 processes
    python bench/bench_rewards.py --n 50000 --symbolic-frac 0.05

Answers are unique per run (so the (pred, gold) cache does not flatter the
number), half right and half wrong, as full completions going through
extraction: integers, decimals, simple fractions, percentages, short LaTeX
(``\\frac``, ``\\sqrt``, ``\\pi``) and linear expressions.  ``--symbolic-frac``
mixes in answers that need the sympy worker pool (trigonometric identities;
``x \\in [a, b]`` is one of the typical kinds, decided without sympy); the
side-by-side run also reports a second 5% mix of common symbolic golds
(``\\frac{\\sqrt{3}}{2}``, ``2\\sqrt{2}``, ``(x+1)^2``, ``\\frac{\\pi}{6}``), which the
probe tier (:mod:`rewards._probe`) decides without sympy, and how many answers
each tier decided.
Math-Verify (``verify(parse(gold), parse(pred))`` in this process, as its README
shows) scores a sample of the same cases in the same run, side by side.
Targets: >= 10,000 answers/s on typical answers and >= 1,000/s with 5% symbolic.

    python bench/bench_rewards.py --side-by-side   # both mixes, ours vs math-verify
    python bench/bench_rewards.py --timeouts       # how long a timed-out reward call takes

``--timeouts`` times the two deadlines the unit tests check without a clock: a
RewardSet call abandoned at ``timeout_s`` (0.2 s; its reward sleeps 1 s) and a
math worker killed at its hard timeout (0.5 s, below its 1 s soft timeout).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _common_symbolic(rng, a: int, b: int, right: bool):
    """(gold, pred): common symbolic golds (roots, pi, polynomials), pred in another form."""
    k = rng.randrange(5)
    c = b % 7 + 2
    if k == 0:
        return rf"\frac{{\sqrt{{{c}}}}}{{2}}", rf"\frac{{1}}{{2}}\sqrt{{{c}}}" if right else rf"\frac{{\sqrt{{{c + 1}}}}}{{2}}"
    if k == 1:
        return rf"{c}\sqrt{{2}}+x", rf"x+\sqrt{{{2 * c * c}}}" if right else rf"x+\sqrt{{{2 * c * c + 1}}}"
    if k == 2:
        return rf"x^2+{2 * b}x+{b * b}", rf"(x+{b})^2" if right else rf"(x+{b + 1})^2"
    if k == 3:
        return rf"\frac{{\pi}}{{{b}}}+y", rf"y+\frac{{1}}{{{b}}}\pi" if right else rf"y+\frac{{1}}{{{b + 1}}}\pi"
    return rf"\frac{{x^2-{b * b}}}{{x-{b}}}", rf"x+{b}" if right else rf"x-{b}"


def make_cases(n: int, seed: int, symbolic_frac: float = 0.0, mix: str = "trig"):
    rng = random.Random(seed)
    comps, golds = [], []
    for i in range(n):
        k = rng.randrange(9) if rng.random() >= symbolic_frac else 9
        a, b = rng.randrange(1, 10**6), rng.randrange(2, 1000)
        right = i % 2 == 0
        if k == 0:
            gold, pred = str(a), str(a if right else a + 1)
        elif k == 1:
            gold, pred = f"{a}/{b}", rf"\frac{{{a * 2}}}{{{b * 2}}}" if right else rf"\frac{{{a + 1}}}{{{b}}}"
        elif k == 2:
            gold, pred = f"{a / 8:.3f}", f"{a / 8:.3f}0" if right else f"{a / 8 + 0.1:.3f}"
        elif k == 3:
            gold, pred = rf"\dfrac{{{a}}}{{{b}}}", f"{a / b:.6f}" if right else f"{a / b + 0.01:.6f}"
        elif k == 4:
            gold, pred = rf"{b}\sqrt{{2}}", rf"\sqrt{{{2 * b * b}}}" if right else rf"{b}\sqrt{{3}}"
        elif k == 5:
            gold, pred = rf"\frac{{{b}\pi}}{{3}}", rf"\frac{{{b}}}{{3}}\pi" if right else rf"\frac{{{b + 1}\pi}}{{3}}"
        elif k == 6:
            gold, pred = f"{b}\\%", f"{b / 100}" if right else f"{b + 1}%"
        elif k == 7:
            gold, pred = f"{b}x + {a}", f"{a} + {b}x" if right else f"{a} + {b + 1}x"
        elif k == 8:  # interval in membership notation (the fast path reads it)
            gold, pred = f"[{b}, {a}]", rf"x \in [{b}, {a}]" if right else rf"x \in [{b}, {a + 1}]"
        elif mix == "common":  # common symbolic golds: the probe tier decides these
            gold, pred = _common_symbolic(rng, a, b, right)
        else:  # needs sympy: a trigonometric identity
            gold = rf"{b}\sin(2x) + {a}"
            pred = rf"{a} + {2 * b}\sin x \cos x" if right else rf"{a} + {2 * b + 1}\sin x \cos x"
        golds.append(gold)
        comps.append(f"<think>Some reasoning about the problem {i}.</think>\n<answer>\\boxed{{{pred}}}</answer>")
    return comps, golds


def run(args_tuple):
    n, seed, symbolic_frac, chunk, mix = (tuple(args_tuple) + ("trig",))[:5]
    from rewards.math import clear_cache, math_accuracy

    clear_cache()
    comps, golds = make_cases(n, seed, symbolic_frac, mix)
    if symbolic_frac:  # start the sympy workers outside the timed region
        math_accuracy(["q"], [r"\boxed{\sin y}"], answer=["1+y"])
    t0 = time.perf_counter()
    scores = []
    for i in range(0, n, chunk):
        scores += math_accuracy(["q"] * len(comps[i:i + chunk]), comps[i:i + chunk], answer=golds[i:i + chunk])
    dt = time.perf_counter() - t0
    return n, dt, sum(scores)


def run_math_verify(n, seed, symbolic_frac, mix="trig"):
    import logging

    from math_verify import parse, verify

    logging.disable(logging.WARNING)
    comps, golds = make_cases(n, seed, symbolic_frac, mix)
    verify(parse("$1$"), parse("$1$"))  # imports and caches outside the timed region
    t0 = time.perf_counter()
    correct = sum(bool(verify(parse(f"${g}$"), parse(c))) for c, g in zip(comps, golds))  # golds are bare LaTeX
    return n, time.perf_counter() - t0, correct


def side_by_side(n: int, n_mv: int, batch: int):
    from rewards.math import stats

    for frac, mix in ((0.0, "trig"), (0.05, "trig"), (0.05, "common")):
        stats.update({k: 0 for k in stats})
        ours = run((n, 1000, frac, batch, mix))
        tiers = f"probe {stats['probe']}, math-verify worker {stats['symbolic']}"
        theirs = run_math_verify(n_mv, 1000, frac, mix)
        r_o, r_t = ours[0] / ours[1], theirs[0] / theirs[1]
        label = f"{frac:4.2f} {mix:6s}" if frac else "0.00 none  "
        print(f"  symbolic {label} [{tiers}]: math_accuracy {r_o:9,.0f} answers/s ({ours[0]} answers, accuracy "
              f"{ours[2] / ours[0]:.3f}) | math-verify {r_t:7,.0f} answers/s ({theirs[0]} answers, accuracy "
              f"{theirs[2] / theirs[0]:.3f}) | ratio {r_o / r_t:5.1f}x", flush=True)


def timeouts(repeats: int = 3) -> None:
    """Wall time of a timed-out call vs its deadline, side by side with the time it
    would take if it were waited for."""
    from rewards import RewardSet, RewardSpec
    from rewards._pool import get_pool
    from rewards.registry import REGISTRY

    def sleepy(prompts, completions, **kw):
        time.sleep(1.0)
        return [1.0] * len(completions)

    REGISTRY["bench_sleepy"] = sleepy
    rs = RewardSet([RewardSpec("bench_sleepy")], timeout_s=0.2)
    pool = get_pool()
    pool.verify("1", "1", 5.0)                      # warm: start-up is not the timeout
    for _ in range(repeats):
        t0 = time.perf_counter()
        rs(["p"], ["c"], {})
        t_set = time.perf_counter() - t0
        t0 = time.perf_counter()
        status = pool.verify(r"9^{9^{9^{9}}}", "1", 0.5)[1]
        t_kill = time.perf_counter() - t0
        print(f"  RewardSet timeout 0.20s (reward sleeps 1.00s): {t_set:.3f}s | "
              f"math worker hard timeout 0.50s (soft 1.00s): {t_kill:.3f}s ({status})", flush=True)
    del REGISTRY["bench_sleepy"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="answers per process")
    ap.add_argument("--procs", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--symbolic-frac", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=256, help="completions per reward call (a GRPO step)")
    ap.add_argument("--side-by-side", action="store_true", help="ours vs math-verify, typical and 5%% symbolic")
    ap.add_argument("--n-mv", type=int, default=1000, help="answers math-verify scores (it is slow)")
    ap.add_argument("--timeouts", action="store_true", help="time timed-out reward calls vs their deadlines")
    args = ap.parse_args()
    if args.timeouts:
        print(f"reward timeouts, {os.cpu_count()} CPUs")
        timeouts()
        return
    if args.side_by_side:
        load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
        print(f"math_accuracy vs math-verify, one process, {os.cpu_count()} CPUs (load average {load}), "
              f"batch {args.batch}")
        side_by_side(args.n, args.n_mv, args.batch)
        return
    print(f"math_accuracy throughput, {os.cpu_count()} CPUs, batch {args.batch}, "
          f"symbolic fraction {args.symbolic_frac}")
    for procs in args.procs:
        jobs = [(args.n, 1000 + p, args.symbolic_frac, args.batch) for p in range(procs)]
        t0 = time.perf_counter()
        if procs == 1:
            res = [run(jobs[0])]
        else:
            with ProcessPoolExecutor(procs) as ex:
                res = list(ex.map(run, jobs))
        wall = time.perf_counter() - t0
        n = sum(r[0] for r in res)
        busy = max(r[1] for r in res)
        correct = sum(r[2] for r in res)
        print(f"  {procs} process(es): {n} answers in {busy:.2f}s scoring time -> {n / busy:,.0f} answers/s "
              f"(accuracy {correct / n:.3f}, expected 0.500; wall incl. start-up {wall:.1f}s)")


if __name__ == "__main__":
    main()
