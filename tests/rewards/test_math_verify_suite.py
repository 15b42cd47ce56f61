"""math_accuracy on Math-Verify's own test suite (tests/rewards/data/math_verify_cases.jsonl,
Apache-2.0, see data/NOTICE): agreement with its labels at least 97% and no more
false credits than math-verify itself (default settings) on the same cases.

Each case is scored the way the trainer scores: ``pred`` is the completion and
``gold`` the dataset's answer column.  math-verify is called as its README
shows, ``verify(parse(gold), parse(pred))``; its tests also use per-test
options (precision, strict, match types) that a reward with one configuration
cannot take, which is why neither side reaches 100%.
"""

import json
import logging
import os

import pytest

from rewards.math import clear_cache, math_accuracy

DATA = os.path.join(os.path.dirname(__file__), "data", "math_verify_cases.jsonl")
ROWS = [json.loads(line) for line in open(DATA, encoding="utf-8")]


def _score(got):
    agree = sum(int(g) == r["expected"] for g, r in zip(got, ROWS))
    false = sum(int(g) == 1 and r["expected"] == 0 for g, r in zip(got, ROWS))
    return agree / len(ROWS), false


@pytest.fixture(scope="module")
def ours():
    clear_cache()
    # A generous per-sample timeout: this measures correctness, and a busy shared
    # box can take over a second for one sympy comparison (the \sum cases).
    return math_accuracy(["q"] * len(ROWS), [r["pred"] for r in ROWS], answer=[r["gold"] for r in ROWS],
                         timeout_s=20.0)


@pytest.fixture(scope="module")
def theirs():
    mv = pytest.importorskip("math_verify")
    logging.disable(logging.WARNING)
    try:
        return [float(mv.verify(mv.parse(r["gold"]), mv.parse(r["pred"]))) for r in ROWS]
    finally:
        logging.disable(logging.NOTSET)


def test_table_is_faithful():
    assert len(ROWS) == 269
    assert {r["expected"] for r in ROWS} == {0, 1}
    assert all(r["source"].startswith("tests/test_") for r in ROWS)


def test_agreement_and_false_credits(ours, theirs):
    acc, false = _score(ours)
    mv_acc, mv_false = _score(theirs)
    print(f"math_accuracy {acc:.3f} ({false} false credits); math-verify {mv_acc:.3f} ({mv_false} false credits)")
    missed = [(r["source"], r["expected"]) for g, r in zip(ours, ROWS) if int(g) != r["expected"]]
    assert acc >= 0.97, missed
    assert false <= mv_false, missed
