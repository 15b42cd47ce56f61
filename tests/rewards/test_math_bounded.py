"""No input keeps math_accuracy busy for more than 5 s per sample -- not in the
trainer's own process, not from a thread, not from a daemonic multiprocessing
worker (where signal-based timeouts cannot work) -- with default settings.
The inputs are in math_hostile.py: 100k-character outputs, 50k newlines after
"The answer is", deep braces, huge exponents, power towers, factorials, ..."""

import multiprocessing as mp
import threading
import time

import pytest

from tests.rewards.math_hostile import HOSTILE

BOUND_S = 5.0
CREDITED = {"newlines_before_box", "long_output"}  # they do end in \boxed{3}


def _score_all(out: dict):
    from rewards.math import clear_cache, math_accuracy

    clear_cache()
    math_accuracy(["q"], [r"\boxed{\sin y}"], answer=["1+y"])  # start the symbolic worker untimed
    for name, text in HOSTILE.items():
        t0 = time.perf_counter()
        r = math_accuracy(["q"], [text], answer=["3"])
        out[name] = (r[0], time.perf_counter() - t0)


def _check(out: dict):
    assert set(out) == set(HOSTILE)
    slow = {k: round(dt, 2) for k, (_, dt) in out.items() if dt >= BOUND_S}
    assert slow == {}, slow
    credited = {k for k, (r, _) in out.items() if r == 1.0}
    assert credited == CREDITED


def test_bounded_in_process():
    out = {}
    _score_all(out)
    _check(out)


def test_bounded_from_a_thread():
    out = {}
    t = threading.Thread(target=_score_all, args=(out,), daemon=True)
    t.start()
    t.join(timeout=len(HOSTILE) * BOUND_S + 120)
    assert not t.is_alive(), "math_accuracy hung in a thread"
    _check(out)


def _child(q):
    out = {}
    _score_all(out)
    q.put(out)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_bounded_from_a_daemonic_worker(method):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    ctx = mp.get_context(method)
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,), daemon=True)
    p.start()
    try:
        out = q.get(timeout=len(HOSTILE) * BOUND_S + 180)
    finally:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    _check(out)
