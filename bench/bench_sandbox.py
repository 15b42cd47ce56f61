"""Sandbox throughput: executions per second of small passing programs.

    python bench/bench_sandbox.py                 # the mode sandbox.run would use
    python bench/bench_sandbox.py --compare       # also every other working mode
    python bench/bench_sandbox.py -n 1000 --workers 4 --workload all

Isolation stays fully on (namespaces, seccomp, rlimits, private uids) and so
does the trusted-verdict design (tests in a separate tester process that
calls the candidate over a channel, see docs/SANDBOX.md): the numbers are
for exactly what code rewards get.  Workloads: ``asserts`` (3 MBPP-style
asserts, 3 calls), ``humaneval`` (one check() with 8 calls), ``stdio`` (one
stdin/stdout case, compared on the host).  The load average is printed: the
machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sandbox  # noqa: E402
from sandbox.core import default_workers  # noqa: E402

PROGRAM = '''
def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''
TESTS = ["assert fib(0) == 0", "assert fib(10) == 55", "assert fib(30) == 832040"]
CHECK = ("def check(candidate):\n" + "".join(
    f"    assert candidate({n}) == {v}\n" for n, v in
    [(0, 0), (1, 1), (2, 1), (5, 5), (10, 55), (20, 6765), (30, 832040), (40, 102334155)])
         + "check(fib)\n")
STDIO = PROGRAM + "print(fib(int(input())))\n"
WORKLOADS = {
    "asserts": (PROGRAM, TESTS),
    "humaneval": (PROGRAM, CHECK),
    "stdio": (STDIO, [{"input": "30\n", "output": "832040\n"}]),
}


def bench(box: sandbox.Sandbox, n: int, workers: int, item=WORKLOADS["asserts"]) -> dict:
    box.run_batch([item] * (2 * workers), workers=workers)  # warm up
    start = time.perf_counter()
    results = box.run_batch([item] * n, workers=workers)
    elapsed = time.perf_counter() - start
    bad = [r for r in results if r.status != "ok"]
    if bad:
        raise SystemExit(f"{len(bad)} runs did not pass, e.g. {bad[0]}")
    durations = sorted(r.duration_s for r in results)
    return {"per_s": n / elapsed, "p50_ms": 1000 * statistics.median(durations),
            "p95_ms": 1000 * durations[int(0.95 * (n - 1))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=500, help="runs to time (default 500)")
    ap.add_argument("--workers", type=int, default=None,
                    help=f"concurrent runs (default: 4 per usable CPU = {default_workers()})")
    ap.add_argument("--compare", action="store_true", help="also time the other modes")
    ap.add_argument("--workload", choices=[*WORKLOADS, "all"], default="asserts")
    args = ap.parse_args()
    loads = [*WORKLOADS] if args.workload == "all" else [args.workload]
    workers = args.workers or default_workers()

    caps = sandbox.capabilities()
    print(f"isolation: backend={caps['backend']} launch={caps['launch']} "
          f"seccomp={caps['seccomp']} private_uid={caps['uid_separation']}")
    print(f"network:   {caps['network']}")
    print("machine:   %d usable CPUs, load average %.1f %.1f %.1f (before)"
          % (len(os.sched_getaffinity(0)), *os.getloadavg()))
    modes = [None]
    if args.compare:
        modes += [(b, l) for b, l in [("bwrap", "spawn"), ("unshare", "zygote"),
                                      ("unshare", "spawn"), ("none", "spawn")]
                  if caps["available"][b]]
    for mode in modes:
        box = sandbox.Sandbox(*mode[:1], launch=mode[1]) if mode else sandbox.Sandbox()
        chosen = box.mode()
        if chosen is None or (mode and (chosen.backend, chosen.launch) != mode):
            continue
        label = f"{chosen.backend}/{chosen.launch}/{'seccomp' if chosen.seccomp else 'no-seccomp'}"
        try:
            for name in loads:
                s = bench(box, args.n, workers, WORKLOADS[name])
                print(f"{label:28} {name:9} workers={workers:<3} {s['per_s']:7.1f} executions/s"
                      f"   p50 {s['p50_ms']:.1f} ms  p95 {s['p95_ms']:.1f} ms  (n={args.n})")
        finally:
            box.close()
    print("load average %.1f %.1f %.1f (after)" % os.getloadavg())


if __name__ == "__main__":
    main()
