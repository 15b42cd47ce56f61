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
import sys
from pathlib import Path

from . import tasks
from ..config import SourceConfig

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


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")     # a byte-order mark is fine
    except UnicodeDecodeError as e:
        line = e.object[:e.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} on line {line}); "
                        "save the data file as UTF-8") from None


def _read_jsonl(path: Path, text: str) -> list[dict]:
    """One JSON object per line; a bad line is reported with its real (1-based) number."""
    rows = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise DataError(f"{path} line {no}: invalid JSON: {getattr(e, 'msg', e)} "
                            f"(column {getattr(e, 'colno', '?')})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {no}: expected a JSON object, got {type(row).__name__}")
        rows.append(_no_nan(row))          # a bare NaN (non-standard JSON) is a missing value
    return rows


def _read_file(path: Path) -> list[dict]:
    if path.is_dir():
        raise DataError(f"data source {str(path)!r} is a directory, not a data file")
    try:
        return _read_any(path)
    except DataError:
        raise
    except OSError as e:
        raise DataError(f"cannot read data file {str(path)!r}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 -- a corrupt parquet/csv: one line, not a traceback
        raise DataError(f"cannot read data file {str(path)!r}: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None


def _read_any(path: Path) -> list[dict]:
    if path.suffix in (".jsonl", ".json"):
        text = _read_text(path)
        if path.suffix == ".json" and text.lstrip().startswith("{"):
            try:
                whole = json.loads(text)
            except ValueError:
                whole = None                   # JSON lines in a .json file
            if isinstance(whole, dict) and "\n" in text.strip():
                raise DataError(f"{path}: a .json data file must hold an array of row objects (or one object per "
                                "line), not one object")
        if path.suffix == ".json" and text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except ValueError as e:
                raise DataError(f"{path} line {e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
            bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
            if bad is not None:
                raise DataError(f"{path}: item {bad} is a {type(rows[bad]).__name__}, expected an object")
            return rows
        return _read_jsonl(path, text)
    if path.suffix == ".parquet":
        import pandas as pd
        return [_no_nan(r) for r in pd.read_parquet(path).to_dict("records")]
    if path.suffix == ".csv":
        import pandas as pd
        _read_text(path)                   # non-UTF-8: one line
        # Strings as written (an answer "007" stays "007"); an empty cell is a missing value.
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        return [{k: (None if v == "" else v) for k, v in r.items()} for r in df.to_dict("records")]
    raise DataError(f"unsupported data file {str(path)!r}: use .jsonl, .json, .parquet or .csv")


def _no_nan(row: dict) -> dict:
    """pandas writes a missing cell as NaN: a missing value is None (a reward's 'not applicable')."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def _prompt_error(p) -> str | None:
    """Why ``p`` is not a prompt: a non-empty string, or chat messages (TRL's conversational format).

    >>> _prompt_error("What is 2+2?") is None, _prompt_error([{"role": "user", "content": "hi"}]) is None
    (True, True)
    >>> _prompt_error(3), _prompt_error([{"role": "user"}])
    ('an int', 'a chat message without a string role and content')
    """
    if isinstance(p, str):
        return None if p.strip() else "an empty string"
    if isinstance(p, list) and p:
        for m in p:
            if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                return "a chat message without a string role and content"
        return None
    if p is None:
        return "null"
    return "an empty list" if isinstance(p, list) else f"a{'n' if type(p).__name__[0] in 'aeiou' else ''} {type(p).__name__}"


def check_rows(rows: list[dict], source: str, needs: dict[str, set[str]] | None = None) -> None:
    """Every row, before training: a valid prompt and the columns the rewards need
    (``needs``: reward name -> columns). One line naming the first bad row and the count.

    >>> check_rows([{"prompt": "q", "answer": "1"}, {"prompt": "q"}], "d.jsonl", {"math": {"answer"}})
    Traceback (most recent call last):
    ...
    grpo.data.DataError: d.jsonl row 2 (1-based): reward 'math' needs dataset column 'answer', missing there (1 of 2 rows lack it; the row has ['prompt'])
    """
    for i, r in enumerate(rows):
        why = _prompt_error(r.get("prompt"))
        if why is not None:
            n_bad = sum(_prompt_error(x.get("prompt")) is not None for x in rows)
            raise DataError(f"{source} row {i + 1} (1-based): 'prompt' must be a string or a list of chat "
                            f"messages [{{role, content}}], got {why} ({n_bad} of {len(rows)} rows are bad)")
    for name, cols in (needs or {}).items():
        for col in sorted(cols):
            lack = [i for i, r in enumerate(rows) if col not in r]
            if lack:
                raise DataError(f"{source} row {lack[0] + 1} (1-based): reward {name!r} needs dataset column "
                                f"{col!r}, missing there ({len(lack)} of {len(rows)} rows lack it; the row has "
                                f"{sorted(rows[lack[0]])})")


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
    from ..model.policy import _hub_reachable as reachable
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
              columns: dict[str, str] | None = None, needs: dict[str, set[str]] | None = None) -> list[dict]:
    """Rows from ``builtin:<task>``, a local file, or a hub dataset id.

    Every row is checked (:func:`check_rows`): its prompt, and the columns in ``needs``
    (reward name -> columns it needs); then rows lacking a column other rows have get None.

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
    rows = [_preprocess(preprocess, r, i, source) for i, r in enumerate(rows)]
    if not rows:
        raise DataError(f"dataset {source!r} is empty")
    if "prompt" not in rows[0]:
        raise DataError(f"dataset {source!r} has no 'prompt' column (columns: {sorted(rows[0])}); "
                        "map one with data.columns: {prompt: <column>}")
    if n is not None and not source.startswith("builtin:"):
        rows = rows[:n]
    check_rows(rows, source, needs)
    # Rows with fewer columns than others get None there (not applicable), never a KeyError mid-step.
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [r if len(r) == len(keys) else {k: r.get(k) for k in keys} for r in rows]


def _preprocess(name: str, row: dict, i: int, source: str) -> dict:
    try:
        return PREPROCESSORS[name](dict(row))
    except (KeyError, AttributeError, TypeError) as e:
        raise DataError(f"{source} row {i + 1} (1-based): data.preprocess={name} cannot read it "
                        f"({type(e).__name__}: {e}); columns are {sorted(row)}") from None


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


def model_context(model) -> int | None:
    """Positions the model can attend over (None when its config does not say)."""
    cfg = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(cfg, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def check_prompt_lengths(rows: list[dict], render, tokenizer, context: int | None, max_new_tokens: int,
                         mode: str = "error", log=None) -> list[dict]:
    """Rows whose rendered prompt (``render(row["prompt"])``) fits in ``context -
    max_new_tokens`` tokens. ``mode``: error (a one-line DataError naming the longest),
    drop (those rows removed) or truncate (a string prompt's question cut to fit);
    drop and truncate report their count through ``log`` (default: stderr)."""
    if context is None:
        return rows
    budget = context - max_new_tokens
    if budget <= 0:
        raise DataError(f"rollout.max_new_tokens={max_new_tokens} leaves no room for a prompt in the "
                        f"model's {context}-position context")
    n_tok = lambda text: len(tokenizer(text, add_special_tokens=True).input_ids)  # noqa: E731
    lengths = [n_tok(render(r["prompt"])) for r in rows]
    over = [i for i, n in enumerate(lengths) if n > budget]
    if not over:
        return rows
    worst = max(over, key=lambda i: lengths[i])
    what = (f"{len(over)} of {len(rows)} prompts are longer than the {budget} tokens the model's context "
            f"allows ({context} positions - {max_new_tokens} rollout.max_new_tokens); the longest is row "
            f"{worst + 1} (1-based) with {lengths[worst]} tokens")
    if mode == "error":
        raise DataError(f"{what}; set data.overlong_prompts: drop or truncate, or shorten them")
    log = log or (lambda msg: print(msg, file=sys.stderr))
    bad = set(over)
    if mode == "drop":
        kept = [r for i, r in enumerate(rows) if i not in bad]
        if not kept:
            raise DataError(f"{what}; none is left to train on")
        log(f"grpo: warning: {what}: dropped them, {len(kept)} rows left")
        return kept
    out = [dict(r, prompt=_truncate(r["prompt"], render, tokenizer, n_tok, budget)) if i in bad else r
           for i, r in enumerate(rows)]
    log(f"grpo: warning: {what}: truncated their questions to fit")
    return out


def _truncate(prompt, render, tokenizer, n_tok, budget: int):
    """Cut the question (a string, or a chat list's last message) until the rendered prompt fits."""
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    wrap = (lambda t: t) if isinstance(prompt, str) else (lambda t: [*prompt[:-1], {**prompt[-1], "content": t}])
    ids = tokenizer(text, add_special_tokens=False).input_ids
    keep = len(ids)
    while keep > 0:
        over = n_tok(render(wrap(tokenizer.decode(ids[:keep])))) - budget
        if over <= 0:
            return wrap(tokenizer.decode(ids[:keep]))
        keep -= max(over, 1)
    raise DataError(f"a prompt's template alone is longer than the {budget} tokens the context allows")


# --------------------------------------------------------------------------- stage sources
# A stage recipe's SourceConfig (SFT data, sampling prompts, the pipeline's eval sets).
def load_source(src: SourceConfig) -> list[dict]:
    """Rows of one source with formats applied, ``kind`` set and ``num_samples`` kept."""
    name = src.source.split(":", 1)[1] if src.source.startswith("builtin:") else None
    if name in tasks.SFT_GENERATORS:
        rows = tasks.SFT_GENERATORS[name](src.num_samples or 1000, src.seed)
    else:
        builtin = src.source.startswith("builtin:")
        rows = load_rows(src.source, src.num_samples if builtin else None, src.seed, src.split,
                         src.subset, src.preprocess, src.columns)
        if rows and "split" in rows[0] and not builtin:
            rows = [r for r in rows if r.get("split") == src.split]
    out = []
    for r in rows:
        r = dict(r)
        for key, fmt in (("prompt", src.prompt_format), ("completion", src.completion_format)):
            if fmt is not None:
                r[key] = _format(fmt, r, src.source)
        if src.kind is not None:
            r["kind"] = src.kind
        out.append(r)
    if not out:
        raise DataError(f"no rows in {src.source!r} (split {src.split!r})")
    return (out[:src.num_samples] if src.num_samples else out) * src.repeat


def write_prompts(sources: list[SourceConfig], path: Path) -> dict:
    """One prompt file from several sources: columns unioned (missing ones None), the raw
    question kept as ``question``, reference completions dropped. Returns counts per kind."""
    rows = []
    for src in sources:
        rows += [{k: v for k, v in r.items() if k not in ("completion", "split")} for r in load_source(src)]
    keys = sorted({k for r in rows for k in r} | {"kind", "answer"})
    rows = [{**{k: r.get(k) for k in keys}, "question": r["prompt"]} for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[str(r["kind"])] = kinds.get(str(r["kind"]), 0) + 1
    return kinds


def _format(fmt: str, row: dict, source: str) -> str:
    try:
        return fmt.format(**row)
    except KeyError as e:
        raise DataError(f"format {fmt!r} uses column {e.args[0]!r} missing in {source!r}; "
                        f"columns are {sorted(row)}") from None
