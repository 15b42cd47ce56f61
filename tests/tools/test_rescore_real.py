"""The rescoring test on the real model (``pytest -m real``): SmolLM2-135M-Instruct's BPE
merges across a turn/observation boundary, so decoding a trajectory and encoding it again
gives other ids; the multi-turn engine's ids are the sampled ones and rescore exactly."""
import sys

import pytest
import torch
from tools_fixtures import ROOT, observations_env, trajectory_logprobs

from grpo.rollout.base import SamplingParams
from grpo.rollout.hf import HFEngine
from grpo.rollout.multiturn import MultiTurnEngine, with_rows

pytestmark = pytest.mark.real
OBS = ["..\n```output\n42\n```\n", "\n\nSo"]   # merge with a turn ending "." or "\n"


Two = observations_env(OBS, stop=[".", "\n"])      # short turns


@pytest.fixture(scope="module")
def smollm():
    sys.path.insert(0, str(ROOT / "scripts"))
    from build_real_model import cache_dir
    d = cache_dir()
    if not (d / "model.safetensors").is_file():
        pytest.skip(f"the real model is not built at {d} (scripts/build_real_model.py)")
    from grpo.model.policy import load_policy
    return load_policy(str(d), trainable=False)


def test_real_model_turn_ids_rescore_and_retokenizing_would_drift(smollm):
    tok, model = smollm
    torch.manual_seed(0)
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
               for q in ("What is 6 times 7? Use python.", "Write 2+2 in python.")]
    mt = MultiTurnEngine(HFEngine(model, tok, return_logprobs=True), Two, tok, max_turns=3, max_total_tokens=96)
    groups = mt.generate(with_rows(prompts, [{"prompt": p} for p in prompts]), SamplingParams(n=2, max_new_tokens=16))
    drift = multi = 0
    for g in groups:
        for c in g.completions:
            lp = trajectory_logprobs(model, g.prompt_ids, c.token_ids)
            m = torch.tensor(c.loss_mask, dtype=torch.bool)
            multi += (~m).sum().item() > 0
            torch.testing.assert_close(lp[m], torch.tensor(c.logprobs)[m], atol=5e-4, rtol=0)
            plain = [t for t in c.token_ids if t not in tok.all_special_ids]   # the text has no specials
            drift += tok(c.text, add_special_tokens=False).input_ids != plain
    assert multi >= 3
    assert drift > 0      # re-encoding the text would have trained on other tokens than were sampled
