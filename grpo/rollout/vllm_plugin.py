"""vLLM plugin (entry point group ``vllm.general_plugins``): registers the ``grpo_gloo``
weight-transfer engine (vllm_gloo.py) in every vLLM process, lazily: nothing is imported
until a server is started with ``--weight-transfer-config '{"backend":"grpo_gloo"}'``."""
from __future__ import annotations


def register() -> None:
    from vllm.distributed.weight_transfer import WeightTransferEngineFactory as F
    if "grpo_gloo" not in getattr(F, "_registry", {}):   # idempotent: a forked process inherits it
        F.register_engine("grpo_gloo", "grpo.rollout.vllm_gloo", "GlooWeightTransferEngine")
