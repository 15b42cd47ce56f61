"""Server mode on CPU: a ``grpo.rollout.server`` process and the ServerEngine client."""
import subprocess
import sys

import pytest

from grpo.config import load_config
from grpo.data import apply_template
from grpo.model.policy import load_policy
from grpo.rollout.base import SamplingParams
from grpo.rollout.server import ServerEngine
from grpo.train.trainer import Trainer

from _helpers import free_port, stop, LENGTH_REWARD, ROOT, engine_lag, max_diff, metrics, perturbed, policy_logprobs, probe

PROMPT = apply_template("r1_zero_tiny", "What is 2+3?")


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "grpo.rollout.server", "--model", str(tiny_model_dir),
                             "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def client(server, tiny_model_dir):
    url, proc = server
    tok, policy = load_policy(str(tiny_model_dir))
    policy.eval()
    engine = ServerEngine(policy, tok, url=url, wait_s=300)
    assert proc.poll() is None, "server exited"
    return tok, policy, engine


def test_generate_over_http(client):
    tok, policy, engine = client
    groups = engine.generate([PROMPT, PROMPT + " "], SamplingParams(n=3, max_new_tokens=12))
    assert len(groups) == 2 and all(len(g.completions) == 3 for g in groups)
    assert groups[0].prompt_ids == tok(PROMPT).input_ids
    P = [g.prompt_ids for g in groups for _ in g.completions]
    C = [c.token_ids for g in groups for c in g.completions]
    for c in (c for g in groups for c in g.completions):
        assert len(c.logprobs) == len(c.token_ids) and c.finish_reason in ("stop", "length")
    assert max_diff([c.logprobs for g in groups for c in g.completions], policy_logprobs(policy, tok, P, C)) < 1e-3


def test_weight_update_over_http(client):
    tok, policy, engine = client
    P, C = probe(tok)
    before = engine.score(P, C)
    new = perturbed(policy, 2)
    engine.chunk_bytes = 1 << 20            # several chunks: exercises buffering on the server
    engine.update_weights(new.named_parameters())
    after = engine.score(P, C)
    assert max_diff(after, policy_logprobs(new, tok, P, C)) < 1e-3
    assert max_diff(after, before) > 0.1


def test_training_steps_with_the_server_engine(client, tiny_overrides):
    tok, _, engine = client
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml",
                      tiny_overrides + ["rollout.engine=hf", "train.steps=2", LENGTH_REWARD])
    trainer = Trainer(cfg)
    # make_engine has no "server" choice yet: swap the engine in, as a recipe option would.
    trainer.engine = ServerEngine(trainer.policy, trainer.tok, url=engine.url)   # pushes its weights
    trainer.train()
    P, C = probe(tok)
    assert engine_lag(trainer, P, C) < 1e-3


def test_broadcast_weight_sync_with_overlap(server, tiny_overrides):
    """rollout.weight_sync=broadcast: weights go by a gloo broadcast (NCCL on GPU) instead of
    HTTP; with rollout.overlap the server samples the next batch while the trainer updates."""
    url, _ = server
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml", tiny_overrides + [
        "rollout.engine=server", f"rollout.server_url={url}", "rollout.weight_sync=broadcast",
        f"rollout.broadcast_port={free_port()}", "rollout.overlap=true", "train.steps=3", LENGTH_REWARD])
    trainer = Trainer(cfg)
    assert trainer.engine.channel is not None and trainer.engine.channel.backend == "gloo"
    tok = trainer.tok
    P, C = probe(tok)
    before = trainer.engine.score(P, C)
    run = trainer.train()
    rows = metrics(run)
    assert [r["rollout/stale_steps"] for r in rows] == [0, 1, 1]
    after = trainer.engine.score(P, C)
    assert engine_lag(trainer, P, C) < 1e-3
    assert max_diff(after, before) > 1e-2, "training (or the broadcast) changed nothing"
    trainer.engine.channel.close()
