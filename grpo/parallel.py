"""Data and expert parallelism for the trainer, one process per device under ``torchrun``.

Plain single-process runs never touch torch.distributed. Under ``torchrun`` each rank
takes its share of the step's prompts; dense gradients are averaged across ranks (what
DDP does), and with ``parallel.expert: N`` every MoE block is swapped for
``grpo.moe.ExpertParallelMoE`` (FP8 dispatch, BF16 combine; DeepSeek-V3), whose expert
gradients are reduced by ``grpo.moe.allreduce_expert_grads``.

    torchrun --nproc-per-node 2 -m grpo.cli train recipe.yaml --set parallel.expert=2
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .config import ConfigError


class Parallel:
    def __init__(self, cfg):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.expert = cfg.parallel.expert
        self.balance_rate = cfg.parallel.expert_balance_rate
        if self.expert > 1 and self.world < self.expert:
            raise ConfigError(f"parallel.expert={self.expert} needs at least {self.expert} processes: "
                              f"torchrun --nproc-per-node {self.expert} -m grpo.cli train ...")
        if self.balance_rate > 0 and self.expert == 1 and self.world > 1:
            raise ConfigError("parallel.expert_balance_rate needs parallel.expert > 1 with several processes")
        if self.world > 1:
            if cfg.train.prompts_per_step % self.world:
                raise ConfigError(f"train.prompts_per_step={cfg.train.prompts_per_step} must be divisible "
                                  f"by the number of processes ({self.world})")
            if cfg.algorithm.dynamic_sampling:
                # Ranks would run different numbers of micro-batches, and every MoE forward
                # is a collective: they would deadlock.
                raise ConfigError("algorithm.dynamic_sampling is not supported with several processes yet")
            if torch.cuda.is_available():      # one GPU per process, before NCCL starts
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            if not dist.is_initialized():
                dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.ep_group = self.edp_group = None

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: list[int]) -> list[int]:
        """This rank's share of the step's prompts (whole groups stay on one rank)."""
        return indices[self.rank::self.world]

    def prepare(self, model, balancing: bool | None = None):
        """Swap MoE blocks for expert-parallel ones; call before building the optimizer.

        With ``parallel.expert_balance_rate > 0`` the trainable policy's routers are
        balanced aux-loss-free (a single process swaps its blocks for 1-rank ones, no FP8).
        """
        if balancing is None:
            balancing = self.balance_rate > 0 and any(p.requires_grad for p in model.parameters())
        if self.expert > 1 or balancing:
            from .moe import apply_expert_parallel, expert_parallel_groups
            if self.expert > 1 and self.ep_group is None:
                self.ep_group, self.edp_group = expert_parallel_groups(self.expert)
            apply_expert_parallel(model, self.ep_group, fp8=self.expert > 1, balancing=balancing,
                                  update_rate=self.balance_rate or 1e-3)
        return model

    def sync_and_clip(self, model, max_norm: float) -> float:
        """Average dense gradients across ranks, reduce expert ones, clip by the global norm."""
        params = [p for p in model.parameters() if p.requires_grad]
        if self.balance_rate > 0:      # loads of this step's forwards, all-reduced over all ranks
            from .moe import update_balancing_biases
            update_balancing_biases(model)
        if not self.enabled:
            return torch.nn.utils.clip_grad_norm_(params, max_norm).item()
        from .moe import allreduce_expert_grads, clip_grad_norm_ep_, expert_parameter_names
        experts = set(expert_parameter_names(model)) if self.expert > 1 else set()
        for name, p in model.named_parameters():
            if p.requires_grad and name not in experts:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
                p.grad.div_(self.world)
        if self.expert > 1:
            allreduce_expert_grads(model, self.edp_group, self.world)
            return clip_grad_norm_ep_(model, max_norm, self.ep_group).item()
        return torch.nn.utils.clip_grad_norm_(params, max_norm).item()

    def full_state_dict(self, model) -> dict | None:
        """The unsharded weights (collective: every rank must call it)."""
        if self.expert == 1 and not self.balance_rate:
            return None
        from .moe import gather_expert_state_dict
        experts = gather_expert_state_dict(model) if self.expert > 1 else {}
        sd = {k: v for k, v in model.state_dict().items() if k not in experts and "balancer" not in k}
        return {**sd, **experts}

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()
