"""Data and expert parallelism for the trainer, one process per device under ``torchrun``.

Plain single-process runs never touch torch.distributed (unless ``parallel.fsdp: true``, which
then runs FSDP2 over a world of one: the GPU check's bf16 path). Under ``torchrun`` each rank
takes its share of the step's prompts and the policy (and the reference, and a teacher) is
wrapped with FSDP2, ``grpo.dist.fsdp.shard_model``: parameters, gradients and AdamW state sharded
over all ranks. With ``parallel.expert: N`` every MoE block is first swapped for
``grpo.moe.ExpertParallelMoE`` (FP8 dispatch, BF16 combine; DeepSeek-V3); its experts are
left out of FSDP (already split over the EP group) and reduced by
``grpo.moe.allreduce_expert_grads``.

The loss is the single-process loss split by rank: each rank divides its token sums by the
global counts (:meth:`Parallel.global_counts`) and scales by N, since FSDP averages
gradients; every rank runs the same number of forward/backward passes (FSDP's are
collectives): ranks with fewer micro-batches run zero-weight ones (:meth:`pad_micro_batches`).

    torchrun --nproc-per-node 2 -m grpo.cli train recipe.yaml
    torchrun --nproc-per-node 2 -m grpo.cli train recipe.yaml --set parallel.expert=2
"""
from __future__ import annotations

import os
from contextlib import nullcontext

import torch
import torch.distributed as dist

from . import fsdp as F
from ..config import ConfigError


# True once grpo itself started the default process group (cli.py shuts down only that one: a
# colocated vLLM engine starts and later destroys its own, and fails if it is already gone).
OWNS_PROCESS_GROUP = False

