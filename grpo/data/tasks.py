"""Built-in generated tasks: problems for RL prompts and worked traces for pre-training.

The shipped tiny base model (``data/build_tiny_model.py``) is pre-trained on the
traces below, and the tiny recipes train it with GRPO on problems from the same
generator. The traces are deliberately imperfect, like a real base model's
pre-training data: quick traces hold arithmetic slips, a few traces skip the
answer tags, and at a low base rate a trace announces that it verifies every step
("wait, let me verify each step.") and makes no slips. Under an
accuracy reward GRPO can then raise accuracy by verifying more often, which also
makes answers longer: the small-scale analogue of R1-Zero's "aha moment"
(DeepSeek-R1 report, section 2.2.4). The behaviour is planted in pre-training at
a low rate; RL finds and amplifies it, it does not invent it.

>>> import random
>>> p = arithmetic_problem(random.Random(0))
>>> sorted(p)
['answer', 'numbers', 'prompt']
>>> t = arithmetic_trace(p, random.Random(1), slip_rate=0.0, careful_rate=0.0, untagged_rate=0.0)
>>> t.endswith(f"<answer>{p['answer']}</answer>")
True
"""
from __future__ import annotations

import random
from typing import Iterator

# Phrases a trace uses to re-check itself; metrics.py counts these (and more) as reflection.
REFLECT = "wait, let me verify each step."


def arithmetic_problem(rng: random.Random, n_terms: tuple[int, int] = (3, 4)) -> dict:
    """A sum of 3-4 one-digit numbers, e.g. ``{"prompt": "What is 3+7+2?", "answer": "12"}``.

    One-digit terms keep every step a fact a 1M-parameter model can learn exactly (a few
    hundred "a+b" facts), so the errors left are the slips below, not missing skill.
    """
    k = rng.randint(*n_terms)
    nums = [rng.randint(1, 9) for _ in range(k)]
    expr = "+".join(map(str, nums))
    return {"prompt": f"What is {expr}?", "answer": str(sum(nums)), "numbers": nums}


def _slip(rng: random.Random, value: int) -> int:
    """A plausible wrong result: off by a small nonzero amount."""
    return max(0, value + rng.choice([-2, -1, 1, 2]))


def arithmetic_trace(problem: dict, rng: random.Random, slip_rate: float = 0.35,
                     careful_rate: float = 0.15, untagged_rate: float = 0.15) -> str:
    """A step-by-step completion for ``problem`` (the text after ``Assistant:``).

    Two styles, as in real pre-training text: most traces are quick, and each step's
    result slips with probability ``slip_rate`` (slips propagate to the answer). A few
    (``careful_rate``) open with "wait, let me verify each step." and make no slips.
    Which style to use is the first token after
    ``<think>``: one decision, before any arithmetic, that RL can learn to take.
    """
    nums = problem["numbers"]
    careful = rng.random() < careful_rate
    acc, steps = nums[0], []
    for x in nums[1:]:
        true = acc + x
        shown = true if careful or rng.random() >= slip_rate else _slip(rng, true)
        steps.append(f"{acc}+{x}={shown}.")
        acc = shown
    think = (f"{REFLECT} " if careful else "") + " ".join(steps)
    if rng.random() < untagged_rate:
        return f" <think>{think}</think> The answer is {acc}."
    return f" <think>{think}</think> <answer>{acc}</answer>"


# The calculator tool's protocol (grpo/envs' calculator env writes the same observation):
# the model writes <calc>EXPR</calc>, generation stops at </calc>, the env appends
# <result>VALUE</result>, and generation goes on.
TOOL_TAGS = ["<calc>", "</calc>", "<result>", "</result>"]


