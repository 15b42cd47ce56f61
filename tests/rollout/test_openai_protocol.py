"""OpenAIEngine against an in-process fake of vLLM's OpenAI + RL routes (default tier: no
vLLM). The fake receives the weights over the same gloo group as vLLM's workers do (it is
rank 1), so these tests pin the protocol: the order of the RL calls, the tensors that
arrive, the sampling fields sent, the key, and one-line errors."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from grpo.model.policy import load_policy
from grpo.rollout import http
from grpo.rollout.base import SamplingParams
from grpo.rollout.openai import OpenAIEngine
from grpo.rollout.transport import WeightChannel

KEY = "k-123"


class FakeVLLM:
    """/health, /v1/models, /v1/completions and the RL routes; ``rl=False``: a server
    started without VLLM_SERVER_DEV_MODE (its RL routes answer 404)."""

    def __init__(self, rl: bool = True, key: str | None = KEY):
        self.rl, self.key = rl, key
        self.calls, self.bodies, self.received, self.channel = [], [], {}, None
        self.version = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                fake.handle(self, None)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                fake.handle(self, json.loads(self.rfile.read(n) or b"{}"))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def handle(self, h, body):
        path = h.path
        if path.startswith("/v1") and self.key and h.headers.get("Authorization") != f"Bearer {self.key}":
            return http.reply_json(h, 401, {"error": "Unauthorized"})
        if not self.rl and not path.startswith(("/v1", "/health")):
            return http.reply_json(h, 404, {"detail": "Not Found"})
        self.calls.append(path.split("?")[0] if path != "/pause?mode=keep" else path)
        self.bodies.append(body)
        return http.reply_json(h, 200, self.answer(path, body))

    def answer(self, path, body):
        if path == "/v1/models":
            return {"data": [{"id": "fake-model"}]}
        if path == "/v1/completions":
            if body.get("prompt_logprobs") is not None:   # score()
                return {"choices": [{"prompt_logprobs": [None] + [{str(t): {"logprob": -0.5}} for t in body["prompt"][1:]]}]}
            return {"choices": [{"index": i, "token_ids": [7, 8], "finish_reason": "length",
                                 "logprobs": {"token_logprobs": [-1.0, -2.0]}} for i in range(body["n"])]}
        if path == "/get_world_size":
            return {"world_size": 1}
        if path == "/init_weight_transfer_engine":
            info = body["init_info"]
            self.channel = WeightChannel(info["host"], info["port"], info["rank_offset"], backend="gloo",
                                         world_size=info["world_size"], timeout_s=60)
        if path == "/update_weights":
            meta = body["update_info"]["meta"]
            self.received = {n: t.clone() for n, t in self.channel.receive(meta)}
        if path == "/finish_weight_update":
            self.version = body["weight_version"]
        if path == "/shutdown_weight_transfer_engine" and self.channel:
            self.channel.close()
        return {}

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def fake():
    f = FakeVLLM()
    yield f
    f.close()


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_policy(str(tiny_model_dir))


def test_weights_go_in_vllms_rl_order_and_arrive_equal(fake, tiny):
    tok, policy = tiny
    engine = OpenAIEngine(policy, tok, url=fake.url + "/v1", token=KEY)
    try:
        rl = [c for c in fake.calls if not c.startswith("/v1") and c != "/health"]
        assert rl == ["/get_world_size", "/init_weight_transfer_engine", "/pause?mode=keep", "/start_weight_update",
                      "/update_weights", "/finish_weight_update", "/resume"]
        sent = dict(policy.named_parameters())
        assert set(fake.received) == set(sent)
        assert all(torch.equal(fake.received[n], p.detach()) for n, p in sent.items())
        assert fake.version == "1" and engine.weight_version == 1
        moved = {n: p.detach() + 1 for n, p in policy.named_parameters()}
        engine.update_weights(moved.items())
        assert fake.version == "2" and all(torch.equal(fake.received[n], t) for n, t in moved.items())
    finally:
        engine.close()
    assert fake.calls[-1] == "/shutdown_weight_transfer_engine"


def test_every_sampling_field_is_sent_and_answers_parse(fake, tiny):
    tok, policy = tiny
    engine = OpenAIEngine(policy, tok, url=fake.url, token=KEY, sync_weights=False)
    try:
        groups = engine.generate(["a b", "c"], SamplingParams(n=3, max_new_tokens=2, temperature=0.7, top_p=0.9))
        assert [len(g.completions) for g in groups] == [3, 3]
        assert groups[0].prompt_ids == tok("a b").input_ids
        c = groups[1].completions[0]
        assert c.token_ids == [7, 8] and c.logprobs == [-1.0, -2.0] and c.finish_reason == "length"
        sent = [b for p, b in zip(fake.calls, fake.bodies) if p == "/v1/completions"]
        # Requests go concurrently (one per prompt): find "a b"'s by its token ids.
        assert sorted(b["prompt"] for b in sent) == sorted([tok("a b").input_ids, tok("c").input_ids])
        body = next(b for b in sent if b["prompt"] == tok("a b").input_ids)
        # A field left out would take the served model's generation_config default.
        assert {k: body[k] for k in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty",
                                     "presence_penalty", "frequency_penalty", "n", "logprobs")} == {
            "temperature": 0.7, "top_p": 0.9, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0,
            "presence_penalty": 0.0, "frequency_penalty": 0.0, "n": 3, "logprobs": 0}
        assert body["return_token_ids"] is True
        assert engine.score([[1, 2]], [[3, 4]]) == [[-0.5, -0.5]]
        with pytest.raises(RuntimeError, match="sync_weights=False"):
            engine.update_weights(policy.named_parameters())
    finally:
        engine.close()


def test_a_wrong_key_is_one_line_naming_the_route(fake, tiny):
    tok, policy = tiny
    with pytest.raises(http.ServerError, match=r"/v1/models: HTTP 401") as e:
        OpenAIEngine(policy, tok, url=fake.url, token="wrong", sync_weights=False)
    assert "\n" not in str(e.value)


def test_a_server_without_rl_routes_says_how_to_start_one(tiny):
    tok, policy = tiny
    f = FakeVLLM(rl=False)
    try:
        with pytest.raises(http.ServerError, match="VLLM_SERVER_DEV_MODE=1.*grpo_gloo") as e:
            OpenAIEngine(policy, tok, url=f.url, token=KEY)
        assert "\n" not in str(e.value) and "404" in str(e.value)
    finally:
        f.close()
