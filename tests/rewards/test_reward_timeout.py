"""math verification must never hang: not on pathological answers, not from a
worker thread, not from a (daemonic) worker process."""

import multiprocessing
import threading
import time

import pytest

from rewards import math as rmath
from rewards._pool import get_pool



@pytest.fixture(autouse=True)
def _fresh_cache():
    rmath.clear_cache()
    yield


def _timed(fn, *a, **kw):
    t0 = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t0


@pytest.mark.parametrize("pred", ["9^9^9^9", "10**10**10", r"9^{9^{9^{9}}}", r"\boxed{10^{10^{10}}}",
                                  "2^{2^{2^{2^{2^{2}}}}}", "(10^{10^{10}})!"])
def test_pathological_answers_return_quickly(pred):
    ok, dt = _timed(rmath.verify, pred, "10", timeout_s=2.0)
    assert ok is False
    assert dt < 2.0 + 5.0  # worker start-up (first symbolic call) + timeout, never a hang


def test_pathological_symbolic_in_math_accuracy():
    comps = [r"\boxed{9^{9^{9^{9}}} x}", r"<answer>10**10**10 + y</answer>", r"\boxed{2}"]
    res, dt = _timed(rmath.math_accuracy, ["q"] * 3, comps, answer=["x", "y", "2"], timeout_s=1.0)
    assert res == [0.0, 0.0, 1.0]
    assert dt < 10.0


def test_hard_kill_when_worker_ignores_soft_timeout():
    pool = get_pool()
    assert pool.verify("1", "1", 5.0) == (True, "ok")  # warm: exclude start-up from the timing
    # timeout 0.5 s < the worker's 1 s soft timeout: only the kill can end this, and only
    # the kill path answers "timeout" (a soft timeout answers "ok" with False). The time it
    # takes is measured in bench/bench_rewards.py --timeouts, not asserted here.
    timeouts = pool.stats["timeouts"]
    ok, status = pool.verify(r"9^{9^{9^{9}}}", "1", 0.5)
    assert (ok, status) == (False, "timeout") and pool.stats["timeouts"] == timeouts + 1
    # the pool replaced the killed worker and still answers
    assert pool.verify("2x", "x+x", 10.0) == (True, "ok")


def test_symbolic_from_worker_threads():
    out = {}

    def work(i):
        out[i] = rmath.verify(f"{i}x+{i}", f"{i}(x+1)", timeout_s=5.0) and not rmath.verify(
            r"9^{9^{9^{9}}}+x", f"x+{i}", timeout_s=1.0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert time.monotonic() - t0 < 30
    assert out == {i: True for i in range(2)}


def _child(args):
    from rewards.math import verify

    return verify(*args, timeout_s=2.0)


def test_symbolic_from_daemonic_worker_process():
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as p:  # Pool workers are daemonic: multiprocessing children are forbidden there
        res = p.map_async(_child, [("a+b", "b+a"), (r"9^{9^{9^{9}}}+z", "z")]).get(60)
    assert res == [True, False]


def test_huge_inputs_are_fast():
    big = "1" * 200_000
    (ok, dt) = _timed(rmath.verify, big, "1")
    assert ok is False and dt < 1.0
    comp = "<think>" + "let me think (" * 50_000 + "</think><answer>" + "9^" * 5_000 + "9</answer>"
    res, dt = _timed(rmath.math_accuracy, ["q"], [comp], answer=["9"])
    assert res == [0.0] and dt < 2.0
    comp = "$$ " * 20_000 + r"\boxed{" * 10_000
    res, dt = _timed(rmath.math_accuracy, ["q"], [comp], answer=["3"])
    assert res == [0.0] and dt < 2.0