def long_arithmetic_problem(rng: random.Random) -> dict:
    """A sum of 4-5 one-digit numbers: 3-4 steps where a quick trace can slip, so that
    the calculator matters (the tools recipe's RL prompts).

    >>> p = long_arithmetic_problem(random.Random(0))
    >>> 4 <= len(p["numbers"]) <= 5 and p["answer"] == str(sum(p["numbers"]))
    True
    """
    return arithmetic_problem(rng, n_terms=(4, 5))


def calculator_trace(problem: dict, rng: random.Random, untagged_rate: float = 0.05) -> str:
    """A completion that adds step by step like ``arithmetic_trace`` but hands every step
    to the calculator, each observation written exactly as the calculator env appends
    it at RL time. Each call is "running total + next term": the same look-up of the
    next term that quick traces make, so calls are as well-formed as the model's own
    steps (a 1M-parameter model does not learn to copy a whole 5-term sum from a few
    thousand examples); only the results come from the tool, and they are exact.

    >>> calculator_trace({"numbers": [3, 7, 2]}, random.Random(0), untagged_rate=0.0)
    ' <think><calc>3+7</calc><result>10</result> <calc>10+2</calc><result>12</result></think> <answer>12</answer>'
    >>> calculator_trace({"numbers": [3, 7, 2]}, random.Random(0), untagged_rate=1.0)[-35:]
    '</result></think> The answer is 12.'
    """
    nums = problem["numbers"]
    acc, calls = nums[0], []
    for x in nums[1:]:
        calls.append(f"<calc>{acc}+{x}</calc><result>{acc + x}</result>")
        acc += x
    think = " ".join(calls)
    if rng.random() < untagged_rate:
        return f" <think>{think}</think> The answer is {acc}."
    return f" <think>{think}</think> <answer>{acc}</answer>"


def tool_corpus_trace(problem: dict, rng: random.Random, tool_rate: float = 0.08,
                      slip_rate: float = 0.35, careful_rate: float = 0.0,
                      untagged_rate: float = 0.05) -> str:
    """One pre-training trace of the tools model (``build_tiny_model.py --tools``): with
    probability ``tool_rate`` a calculator trace (a call per step), else an ``arithmetic_trace``. The
    choice is the first token after ``<think>`` (``<calc>`` or a digit), one decision
    RL can learn to take. No careful style by default: the calculator is the one
    reliable route to the answer, so tool use is what RL has room to raise.

    >>> rng = random.Random(0)
    >>> ts = [tool_corpus_trace(arithmetic_problem(rng), rng) for _ in range(2000)]
    >>> 0.06 < sum("<calc>" in t for t in ts) / len(ts) < 0.10
    True
    """
    if rng.random() < tool_rate:
        return calculator_trace(problem, rng, untagged_rate)
    return arithmetic_trace(problem, rng, slip_rate, careful_rate, untagged_rate)


def countdown_problem(rng: random.Random, n_numbers: int = 3) -> dict:
    """TinyZero-style countdown: reach ``target`` with + - * on the given numbers."""
    nums = [rng.randint(1, 20) for _ in range(n_numbers)]
    a, b, c = (nums + [0, 0])[:3]
    target = rng.choice([a + b + c, a * b - c, a * (b + c), a + b - c])
    if target <= 0:
        target = a + b + c
    return {"prompt": f"Using the numbers {nums}, create an equation that equals {target}. "
                      "You may use + - * and each number at most once.",
            "target": target, "numbers": nums}


# Easy GSM8K-style word problems for a small real model (recipes/cpu/smollm2_word_problems.yaml):
# one or two steps on small numbers, in openai/gsm8k's format (the answer column ends "#### N").
NAMES = ("Tom", "Sara", "Ben", "Mia", "Leo", "Ana", "Sam", "Eva", "Max", "Lily", "Omar", "Zoe",
         "Ivan", "Nina", "Raj", "Kim", "Ali", "Jo", "Emma", "Noah")
ITEMS = ("apples", "marbles", "stickers", "books", "pencils", "cookies", "cards", "shells", "coins",
         "stamps", "toy cars", "balloons", "crayons", "buttons")


