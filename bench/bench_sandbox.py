"""Sandbox throughput: executions per second of a small passing program.

    python bench/bench_sandbox.py                 # the mode sandbox.run would use
    python bench/bench_sandbox.py --compare       # also every other working mode
    python bench/bench_sandbox.py -n 1000 --workers 4

Isolation stays fully on (namespaces, seccomp, rlimits, private uid): the
numbers are for exactly what code rewards get.
"""

from __future__ import annotations

import argparse
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


def bench(box: sandbox.Sandbox, n: int, workers: int) -> dict:
    box.run_batch([(PROGRAM, TESTS)] * (2 * workers), workers=workers)  # warm up
    start = time.perf_counter()
    results = box.run_batch([(PROGRAM, TESTS)] * n, workers=workers)
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
                    help=f"concurrent runs (default: usable CPUs = {default_workers()})")
    ap.add_argument("--compare", action="store_true", help="also time the other modes")
    args = ap.parse_args()
    workers = args.workers or default_workers()

    caps = sandbox.capabilities()
    print(f"isolation: backend={caps['backend']} launch={caps['launch']} "
          f"seccomp={caps['seccomp']} private_uid={caps['uid_separation']}")
    print(f"network:   {caps['network']}")
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
        try:
            s = bench(box, args.n, workers)
        finally:
            box.close()
        label = f"{chosen.backend}/{chosen.launch}/{'seccomp' if chosen.seccomp else 'no-seccomp'}"
        print(f"{label:28} workers={workers:<3} {s['per_s']:7.1f} executions/s   "
              f"p50 {s['p50_ms']:.1f} ms  p95 {s['p95_ms']:.1f} ms  (n={args.n})")


if __name__ == "__main__":
    main()
