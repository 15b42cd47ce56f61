"""recipes/tiny/tools.yaml on real vLLM: the calculator's multi-turn episodes, sampled turn by
turn with ``generate_ids`` (one TokensPrompt per episode, nothing re-tokenized), rescore in
one forward to the log-probs vLLM recorded, and observations carry loss mask 0."""
import re

import torch

from grpo.config import load_config
from grpo.envs.wiring import episode_prompts
from grpo.model.policy import build_batch
from grpo.rollout.multiturn import MultiTurnEngine
from grpo.rollout.vllm import VLLMEngine
from grpo.train.trainer import Trainer

from _helpers import ROOT, metrics, trajectory_logprobs

OBSERVATION = re.compile(r"(<result>.*?</result>)+", re.S)


def _episodes(trainer, n_rows: int = 8):
    rows = trainer.rows[:n_rows]
    prompts = episode_prompts(trainer.cfg, [trainer._prompt(r["prompt"]) for r in rows], rows)
    return trainer.engine.generate(prompts, trainer._sampling())


def _check(trainer, groups) -> int:
    """Every episode's ids rescore to its logprobs; observation spans are masked; returns calls."""
    tok, calls = trainer.tok, 0
    for g in groups:
        for c in g.completions:
            m = torch.tensor(c.loss_mask, dtype=torch.bool)
            assert len(c.loss_mask) == len(c.token_ids) == len(c.logprobs)
            lp = trajectory_logprobs(trainer.policy, g.prompt_ids, c.token_ids)
            torch.testing.assert_close(lp[m], torch.tensor(c.logprobs)[m], atol=1e-3, rtol=0)
            assert all(x == 0.0 for x, k in zip(c.logprobs, c.loss_mask) if not k)
            spans = "".join("|" if k else tok.decode([t]) for t, k in zip(c.token_ids, c.loss_mask))
            observed = [s for s in spans.split("|") if s]
            if observed and not OBSERVATION.fullmatch(observed[-1]):   # cut to fit the episode budget
                assert c.tools.ended == "tokens" and spans.endswith(observed[-1]), (c.tools, observed)
                assert "<result>".startswith(observed[-1]) or observed[-1].startswith("<result>"), observed
                observed = observed[:-1]
            assert all(OBSERVATION.fullmatch(s) for s in observed), observed
            assert len(observed) <= c.tools.calls
            calls += c.tools.calls
            batch = build_batch([g.prompt_ids], [c.token_ids], tok.pad_token_id, loss_mask=[c.loss_mask])
            assert batch.mask[0, :len(c.token_ids)].tolist() == [float(k) for k in c.loss_mask]
    return calls


def test_tool_episodes_on_vllm_rescore_exactly_and_mask_observations(tmp_path):
    cfg = load_config(ROOT / "recipes" / "tiny" / "tools.yaml", [
        f"output.dir={tmp_path}", "output.name=t", "rollout.engine=vllm", "train.steps=3",
        "train.prompts_per_step=4", "rollout.n=8", "output.save_every=100", "output.tensorboard=false",
        "data.num_samples=64", "train.lr=1e-3", "train.warmup_steps=0"])
    trainer = Trainer(cfg)
    assert isinstance(trainer.engine, MultiTurnEngine) and isinstance(trainer.engine.inner, VLLMEngine)
    torch.manual_seed(0)
    calls = _check(trainer, _episodes(trainer))
    assert calls >= 3, "too few tool calls to test the observation masks"
    rows = metrics(trainer.train())
    assert len(rows) == 3 and all(r["tool/turns"] >= 1 for r in rows)
    assert sum(r["tool/calls_per_completion"] for r in rows) > 0
    _check(trainer, _episodes(trainer))       # after training: the engine serves the trained weights
