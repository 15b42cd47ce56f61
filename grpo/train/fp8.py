"""FP8 training of dense linear layers with torchao's float8 (H100-class GPUs).

DeepSeek-V3 trains in FP8 with fine-grained scaling; torchao's ``convert_to_float8_training``
swaps ``nn.Linear`` for float8 linears (dynamic per-tensor or rowwise scales) whose matmuls
run on Hopper/Ada FP8 tensor cores. Elsewhere it refuses with a one-line reason rather
than silently training in bf16. Untested here: the development machine has no GPU.
"""
from __future__ import annotations

import importlib.util

import torch

from ..config import ConfigError


def check_fp8_support() -> None:
    """Raise ConfigError saying why FP8 training can't run on this machine."""
    if not torch.cuda.is_available():
        raise ConfigError("model.precision=fp8 needs a CUDA GPU with FP8 tensor cores (H100/H200, "
                          "sm89+); none found: use model.precision=default")
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) < (8, 9):
        raise ConfigError(f"model.precision=fp8 needs compute capability 8.9+ (H100/L4/4090); "
                          f"this GPU is sm{major}{minor}")
    if importlib.util.find_spec("torchao") is None:
        raise ConfigError("model.precision=fp8 needs torchao: pip install torchao")


def enable_fp8_training(model: torch.nn.Module) -> torch.nn.Module:
    """Convert the policy's linear layers (not the LM head: its logits feed log-probs, where
    FP8 rounding would bias the importance ratio) to float8 training."""
    check_fp8_support()
    from torchao.float8 import convert_to_float8_training

    def keep(module: torch.nn.Module, fqn: str) -> bool:
        # float8 matmuls need dims divisible by 16; skip the head and odd-shaped layers.
        if not isinstance(module, torch.nn.Linear) or "lm_head" in fqn:
            return False
        return module.in_features % 16 == 0 and module.out_features % 16 == 0

    convert_to_float8_training(model, module_filter_fn=keep)
    return model
