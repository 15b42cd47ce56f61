"""Loading the policy (optionally with LoRA) and scoring completions with it.

A batch of completions is laid out as ``[pad.. prompt | completion ..pad]``: prompts
left-padded, completions right-padded, so every completion starts at the same column
and only the last ``C+1`` positions' logits are ever materialised (``logits_to_keep``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..algos.core import entropy_from_logits, token_logprobs

from .model_dir import DTYPES, ModelError, save_model_dir  # noqa: F401 (public here too)


def _looks_local(path: str) -> bool:
    return path.startswith((".", "/", "~")) or Path(path).exists() or path.count("/") != 1


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect, so an offline machine gets an answer in seconds rather than
    after the hub client's minute of retries."""
    import os
    import socket
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _check_resolvable(path: str) -> None:
    if Path(path).is_dir():
        return
    from transformers import AutoConfig
    try:
        AutoConfig.from_pretrained(path, local_files_only=True)   # in the local hub cache?
        return
    except (OSError, ValueError):
        pass
    if not _hub_reachable():
        raise ModelError(f"model path does not exist locally and is not in the hub cache "
                         f"(the hub is unreachable): {path!r}")


def load_tokenizer(path: str):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def check_model_dir(path: str) -> None:
    """A local model directory must hold a config, weights and a tokenizer; otherwise say
    which is missing in one line (transformers would fail deep inside, e.g. in sentencepiece).

    >>> import tempfile
    >>> check_model_dir(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    grpo.model.model_dir.ModelError: ... is not a complete model directory: missing config.json, weights ...
    """
    d = Path(path)
    missing = []
    if not (d / "config.json").is_file():
        missing.append("config.json")
    if not any(any(d.glob(g)) for g in WEIGHT_FILES):
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    if not any((d / f).is_file() for f in TOKENIZER_FILES):
        missing.append("a tokenizer (tokenizer.json or tokenizer_config.json)")
    if missing:
        raise ModelError(f"{path!r} is not a complete model directory: missing {', '.join(missing)}")


def load_policy(path: str, dtype: str = "float32", lora=None, trainable: bool = True,
                adapter: str | None = None):
    """(tokenizer, model); ``adapter`` resumes LoRA weights from a checkpoint directory.
    ``path``: a model directory, a hub id, or a ``.gguf`` file (dequantized to ``dtype``)."""
    from transformers import AutoModelForCausalLM

    from .gguf import resolve_model_path
    path = resolve_model_path(path, dtype)
    if _looks_local(path) and not Path(path).is_dir():
        raise ModelError(f"model path does not exist: {path!r}")
    if Path(path).is_dir():
        check_model_dir(path)
    _check_resolvable(path)
    try:
        tok = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
    except OSError as e:
        where = "" if Path(path).is_dir() else f" (no local directory {path!r}; tried it as a hub id)"
        raise ModelError(f"could not load model {path!r}{where}: {str(e).splitlines()[0][:200]}") from None
    if lora is not None:
        from peft import LoraConfig, PeftModel, get_peft_model
        if adapter:
            model = PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
        else:
            model = get_peft_model(model, LoraConfig(
                r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                target_modules=lora.target_modules, task_type="CAUSAL_LM"))
    model.train(trainable)
    if not trainable:
        model.requires_grad_(False)
    return tok, model


