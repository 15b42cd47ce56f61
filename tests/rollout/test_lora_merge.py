"""The weights a LoRA policy sends to vLLM: the merged model under the base names.

Needs no vLLM: runs in every environment."""
import copy

import pytest
import torch

from grpo.model.policy import load_policy
from grpo.rollout.weights import merged_lora_weights, vllm_weights


@pytest.fixture(scope="module")
def lora_policy(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(0)
    _, base = load_policy(str(tiny_model_dir))
    # init_lora_weights=False: random B, so the adapter changes the weights.
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False,
                     task_type="CAUSAL_LM")
    return get_peft_model(base, cfg)


def test_merged_weights_equal_merge_and_unload(lora_policy):
    sent = dict(merged_lora_weights(lora_policy))
    merged = copy.deepcopy(lora_policy).merge_and_unload()
    expected = dict(merged.named_parameters())
    assert set(sent) == set(expected)                 # base names, no lora_/base_layer
    for name, w in expected.items():
        torch.testing.assert_close(sent[name], w.detach(), rtol=1e-5, atol=1e-6, msg=name)
    # the adapter really changed something, and the policy itself was left untouched
    q = "model.layers.0.self_attn.q_proj.weight"
    base_q = lora_policy.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    assert not torch.allclose(sent[q], base_q)


def test_vllm_weights_strips_wrapper_prefixes():
    t = torch.zeros(2)
    got = dict(vllm_weights(None, [("_orig_mod.model.norm.weight", t), ("module.lm_head.weight", t)]))
    assert set(got) == {"model.norm.weight", "lm_head.weight"}


def test_vllm_weights_uses_lora_merge_for_peft(lora_policy):
    names = [n for n, _ in vllm_weights(lora_policy, lora_policy.named_parameters())]
    assert not any("lora_" in n or "base_layer" in n for n in names)
