"""The probe tier of the math reward (rewards/_probe.py): decides common symbolic
answers by evaluation, credits nothing math-verify rejects, declines when unsure,
and is bounded on hostile input."""

import logging
import threading
import time

import pytest

from rewards import math as rmath
from rewards._probe import parse, probe_equal, Decline

EQUAL = [  # identities math-verify also accepts
    ("x^2+2x+1", "(x+1)^2"), (r"\frac{x^2-1}{x-1}", "x+1"), (r"\frac{\sqrt{3}}{2}", r"\frac12\sqrt3"),
    (r"2\sqrt{2}", r"\sqrt{8}"), (r"\frac{\pi}{6}", r"\frac16\pi"), (r"2\sin x\cos x", r"\sin(2x)"),
    (r"\sin^2 x+\cos^2 x", "1"), (r"\tan x", r"\frac{\sin x}{\cos x}"), (r"e^{x+y}", r"e^xe^y"),
    (r"\left(\frac{1}{2}\right)^{-3}", "8"), (r"3\times x", "3x"), (r"\dfrac{2x}{4}", r"\frac{x}{2}"),
    (r"\sqrt[3]{8}", "2"), (r"\log 1000", "3"), ("(a+b)^3", "a^3+3a^2b+3ab^2+b^3"), ("xy", "yx"),
    (r"\sqrt{2}+\sqrt{3}", r"\sqrt{5+2\sqrt{6}}"), (r"x^{\frac{1}{2}}", r"\sqrt{x}"), (r"\pi^2", r"\pi\cdot\pi"),
]
NOT_TRUE = [  # math-verify rejects all of these: the probe may say False or decline, never True
    (r"\sqrt{x^2}", "x"), (r"\sqrt{x^2}", "-x"), (r"\sqrt{4x^2}", "2x"), (r"\sqrt{(x-1)^2}", "x-1"),  # only for x > 0
    (r"(x^2)^{\frac12}", "x"), (r"\sqrt{\frac{1}{x^2}}", r"\frac{1}{x}"), (r"\sqrt[3]{x^3}", "x"),
    (r"\log(x^2)", r"2\log x"), (r"\ln(xy)", r"\ln x+\ln y"), (r"\ln(x^3)", r"3\ln x"), (r"\ln(e^x)", "x"),
    (r"\sqrt{x}\sqrt{y}", r"\sqrt{xy}"), (r"(-8)^{\frac13}", "-2"), (r"\sqrt[3]{-8}", "-2"),
    (r"\cos(2\pi x)", "1"), (r"\sin(\pi x)", "0"),  # equal at integer points only
    ("(x+10^5)^2+1", "(x+10^5)^2"), (r"\frac{1}{9999}+\frac{1}{10001}+\pi", r"\frac{2}{10000}+\pi"),  # near misses
    (r"\frac{1}{999999}+\frac{1}{1000001}", r"\frac{2}{1000000}"), (r"x+\frac{1}{10^{12}}", "x+0"),
    ("x+1", "y+1"), (r"x^{\frac{2}{2}}", "x"), (r"\frac{x^2}{x}", "x"), (r"(\sqrt{x})^2", "x"),  # lone letter
    (r"\frac{1}{x-1}", r"\frac{1}{x+1}"), (r"\frac{x+1}{2}", r"\frac{x}{2}+1"), ("x^2", "x+0"),
    (r"x^{10^9}", "x^{10^9+1}"), ("1/2x", "x/2"), (r"\sin x^2", r"(\sin x)^2"), ("2^3^2", "64"),
]
DECLINE = [  # unknown commands, relations, sets, matrices, decimals, subscripts, the imaginary unit
    ("x = 1", "1"), (r"x \le 1", "1"), (r"\{1, x\}", r"\{x, 1\}"), (r"\begin{pmatrix}x\end{pmatrix}", "x+0"),
    ("0.5x", r"\frac{x}{2}"), ("x_1+1", "1+x_1"), (r"e^{i\pi}", "-1"), (r"\theta+1", r"1+\theta"),
    (r"\log_2 8", "3"), (r"|x|", r"\sqrt{x^2}"), (r"x\leftarrow y", "x+0"), (r"\sinh x", r"\sinh(x)"),
    (r"x^{10^9}", "x+0"), (r"2^{2^{100}}", "4"), ("((((x^{64})^{64})^{64})^{64})", "x+0"),
    (r"\frac{1}{x-x}", "1"), (r"\ln(x-x)", "1"), (r"\sin x", r"\sin x+0", ), (r"\sinx", r"\sin(x)")
]


