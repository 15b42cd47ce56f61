r"""Math answer checking: the rule-based accuracy reward of DeepSeek-R1-Zero.

"The accuracy reward model evaluates whether the response is correct ... the
model is required to provide the final answer in a specified format (e.g.,
within a box)" -- DeepSeek-R1 paper, section 2.2.2.  :func:`math_accuracy`
extracts one unambiguous final answer (:mod:`rewards._extract`: after
``</think>``, in the last ``<answer>`` block, the last ``\boxed{}`` run, "The
final answer is X", ``#### X``; several different boxed answers score 0;
unmarked text is read by :mod:`rewards._rawanswer`) and compares it with the
gold answer -- extracted the same way -- via :func:`verify`.

Every path is bounded: extraction is linear-time, the fast path checks sizes
before any arithmetic (``1e99999999`` is "too big", never computed), and the
symbolic path runs in a killable process.  :func:`verify` is three-tier:

1. a pure-Python path (:mod:`rewards._compare`) decides integers, decimals,
   fractions, percentages, units, ``x = 3``, numeric sets/intervals and short
   LaTeX constants in microseconds, without signals, threads or sympy;
2. common symbolic expressions (polynomials, ``\frac``, roots, ``\pi``, ``e``,
   trigonometric and log functions) are decided by evaluating both sides at
   random real and complex points (:mod:`rewards._probe`, exact for rational
   expressions), which declines whenever it is unsure;
3. everything else (symbolic sets, matrices, what the probe declines, ...) goes to
   math-verify in a persistent worker process (:mod:`rewards._pool`) that is
   killed when it exceeds ``timeout_s`` -- so it works from any thread or
   process and never hangs.  Timeouts count as wrong.

>>> verify("0.5", r"\frac{1}{2}"), verify(r"\boxed{x = 3}", "3"), verify("7", "8")
(True, True, False)
>>> math_accuracy(["q"] * 3, ["<answer>\\dfrac12</answer>", "\\boxed{3}", "no idea"],
...               answer=["0.5", "2", "1"])
[1.0, 0.0, 0.0]
>>> math_accuracy(["q"], [[{"role": "assistant", "content": "The answer is 50%."}]], answer=[None])
[None]
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor

from rewards._compare import fast_equal, normalize
from rewards._pool import get_pool
from rewards._probe import probe_equal
from rewards._extract import final_answer, gsm8k_answer
from rewards._text import completion_text, extract_gold, prompt_opens_think
from rewards.registry import register

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3.0
MAX_SYMBOLIC_LEN = 1000  # longer "answers" are not worth a sympy parse
_CACHE_MAX = 1 << 16
# GRPO samples G completions per prompt and many agree on the answer, so a
# (pred, gold) cache removes most repeated work; timeouts are cached too, so a
# pathological answer costs its timeout once.
_cache: dict[tuple[str, str], bool] = {}
_cache_lock = threading.Lock()
stats = {"fast": 0, "probe": 0, "symbolic": 0, "timeouts": 0, "crashes": 0}


_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "lim", "max", "min", "gcd", "lcm",
               "mod", "det", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "deg", "begin", "end",
               "pmatrix", "bmatrix", "matrix", "vmatrix", "cases", "array", "sqrt", "frac", "infty", "sum",
               "prod", "int", "cdots", "ldots", "dots", "quad", "text", "mathrm", "and"}
_WORDS = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}")


def _stray_words(s: str) -> set[str]:
    return {w.lower() for w in _WORDS.findall(s)} - _MATH_WORDS


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _fast(pred: str, gold: str):
    """(key, decided result or None)."""
    key = (pred, gold)
    hit = _cache.get(key)
    if hit is not None:
        return key, hit
    if len(pred) > MAX_SYMBOLIC_LEN or len(gold) > MAX_SYMBOLIC_LEN:
        r = pred == gold  # an essay is not an answer; also keeps the regexes linear-time
    else:
        p, g = normalize(pred), normalize(gold)
        r = fast_equal(p, g, normalized=True)
        if r is None and (not p or not g or _stray_words(p) - _stray_words(g)):
            r = False  # "5 (not sure)": words the gold does not have are not math
        if r is None:  # middle tier: evaluate both at probe points; None = unsure
            r = probe_equal(p, g, raw=(pred, gold))
            stats["probe"] += r is not None
    if r is not None:
        stats["fast"] += 1
        _store(key, r)
    return key, r


def _store(key, value: bool) -> None:
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = value


def _symbolic(pred: str, gold: str, timeout_s: float) -> bool:
    ok, status = get_pool().verify(pred, gold, timeout_s)
    stats["symbolic"] += 1
    if status != "ok":
        stats["timeouts" if status == "timeout" else "crashes"] += 1
        if stats["timeouts"] + stats["crashes"] <= 5:
            log.warning("math verify %s after %.1fs on pred=%.80r gold=%.80r; scored as wrong",
                        status, timeout_s, pred, gold)
    _store((pred, gold), ok)
    return ok


def verify(pred: str, gold: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether answer ``pred`` is mathematically equivalent to ``gold``.

    Both are answer strings (a surrounding ``\\boxed{}``/``$`` is fine).  Takes at
    most about ``timeout_s`` seconds whatever the input, from any thread.

    >>> verify("(1, 2]", r"\\left(1,2\\right]"), verify("(1, 2)", "[1, 2]")
    (True, False)
    """
    pred, gold = str(pred).strip(), str(gold).strip()
    key, r = _fast(pred, gold)
    return r if r is not None else _symbolic(pred, gold, timeout_s)


