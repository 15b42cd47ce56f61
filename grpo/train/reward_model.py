"""The ``reward_model`` reward: a sequence classifier judging general (non-reasoning) prompts.

DeepSeek-R1, stage 4 "reinforcement learning for all scenarios" (R1 report, 2.3.4):
rule-based rewards for reasoning data, reward models for general data. "For helpfulness,
we focus exclusively on the final summary ... minimizing interference with the
underlying reasoning process. For harmlessness, we evaluate the entire response of the
model, including both the reasoning process and the summary."

So, for each sample whose ``kind`` is general:

* helpfulness = classifier(prompt + summary), the summary being the ``<answer>`` block,
  else the text after ``</think>`` (an unclosed ``<think>`` has no summary);
* harmlessness = classifier(prompt + whole response);
* reward = ``helpful_weight * helpfulness + harmless_weight * harmlessness`` (0.5 each by
  default, so the reward is in [0, 1]).

Scores are the logits of ``helpful_label`` / ``harmless_label`` (a one-logit reward model,
e.g. Skywork-Reward, uses its single logit for both), squashed by a sigmoid by default.
Samples of any other kind get None, leaving them to the rule rewards. Two models can be
given (``helpful_path``, ``harmless_path``); by default both scores come from ``path``.

>>> summary("<think>plan: greet</think> <answer>Hello, Ann!</answer>")
'Hello, Ann!'
>>> summary("<think>plan</think> Hello!"), summary("<think>cut off"), summary("Hi")
('Hello!', '', 'Hi')
"""
from __future__ import annotations

import functools
import math
import re

import torch

from rewards import register
from rewards._text import completion_text, with_think_prefix

_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)


def summary(text: str, prompt=None) -> str:
    """The final summary of a response: what helpfulness is judged on."""
    text = with_think_prefix(text, prompt)
    tags = _ANSWER.findall(text)
    if tags:
        return tags[-1].strip()
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1].strip()
    return "" if "<think>" in text else text.strip()


def rm_input(prompt: str, response: str) -> str:
    """What the classifier reads: the prompt the policy saw, a space, the judged text.
    ``data/build_tiny_reward_model.py`` trains on exactly this format."""
    return f"{prompt.rstrip()} {response.strip()}"


@functools.lru_cache(maxsize=4)
def _load(path: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..model.policy import ModelError, _looks_local
    from pathlib import Path
    if _looks_local(path) and not Path(path).is_dir():
        raise ModelError(f"reward model path does not exist: {path!r}")
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype).to(device).eval()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return tok, model


@torch.no_grad()
def classify(path: str, texts: list[str], label: int = 0, batch_size: int = 16,
             max_length: int = 4096, squash: str = "sigmoid") -> list[float]:
    """Logit ``label`` of the classifier at ``path`` for each text (sigmoid-squashed)."""
    tok, model = _load(path)
    tok.padding_side = "right"
    label = 0 if model.config.num_labels == 1 else label
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True, truncation=True,
                  max_length=max_length).to(model.device)
        logits = model(**enc).logits[:, label].float().tolist()
        out += [1 / (1 + math.exp(-x)) if squash == "sigmoid" else x for x in logits]
    return out


def _chat(path: str, question: str, response: str) -> str:
    tok, _ = _load(path)
    return tok.apply_chat_template([{"role": "user", "content": question},
                                    {"role": "assistant", "content": response}], tokenize=False)


@register("reward_model")
def reward_model(prompts, completions, kind, path: str = "data/tiny_reward_model",
                 helpful_path: str | None = None, harmless_path: str | None = None,
                 helpful_weight: float = 0.5, harmless_weight: float = 0.5,
                 helpful_label: int = 0, harmless_label: int = 1, apply_to: str = "general",
                 chat: bool = False, question=None, squash: str = "sigmoid", batch_size: int = 16,
                 **kwargs):
    """Helpfulness on the summary + harmlessness on the whole response, for ``kind ==
    apply_to`` samples; None for the others. ``chat``: format as a chat with the raw
    ``question`` column (real reward models expect their chat template)."""
    idx = [i for i, k in enumerate(kind) if k == apply_to]
    out: list[float | None] = [None] * len(completions)
    if not idx:
        return out
    texts = [completion_text(completions[i]) for i in idx]
    ps = [prompts[i] for i in idx]
    qs = [question[i] for i in idx] if question is not None else ps

    def inputs(p_path, parts):
        if chat:
            return [_chat(p_path, q, r) for q, r in zip(qs, parts)]
        return [rm_input(p, r) for p, r in zip(ps, parts)]

    total = [0.0] * len(idx)
    if helpful_weight:
        hp = helpful_path or path
        h = classify(hp, inputs(hp, [summary(t, p) for t, p in zip(texts, ps)]), helpful_label,
                     batch_size, squash=squash)
        total = [a + helpful_weight * b for a, b in zip(total, h)]
    if harmless_weight:
        sp = harmless_path or path
        s = classify(sp, inputs(sp, texts), harmless_label, batch_size, squash=squash)
        total = [a + harmless_weight * b for a, b in zip(total, s)]
    for j, i in enumerate(idx):
        out[i] = total[j]
    return out


reward_model.timeout_s = None      # a model forward on a big batch may take a while
