"""Tool-call throughput: executions/s of python tool calls in the sandbox, concurrent vs sequential.

    python bench/bench_tool_sandbox.py                    # 1, 8, 32, 64 concurrent calls
    python bench/bench_tool_sandbox.py -n 256 --hostile 0.125 --concurrency 1 8 32

A multi-turn rollout runs one tool call per episode that stopped at a tool call, and
the episodes of a step run their calls at the same time (one thread per call, each a
sandbox run: fresh interpreter, time and memory limits, no network).  This times that
pattern side by side in one invocation: ``n`` calls made one after another
(sequential), then the same ``n`` calls with ``k`` in flight at once, and prints each
rate and its ratio to sequential.  The call goes through the ``python`` env's
``step`` (grpo.envs, observation text and error accounting included) when that env
is importable, else straight to ``sandbox.run`` (said in the output).

Workload: a small ToRL-style computation (a loop and a print), the kind a math
model writes.  ``--hostile F``: that share of calls is hostile (an infinite loop, a
fork bomb, a flood of output, in turn; each ends with an error observation) mixed
in, to show what hostile calls cost the others.  The load average is printed: the machine may be shared.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sandbox  # noqa: E402

CODE = "total = 0\nfor i in range(1, 2001):\n    total += i * i\nprint(total)"
EXPECTED = str(sum(i * i for i in range(1, 2001)))
HOSTILE = ["while True:\n    pass",                                    # infinite loop
           "import os\nwhile True:\n    os.fork()",                     # fork bomb
           "while True:\n    print('x' * 10**6)"]                        # huge output


def tool_call(timeout_s: float):
    """(callable(code) -> (ok, seconds), label): one tool call through the python env when
    grpo.envs has it, else through sandbox.run directly."""
    try:
        from grpo.envs.python_tool import PythonTool
    except ImportError:
        PythonTool = None
    if PythonTool is not None:
        def via_env(code: str) -> tuple[bool, float]:
            env = PythonTool(timeout_s=timeout_s)        # one env per episode, as in a rollout
            t0 = time.perf_counter()
            obs, _, _ = env.step(f"Let me compute.\n```python\n{code}\n```\n")
            return env.errors == 0 and EXPECTED in obs, time.perf_counter() - t0
        return via_env, "grpo.envs python env (PythonTool.step -> sandbox.run)"

    def direct(code: str) -> tuple[bool, float]:
        t0 = time.perf_counter()
        r = sandbox.run(code, [], timeout_s=timeout_s)
        return r.status == "ok" and r.stdout.strip() == EXPECTED, time.perf_counter() - t0
    return direct, "sandbox.run directly (grpo.envs python env not importable)"


def timed(call, codes: list[str], k: int) -> dict:
    """Run every code with ``k`` calls in flight (k=0: one after another, no threads)."""
    start = time.perf_counter()
    if k == 0:
        out = [call(c) for c in codes]
    else:
        with ThreadPoolExecutor(k) as pool:
            out = list(pool.map(call, codes))
    elapsed = time.perf_counter() - start
    lat = sorted(s for _, s in out)
    return {"per_s": len(codes) / elapsed, "errors": sum(not ok for ok, _ in out),
            "p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=256, help="tool calls per measurement (default 256)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--hostile", type=float, default=0.0,
                    help="share of calls that loop forever (default 0)")
    ap.add_argument("--timeout", type=float, default=1.0, help="per-call time limit, s")
    args = ap.parse_args()
    if args.n < 1 or not 0 <= args.hostile <= 1 or min(args.concurrency) < 1:
        raise SystemExit("need -n >= 1, 0 <= --hostile <= 1 and --concurrency values >= 1")
    every = round(1 / args.hostile) if args.hostile else 0
    codes = [HOSTILE[(i // every) % 3] if every and i % every == every - 1 else CODE
             for i in range(args.n)]

    call, label = tool_call(args.timeout)
    caps = sandbox.capabilities()
    print(f"tool call: {label}")
    print(f"isolation: backend={caps['backend']} launch={caps['launch']} seccomp={caps['seccomp']}")
    print("machine:   %d usable CPUs, load average %.1f %.1f %.1f (before)"
          % (len(os.sched_getaffinity(0)), *os.getloadavg()))
    hostile = sum(c in HOSTILE for c in codes)
    print(f"workload:  {args.n} calls, {hostile} hostile (infinite loop, fork bomb, huge "
          f"output; {args.timeout:g} s limit); 'failed' counts calls without the right output")
    top = max(args.concurrency)
    timed(call, [CODE] * (2 * top), top)              # warm the zygote pool to its full size
    base = timed(call, codes, 0)
    rows = [("sequential", base)] + [(f"{k} concurrent", timed(call, codes, k))
                                     for k in args.concurrency]
    for name, s in rows:
        print(f"{name:14} {s['per_s']:8.1f} calls/s  x{s['per_s'] / base['per_s']:5.2f} vs "
              f"sequential   p50 {s['p50_ms']:6.1f} ms  p95 {s['p95_ms']:7.1f} ms  "
              f"failed {s['errors']}")
    print("load average %.1f %.1f %.1f (after)" % os.getloadavg())


if __name__ == "__main__":
    main()