def word_problem(rng: random.Random, hi: int = 10) -> dict:
    """A one- or two-step word problem on numbers up to ``hi``, GSM8K-formatted.

    >>> p = word_problem(random.Random(3))
    >>> sorted(p), p["answer"].split("#### ")[-1] == str(p["value"])
    (['answer', 'question', 'value'], True)
    """
    n, m = rng.sample(NAMES, 2)
    it, kind = rng.choice(ITEMS), rng.randrange(6)
    a, b, c = rng.randint(1, hi), rng.randint(1, hi), rng.randint(2, 5)
    if kind == 0:
        q, steps = f"{n} has {a} {it}. {n} gets {b} more. How many {it} does {n} have now?", [(a, "+", b)]
    elif kind == 1:
        q, steps = f"{n} has {a + b} {it} and gives away {b}. How many {it} are left?", [(a + b, "-", b)]
    elif kind == 2:
        q, steps = f"{n} has {c} bags with {b} {it} in each bag. How many {it} are there in all?", [(c, "*", b)]
    elif kind == 3:
        q, steps = f"{n} has {a} {it} and {m} has {b} {it}. How many {it} do they have together?", [(a, "+", b)]
    elif kind == 4:
        q = f"{n} had {a + b} {it}, lost {b}, then found {c}. How many {it} does {n} have now?"
        steps = [(a + b, "-", b), (a, "+", c)]
    else:
        q = f"{n} has {a} {it}. {m} has {c} times as many. How many {it} does {m} have?"
        steps = [(a, "*", c)]
    lines, value = [], None
    for x, op, y in steps:
        value = {"+": x + y, "-": x - y, "*": x * y}[op]
        lines.append(f"{x} {'x' if op == '*' else op} {y} = <<{x}{op}{y}={value}>>{value}")
    return {"question": q, "answer": "\n".join(lines) + f"\n#### {value}", "value": value}


def word_problem_splits(n_train: int, n_test: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Disjoint train and held-out sets of ``word_problem``: no held-out question is a
    training question (the problem space is ~10^5, so a plain second seed would repeat some).

    >>> tr, te = word_problem_splits(50, 20)
    >>> len(tr), len(te), bool({r["question"] for r in tr} & {r["question"] for r in te})
    (50, 20, False)
    """
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n_train + n_test:
        p = word_problem(rng)
        if p["question"] not in seen:
            seen.add(p["question"])
            out.append({"question": p["question"], "answer": p["answer"]})
    return out[:n_train], out[n_train:]


GENERATORS = {"arithmetic": arithmetic_problem, "arithmetic_long": long_arithmetic_problem,
              "countdown": countdown_problem}


def generate(task: str, n: int, seed: int) -> Iterator[dict]:
    """``n`` problems of a built-in ``task``, reproducible from ``seed``."""
    if task not in GENERATORS:
        raise ValueError(f"unknown built-in task {task!r}; known: {sorted(GENERATORS)}")
    rng = random.Random(seed)
    for _ in range(n):
        yield GENERATORS[task](rng)


def arithmetic_cot(n: int, seed: int) -> list[dict]:
    """Cold-start traces for the tiny model (R1 2.3.1: long CoTs in a readable format):
    the base model's own trace generator with every trace tagged, only traces with the
    right final answer kept, and those that verify their steps (``tasks.REFLECT``, the
    long CoTs) kept always, the others half the time."""
    from rewards._text import extract_answer

    rng, out = random.Random(seed), []
    while len(out) < n:
        p = arithmetic_problem(rng)
        t = arithmetic_trace(p, rng, untagged_rate=0.0)
        if extract_answer(t) == p["answer"] and (REFLECT in t or rng.random() < 0.5):
            out.append({**p, "completion": t, "kind": "reasoning"})
    return out


SFT_GENERATORS = {"arithmetic_cot": arithmetic_cot}
