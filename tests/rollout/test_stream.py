"""AsyncStream (rollout.fully_async) over a fake engine whose requests finish when the test
says: bounded staleness, weight versions per sample, nothing dropped, errors re-raised."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from grpo.rollout.base import Completion, SamplingParams
from grpo.rollout.stream import AsyncStream

SP = SamplingParams(n=2, max_new_tokens=4)


class FakeEngine:
    def __init__(self):
        self.weight_version = 5                     # the engine's own numbering
        self.pool = ThreadPoolExecutor(8)
        self.gates: dict[str, threading.Event] = {}
        self.fail: set[str] = set()
        self.sent: dict[str, threading.Event] = {}

    def _event(self, d, key):
        return d.setdefault(key, threading.Event())

    def encode(self, prompts):
        return [[ord(c) for c in p] for p in prompts]

    def complete(self, ids, sp):
        key = "".join(map(chr, ids))
        self._event(self.sent, key).set()          # the request is with the server now
        self._event(self.gates, key).wait(10)
        if key in self.fail:
            raise RuntimeError(f"request {key} failed")
        return [Completion(key, [1, 2], [-1.0, -1.0], "length") for _ in range(sp.n)]

    def release(self, *keys):
        for k in keys:
            self._event(self.gates, k).set()

    def wait_sent(self, *keys):
        for k in keys:
            assert self._event(self.sent, k).wait(10)


def test_versions_and_staleness_follow_in_flight_updates():
    eng = FakeEngine()
    s = AsyncStream(eng, max_staleness=2)
    s.start(0, ["a", "b"], SP, version=0)        # engine 5 = trainer 0
    s.start(1, ["c"], SP, version=0)
    eng.wait_sent("a", "b", "c")
    with pytest.raises(RuntimeError, match="2 steps of rollouts are already in flight"):
        s.start(2, ["d"], SP, version=0)
    eng.release("a")
    s._steps[0][4][0].result()                    # a's answer is in before the update
    eng.weight_version = 6                        # an update lands while b and c are in flight
    eng.release("b")
    groups, secs, oldest = s.take(0)
    assert [g.prompt for g in groups] == ["a", "b"] and secs >= 0 and oldest == 0
    comps = [c for g in groups for c in g.completions]
    assert [c.versions for c in comps] == [(5, 5), (5, 5), (5, 6), (5, 6)]
    assert s.metrics == {"rollout/staleness_mean": 1.0, "rollout/staleness_max": 1,
                         "rollout/inflight_update_frac": 0.5}
    s.start(2, ["d"], SP, version=1)              # trainer 1 = engine 6
    eng.wait_sent("d")
    eng.weight_version = 7
    eng.release("c", "d")
    assert s.take(1)[2] == 0 and s.metrics["rollout/staleness_max"] == 2
    groups, _, oldest = s.take(2)
    assert oldest == 1 and groups[0].completions[0].versions == (6, 7)
    assert not s.busy
    s.close()


def test_taking_a_step_never_started_drains_the_rest():
    eng = FakeEngine()
    s = AsyncStream(eng, max_staleness=1)
    s.start(3, ["x"], SP)
    eng.release("x")
    assert s.take(4) is None and not s.busy and s.metrics["rollout/staleness_max"] == 0


def test_a_failed_request_is_re_raised_by_take():
    eng = FakeEngine()
    eng.fail.add("bad")
    s = AsyncStream(eng, max_staleness=1)
    s.start(0, ["ok", "bad"], SP)
    eng.release("ok", "bad")
    with pytest.raises(RuntimeError, match="request bad failed"):
        s.take(0)


def test_max_staleness_below_one_is_refused():
    with pytest.raises(ValueError, match="max_staleness must be >= 1"):
        AsyncStream(FakeEngine(), max_staleness=0)
