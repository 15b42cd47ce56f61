"""The frozen reference policy the KL term is measured against (GRPO eq. 2).

Two kinds, one interface (``logprobs``): a separate frozen copy of the initial model, or,
for a LoRA policy, the policy itself with its adapter switched off (the base weights under
the adapter are the initial model, so no second copy is loaded). With ``beta = 0`` and
``track_kl`` off there is no reference at all (``load_reference`` returns None).
"""
from __future__ import annotations

import torch

from ..model.policy import load_policy, score_all, to_device


class Reference:
    """Per-token log-probs ``[N, C]`` of a batch under the reference policy."""

    def logprobs(self, batch, train) -> torch.Tensor:
        raise NotImplementedError


class FrozenCopy(Reference):
    def __init__(self, model):
        self.model = model

    def logprobs(self, batch, train) -> torch.Tensor:
        return score_all(self.model, batch, train.micro_batch_size, train.micro_batch_tokens, train.share_prompt)


class AdapterOff(Reference):
    def __init__(self, policy):
        self.policy = policy

    def logprobs(self, batch, train) -> torch.Tensor:
        with self.policy.disable_adapter():
            return score_all(self.policy, batch, train.micro_batch_size, train.micro_batch_tokens,
                             train.share_prompt)


def load_reference(cfg, policy, prepare=lambda m: m) -> Reference | None:
    """The reference a recipe needs: None when the KL term is neither used nor tracked
    (beta=0, as R1-Zero, DAPO and Dr. GRPO; saves a model's memory). ``prepare``: the
    parallel wrapper the policy got (Parallel.prepare).

    >>> from grpo.config import load_config
    >>> load_reference(load_config(None, ["algorithm.beta=0"]), policy=None) is None
    True
    >>> type(load_reference(load_config(None, ["algorithm.beta=0.04", "model.lora={r: 4}"]), policy=None)).__name__
    'AdapterOff'
    """
    a, m = cfg.algorithm, cfg.model
    if a.beta == 0 and not a.track_kl:
        return None
    if m.lora:
        return AdapterOff(policy)
    return FrozenCopy(prepare(to_device(load_policy(m.path, m.dtype, None, trainable=False)[1])))
