"""Rejection sampling: an SFT dataset from a model's own correct, readable samples (the
pipeline's held-out evaluation, which samples and scores the same way, is in eval.py).

DeepSeek-R1, stage 3 (R1 report, 2.3.3): "we curate reasoning prompts and generate
reasoning trajectories by performing rejection sampling from the checkpoint from the
above RL training ... For each prompt, we sample multiple responses and retain only the
correct ones ... we have filtered out chain-of-thought with mixed languages, long
paragraphs, and code blocks." The ~600k reasoning samples are then mixed with ~200k
non-reasoning samples (writing, factual QA, ...) for two epochs of SFT; ``mix.ratio``
is that non-reasoning share (0.25 in R1).

Each sample is checked in order -- incorrect, format, mixed_language, long_paragraph,
code_block, duplicate, per_prompt_cap -- and a rejected one is counted under its first
failed check (``rejected``, which sums to the rejections) and under every content check
it fails (``failed_checks``). The statistics are printed and written to ``stats.json``
next to ``data.jsonl``.

>>> has_code_block("<think>try ```python\\nprint(1)\\n```</think>"), has_code_block("a`b`")
(True, False)
>>> longest_paragraph("ab\\n\\nabcd\\n"), is_mixed_language("<think>先算 the sum</think>")
(4, True)
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Optional

from pydantic import Field

import rewards as rewards_lib
from rewards._text import completion_text, think_part

from ..config import (ConfigError, DataConfig, ModelConfig, RewardConfig, RolloutConfig, RunOutput, SourceConfig,
                     _Strict, load_recipe)
from ..data import load_rows, load_source, prompt_format, render_prompt
from ..model.policy import to_device

CHECKS = ("incorrect", "format", "mixed_language", "long_paragraph", "code_block", "duplicate",
          "per_prompt_cap")


# --------------------------------------------------------------------------- schema
class FilterConfig(_Strict):
    require_format: bool = Field(True, description="drop samples failing format_reward")
    format_reward: str = "think_format"
    language: Optional[str] = Field("en", description="target language of the CoT; null: no check")
    min_language_consistency: float = Field(0.95, ge=0, le=1, description="share of CoT words in it")
    max_paragraph_chars: Optional[int] = Field(2000, gt=0, description="longest paragraph allowed")
    reject_code_blocks: bool = True
    dedupe: bool = Field(True, description="drop repeated completions of the same prompt")
    max_per_prompt: Optional[int] = Field(None, gt=0, description="keep at most this many per prompt")


class MixConfig(SourceConfig):
    ratio: float = Field(0.25, ge=0, lt=1, description="non-reasoning share of the final dataset")


class SampleConfig(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig, description="the prompts and their template")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="n = samples per prompt")
    accuracy: RewardConfig = Field(default_factory=lambda: RewardConfig(name="math_accuracy"))
    filters: FilterConfig = Field(default_factory=FilterConfig)
    mix: Optional[MixConfig] = Field(None, description="non-reasoning {prompt, completion} data")
    batch_prompts: int = Field(32, gt=0, description="prompts per generate call")
    seed: int = 0
    threads: Optional[int] = Field(None, gt=0)
    output: RunOutput = Field(default_factory=RunOutput)

    def run_dir(self) -> Path:
        return Path(self.output.dir) / (self.output.name or "sample")


def load_sample_config(path, overrides=None, tree=None) -> SampleConfig:
    return load_recipe(SampleConfig, path, overrides, tree)


# --------------------------------------------------------------------------- filters (pure)
def has_code_block(text: str) -> bool:
    """A fenced code block (```), which R1 filters out of reasoning chains."""
    return "```" in text


def longest_paragraph(text: str) -> int:
    """Characters in the longest paragraph (blocks separated by blank lines)."""
    paras = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n")]
    return max((len(p) for p in paras), default=0)


def is_mixed_language(text: str, target: str = "en", min_consistency: float = 0.95, prompt=None) -> bool:
    """True when less than ``min_consistency`` of the CoT's words are in ``target``'s
    script (rewards.language's measure, R1 2.3.2); a CoT without words is not mixed."""
    from rewards.language import consistency
    c = consistency(think_part(text, prompt), target)
    return c is not None and c < min_consistency


def content_failures(text: str, f: FilterConfig, prompt=None) -> list[str]:
    """The readability checks ``text`` fails, in order (R1 2.3.3's three filters)."""
    out = []
    if f.language and is_mixed_language(text, f.language, f.min_language_consistency, prompt):
        out.append("mixed_language")
    if f.max_paragraph_chars and longest_paragraph(text) > f.max_paragraph_chars:
        out.append("long_paragraph")
    if f.reject_code_blocks and has_code_block(text):
        out.append("code_block")
    return out


def select(texts: list[str], correct: list[bool], formatted: list[bool], f: FilterConfig,
           prompt=None) -> tuple[list[int], list[str | None], Counter]:
    """Which of one prompt's samples to keep. Returns (kept indices, the first failed
    check per sample or None, every failed content check counted)."""
    reasons: list[str | None] = []
    failed: Counter = Counter()
    seen: set[str] = set()
    kept: list[int] = []
    for i, t in enumerate(texts):
        content = content_failures(t, f, prompt)
        failed.update(content)
        reason = ("incorrect" if not correct[i] else
                  "format" if f.require_format and not formatted[i] else
                  content[0] if content else
                  "duplicate" if f.dedupe and t.strip() in seen else
                  "per_prompt_cap" if f.max_per_prompt and len(kept) >= f.max_per_prompt else None)
        reasons.append(reason)
        if reason is None:
            kept.append(i)
            seen.add(t.strip())
    return kept, reasons, failed


# --------------------------------------------------------------------------- the run
def generate_and_score(cfg: SampleConfig, rows: list[dict], progress: bool = True):
    """Sample ``rollout.n`` completions per row; yield (row, prompt, texts, correct, formatted,
    generated tokens)."""
    from tqdm.auto import tqdm

    from ..model.policy import load_policy
    from ..rollout import make_engine
    from ..rollout.base import SamplingParams
    acc = rewards_lib.RewardSet([rewards_lib.RewardSpec(cfg.accuracy.name, 1.0, cfg.accuracy.kwargs)])
    acc.check_columns(set(rows[0]))
    fmt = rewards_lib.load(cfg.filters.format_reward)
    tok, policy = load_policy(cfg.model.path, cfg.model.dtype, trainable=False)
    policy = to_device(policy) if policy is not None else policy
    engine = make_engine(cfg.rollout, policy, tok)
    sp = SamplingParams.from_rollout(cfg.rollout, seed=cfg.seed)
    for i in tqdm(range(0, len(rows), cfg.batch_prompts), desc="sample", disable=not progress):
        chunk = rows[i:i + cfg.batch_prompts]
        prompts = [render_prompt(tok, row["prompt"], **prompt_format(cfg.data)) for row in chunk]
        for row, prompt, g in zip(chunk, prompts, engine.generate(prompts, sp)):
            texts = [completion_text(c.text) for c in g.completions]
            cols = {k: [v] * len(texts) for k, v in row.items() if k != "prompt"}
            ok = acc([prompt] * len(texts), texts, cols).per_fn[acc.names[0]]
            formatted = fmt([prompt] * len(texts), texts, **cols)
            yield row, prompt, texts, [v is not None and v > 0.5 for v in ok], \
                [v is not None and v > 0.5 for v in formatted], sum(len(c.token_ids) for c in g.completions)


def sample(cfg: SampleConfig, progress: bool = True, log=print) -> dict:
    """Run rejection sampling; write ``data.jsonl`` and ``stats.json``; return the stats."""
    import torch

    from ..model.policy import set_threads
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    d = cfg.data
    rows = load_rows(d.source, d.num_samples, cfg.seed, d.split, d.subset, d.preprocess, d.columns)
    mix_rows = load_source(cfg.mix) if cfg.mix else []          # data errors before the model
    t0 = time.time()
    kept_rows, first, failed = [], Counter(), Counter()
    n_samples = n_correct = prompts_with_kept = n_tokens = 0
    for row, prompt, texts, correct, formatted, n_gen in generate_and_score(cfg, rows, progress):
        n_tokens += n_gen
        kept, reasons, fails = select(texts, correct, formatted, cfg.filters, prompt)
        first.update(r for r in reasons if r)
        failed.update(fails)
        n_samples += len(texts)
        n_correct += sum(correct)
        prompts_with_kept += bool(kept)
        extra = {k: v for k, v in row.items() if k not in ("prompt", "completion")}
        kept_rows += [{**extra, "prompt": row["prompt"], "completion": texts[i], "kind": "reasoning"}
                      for i in kept]
    stats = _stats(rows, n_samples, n_correct, prompts_with_kept, kept_rows, first, failed)
    data = kept_rows + _mix(cfg.mix, mix_rows, len(kept_rows), stats)
    stats["dataset_rows"] = len(data)
    stats["generated_tokens"] = n_tokens           # the sampler's cost: every token, kept or rejected
    stats["time_s"] = round(time.time() - t0, 1)
    out = _write(cfg.run_dir(), data, stats)
    log(format_stats(stats))
    return {**stats, "data": str(out)}


def _stats(rows, n_samples, n_correct, prompts_with_kept, kept_rows, first, failed) -> dict:
    return {
        "prompts": len(rows), "samples": n_samples,
        "sample_accuracy": n_correct / max(n_samples, 1),
        "kept": len(kept_rows), "kept_rate": len(kept_rows) / max(n_samples, 1),
        "prompts_with_kept": prompts_with_kept,
        "rejected": {c: first.get(c, 0) for c in CHECKS},
        "failed_checks": {c: failed.get(c, 0) for c in ("mixed_language", "long_paragraph", "code_block")},
    }


def _mix(mix: MixConfig | None, rows: list[dict], n_reasoning: int, stats: dict) -> list[dict]:
    """Non-reasoning rows so that they are ``ratio`` of the final dataset (R1: 200k of 800k);
    cycled when the source has fewer rows than that."""
    if mix is None or mix.ratio == 0:
        return []
    for r in rows:
        if "completion" not in r:
            raise ConfigError(f"mix source {mix.source!r} needs a 'completion' column "
                              f"(or mix.completion_format); columns are {sorted(r)}")
    want = round(n_reasoning * mix.ratio / (1 - mix.ratio))
    out = [{**rows[i % len(rows)], "kind": rows[i % len(rows)].get("kind") or "general"}
           for i in range(want)] if rows else []
    stats["mixed_in"] = {"source": mix.source, "rows": len(out), "distinct": min(want, len(rows)),
                         "ratio": mix.ratio}
    return out


def _write(run_dir: Path, data: list[dict], stats: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / "data.jsonl"
    tmp = run_dir / ".tmp-data.jsonl"
    tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in data))
    os.replace(tmp, out)
    (run_dir / "stats.json").write_text(json.dumps(stats, indent=1))
    return out


def format_stats(s: dict) -> str:
    lines = [f"rejection sampling: {s['prompts']} prompts x {s['samples'] // max(s['prompts'], 1)} "
             f"samples = {s['samples']}; sample accuracy {s['sample_accuracy']:.3f}",
             f"  kept {s['kept']} ({s['kept_rate']:.1%}) from {s['prompts_with_kept']} prompts; rejected: "
             + ", ".join(f"{k} {v}" for k, v in s["rejected"].items())]
    if "mixed_in" in s:
        m = s["mixed_in"]
        lines.append(f"  mixed in {m['rows']} non-reasoning rows ({m['distinct']} distinct) from "
                     f"{m['source']} -> {s['dataset_rows']} rows")
    return "\n".join(lines)
