"""Hub dataset presets for the data R1-Zero-style runs train and evaluate on.

A preset fills the ``data`` keys a recipe does not set itself: the hub id (``source``),
``subset``, the training ``split``, the held-out ``eval_split``, the ``columns`` renamed
to ``prompt`` / ``answer`` and the ``preprocess`` that extracts the gold answer (GSM8K's
``#### N``, the last ``\\boxed{}`` of a MATH solution). ``source`` may point at a local
file with the hub's columns instead (the tests do, offline).

>>> expand({"preset": "gsm8k", "num_samples": 8})["source"]
'openai/gsm8k'
>>> expand({"preset": "gsm8k", "source": "local.parquet"})["source"]   # given keys win
'local.parquet'
>>> expand({"preset": "gsm9k"})
Traceback (most recent call last):
...
ValueError: unknown data.preset 'gsm9k'; one of gsm8k, math500, math, aime24, aime25, deepscaler, openr1_math, numinamath
"""
from __future__ import annotations

# Each preset's hub columns (the test fixtures build files with exactly these names and types).
PRESETS: dict[str, dict] = {
    # question: str, answer: str ("...reasoning...\n#### 72")
    "gsm8k": {"source": "openai/gsm8k", "subset": "main", "split": "train", "eval_split": "test",
              "columns": {"prompt": "question"}, "preprocess": "gsm8k"},
    # problem, solution, answer, subject: str; level: int64; unique_id: str (one split: test)
    "math500": {"source": "HuggingFaceH4/MATH-500", "split": "test", "eval_split": "test",
                "columns": {"prompt": "problem"}, "preprocess": "math"},
    # problem, level, type, solution: str (no answer column: the solution's last \boxed{})
    "math": {"source": "DigitalLearningGmbH/MATH-lighteval", "subset": "default", "split": "train",
             "eval_split": "test", "columns": {"prompt": "problem"}, "preprocess": "math"},
    # id: int64; problem, solution, answer, url, year: str (one split: train)
    "aime24": {"source": "HuggingFaceH4/aime_2024", "split": "train", "eval_split": "train",
               "columns": {"prompt": "problem"}, "preprocess": "math"},
    # problem, answer, id: str (one split: test)
    "aime25": {"source": "math-ai/aime25", "split": "test", "eval_split": "test",
               "columns": {"prompt": "problem"}, "preprocess": "math"},
    # problem, answer, solution: str
    "deepscaler": {"source": "agentica-org/DeepScaleR-Preview-Dataset", "split": "train",
                   "eval_split": "train", "columns": {"prompt": "problem"}, "preprocess": "math"},
    # problem, solution, answer, problem_type, question_type, source, uuid: str; is_reasoning_complete,
    # correctness_math_verify: list[bool]; generations, finish_reasons: list[str];
    # correctness_count: int64; messages: list[{role, content}]
    "openr1_math": {"source": "open-r1/OpenR1-Math-220k", "subset": "default", "split": "train",
                    "eval_split": "train", "columns": {"prompt": "problem"}, "preprocess": "math"},
    # source, problem, solution: str; messages: list[{role, content}] (answer: the last \boxed{})
    "numinamath": {"source": "AI-MO/NuminaMath-CoT", "split": "train", "eval_split": "test",
                   "columns": {"prompt": "problem"}, "preprocess": "math"},
}


def expand(data: dict) -> dict:
    """``data`` with its preset's keys filled in where the recipe did not give them."""
    name = data.get("preset")
    if not name:
        return data
    if name not in PRESETS:
        raise ValueError(f"unknown data.preset {name!r}; one of {', '.join(PRESETS)}")
    out = dict(data)
    for k, v in PRESETS[name].items():
        out.setdefault(k, v)
    return out
