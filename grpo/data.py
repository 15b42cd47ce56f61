"""Datasets for training and evaluation: built-in generated tasks, local files, hub ids.

Every row ends up as a dict with a ``prompt`` (the question, before templating)
and the task's other columns (``answer``, ``tests``, ...), which are passed to
reward functions as keyword arguments.

>>> rows = load_rows("builtin:arithmetic", n=3, seed=0)
>>> len(rows), sorted(rows[0])
(3, ['answer', 'numbers', 'prompt'])
>>> apply_template("r1_zero_tiny", "What is 1+2?")
'User: What is 1+2?\\nAssistant:'
>>> apply_template("r1_zero", "How many are left?")[-35:]     # no "left?." (one sentence end)
'User: How many are left? Assistant:'
>>> render_prompt(None, "Add 2 and 3", "r1_zero_tiny", instruction="Answer in <answer> tags.")
'User: Add 2 and 3\\nAnswer in <answer> tags.\\nAssistant:'
>>> s = PromptSampler(10, batch_size=4, seed=0)
>>> s.indices(0) == PromptSampler(10, 4, 0).indices(0)   # stateless: resume needs only the step
True
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

from . import tasks

# DeepSeek-R1 report, Table 1: the R1-Zero template. The model is asked to reason inside
# <think> and answer inside <answer>; nothing else constrains the content, so that the
# reasoning behaviour that emerges comes from RL, not from the prompt.
R1_ZERO = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here </answer>. User: {prompt} Assistant:"
)

TEMPLATES = {
    "r1_zero": R1_ZERO,
    # The shipped tiny model's pre-training format: the same contract (think, then answer
    # in tags) without the long preamble, which a 1M-parameter model cannot read anyway.
    "r1_zero_tiny": "User: {prompt}\nAssistant:",
    "plain": "{prompt}",
    "chat": None,  # the tokenizer's chat template, applied by the trainer
}


class DataError(ValueError):
    """Bad dataset input; the message is one line meant for the user."""


# Templates whose {prompt} is a sentence inside running text: it gets a full stop unless
# it already ends like a sentence (the report's "User: prompt. Assistant:").
SENTENCE_TEMPLATES = {"r1_zero"}
_SENTENCE_END = (".", "?", "!", "\u3002", "\uff1f", "\uff01", ":", ";", ")", "]", "}", "\"", "'", "$")


def _as_sentence(text: str) -> str:
    text = text.rstrip()
    return text if not text or text.endswith(_SENTENCE_END) else text + "."


def apply_template(name: str, prompt: str) -> str:
    if name not in TEMPLATES:
        raise DataError(f"unknown template {name!r}; one of {', '.join(TEMPLATES)}")
    template = TEMPLATES[name]
    if template is None:
        return prompt
    return template.format(prompt=_as_sentence(prompt) if name in SENTENCE_TEMPLATES else prompt)


def _messages(prompt) -> list[dict]:
    """A prompt as chat messages: a string is one user turn; a list must be messages."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)) and prompt and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in prompt):
        return [dict(m) for m in prompt]
    raise DataError(f"a prompt must be a string or a list of {{role, content}} messages, "
                    f"got {type(prompt).__name__}: {str(prompt)[:80]!r}")


def render_prompt(tok, prompt, template: str = "r1_zero", system_prompt: str | None = None,
                  instruction: str | None = None) -> str:
    """The prompt text the policy sees, for train, eval, sample, sft and the pipeline alike.

    ``prompt``: a question string or a list of chat messages. ``instruction`` is appended to
    the (last) user turn on its own line (e.g. "Put the final answer in \\boxed{}.");
    ``system_prompt`` is the chat template's system turn, or for a text template a line
    before it. ``template="chat"`` uses the tokenizer's chat template (``tok`` needed).
    """
    msgs = _messages(prompt)
    if msgs[-1]["role"] != "user":
        raise DataError(f"a prompt must end with a user turn, not {msgs[-1]['role']!r}")
    if instruction:
        msgs[-1]["content"] = msgs[-1]["content"].rstrip() + "\n" + instruction
    if template == "chat":
        if system_prompt and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": system_prompt})
        if tok is None or not getattr(tok, "chat_template", None):
            raise DataError("data.template is 'chat' but the model's tokenizer has no chat template; "
                            "use r1_zero, r1_zero_tiny or plain")
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    system = [m["content"] for m in msgs if m["role"] == "system"]
    turns = [m for m in msgs if m["role"] != "system"]
    if len(turns) != 1:
        raise DataError(f"template {template!r} renders a single question, but a prompt has "
                        f"{len(turns)} turns; use data.template: chat")
    head = "\n".join([x for x in [system_prompt, *system] if x])
    text = apply_template(template, turns[0]["content"])
    return f"{head}\n{text}" if head else text


def prompt_format(section) -> dict:
    """render_prompt's keyword arguments from any config section with the prompt fields
    (``template`` and optionally ``system_prompt``, ``instruction``)."""
    return {"template": section.template, "system_prompt": getattr(section, "system_prompt", None),
            "instruction": getattr(section, "instruction", None)}


