"""Server mode on CPU: a ``grpo.rollout.server`` process and the ServerEngine client."""
import copy
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo.config import load_config
from grpo.data import apply_template
from grpo.policy import build_batch, load_policy, score
from grpo.rollout.base import SamplingParams
from grpo.rollout.server import ServerEngine
from grpo.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
PROMPT = apply_template("r1_zero_tiny", "What is 2+3?")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    port = _free_port()
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "grpo.rollout.server", "--model", str(tiny_model_dir),
                             "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def client(server, tiny_model_dir):
    url, proc = server
    tok, policy = load_policy(str(tiny_model_dir))
    policy.eval()
    engine = ServerEngine(policy, tok, url=url, wait_s=300)
    assert proc.poll() is None, "server exited"
    return tok, policy, engine


def _policy_lp(policy, tok, P, C):
    with torch.no_grad():
        lp, _ = score(policy, build_batch(P, C, tok.pad_token_id))
    return [lp[i, :len(c)].tolist() for i, c in enumerate(C)]


def _max_diff(a, b):
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def test_generate_over_http(client):
    tok, policy, engine = client
    groups = engine.generate([PROMPT, PROMPT + " "], SamplingParams(n=3, max_new_tokens=12))
    assert len(groups) == 2 and all(len(g.completions) == 3 for g in groups)
    assert groups[0].prompt_ids == tok(PROMPT).input_ids
    P = [g.prompt_ids for g in groups for _ in g.completions]
    C = [c.token_ids for g in groups for c in g.completions]
    for c in (c for g in groups for c in g.completions):
        assert len(c.logprobs) == len(c.token_ids) and c.finish_reason in ("stop", "length")
    assert _max_diff([c.logprobs for g in groups for c in g.completions], _policy_lp(policy, tok, P, C)) < 1e-3


def test_weight_update_over_http(client):
    tok, policy, engine = client
    P = [tok(PROMPT).input_ids]
    C = [tok("<think>2+3=5</think> <answer>5</answer>").input_ids + [tok.eos_token_id]]
    before = engine.score(P, C)
    new = copy.deepcopy(policy)
    torch.manual_seed(2)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(0.05 * torch.randn_like(p))
    engine.chunk_bytes = 1 << 20            # several chunks: exercises buffering on the server
    engine.update_weights(new.named_parameters())
    after = engine.score(P, C)
    assert _max_diff(after, _policy_lp(new, tok, P, C)) < 1e-3
    assert _max_diff(after, before) > 0.1


def test_training_steps_with_the_server_engine(client, tiny_overrides):
    tok, _, engine = client
    length_reward = "rewards=[{name: overlong_penalty, kwargs: {max_len: 32, cache_len: 32}}]"
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml",
                      tiny_overrides + ["rollout.engine=hf", "train.steps=2", length_reward])
    trainer = Trainer(cfg)
    # make_engine has no "server" choice yet: swap the engine in, as a recipe option would.
    trainer.engine = ServerEngine(trainer.policy, trainer.tok, url=engine.url)   # pushes its weights
    trainer.train()
    P = [tok(PROMPT).input_ids]
    C = [tok("<think>2+3=5</think> <answer>5</answer>").input_ids + [tok.eos_token_id]]
    assert _max_diff(trainer.engine.score(P, C), _policy_lp(trainer.policy, tok, P, C)) < 1e-3


def test_broadcast_weight_sync_with_overlap(server, tiny_overrides):
    """rollout.weight_sync=broadcast: weights go by a gloo broadcast (NCCL on GPU) instead of
    HTTP; with rollout.overlap the server samples the next batch while the trainer updates."""
    import json
    url, _ = server
    length_reward = "rewards=[{name: overlong_penalty, kwargs: {max_len: 32, cache_len: 32}}]"
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml", tiny_overrides + [
        "rollout.engine=server", f"rollout.server_url={url}", "rollout.weight_sync=broadcast",
        f"rollout.broadcast_port={_free_port()}", "rollout.overlap=true", "train.steps=3", length_reward])
    trainer = Trainer(cfg)
    assert trainer.engine.channel is not None and trainer.engine.channel.backend == "gloo"
    tok = trainer.tok
    P = [tok(PROMPT).input_ids]
    C = [tok("<think>2+3=5</think> <answer>5</answer>").input_ids + [tok.eos_token_id]]
    before = trainer.engine.score(P, C)
    run = trainer.train()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["rollout/stale_steps"] for r in rows] == [0, 1, 1]
    after = trainer.engine.score(P, C)
    assert _max_diff(after, _policy_lp(trainer.policy, tok, P, C)) < 1e-3
    assert _max_diff(after, before) > 1e-2, "training (or the broadcast) changed nothing"
    trainer.engine.channel.close()
