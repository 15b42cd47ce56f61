"""Typed reference handling and the recipe's accuracy reward."""
import pytest
import torch

from grpo.config import ConfigError, load_config
from grpo.run.metrics import accuracy_reward
from grpo.train.reference import AdapterOff, FrozenCopy, load_reference

RECIPE = "recipes/tiny/r1_zero.yaml"


def test_reference_kind_follows_the_recipe(tiny_overrides):
    base = load_config(RECIPE, tiny_overrides + ["algorithm.beta=0", "algorithm.track_kl=false"])
    assert load_reference(base, policy=None) is None                       # beta 0, no tracking: none loaded
    lora = load_config(RECIPE, tiny_overrides + ["algorithm.beta=0.04", "model.lora={r: 4}"])
    sentinel = object()
    ref = load_reference(lora, policy=sentinel)
    assert isinstance(ref, AdapterOff) and ref.policy is sentinel           # no second copy for LoRA
    full = load_config(RECIPE, tiny_overrides + ["algorithm.track_kl=true"])
    ref = load_reference(full, policy=None, prepare=lambda m: ("prepared", m))
    assert isinstance(ref, FrozenCopy) and ref.model[0] == "prepared"
    assert not any(p.requires_grad for p in ref.model[1].parameters())


def test_frozen_copy_scores_like_the_model_it_holds(tiny_overrides):
    from grpo.model.policy import build_batch, load_policy, score_all
    cfg = load_config(RECIPE, tiny_overrides + ["algorithm.track_kl=true"])
    ref = load_reference(cfg, policy=None)
    tok, model = load_policy(cfg.model.path, trainable=False)
    batch = build_batch([[1, 2, 3], [4, 5]], [[6, 7], [8, 9, 10]], tok.pad_token_id, group=[0, 1])
    t = cfg.train
    want = score_all(model, batch, t.micro_batch_size, t.micro_batch_tokens, t.share_prompt)
    assert torch.allclose(ref.logprobs(batch, t), want)


@pytest.mark.parametrize("names, chosen, want", [
    (["think_format", "math_accuracy"], None, "math_accuracy"),
    (["think_format"], None, None),                                         # never a format reward
    ([], None, None),
    (["think_format", "code_tests", "accuracy"], None, "code_tests"),
    (["think_format", "judge"], "judge", "judge"),
    (["math_accuracy", "judge"], "judge", "judge"),                         # the recipe's choice wins
])
def test_accuracy_reward(names, chosen, want):
    assert accuracy_reward(names, chosen) == want


def test_unknown_accuracy_reward_is_a_one_line_error(tiny_overrides):
    from grpo.train.trainer import Trainer
    cfg = load_config(RECIPE, tiny_overrides + ["accuracy_reward=math_acuracy"])
    with pytest.raises(ConfigError, match="accuracy_reward 'math_acuracy' is not one of the recipe's rewards"):
        Trainer(cfg)
