"""Supervised fine-tuning: R1's cold start, its rejection-sampling SFT and R1-Distill.

DeepSeek-R1 uses SFT three times (R1 report, section 2.3 / 2.4):

* stage 1, *cold start* (2.3.1): thousands of long chains of thought in a readable
  format, ``<reasoning_process>`` then ``<summary>``, before reasoning RL;
* stage 3, *rejection sampling and SFT* (2.3.3): ~600k correct reasoning samples from
  the stage-2 checkpoint plus ~200k non-reasoning samples, two epochs;
* *distillation* (2.4): the same 800k samples fine-tune smaller dense students.

All three are this module: completion-only loss (prompt tokens are not trained on),
micro-batches with token-weighted gradient accumulation, AdamW, a progress bar and an
atomic final save (``<dir>/<name>/model``, a loadable Hugging Face model directory;
LoRA adapters are merged into it). The data is a ``{prompt, completion}`` file, a hub
dataset with format strings that build the completion from its columns, or a built-in
generator (``builtin:arithmetic_cot``: clean, self-checking traces for the tiny model).

>>> src = SourceConfig(source="builtin:arithmetic_cot", num_samples=2)
>>> rows = load_source(src)
>>> sorted(rows[0]), rows[0]["completion"].startswith(" <think>")
(['answer', 'completion', 'kind', 'numbers', 'prompt'], True)
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Literal, Optional

import torch
from pydantic import Field

from ..train import optim
from ..config import ModelConfig, RunOutput, SourceConfig, Template, _Strict  # noqa: F401
from ..recipe import load_recipe
from ..data import DataError, load_source, prompt_format, render_prompt
from ..model.policy import load_policy, save_model_dir, set_threads, to_device


# --------------------------------------------------------------------------- schema
class SFTTrainConfig(_Strict):
    steps: Optional[int] = Field(None, gt=0, description="optimizer steps; default: epochs over the data")
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(32, gt=0, description="sequences per optimizer step")
    micro_batch_size: int = Field(16, gt=0, description="sequences per forward/backward")
    max_length: int = Field(1024, gt=8, description="tokens per sequence (prompt + completion)")
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["linear", "constant", "cosine"] = Field(
        "linear", description="after warmup: decay linearly to 0 at the last step, stay, or cosine to 0 (grpo/train/optim.py)")
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 0
    threads: Optional[int] = Field(None, gt=0)


class SFTConfig(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: SourceConfig
    template: Template = "r1_zero"
    system_prompt: Optional[str] = Field(None, description="as data.system_prompt of the RL recipe")
    instruction: Optional[str] = Field(None, description="as data.instruction of the RL recipe")
    train: SFTTrainConfig = Field(default_factory=SFTTrainConfig)
    output: RunOutput = Field(default_factory=RunOutput)

    def run_dir(self) -> Path:
        return Path(self.output.dir) / (self.output.name or "sft")


# --------------------------------------------------------------------------- tokenize
def tokenize_example(tok, prompt: str, completion: str, max_length: int) -> tuple[list[int], int]:
    """(ids, n_prompt_tokens): the prompt as the rollout engine encodes it, then the
    completion and EOS (the policy must learn to stop); cut to ``max_length``."""
    p = tok(prompt, add_special_tokens=True).input_ids
    c = tok(completion, add_special_tokens=False).input_ids + [tok.eos_token_id]
    return (p + c)[:max_length], len(p)


def encode_rows(tok, rows: list[dict], template, max_length: int) -> list[tuple[list[int], int]]:
    """``template``: a template name or render_prompt's keyword arguments (prompt_format)."""
    fmt = template if isinstance(template, dict) else {"template": template}
    for key in ("prompt", "completion"):
        if key not in rows[0]:
            raise DataError(f"SFT data needs 'prompt' and 'completion' columns; got {sorted(rows[0])}")
    out = []
    for r in rows:
        prompt = render_prompt(tok, r["prompt"], **fmt)
        ids, n_p = tokenize_example(tok, prompt, str(r["completion"]), max_length)
        if len(ids) > n_p:                                  # something left to learn
            out.append((ids, n_p))
    if not out:
        raise DataError(f"every example is longer than max_length={max_length} tokens of prompt")
    return out


def collate(examples: list[tuple[list[int], int]], pad_id: int):
    """Right-padded input ids, attention mask, and labels (-100 on prompt and padding)."""
    L = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), L), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), L), -100, dtype=torch.long)
    attn = torch.zeros((len(examples), L), dtype=torch.long)
    for i, (x, n_p) in enumerate(examples):
        ids[i, :len(x)] = torch.tensor(x)
        attn[i, :len(x)] = 1
        labels[i, n_p:len(x)] = torch.tensor(x[n_p:])
    return ids, attn, labels


