"""Built-in generated tasks: problems for RL prompts and worked traces for pre-training.

The shipped tiny base model (``data/build_tiny_model.py``) is pre-trained on the
traces below, and the tiny recipes train it with GRPO on problems from the same
generator. The traces are deliberately imperfect, like a real base model's
pre-training data: some steps hold arithmetic slips, a few traces skip the
answer tags, and at a low base rate the trace re-checks a step ("wait, let me
check: ...") and carries on from the corrected value. Under an accuracy reward GRPO can then raise
accuracy by suppressing slips and by re-checking more often: the small-scale
analogue of R1-Zero's "aha moment" (DeepSeek-R1 report, section 2.2.4).

>>> import random
>>> p = arithmetic_problem(random.Random(0))
>>> sorted(p)
['answer', 'numbers', 'prompt']
>>> t = arithmetic_trace(p, random.Random(1), slip_rate=0.0, reflect_rate=0.0, untagged_rate=0.0)
>>> t.endswith(f"<answer>{p['answer']}</answer>")
True
"""
from __future__ import annotations

import random
from typing import Iterator

# Phrases a trace uses to re-check itself; metrics.py counts these (and more) as reflection.
REFLECT = "wait, let me check:"


def arithmetic_problem(rng: random.Random, n_terms: tuple[int, int] = (2, 3)) -> dict:
    """A sum of 2-3 small integers, e.g. ``{"prompt": "What is 23+7+12?", "answer": "42"}``."""
    k = rng.randint(*n_terms)
    nums = [rng.randint(10, 59)] + [rng.randint(1, 29) for _ in range(k - 1)]
    expr = "+".join(map(str, nums))
    return {"prompt": f"What is {expr}?", "answer": str(sum(nums)), "numbers": nums}


def _slip(rng: random.Random, value: int) -> int:
    """A plausible wrong result: off by a small nonzero amount."""
    return max(0, value + rng.choice([-10, -2, -1, 1, 2, 10]))


def arithmetic_trace(problem: dict, rng: random.Random, slip_rate: float = 0.3,
                     reflect_rate: float = 0.1, untagged_rate: float = 0.15) -> str:
    """A step-by-step completion for ``problem`` (the text after ``Assistant:``).

    Each step's result is right with probability ``1 - slip_rate``. After any step, with
    probability ``reflect_rate`` and regardless of whether it slipped, the trace re-checks
    it ("wait, let me check: 23+7=30.") and carries on from the re-computed, correct
    value. Slips propagate, so an unchecked slip makes the final answer wrong; a check
    always repairs its step. Whether to re-check is one early token ("wait"), which is
    what lets RL discover that checking pays.
    """
    nums = problem["numbers"]
    acc, steps = nums[0], []
    for x in nums[1:]:
        true = acc + x
        shown = _slip(rng, true) if rng.random() < slip_rate else true
        step = f"{acc}+{x}={shown}."
        if rng.random() < reflect_rate:
            step += f" {REFLECT} {acc}+{x}={true}."
            shown = true
        steps.append(step)
        acc = shown
    think = " ".join(steps)
    if rng.random() < untagged_rate:
        return f" <think>{think}</think> The answer is {acc}."
    return f" <think>{think}</think> <answer>{acc}</answer>"


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


GENERATORS = {"arithmetic": arithmetic_problem, "countdown": countdown_problem}


def generate(task: str, n: int, seed: int) -> Iterator[dict]:
    """``n`` problems of a built-in ``task``, reproducible from ``seed``."""
    if task not in GENERATORS:
        raise ValueError(f"unknown built-in task {task!r}; known: {sorted(GENERATORS)}")
    rng = random.Random(seed)
    for _ in range(n):
        yield GENERATORS[task](rng)
