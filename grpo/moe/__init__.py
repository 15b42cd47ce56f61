"""Expert parallelism for MoE models: FP8 dispatch / BF16 combine + aux-loss-free balancing.

Follows DeepSeek-V3 (arXiv 2412.19437): tokens travel to the ranks that own
their experts as e4m3 FP8 with one fp32 scale per token per 128 channels
(``(H + 4*H/128) / 2H`` = 0.516x the bytes of bf16 for H a multiple of 128), come
back in BF16, and routing can be balanced by a per-expert selection bias
instead of an auxiliary loss.

Entry points:

* :func:`apply_expert_parallel` - swap the MoE blocks of a transformers model
  (Qwen2-MoE, Qwen3-MoE, Mixtral, OLMoE, DeepSeek-V2, DeepSeek-V3) for
  :class:`ExpertParallelMoE`;
* :func:`dispatch` / :func:`combine` - the differentiable all-to-alls (``dedup``:
  one row per token per destination rank);
* :mod:`grpo.moe.experts` - local experts as grouped GEMMs;
* :mod:`grpo.moe.replay` - routing replay (R3): record the sampler's experts, force
  them in training;
* :func:`quantize_fp8` / :func:`dequantize_fp8` - the 1x128 block quantizer;
* :class:`BalancingBias`, :class:`NativeBias`, :func:`update_balancing_biases` -
  aux-loss-free balancing (DeepSeek-V3's own ``e_score_correction_bias`` when the gate has one);
* :func:`expert_parallel_groups`, :func:`expert_parameter_names`,
  :func:`allreduce_expert_grads`, :func:`clip_grad_norm_ep_`,
  :func:`gather_expert_state_dict` - wiring into a DDP trainer (groups, grad
  sync, clipping, full checkpoints / rollout-engine weight sync).

What runs where:

* CPU (tested here): everything, with the gloo backend and the pure-torch
  quantizer - forward/backward parity with the unsharded block on 2 and 4
  processes, byte accounting, balancing.  ``import grpo.moe`` never needs
  triton or CUDA.
* GPU (written, **untested here: no GPU on the development machine**): the
  NCCL backend (same code path; the payload is raw uint8 bytes so any
  backend works) and the fused gather+quantize Triton kernel
  (``grpo.moe._triton_quant``), used automatically for CUDA tensors on sm89+
  when triton is importable; ``tests/moe/test_moe_gpu.py`` (``-m gpu``)
  checks it against the torch path.
"""

from grpo.moe.balance import NativeBias
from grpo.moe.dispatch import COMM_STATS, CommStats, DispatchHandle, bytes_per_row, combine, dispatch
from grpo.moe.layer import (
    SUPPORTED_BLOCKS,
    BalancingBias,
    ExpertParallelMoE,
    allreduce_expert_grads,
    apply_expert_parallel,
    clip_grad_norm_ep_,
    gather_expert_state_dict,
    expert_parallel_groups,
    expert_parameter_names,
    update_balancing_biases,
)
from grpo.moe.quant import FP8_DTYPE, FP8_MAX, dequantize_fp8, quantize_fp8, quantize_fp8_torch, triton_available

__all__ = [
    "COMM_STATS",
    "CommStats",
    "DispatchHandle",
    "bytes_per_row",
    "combine",
    "dispatch",
    "SUPPORTED_BLOCKS",
    "BalancingBias",
    "NativeBias",
    "ExpertParallelMoE",
    "allreduce_expert_grads",
    "apply_expert_parallel",
    "clip_grad_norm_ep_",
    "gather_expert_state_dict",
    "expert_parallel_groups",
    "expert_parameter_names",
    "update_balancing_biases",
    "FP8_DTYPE",
    "FP8_MAX",
    "dequantize_fp8",
    "quantize_fp8",
    "quantize_fp8_torch",
    "triton_available",
]