class Parallel:
    def __init__(self, cfg):
        p = cfg.parallel
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.expert = p.expert
        self.balance_rate = p.expert_balance_rate
        self.fsdp = self.world > 1 if p.fsdp is None else p.fsdp
        self.mp = (p.param_dtype, p.reduce_dtype)
        if self.expert > 1 and self.world < self.expert:
            raise ConfigError(f"parallel.expert={self.expert} needs at least {self.expert} processes: "
                              f"torchrun --nproc-per-node {self.expert} -m grpo.cli train ...")
        if self.balance_rate > 0 and self.expert == 1 and self.world > 1:
            raise ConfigError("parallel.expert_balance_rate needs parallel.expert > 1 with several processes")
        if self.world > 1 and not self.fsdp:
            raise ConfigError("parallel.fsdp: false runs one process; several processes shard the model "
                              "with FSDP2 (drop the setting or set parallel.fsdp: true)")
        if self.world > 1 and cfg.train.prompts_per_step % self.world:
            raise ConfigError(f"train.prompts_per_step={cfg.train.prompts_per_step} must be divisible "
                              f"by the number of processes ({self.world})")
        r = cfg.rollout
        if self.world > 1 and r.engine == "server" and r.weight_sync == "broadcast":
            raise ConfigError("rollout.weight_sync=broadcast joins one trainer process to the server; with "
                              "several processes use weight_sync=http")
        if self.expert > 1 and cfg.algorithm.dynamic_sampling:
            # Expert-parallel forwards are all-to-alls even without grad: the no-grad scoring of
            # ranks with different batch sizes would not line up.
            raise ConfigError("algorithm.dynamic_sampling is not supported with parallel.expert > 1 yet")
        if self.world > 1 or self.fsdp:
            self._init_process_group()
        self.ep_group = self.edp_group = None

    def _init_process_group(self) -> None:
        if torch.cuda.is_available():      # one GPU per process, before NCCL starts
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        if dist.is_initialized():
            return
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        global OWNS_PROCESS_GROUP
        OWNS_PROCESS_GROUP = True
        if "MASTER_ADDR" in os.environ:
            dist.init_process_group(backend)
        else:                              # a plain single process with parallel.fsdp: true
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def loss_scale(self) -> float:
        """What each rank's share of the global loss is multiplied by before backward: FSDP
        (and ``allreduce_expert_grads``) average gradients over ranks; the loss is a sum."""
        return float(self.world) if self.enabled else 1.0

    def shard(self, indices: list[int]) -> list[int]:
        """This rank's share of the step's prompts (whole groups stay on one rank)."""
        return indices[self.rank::self.world]

    # ------------------------------------------------------------------ models
    def prepare(self, model, balancing: bool | None = None, fsdp: bool = True):
        """Swap MoE blocks for expert-parallel ones, then (``fsdp``) shard with FSDP2; call
        before building the optimizer. The policy is prepared with ``fsdp=False`` and sharded
        by :meth:`shard_policy` after the rollout engine took its copy of the weights.

        With ``parallel.expert_balance_rate > 0`` the trainable policy's routers are
        balanced aux-loss-free (a single process swaps its blocks for 1-rank ones, no FP8).
        """
        if balancing is None:
            balancing = self.balance_rate > 0 and any(p.requires_grad for p in model.parameters())
        if self.expert > 1 or balancing:
            from ..moe import apply_expert_parallel, expert_parallel_groups
            if self.expert > 1 and self.ep_group is None:
                self.ep_group, self.edp_group = expert_parallel_groups(self.expert)
            apply_expert_parallel(model, self.ep_group, fp8=self.expert > 1, balancing=balancing,
                                  update_rate=self.balance_rate or 1e-3)
        return self.shard_policy(model) if fsdp else model

    def shard_policy(self, model):
        if not self.fsdp:
            return model
        return F.shard_model(model, F.mp_policy(*self.mp), ignored=self._expert_params(model))

    def _expert_params(self, model) -> list:
        if self.expert == 1:
            return []
        from ..moe.layer import _expert_params
        return _expert_params(model)

    def gathered(self, model):
        """A context in which ``model`` runs forwards without collectives (see grpo.dist.fsdp.gathered)."""
        return F.gathered(model) if self.fsdp else nullcontext()

    def sync_and_clip(self, model, max_norm: float) -> float:
        """Reduce expert gradients (FSDP reduced the rest in backward), clip by the global norm."""
        if self.balance_rate > 0:      # loads of this step's forwards, all-reduced over all ranks
            from ..moe import update_balancing_biases
            update_balancing_biases(model)
        if self.expert > 1:
            from ..moe import allreduce_expert_grads
            allreduce_expert_grads(model, self.edp_group, self.world)
        if not self.fsdp and self.expert == 1:
            params = [p for p in model.parameters() if p.requires_grad]
            return torch.nn.utils.clip_grad_norm_(params, max_norm).item()
        experts = {id(p) for p in self._expert_params(model)}
        return F.clip_grad_norm_(model, max_norm, experts, self.ep_group).item()

    def full_state_dict(self, model) -> dict | None:
        """The unsharded weights (collective: every rank must call it; rank 0 gets them, on
        CPU); None when the model's own state dict is already the full one."""
        if not self.fsdp and self.expert == 1 and not self.balance_rate:
            return None
        from ..moe import gather_expert_state_dict
        experts = gather_expert_state_dict(model) if self.expert > 1 else {}
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
            sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            if self.world == 1:    # a one-shard DTensor's "full" tensor on CPU is the live parameter
                sd = {k: v.detach().clone() for k, v in sd.items()}
        else:
            sd = model.state_dict()
        own = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}   # tied once
        sd = {k: v for k, v in sd.items() if k in own and k not in experts and "balancer" not in k}
        return {**sd, **experts} if self.is_main or not self.fsdp else {}

    def named_full_parameters(self, model):
        """(name, full tensor) pairs for a weight sync; lazy, and collective under FSDP."""
        return F.full_named_parameters(model) if self.fsdp else model.named_parameters()

    def local_parameters(self, model):
        """(name, this rank's shard) of the trainable parameters: checks with no communication."""
        return ((n, F.local(p.detach())) for n, p in model.named_parameters() if p.requires_grad)

    # ------------------------------------------------------------------ agreement across ranks
    def global_counts(self, *counts: int) -> tuple[int, ...]:
        """Sums over ranks of per-rank counts (tokens, sequences) for the loss normalisation."""
        if not self.enabled:
            return counts
        t = torch.tensor(counts, dtype=torch.float64)
        dist.all_reduce(t)
        return tuple(int(x) for x in t.tolist())

    def any(self, flag: bool) -> bool:
        """True when ``flag`` holds on any rank."""
        if not self.enabled:
            return flag
        t = torch.tensor([float(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def pad_micro_batches(self, mbs: list) -> list:
        """``mbs`` followed by None (a zero-weight micro-batch) up to the largest count of any
        rank: every rank then runs the same number of FSDP forwards and backwards."""
        if not self.fsdp or not self.enabled:
            return list(mbs)
        t = torch.tensor([len(mbs)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return list(mbs) + [None] * (int(t.item()) - len(mbs))

    def reduce_sums(self, stats: dict) -> dict:
        """Per-rank shares of global means summed over ranks (keys with ``max`` take the max);
        None stays None."""
        if not self.enabled:
            return stats
        keys = [k for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not keys:
            return stats
        t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64)
        is_max = torch.tensor(["max" in k for k in keys])
        mx = t.clone()
        dist.all_reduce(t)
        dist.all_reduce(mx, op=dist.ReduceOp.MAX)
        return {**stats, **dict(zip(keys, torch.where(is_max, mx, t).tolist()))}

    def gather_objects(self, obj) -> list:
        """``obj`` of every rank, in rank order (pickled; for small per-step records)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def zero_backward(self, model, score_fn, pad_id: int) -> None:
        """A micro-batch of weight zero (one pad token scored): the forward and backward
        collectives of a rank that has run out of micro-batches, with no effect on the grads."""
        from ..model.policy import build_batch
        logp, _ = score_fn(model, build_batch([[pad_id]], [[pad_id]], pad_id, group=[0]))
        (logp.sum() * 0.0).backward()