@pytest.mark.parametrize("pred,gold", EQUAL)
def test_credits_identities(pred, gold):
    assert probe_equal(pred, gold) is True
    assert probe_equal(gold, pred) is True


@pytest.mark.parametrize("pred,gold", NOT_TRUE)
def test_never_credits_what_math_verify_rejects(pred, gold):
    for _ in range(3):  # fresh random points each call
        assert probe_equal(pred, gold) is not True
        assert probe_equal(gold, pred) is not True


def test_clear_differences_are_decided_false():
    assert probe_equal("x^2", "x+0") is False
    assert probe_equal("(x+10^5)^2+1", "(x+10^5)^2") is False  # exact arithmetic sees the 1
    assert probe_equal(r"\frac{12}{5}", r"\frac125") is False  # TeX: \frac125 = 1/2 * 5


@pytest.mark.parametrize("pred,gold", DECLINE[:-2])
def test_declines_what_it_cannot_read(pred, gold):
    assert probe_equal(pred, gold) is None


def test_glued_commands_decline_unless_the_normalizer_glued_them():
    assert probe_equal(r"\sinx", r"\sin(x)") is True  # "\sin x" after space stripping
    assert probe_equal(r"\sinx", r"\sin(x)", raw=(r"\sinx", r"\sin(x)")) is None  # as the model wrote it


def test_agrees_with_math_verify_wherever_it_decides():
    mv = pytest.importorskip("math_verify")
    logging.disable(logging.WARNING)
    try:
        decided = 0
        for pred, gold in EQUAL + NOT_TRUE + DECLINE:
            r = probe_equal(pred, gold)
            if r is not None:
                decided += 1
                assert r == bool(mv.verify(mv.parse(f"${gold}$"), mv.parse(f"${pred}$"))), (pred, gold)
        assert decided >= len(EQUAL)
    finally:
        logging.disable(logging.NOTSET)


HOSTILE = ["(" * 5000 + "x" + ")" * 5000, "{" * 150 + "x" + "}" * 150, "x^{" * 60 + "2" + "}" * 60,
           r"\sqrt{" * 100 + "x" + "}" * 100, "x" * 280, "+".join(["x"] * 140), r"\frac{1}{" * 70 + "x" + "}" * 70,
           "9" * 5000, "(x+1)^{64}" * 20, r"e^{e^{e^{e^{e^{99}}}}}", "((((x^{64})^{64})^{64})^{64})^{64}",
           r"\sin^{64}(x^{64})^{64}", "x" + "^x" * 100, r"\left(" * 120 + "x" + r"\right)" * 120]


@pytest.mark.parametrize("s", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_inputs_are_bounded_in_a_thread(s):
    out = []
    t = threading.Thread(target=lambda: out.append((probe_equal(s, "x+1"), probe_equal(s, s + "+0"))), daemon=True)
    t0 = time.perf_counter()
    t.start()
    t.join(5)
    assert not t.is_alive() and time.perf_counter() - t0 < 5, s[:40]
    assert out[0][0] is not True


def test_parse_depth_and_size_limits():
    with pytest.raises(Decline):
        parse("(" * 60 + "x" + ")" * 60)
    with pytest.raises(Decline):
        parse("x+" * 200 + "x")
    assert parse("(x+1)^2")[1] == {"x"}


def test_hooked_into_verify():
    rmath.clear_cache()
    before = rmath.stats["probe"]
    assert rmath.verify(r"\boxed{2\sin x \cos x + 7}", r"7+\sin(2x)") is True
    assert rmath.verify(r"\boxed{2\sin x \cos x + 8}", r"7+\sin(2x)") is False
    assert rmath.stats["probe"] == before + 2