def verify_many(pairs: list[tuple[str, str]], timeout_s: float = DEFAULT_TIMEOUT_S) -> list[bool]:
    """:func:`verify` over many pairs; symbolic cases run on all pool workers at once."""
    out: list = []
    todo = []
    for i, (p, g) in enumerate(pairs):
        p, g = str(p).strip(), str(g).strip()
        _, r = _fast(p, g)
        out.append(r)
        if r is None:
            todo.append((i, (p, g)))
    uniq = list(dict.fromkeys(k for _, k in todo))
    if len(uniq) == 1:
        res = {uniq[0]: _symbolic(uniq[0][0], uniq[0][1], timeout_s)}
    elif uniq:
        with ThreadPoolExecutor(max_workers=min(len(uniq), get_pool().size)) as ex:
            res = dict(zip(uniq, ex.map(lambda k: _symbolic(k[0], k[1], timeout_s), uniq)))
    for i, k in todo:
        out[i] = res[k]
    return out


def correctness(completions: list, answer: list, timeout_s: float = DEFAULT_TIMEOUT_S,
                prompts: list | None = None, multiple: str = "reject", fallback: bool | str = True,
                answer_format: str = "auto") -> list:
    """Per completion: True/False, or None when the gold answer is missing.

    multiple: "reject" -- several different boxed answers score 0; "last" -- the
    last one counts.  fallback: a completion with no marked answer (box, answer
    tag, "the answer is", ``####``) is its own answer when it is only a formula
    (``4``) and is otherwise read by :mod:`rewards._rawanswer` (its last formula
    or number); "bare": only formula-only completions; False: an unmarked
    completion scores 0.  answer_format: "auto"; "gsm8k" -- only a ``#### N``
    line (or the last number) of the completion counts, as in GSM8K.
    """
    if multiple not in ("reject", "last"):
        raise ValueError(f"math_accuracy: multiple must be 'reject' or 'last', not {multiple!r}")
    if fallback not in (True, False, "bare"):
        raise ValueError(f"math_accuracy: fallback must be true, false or 'bare', not {fallback!r}")
    if answer_format not in ("auto", "gsm8k"):
        raise ValueError(f"math_accuracy: answer_format must be 'auto' or 'gsm8k', not {answer_format!r}")
    prompts = prompts if prompts is not None and len(prompts) == len(completions) else [None] * len(completions)
    golds = [extract_gold(a) for a in answer]
    preds = [_pred(completion_text(c), p, multiple, fallback, answer_format) for c, p in zip(completions, prompts)]
    idx = [i for i, (p, g) in enumerate(zip(preds, golds)) if p is not None and g is not None]
    res = verify_many([(preds[i], golds[i]) for i in idx], timeout_s)
    out: list = [None if g is None else False for g in golds]
    for i, r in zip(idx, res):
        out[i] = r
    return out


def _pred(text: str, prompt, multiple: str, fallback, answer_format: str) -> str | None:
    if answer_format == "gsm8k":
        return gsm8k_answer(text, think_opened=prompt_opens_think(prompt))
    ans, _ = final_answer(text, multiple=multiple, think_opened=prompt_opens_think(prompt),
                          raw=fallback is True, bare=bool(fallback))
    return ans


@register("math_accuracy")
def math_accuracy(prompts, completions, answer, timeout_s: float = DEFAULT_TIMEOUT_S,
                  multiple: str = "reject", fallback: bool | str = True, answer_format: str = "auto", **kwargs):
    """1.0 if the completion's final answer equals the ``answer`` column, else 0.0
    (no extractable answer counts as wrong); None where the gold is missing.
    Options: see :func:`correctness`."""
    if len(answer) != len(completions):
        raise ValueError(f"answer column has {len(answer)} values for {len(completions)} completions")
    res = correctness(completions, answer, timeout_s, prompts, multiple, fallback, answer_format)
    return [None if c is None else float(c) for c in res]


# Each sample is already bounded by the worker pool's hard timeout; a large batch
# with many symbolic answers may legitimately exceed RewardSet's per-call limit.
math_accuracy.timeout_s = None

# DeepSeek-R1-Zero calls it the "accuracy reward"; recipes may use either name.
register("accuracy")(math_accuracy)