def loss_sum(model, examples, pad_id: int) -> tuple[torch.Tensor, int]:
    """Summed next-token loss over completion tokens, and their number."""
    ids, attn, labels = collate(examples, pad_id)
    device = next(model.parameters()).device
    logits = model(input_ids=ids.to(device), attention_mask=attn.to(device), use_cache=False).logits
    target = labels[:, 1:].to(device)
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                             target.reshape(-1), ignore_index=-100, reduction="sum")
    return loss, int((target != -100).sum())


@torch.no_grad()
def mean_loss(model, examples, pad_id: int, micro: int = 16) -> float:
    """Mean per-token completion loss of ``examples`` (no grad)."""
    total, n = 0.0, 0
    for i in range(0, len(examples), micro):
        s, k = loss_sum(model, examples[i:i + micro], pad_id)
        total, n = total + s.item(), n + k
    return total / max(n, 1)


# --------------------------------------------------------------------------- save
def save_model(model, tok, out: Path) -> Path:
    """A loadable HF model dir, written atomically (policy.save_model_dir), LoRA merged in."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return save_model_dir(model, tok, out)


# --------------------------------------------------------------------------- the loop
def sft(cfg: SFTConfig, progress: bool = True) -> dict:
    """Train; return ``{model, steps, loss_before, loss_after, ...}`` (also in ``result.json``)."""
    from tqdm.auto import tqdm
    t = cfg.train
    set_threads(t.threads)
    torch.manual_seed(t.seed)
    rows = load_source(cfg.data)                     # data errors before loading a model
    tok, model = load_policy(cfg.model.path, cfg.model.dtype, cfg.model.lora, trainable=True)
    model = to_device(model)
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    data = encode_rows(tok, rows, prompt_format(cfg), t.max_length)
    bs = min(t.batch_size, len(data))
    steps = t.steps or max(1, int(t.epochs * len(data) / bs))
    probe = data[:64]                                # loss on (a slice of) the data, before/after
    loss_before = mean_loss(model, probe, tok.pad_token_id, t.micro_batch_size)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=t.lr,
                            weight_decay=t.weight_decay)
    sched = optim.scheduler(opt, steps, t.warmup_steps, t.schedule)
    run_dir = cfg.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    model.train()
    t0 = time.time()
    with open(run_dir / "metrics.jsonl", "w") as log:
        bar = tqdm(range(steps), desc=f"sft {cfg.output.name}", disable=not progress, dynamic_ncols=True)
        for step in bar:
            loss = _step(model, opt, sched, _batch(data, bs, step, t.seed), tok.pad_token_id, t)
            log.write(json.dumps({"step": step + 1, "loss": loss, "lr": t.lr * optim.lr_factor(step, steps, t.warmup_steps, t.schedule)}) + "\n")  # this step's lr
            bar.set_postfix(loss=f"{loss:.4f}")
    model.eval()
    loss_after = mean_loss(model, probe, tok.pad_token_id, t.micro_batch_size)
    out = save_model(model, tok, run_dir / "model")
    result = {"model": str(out), "examples": len(data), "steps": steps, "loss_before": loss_before,
              "loss_after": loss_after, "time_s": time.time() - t0}
    (run_dir / "result.json").write_text(json.dumps(result, indent=1))
    return result


def _batch(data: list, bs: int, step: int, seed: int) -> list:
    """Step ``step``'s examples: a fresh seeded permutation per epoch (like PromptSampler)."""
    per_epoch = max(len(data) // bs, 1)
    epoch, k = divmod(step, per_epoch)
    perm = list(range(len(data)))
    random.Random(seed * 100003 + epoch).shuffle(perm)
    return [data[i] for i in perm[k * bs:(k + 1) * bs]]


def _step(model, opt, sched, batch: list, pad_id: int, t: SFTTrainConfig) -> float:
    """One optimizer step; micro-batch losses are summed then divided by the batch's
    completion-token count, so accumulation equals one big batch (token-mean loss)."""
    n_tok = sum(len(ids) - max(n_p, 1) for ids, n_p in batch)
    total = 0.0
    for i in range(0, len(batch), t.micro_batch_size):
        s, _ = loss_sum(model, batch[i:i + t.micro_batch_size], pad_id)
        (s / n_tok).backward()
        total += s.item()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], t.max_grad_norm)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return total / n_tok


def load_sft_config(path, overrides=None, tree: dict[str, Any] | None = None) -> SFTConfig:
    return load_recipe(SFTConfig, path, overrides, tree)
