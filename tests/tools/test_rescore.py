"""Multi-turn ids are exactly the sampled ones: the hf engine's per-turn log-probs equal
one forward over the whole trajectory (prompt, turns, observations), and the tokenizer is
never asked to encode sampled text (no decode -> re-encode between turns)."""
import torch
from tools_fixtures import observations_env, tiny_dir, tiny_tok, trajectory_logprobs  # noqa: F401

from grpo.model.policy import build_batch, load_policy, score
from grpo.rollout.base import SamplingParams
from grpo.rollout.hf import HFEngine
from grpo.rollout.multiturn import MultiTurnEngine, with_rows

OBS = ["<result>12</result> ", " = 5 + 6 <calc>"]


TwoObservations = observations_env(OBS, stop=["</answer>"])


class SpyTok:
    """The tokenizer, recording every text it is asked to encode."""

    def __init__(self, tok):
        object.__setattr__(self, "tok", tok)
        object.__setattr__(self, "encoded", [])

    def __call__(self, text, *a, **kw):
        self.encoded += text if isinstance(text, list) else [text]
        return self.tok(text, *a, **kw)

    def encode(self, text, *a, **kw):
        self.encoded.append(text)
        return self.tok.encode(text, *a, **kw)

    def __getattr__(self, name):
        return getattr(self.tok, name)

    def __setattr__(self, name, value):
        setattr(self.tok, name, value)


def test_trajectory_ids_rescore_to_the_recorded_logprobs(tiny_dir):
    torch.manual_seed(0)
    tok, model = load_policy(str(tiny_dir), trainable=False)
    spy = SpyTok(tok)
    prompts = ["12+3=", "7+8+19="]       # different lengths: left padding in the batch
    mt = MultiTurnEngine(HFEngine(model, spy, return_logprobs=True), TwoObservations, spy,
                         max_turns=3, max_total_tokens=120)
    groups = mt.generate(with_rows(prompts, [{"prompt": p} for p in prompts]),
                         SamplingParams(n=3, max_new_tokens=40))
    comps = [c for g in groups for c in g.completions]
    assert sum(c.tools.turns == 3 for c in comps) >= 3, [(c.tools.turns, c.text) for c in comps]
    # Only prompts and observations were ever tokenized; sampled text never was.
    assert set(spy.encoded) <= set(prompts) | set(OBS), set(spy.encoded) - set(prompts) - set(OBS)
    # One forward per trajectory, no padding: the log-probs of the sampled tokens.
    for g in groups:
        for c in g.completions:
            lp = trajectory_logprobs(model, g.prompt_ids, c.token_ids)
            m = torch.tensor(c.loss_mask, dtype=torch.bool)
            assert m.sum() > 0 and (~m).sum() == sum(len(tok(o, add_special_tokens=False).input_ids)
                                                 for o in OBS[:c.tools.turns - 1])
            torch.testing.assert_close(lp[m], torch.tensor(c.logprobs)[m], atol=2e-4, rtol=0)
    # And the trainer's own batched scoring (build_batch + score) of the same ids.
    batch = build_batch([g.prompt_ids for g in groups for _ in g.completions], [c.token_ids for c in comps],
                        tok.pad_token_id, loss_mask=[c.loss_mask for c in comps])
    with torch.no_grad():
        lp, _ = score(model, batch)
    for i, c in enumerate(comps):
        n = len(c.token_ids)
        m = batch.mask[i, :n].bool()
        assert m.tolist() == [bool(x) for x in c.loss_mask]
        torch.testing.assert_close(lp[i, :n][m], torch.tensor(c.logprobs)[m], atol=2e-4, rtol=0)
