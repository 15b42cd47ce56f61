"""What a rollout engine is sent as weights: HF names without wrapper prefixes, LoRA merged.

Shared by the in-process vLLM engine (vllm.py) and the server client (server.py); imports
neither vLLM nor peft until a peft model is met.

>>> _strip("_orig_mod.module.model.norm.weight")
'model.norm.weight'
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch

_PREFIXES = ("_orig_mod.", "module.", "_checkpoint_wrapped_module.", "_fsdp_wrapped_module.")


def _strip(name: str) -> str:
    for p in _PREFIXES:
        name = name.replace(p, "")
    return name


def is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def merged_lora_weights(peft_model) -> Iterator[tuple[str, torch.Tensor]]:
    """The policy's weights with LoRA folded in, under the base model's names.

    ``merge_adapter()``/``unmerge_adapter()`` would round-trip the trainable base weights
    through an add and a subtract every step (drift); computing ``W + delta`` per layer
    leaves the policy untouched and costs one extra weight-sized tensor at a time.
    """
    from peft.tuners.lora import LoraLayer
    base = peft_model.get_base_model()
    covered = set()
    for mname, mod in base.named_modules():
        if not isinstance(mod, LoraLayer):
            continue
        layer = mod.get_base_layer()
        w = layer.weight.detach()
        for a in mod.active_adapters:
            if getattr(mod, "use_dora", {}).get(a):   # DoRA rescales W: delta alone is wrong
                raise NotImplementedError("DoRA adapters cannot be sent to vLLM merged yet")
            if a in mod.lora_A and not mod.merged:
                w = w + mod.get_delta_weight(a).detach().to(w.dtype)
        yield _strip(f"{mname}.weight"), w
        covered.add(f"{mname}.base_layer.weight")
        if getattr(layer, "bias", None) is not None:
            yield _strip(f"{mname}.bias"), layer.bias.detach()
            covered.add(f"{mname}.base_layer.bias")
    for name, p in base.named_parameters():
        if name in covered or "lora_" in name:
            continue
        # modules_to_save keeps a trained copy under ``modules_to_save.default``.
        if ".original_module." in name:
            continue
        name = name.replace(".modules_to_save.default", "")
        yield _strip(name.replace(".base_layer", "")), p.detach()


def vllm_weights(model, named_tensors: Iterable[tuple[str, torch.Tensor]]):
    """What to send to vLLM: merged LoRA weights for a peft policy (its named_parameters
    hold adapter factors vLLM cannot use), else the given tensors with wrapper prefixes cut."""
    if model is not None and is_peft(model):
        return merged_lora_weights(model)
    return ((_strip(n), t.detach()) for n, t in named_tensors)
