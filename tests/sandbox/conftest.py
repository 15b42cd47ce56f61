"""Fixtures for the sandbox tests: one Sandbox per isolation mode, host checks."""

from __future__ import annotations

import pytest

import sandbox
from sandbox_helpers import sandbox_pids, wait_until

# Every mode the code can run in; a mode this machine cannot provide is skipped.
MODES = [("bwrap", "zygote"), ("bwrap", "spawn"), ("unshare", "zygote"),
         ("unshare", "spawn"), ("none", "spawn")]


@pytest.fixture(scope="session", params=MODES, ids=lambda m: "-".join(m))
def sb(request) -> sandbox.Sandbox:
    box = sandbox.Sandbox(backend=request.param[0], launch=request.param[1])
    if box.mode() is None:
        why = "; ".join(v[-160:] for v in box.probes.values())
        pytest.skip(f"{'-'.join(request.param)} unavailable here: {why}")
    yield box
    box.close()


@pytest.fixture
def healthy():
    """Call at the end of an attack: nothing left behind, and the sandbox still works."""

    def check(box: sandbox.Sandbox) -> None:
        # Runs return only after their processes are gone; allow a moment
        # for the kernel to reap, but nothing may survive.
        assert wait_until(lambda: not sandbox_pids(), 5.0), f"leftover: {sandbox_pids()}"
        r = box.run("def inc(x):\n    return x + 1", ["assert inc(1) == 2", "assert inc(2) == 3"])
        assert (r.status, r.passed, r.total) == ("ok", 2, 2), r
        assert box.leftover_runs == 0, "the post-run check found something a run left behind"

    return check