def default_threads() -> int:
    """torch CPU threads when a recipe sets none: OMP_NUM_THREADS if set; else 1 on a machine
    with <= 2 usable cores (decoding is many small ops: on a loaded 2-core box 2 threads ran
    17x slower than 1), else half the usable cores (physical cores, without hyperthreads)."""
    import os
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if cores <= 2 else max(1, cores // 2)


def set_threads(n: int | None = None) -> int:
    """Set torch's CPU threads (``n``, else default_threads()); train, eval, sample, sft."""
    n = n or default_threads()
    torch.set_num_threads(n)
    return n


def default_device() -> torch.device:
    """This process's GPU (torchrun: the one ``Parallel`` selected by LOCAL_RANK), else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def to_device(model, device: torch.device | str | None = None):
    return model.to(device or default_device())


@dataclass
class Batch:
    """Padded tensors for N completions; ``mask`` marks completion tokens."""
    input_ids: torch.Tensor        # [N, P+C]
    attention_mask: torch.Tensor   # [N, P+C]
    completion_ids: torch.Tensor   # [N, C]
    mask: torch.Tensor             # [N, C] float
    group: torch.Tensor | None = None   # [N] which prompt each row completes (rows may share one)

    def __len__(self):
        return self.input_ids.shape[0]

    def slice(self, idx) -> "Batch":
        return Batch(self.input_ids[idx], self.attention_mask[idx], self.completion_ids[idx], self.mask[idx],
                     None if self.group is None else self.group[idx])

    def trim(self) -> "Batch":
        """Drop the columns that are padding in every row (prompt side and completion side):
        a micro-batch of short sequences then costs what its own lengths cost, not the
        longest completion of the whole step's. The completion keeps its first columns, so
        per-token tensors of the trimmed batch are the first ``C'`` columns of the full ones."""
        P = self.input_ids.shape[1] - self.completion_ids.shape[1]
        used = self.attention_mask.bool().any(0)
        first = int(used[:P].float().argmax()) if used[:P].any() else P
        C = max(int(self.attention_mask[:, P:].sum(1).max().item()) if len(self) else 0, 1)
        ids, attn = self.input_ids[:, first:P + C], self.attention_mask[:, first:P + C]
        return Batch(ids, attn, ids[:, P - first:], self.mask[:, :C], self.group)


def micro_batches(batch: "Batch", max_rows: int, max_tokens: int | None = None) -> list[torch.Tensor]:
    """Row indices of each micro-batch.

    Without ``max_tokens``: consecutive chunks of ``max_rows`` rows (the batch's order).
    With it (verl's dynamic batch size): rows sorted by length, longest first, packed
    greedily so that each micro-batch's padded size (rows x its longest prompt+completion)
    stays within ``max_tokens`` (a longer row goes alone). Padding is the waste a GRPO
    batch has most of: completions of one step range from a few tokens to max_new_tokens.
    Loss aggregations divide by step-wide totals, so any split gives the same gradient.
    """
    N = len(batch)
    if max_tokens is None:
        return [torch.arange(i, min(i + max_rows, N)) for i in range(0, N, max_rows)]
    P = batch.input_ids.shape[1] - batch.completion_ids.shape[1]
    plen = batch.attention_mask[:, :P].sum(1)
    clen = batch.attention_mask[:, P:].sum(1)
    order = sorted(range(N), key=lambda i: (-(plen[i] + clen[i]).item(), i))
    out, cur, mp, mc = [], [], 0, 0
    for i in order:
        p, c = int(plen[i]), int(clen[i])
        np_, nc = max(mp, p), max(mc, c, 1)
        if cur and (len(cur) + 1 > max_rows or (len(cur) + 1) * (np_ + nc) > max_tokens):
            out.append(torch.tensor(cur))
            cur, np_, nc = [], p, max(c, 1)
        cur.append(i)
        mp, mc = np_, nc
    if cur:
        out.append(torch.tensor(cur))
    return out


def build_batch(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int,
                group: list[int] | None = None, loss_mask: list[list[int] | None] | None = None) -> Batch:
    """``loss_mask``: per completion, 1 per token to train on and 0 per token that carries
    no loss (a multi-turn episode's observations), or None (all); it becomes ``mask``.

    >>> b = build_batch([[5, 6]], [[1, 2, 3]], 0, loss_mask=[[1, 0, 1]])
    >>> b.mask.tolist(), b.attention_mask.tolist()
    ([[1.0, 0.0, 1.0]], [[1, 1, 1, 1, 1]])
    """
    P = max(len(p) for p in prompt_ids)
    C = max(max(len(c) for c in completion_ids), 1)
    N = len(prompt_ids)
    ids = torch.full((N, P + C), pad_id, dtype=torch.long)
    attn = torch.zeros((N, P + C), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        ids[i, P - len(p):P] = torch.tensor(p)
        ids[i, P:P + len(c)] = torch.tensor(c, dtype=torch.long)
        attn[i, P - len(p):P + len(c)] = 1
    mask = attn[:, P:].float()                                            # [N, C]
    for i, m in enumerate(loss_mask or []):
        if m is not None:
            if len(m) != len(completion_ids[i]):
                raise ValueError(f"loss_mask {i} has {len(m)} entries for {len(completion_ids[i])} tokens")
            mask[i, :len(m)] = torch.tensor(m, dtype=torch.float32).clamp(0, 1)
    return Batch(ids, attn, ids[:, P:], mask, None if group is None else torch.tensor(group))


def logp_entropy(logits: torch.Tensor, ids: torch.Tensor, with_entropy: bool):
    """Log-probs of ``ids`` ``[N, C]`` under ``logits`` ``[N, C, V]``, and entropies (no grad)."""
    ent = None
    if with_entropy:
        with torch.no_grad():
            ent = entropy_from_logits(logits)
    return token_logprobs(logits, ids), ent


def score(model, batch: Batch, with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs ``[N, C]`` of the completion tokens (and entropies, without grad)."""
    return logp_entropy(completion_logits(model, batch), batch.completion_ids.to(_device(model)), with_entropy)


def score_shared_prompt(model, batch: Batch, with_entropy: bool = False):
    """:func:`score` with each distinct prompt run once for all its completions
    (:func:`completion_logits_shared_prompt`): the same log-probs and gradients."""
    return logp_entropy(completion_logits_shared_prompt(model, batch), batch.completion_ids.to(_device(model)),
                         with_entropy)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def completion_logits(model, batch: Batch) -> torch.Tensor:
    """The float logits ``[N, C, V]`` that predict each completion token (position j predicts
    token j; with grad when the caller has it on)."""
    C = batch.completion_ids.shape[1]
    # Positions from the mask, so left padding does not shift absolute-position models.
    pos = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
    device = next(model.parameters()).device
    logits = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device),
                   position_ids=pos.to(device), logits_to_keep=C + 1, use_cache=False).logits
    return logits[:, :-1].float()                                        # [N, C, V] predicts completion


def completion_logits_shared_prompt(model, batch: Batch) -> torch.Tensor:
    """:func:`completion_logits`, with each distinct prompt run once for all its completions.

    A GRPO batch holds every prompt G times. Here the prompts of ``batch.group`` run alone
    (with grad), their KV cache is repeated per completion and the completions attend to it:
    the prompt tokens' forward and backward cost 1/G of :func:`score`'s, with the same
    log-probs and gradients (the "shared-prefix forward" of Prefix Grouper, Liu et al. 2025).
    Needs a model whose cache is transformers' plain ``DynamicCache`` (no sliding window) and
    no gradient checkpointing (which turns the cache off).
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer
    if batch.group is None:
        raise ValueError("score_shared_prompt needs batch.group (which prompt each row completes)")
    C = batch.completion_ids.shape[1]
    P = batch.input_ids.shape[1] - C
    device = next(model.parameters()).device
    uniq, inv = torch.unique(batch.group, return_inverse=True)           # U prompts; row -> prompt
    rep = torch.empty(len(uniq), dtype=torch.long)
    rep[inv] = torch.arange(len(batch))                                  # one row per prompt
    p_attn = batch.attention_mask[rep, :P]
    out = model(input_ids=batch.input_ids[rep, :P].to(device), attention_mask=p_attn.to(device),
                position_ids=(p_attn.cumsum(-1) - 1).clamp(min=0).to(device), use_cache=True, logits_to_keep=1)
    cache, inv = out.past_key_values, inv.to(device)
    if type(cache) is not DynamicCache or any(type(layer) is not DynamicLayer for layer in cache.layers):
        raise ValueError(f"train.share_prompt supports models with a plain DynamicCache, not "
                         f"{type(cache).__name__} ({type(model).__name__})")
    for layer in cache.layers:                                           # [U, H, P, D] -> [N, H, P, D]
        layer.keys, layer.values = layer.keys[inv], layer.values[inv]
    pos = batch.attention_mask[:, :P].sum(-1, keepdim=True) + torch.arange(C)   # continue after the prompt
    logits = model(input_ids=batch.completion_ids.to(device), attention_mask=batch.attention_mask.to(device),
                   position_ids=pos.to(device), past_key_values=cache, use_cache=True).logits
    # The prompt's last position predicts completion token 0; completion position j, token j+1.
    return torch.cat([out.logits[inv], logits[:, :-1]], dim=1).float()      # [N, C, V]


def tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` (the tensor itself at 1): a teacher's target distribution
    (``algorithm.teacher_temperature``)."""
    return logits / temperature if temperature != 1.0 else logits


@torch.no_grad()
def score_all(model, batch: Batch, micro: int, max_tokens: int | None = None,
              shared_prompt: bool = False, temperature: float = 1.0) -> torch.Tensor:
    """Log-probs ``[N, C]`` for the whole batch without grad (old / reference policy, a
    teacher: of its logits / ``temperature``), in trimmed micro-batches; columns past a
    row's completion are 0."""
    fn = completion_logits_shared_prompt if shared_prompt else completion_logits
    out = None
    for idx in micro_batches(batch, micro, max_tokens):
        sub = batch.slice(idx).trim()
        logits = tempered(fn(model, sub), temperature)
        lp = token_logprobs(logits, sub.completion_ids.to(logits.device)).float()
        if out is None:
            out = torch.zeros(batch.completion_ids.shape, dtype=lp.dtype, device=lp.device)
        out[idx.to(lp.device), :lp.shape[1]] = lp
    return out
