"""Small parquet files with the exact column names and types of the hub datasets the
presets load (grpo/data/presets.py), written down from the datasets' cards and viewers."""
from pathlib import Path

import pandas as pd


def _gsm8k():
    # openai/gsm8k (main): question: string, answer: string ending in "#### <number>"
    return pd.DataFrame({
        "question": ["Natalia sold clips to 48 of her friends in April, and then she sold half as many "
                     "clips in May. How many clips did Natalia sell altogether in April and May?",
                     "A shop sells 1,200 pens a day. How many pens does it sell in 2 days?"],
        "answer": ["Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 "
                   "clips altogether in April and May.\n#### 72",
                   "It sells 1,200 * 2 = <<1200*2=2400>>2,400 pens.\n#### 2,400"],
    }), ["72", "2400"]


def _math500():
    # HuggingFaceH4/MATH-500: problem, solution, answer, subject: string; level: int64; unique_id: string
    return pd.DataFrame({
        "problem": ["Compute $\\dbinom{8}{4}$.", "What is $\\frac{1}{2}+\\frac{1}{4}$?"],
        "solution": ["$\\dbinom{8}{4}=\\boxed{70}$.", "It is $\\boxed{\\frac{3}{4}}$."],
        "answer": ["70", "\\frac{3}{4}"],
        "subject": ["Counting & Probability", "Prealgebra"],
        "level": pd.array([2, 1], dtype="int64"),
        "unique_id": ["test/counting_and_probability/1.json", "test/prealgebra/2.json"],
    }), ["70", "\\frac{3}{4}"]


def _math():
    # DigitalLearningGmbH/MATH-lighteval: problem, level, type, solution: string (no answer column)
    return pd.DataFrame({
        "problem": ["What is $2^{10}$?", "Simplify $\\sqrt{50}$."],
        "level": ["Level 1", "Level 3"],
        "type": ["Algebra", "Prealgebra"],
        "solution": ["$2^{10} = \\boxed{1024}$.", "$\\sqrt{50}=\\sqrt{25\\cdot 2}=\\boxed{5\\sqrt{2}}$."],
    }), ["1024", "5\\sqrt{2}"]


def _aime24():
    # HuggingFaceH4/aime_2024: id: int64; problem, solution, answer, url, year: string
    return pd.DataFrame({
        "id": pd.array([60, 61], dtype="int64"),
        "problem": ["Find the number of positive divisors of 2024.", "Find the remainder when 7^100 is divided by 1000."],
        "solution": ["$2024=2^3\\cdot 11\\cdot 23$ so ... $\\boxed{016}$", "... $\\boxed{001}$"],
        "answer": ["16", "1"],
        "url": ["https://artofproblemsolving.com/wiki/2024_AIME_I_1", "https://artofproblemsolving.com/wiki/2024_AIME_I_2"],
        "year": ["2024", "2024"],
    }), ["16", "1"]


def _aime25():
    # math-ai/aime25: problem, answer, id: string
    return pd.DataFrame({
        "problem": ["Find the sum of all integer bases $b>9$ for which $17_b$ is a divisor of $97_b$.",
                    "Find the number of ordered pairs."],
        "answer": ["70", "117"],
        "id": ["0", "1"],
    }), ["70", "117"]


def _deepscaler():
    # agentica-org/DeepScaleR-Preview-Dataset: problem, answer, solution: string
    return pd.DataFrame({
        "problem": ["Let $x=3$. Compute $x^2$.", "How many primes are below 20?"],
        "answer": ["9", "8"],
        "solution": ["$x^2=9$, so $\\boxed{9}$.", "2,3,5,7,11,13,17,19: $\\boxed{8}$."],
    }), ["9", "8"]


def _openr1_math():
    # open-r1/OpenR1-Math-220k (default): problem, solution, answer, problem_type, question_type, source,
    # uuid: string; is_reasoning_complete: list<bool>; generations: list<string>;
    # correctness_math_verify: list<bool>; correctness_llama: list<bool> (often null);
    # finish_reasons: list<string> (often null); correctness_count: int64; messages: list<{content, role}>
    return pd.DataFrame({
        "problem": ["Find $x$ if $2x+3=11$.", "Compute $5!$."],
        "solution": ["$x=4$", "$120$"],
        "answer": ["4", "120"],
        "problem_type": ["Algebra", "Combinatorics"],
        "question_type": ["math-word-problem", "math-word-problem"],
        "source": ["olympiads", "cn_contest"],
        "uuid": ["a1b2", "c3d4"],
        "is_reasoning_complete": [[True, True], [True]],
        "generations": [["<think>2x=8</think> x=4", "x = \\boxed{4}"], ["\\boxed{120}"]],
        "correctness_math_verify": [[True, True], [True]],
        "correctness_llama": [None, None],
        "finish_reasons": [None, None],
        "correctness_count": pd.array([2, 1], dtype="int64"),
        "messages": [[{"content": "Find $x$ if $2x+3=11$.", "role": "user"},
                      {"content": "x = \\boxed{4}", "role": "assistant"}],
                     [{"content": "Compute $5!$.", "role": "user"}, {"content": "\\boxed{120}", "role": "assistant"}]],
    }), ["4", "120"]


def _numinamath():
    # AI-MO/NuminaMath-CoT: source, problem, solution: string; messages: list<{content, role}>
    return pd.DataFrame({
        "source": ["synthetic_math", "orca_math"],
        "problem": ["What is $12 \\times 12$?", "Tom has 3 apples and buys 4 more. How many does he have?"],
        "solution": ["$12\\times 12 = \\boxed{144}$", "He has $3+4=\\boxed{7}$ apples."],
        "messages": [[{"content": "What is $12 \\times 12$?", "role": "user"},
                      {"content": "$\\boxed{144}$", "role": "assistant"}],
                     [{"content": "Tom has 3 apples...", "role": "user"}, {"content": "$\\boxed{7}$", "role": "assistant"}]],
    }), ["144", "7"]


FIXTURES = {"gsm8k": _gsm8k, "math500": _math500, "math": _math, "aime24": _aime24, "aime25": _aime25,
            "deepscaler": _deepscaler, "openr1_math": _openr1_math, "numinamath": _numinamath}


def write_fixture(name: str, out: Path) -> tuple[str, list[str]]:
    df, gold = FIXTURES[name]()
    path = Path(out) / f"{name}.parquet"
    df.to_parquet(path)
    return str(path), gold
