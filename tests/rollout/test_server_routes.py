"""The server's route table, without HTTP: status codes for unknown endpoints, missing
fields, bad bodies and failing engines, and that the server keeps answering after each."""
import json

from grpo.rollout.base import Completion, Group
from grpo.rollout.server import _Service


class FakeEngine:
    weight_version = 0

    def __init__(self):
        self.slept = 0

    def generate(self, prompts, sp):
        return [Group(p, [0], [Completion("x" * sp.max_new_tokens, [1] * sp.max_new_tokens, None, "length")] * sp.n)
                for p in prompts]

    def score(self, prompt_ids, completion_ids):
        raise RuntimeError("engine broke")

    def sleep(self):
        self.slept += 1


def _req(svc, method, path, obj=None):
    return svc.handle(method, path, b"" if obj is None else json.dumps(obj).encode(), {})


def test_known_routes_answer():
    svc = _Service(FakeEngine())
    assert _req(svc, "GET", "/health") == (200, {"ok": True, "weight_version": 0})
    status, out = _req(svc, "POST", "/generate", {"prompts": ["a", "b"], "sampling": {"n": 2, "max_new_tokens": 3,
                                                                                    "not_a_field": 1}})
    assert status == 200 and len(out["groups"]) == 2 and len(out["groups"][0]["completions"]) == 2
    assert out["groups"][0]["completions"][0]["text"] == "xxx"
    assert _req(svc, "POST", "/sleep") == (200, {"ok": True}) and svc.engine.slept == 1


def test_unknown_endpoint_or_method_is_404():
    svc = _Service(FakeEngine())
    for method, path in [("GET", "/nope"), ("POST", "/health"), ("GET", "/generate"), ("POST", "/generate/x"),
                         ("POST", "")]:
        status, out = _req(svc, method, path, {})
        assert status == 404 and f"{method} {path}" in out["error"]


def test_missing_field_is_400_not_404():
    svc = _Service(FakeEngine())
    status, out = _req(svc, "POST", "/generate", {"sampling": {}})
    assert status == 400 and "prompts" in out["error"]
    status, out = _req(svc, "POST", "/update_weights_broadcast", {})
    assert status == 500 and "init_broadcast first" in out["error"]


def test_bad_bodies_and_engine_errors_are_500_and_the_server_keeps_serving():
    svc = _Service(FakeEngine())
    for body in (b"{not json", b"[1, 2]", b"null"):
        status, out = svc.handle("POST", "/generate", body, {})
        assert status in (400, 500) and out["error"]
    status, out = _req(svc, "POST", "/score", {"prompt_ids": [[1]], "completion_ids": [[2]]})
    assert status == 500 and "engine broke" in out["error"]
    status, out = _req(svc, "POST", "/wake")          # the fake has no wake: an error, not a crash
    assert status == 500 and "wake" in out["error"]
    assert _req(svc, "GET", "/health")[0] == 200


def test_init_broadcast_failure_is_reported_at_the_update():
    svc = _Service(FakeEngine())
    assert _req(svc, "POST", "/init_broadcast", {"host": "127.0.0.1"})[0] == 200   # no port: fails in the thread
    status, out = _req(svc, "POST", "/update_weights_broadcast", {"meta": []})
    assert status == 500 and "joining the weight group failed" in out["error"] and "port" in out["error"]


def test_route_table_matches_the_documented_endpoints():
    import re

    import grpo.rollout.server as server
    doc = server.__doc__
    documented = {(m, p) for m, p in re.findall(r"^\s+(GET|POST)\s+(/\w+)", doc, re.M)}
    documented |= {("POST", p) for p in re.findall(r", (/\w+)", doc)}          # "POST /sleep, /wake"
    assert documented == set(_Service.ROUTES)
