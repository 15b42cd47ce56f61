"""Evaluation: pass@1 averaged over k samples, maj@k and pass@k, plus format compliance.

pass@k uses the unbiased estimator of Chen et al. 2021 (Codex): with n samples of
which c are correct, pass@k = 1 - C(n-c, k) / C(n, k).

>>> pass_at_k(n=4, c=1, k=1), pass_at_k(n=4, c=1, k=4), pass_at_k(n=4, c=0, k=2)
(0.25, 1.0, 0.0)
>>> majority(["3", "4", "3", None])
'3'
"""
from __future__ import annotations

from collections import Counter
from math import comb
from typing import Optional

from pydantic import Field

import rewards as rewards_lib
from rewards._extract import final_answer

from ..config import RewardConfig, SourceConfig, Template, _Strict
from ..data import DataError, load_source, prompt_format, render_prompt
from ..rollout.base import SamplingParams


def pass_at_k(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority(answers: list[str | None]) -> str | None:
    votes = Counter(a.strip() for a in answers if a is not None and a.strip())
    return votes.most_common(1)[0][0] if votes else None


def evaluate(engine, rows: list[dict], render, k: int = 4, max_new_tokens: int = 256,
             temperature: float = 0.6, top_p: float = 0.95, batch_prompts: int = 32,
             accuracy: str = "math_accuracy", format_reward: str | None = "think_format",
             progress: bool = True, stop: list[str] | None = None, end_of_turn: bool = True,
             accuracy_kwargs: dict | None = None) -> dict:
    """Sample k completions per row and score them. DeepSeek-R1 reports pass@1 as the mean
    over k samples at temperature 0.6, top-p 0.95 (R1 report, section 3), our defaults.
    ``render``: the row prompt -> model text function training used (``data.render_prompt``
    with the recipe's prompt format), or a template name."""
    from functools import partial

    from tqdm.auto import tqdm

    if isinstance(render, str):
        render = partial(render_prompt, None, template=render)
    acc_fn = rewards_lib.load(accuracy)
    if accuracy_kwargs:
        acc_fn = partial(acc_fn, **accuracy_kwargs)
    fmt_fn = rewards_lib.load(format_reward) if format_reward else None
    sp = SamplingParams(n=k, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                        stop=list(stop or []), end_of_turn=end_of_turn)
    correct, fmt_ok, maj_ok, lengths, samples = [], [], [], [], []
    for i in tqdm(range(0, len(rows), batch_prompts), desc="eval", disable=not progress):
        chunk = rows[i:i + batch_prompts]
        prompts = [render(r["prompt"]) for r in chunk]
        groups = engine.generate(prompts, sp)
        for row, prompt, g in zip(chunk, prompts, groups):
            texts = [c.text for c in g.completions]
            cols = {key: [v] * k for key, v in row.items() if key != "prompt"}
            acc = acc_fn([prompt] * k, texts, **cols)
            correct.append([a is not None and a > 0.5 for a in acc])
            if fmt_fn is not None:
                fmt_ok += [f is not None and f > 0.5 for f in fmt_fn([prompt] * k, texts, **cols)]
            vote = majority([final_answer(t or "", raw=True)[0] for t in texts])   # math_accuracy's reading
            maj_ok.append(vote is not None and bool(acc_fn([prompt], [f"<answer>{vote}</answer>"], **{
                key: [v] for key, v in row.items() if key != "prompt"})[0]))
            lengths += [len(c.token_ids) for c in g.completions]
            samples.append({"prompt": row["prompt"], "completions": texts, "correct": correct[-1]})
    n = len(correct)
    return {
        "n_prompts": n, "k": k,
        "pass@1": sum(sum(c) / k for c in correct) / n,
        f"pass@{k}": sum(pass_at_k(k, sum(c), k) for c in correct) / n,
        f"maj@{k}": sum(maj_ok) / n,
        "format_rate": sum(fmt_ok) / len(fmt_ok) if fmt_ok else None,
        "completion_len/mean": sum(lengths) / len(lengths),
        "samples": samples,
    }


def held_out_rows(cfg, n: int | None = None, on_train_rows: bool = False) -> list[dict]:
    """The recipe's held-out set: ``data.eval_source``; for a built-in task fresh problems
    from a different seed (never seen in training, which uses ``train.seed``); for a hub id
    its ``data.eval_split``; for a local file its rows whose ``split`` column is
    ``data.eval_split``, or the file beside it named with ``eval_split`` for ``split``
    (train.jsonl -> test.jsonl). Evaluating the training rows needs ``on_train_rows``."""
    from pathlib import Path

    from ..data import is_local_source, load_rows
    d = cfg.data
    n = n or d.eval_samples
    load = lambda src, split: load_rows(src, n, 0, split, d.subset, d.preprocess, d.columns)  # noqa: E731
    if on_train_rows:
        if d.source.startswith("builtin:"):
            return load_rows(d.source, n, seed=cfg.train.seed)
        return load(d.source, d.split)
    source = d.eval_source or d.source
    if source.startswith("builtin:"):
        return load_rows(source, n, seed=10_000 + cfg.train.seed)
    path = Path(source)
    if d.eval_source or not is_local_source(source):              # a held-out file, or a hub id
        return load(source, d.eval_split)
    rows = load(source, d.eval_split) if _has_split_column(path) else None
    twin = path.with_name(path.name.replace(d.split, d.eval_split)) if d.split in path.name else None
    if rows is None and twin is not None and twin != path and twin.exists():
        rows = load(str(twin), d.eval_split)
    if rows is None:
        raise DataError(f"no held-out rows for {source!r}: it has no 'split' column and no "
                        f"{d.eval_split!r} file beside it; set data.eval_source, or pass --on-train-rows "
                        "to evaluate on the training rows")
    return rows


def _has_split_column(path) -> bool:
    from ..data import _read_file
    rows = _read_file(path)
    return bool(rows) and isinstance(rows[0], dict) and "split" in rows[0]


def eval_engine_name(cfg, engine: str | None = None) -> str:
    """The engine ``grpo eval`` samples with: ``engine`` if given, else the recipe's own
    (``rollout.engine``: hf, or vllm when it is vllm or auto with vLLM installed; a server
    recipe is evaluated in process with hf).

    >>> from grpo.config import Config
    >>> eval_engine_name(Config(rollout={"engine": "hf"})), eval_engine_name(Config(rollout={"engine": "server"}))
    ('hf', 'hf')
    """
    from ..config import ConfigError
    from ..rollout import vllm_available
    name = engine or cfg.rollout.engine
    if name == "auto":
        name = "vllm" if vllm_available() else "hf"
    if name not in ("hf", "vllm", "server"):
        raise ConfigError(f"eval engine must be hf or vllm, not {name!r}")
    if name == "vllm" and not vllm_available():
        raise ConfigError("eval with the vllm engine, but vllm is not installed (scripts/setup_vllm.sh); "
                          "use --engine hf")
    return "hf" if name == "server" else name


def _eval_engine(name: str, path: str, cfg, seed: int | None):
    """(tokenizer, engine) for ``grpo eval``: vLLM loads the checkpoint itself."""
    if name == "hf":
        from ..model.policy import load_policy, to_device
        from ..rollout.hf import HFEngine
        tok, policy = load_policy(path, cfg.model.dtype, trainable=False)
        return tok, HFEngine(to_device(policy), tok)
    from pathlib import Path

    from ..model.gguf import resolve_model_path
    from ..model.policy import check_model_dir, load_tokenizer
    from ..rollout.vllm import VLLMEngine
    path = resolve_model_path(path, cfg.model.dtype)
    if Path(path).is_dir():
        check_model_dir(path)
    tok = load_tokenizer(path)
    return tok, VLLMEngine(path, tok, cfg.rollout, seed=0 if seed is None else seed, dtype=cfg.model.dtype)


def eval_config(cfg, model: str | None = None, k: int = 4, n: int | None = None,
                on_train_rows: bool = False, seed: int | None = 0, engine: str | None = None, **kw) -> dict:
    """Evaluate what ``grpo train`` trains: the recipe's prompt format (render_prompt, as the
    trainer), stop strings and end-of-turn tokens, threads, on its held-out rows, sampled by
    ``engine`` (eval_engine_name: default the recipe's). ``seed`` seeds the sampling (None:
    unseeded)."""
    import torch

    from ..model.policy import set_threads
    set_threads(cfg.train.threads)
    if seed is not None:
        torch.manual_seed(seed)
    rows = held_out_rows(cfg, n, on_train_rows)          # data errors before loading a model
    name = eval_engine_name(cfg, engine)
    tok, eng = _eval_engine(name, model or cfg.model.path, cfg, seed)
    if name == "vllm":
        kw.setdefault("batch_prompts", 256)              # vLLM schedules the requests itself
    spec = next((r for r in cfg.rewards if r.name in ("math_accuracy", "accuracy", "countdown",
                                                      "code_tests")), None)
    # format_rate: of the recipe's own format reward (a chat recipe that trains none has none)
    kw.setdefault("format_reward", next((r.name for r in cfg.rewards if r.name.startswith("think_format")), None))
    render = lambda p: render_prompt(tok, p, **prompt_format(cfg.data))  # noqa: E731
    r = cfg.rollout
    try:
        return evaluate(eng, rows, render, k=k, max_new_tokens=r.max_new_tokens,
                        stop=list(r.stop), end_of_turn=r.end_of_turn,
                        accuracy=spec.name if spec else "math_accuracy",
                        accuracy_kwargs=spec.kwargs if spec else None, **kw)
    finally:
        if name == "vllm":
            eng.close()


class GeneralEval(_Strict):
    data: SourceConfig
    reward: RewardConfig = Field(default_factory=lambda: RewardConfig(name="reward_model"))
    k: int = Field(2, gt=0)


class EvalSpec(_Strict):
    data: SourceConfig = Field(default_factory=lambda: SourceConfig(
        source="builtin:arithmetic", num_samples=200, seed=10_000))
    template: Template = "r1_zero"
    system_prompt: Optional[str] = Field(None, description="as data.system_prompt of the RL recipes")
    instruction: Optional[str] = Field(None, description="as data.instruction of the RL recipes")
    stop: list[str] = Field(default_factory=list, description="stop strings, as rollout.stop")
    k: int = Field(4, gt=0)
    max_new_tokens: int = Field(256, gt=0)
    temperature: float = Field(0.6, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    accuracy: str = "math_accuracy"
    format_reward: Optional[str] = "think_format"
    baseline: bool = Field(True, description="also evaluate the initial model")
    general: Optional[GeneralEval] = Field(None, description="mean reward on held-out general prompts")
    batch_prompts: int = Field(32, gt=0, description="prompts per generate call")
    threads: Optional[int] = Field(None, gt=0)


# --------------------------------------------------------------------------- held-out eval
# The pipeline's per-stage report: the same sampling and metrics as `evaluate`.
def evaluate_model(model_path: str, ev: EvalSpec) -> dict:
    """Held-out pass@1 (mean over k samples), maj@k, pass@k and format rate (grpo.stages.eval),
    plus the mean general reward when ``eval.general`` is set."""
    import torch

    from ..model.policy import load_policy, set_threads, to_device
    from ..rollout.hf import HFEngine
    set_threads(ev.threads)
    torch.manual_seed(0)
    tok, policy = load_policy(model_path, trainable=False)
    engine = HFEngine(to_device(policy), tok)
    render = lambda p: render_prompt(tok, p, **prompt_format(ev))  # noqa: E731
    res = evaluate(engine, load_source(ev.data), render, k=ev.k, max_new_tokens=ev.max_new_tokens,
                   stop=ev.stop, temperature=ev.temperature, top_p=ev.top_p, accuracy=ev.accuracy,
                   format_reward=ev.format_reward, batch_prompts=ev.batch_prompts, progress=False)
    res.pop("samples")
    if ev.general is not None:
        res["general_reward"] = _general_reward(engine, tok, ev)
    return res


def _general_reward(engine, tok, ev: EvalSpec) -> float | None:
    """Mean reward (e.g. reward_model) of k samples on each held-out general prompt."""
    g = ev.general
    rows = load_source(g.data)
    rs = rewards_lib.RewardSet([rewards_lib.RewardSpec(g.reward.name, 1.0, g.reward.kwargs)],
                               fail_on_error=True, timeout_s=600)
    prompts = [render_prompt(tok, r["prompt"], **prompt_format(ev)) for r in rows]
    groups = engine.generate(prompts, SamplingParams(n=g.k, max_new_tokens=ev.max_new_tokens, stop=list(ev.stop),
                                                     temperature=ev.temperature, top_p=ev.top_p))
    texts = [c.text for grp in groups for c in grp.completions]
    cols = {k: [r.get(k) for r in rows for _ in range(g.k)] for k in rows[0] if k != "prompt"}
    cols.setdefault("kind", ["general"] * len(texts))
    cols.setdefault("question", [r["prompt"] for r in rows for _ in range(g.k)])
    vals = [v for v in rs([p for p in prompts for _ in range(g.k)], texts, cols).total if v is not None]
    return sum(vals) / len(vals) if vals else None