def _gsm8k(row: dict) -> dict:
    # GSM8K gold answers end in "#### 42"; keep the number (commas removed).
    row["answer"] = row["answer"].split("####")[-1].strip().replace(",", "")
    row["prompt"] = row.pop("question", row.get("prompt"))
    return row


def _math(row: dict) -> dict:
    # MATH / MATH-500: the gold answer is the last \boxed{} of the solution unless given.
    if "answer" not in row:
        boxed = re.findall(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}", row.get("solution", ""))
        row["answer"] = boxed[-1] if boxed else None
    row["prompt"] = row.pop("problem", row.get("prompt"))
    return row


PREPROCESSORS = {"none": lambda r: r, "gsm8k": _gsm8k, "math": _math}


def _read_file(path: Path) -> list[dict]:
    if path.suffix in (".jsonl", ".json"):
        text = path.read_text()
        if path.suffix == ".json" and text.lstrip().startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if path.suffix == ".parquet":
        import pandas as pd
        return pd.read_parquet(path).to_dict("records")
    if path.suffix == ".csv":
        import pandas as pd
        return pd.read_csv(path).to_dict("records")
    raise DataError(f"unsupported data file {str(path)!r}: use .jsonl, .json, .parquet or .csv")


def _read_hub(name: str, split: str, subset: str | None) -> list[dict]:
    import os
    try:
        import datasets
        if os.environ.get("HF_DATASETS_OFFLINE") != "1" and not _hub_reachable():
            # Offline: the cache only, at once, instead of ~25 s of retries and a traceback.
            datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
            try:
                return list(datasets.load_dataset(name, subset, split=split))
            except Exception:
                raise DataError(f"dataset {name!r} (split {split!r}) is not in the local cache and the "
                                "hub is unreachable; download it on a connected machine or use a local "
                                "file") from None
        return list(datasets.load_dataset(name, subset, split=split))
    except DataError:
        raise
    except Exception as e:  # offline, missing, gated...: one line for the user
        raise DataError(f"could not load dataset {name!r} (split {split!r}) from the hub or "
                        f"cache: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None


def _hub_reachable() -> bool:
    from .policy import _hub_reachable as reachable
    return reachable()


def is_local_source(source: str) -> bool:
    return Path(source).suffix in (".jsonl", ".json", ".parquet", ".csv") or Path(source).exists()


def select_split(rows: list[dict], split: str, source: str) -> list[dict]:
    """A local file's rows of ``split`` when it has a ``split`` column (else all of them).

    >>> [r["q"] for r in select_split([{"q": 1, "split": "train"}, {"q": 2, "split": "test"}], "test", "f")]
    [2]
    """
    if not rows or not isinstance(rows[0], dict) or "split" not in rows[0]:
        return rows
    kept = [r for r in rows if r.get("split") == split]
    if not kept:
        found = sorted({str(r.get("split")) for r in rows})
        raise DataError(f"{source!r} has no rows with split {split!r} (its splits: {', '.join(found)})")
    return kept


def load_rows(source: str, n: int | None = None, seed: int = 0, split: str = "train",
              subset: str | None = None, preprocess: str = "none",
              columns: dict[str, str] | None = None) -> list[dict]:
    """Rows from ``builtin:<task>``, a local file, or a hub dataset id.

    ``columns`` renames source columns (``{"prompt": "question"}`` takes ``question``
    as the prompt); ``preprocess`` applies a known cleanup (gsm8k, math).
    """
    if source.startswith("builtin:"):
        try:
            rows = list(tasks.generate(source.split(":", 1)[1], n or 1000, seed))
        except ValueError as e:
            raise DataError(str(e)) from None
    elif is_local_source(source):
        if not Path(source).exists():
            raise DataError(f"data file not found: {source!r}")
        rows = select_split(_read_file(Path(source)), split, source)
    else:
        rows = _read_hub(source, split, subset)
    for new, old in (columns or {}).items():
        for r in rows:
            if old not in r:
                raise DataError(f"column {old!r} (mapped to {new!r}) missing in {source!r}; "
                                f"columns are {sorted(r)}")
            r[new] = r.pop(old)
    rows = [PREPROCESSORS[preprocess](dict(r)) for r in rows]
    if not rows:
        raise DataError(f"dataset {source!r} is empty")
    if "prompt" not in rows[0]:
        raise DataError(f"dataset {source!r} has no 'prompt' column (columns: {sorted(rows[0])}); "
                        "map one with data.columns: {prompt: <column>}")
    if n is not None and not source.startswith("builtin:"):
        rows = rows[:n]
    return rows


class PromptSampler:
    """Which rows make up step ``s``'s batch: a fresh seeded permutation per epoch.

    Stateless by design: the batch of any step is a function of (seed, step), so a
    resumed run draws exactly the prompts the uninterrupted run would have drawn.
    """

    def __init__(self, n_rows: int, batch_size: int, seed: int):
        if batch_size > n_rows:
            raise DataError(f"batch of {batch_size} prompts but the dataset has only {n_rows} rows")
        self.n, self.bs, self.seed = n_rows, batch_size, seed
        self.per_epoch = n_rows // batch_size

    def indices(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.per_epoch)
        perm = list(range(self.n))
        random.Random(self.seed * 100003 + epoch).shuffle(perm)
        return perm[k * self.bs:(k + 1) * self.bs]
