"""Answer-equivalence table for rewards.math.verify (pred, gold, expected)."""

import pytest

from rewards.math import verify

CASES = [
    # integers
    ("42", "42", True), ("42", "43", False), ("42.0", "42", True), ("+5", "5", True), ("-3", "-3", True),
    ("-3", "3", False), ("1,000", "1000", True), ("1000000", "1,000,000", True), ("0", "-0", True),
    ("007", "7", True), ("1 000", "1000", True), ("12", "21", False),
    # fractions
    ("1/2", "0.5", True), (r"\frac{1}{2}", "1/2", True), (r"\dfrac{1}{2}", r"\frac12", True),
    (r"\tfrac{3}{4}", "0.75", True), (r"-\frac{3}{4}", r"\frac{-3}{4}", True), (r"\frac{3}{-4}", "-0.75", True),
    (r"\frac{2}{4}", r"\frac{1}{2}", True), (r"\frac{1}{3}", "0.333333", True), (r"\frac{1}{3}", "0.333", False),
    (r"\frac{1}{3}", r"\frac{1}{4}", False), ("3/4", "4/3", False), (r"\frac{10}{4}", "2.5", True),
    (r"\frac{7}{2}", "3.5", True), (r"\frac{22}{7}", r"\pi", False),
    # decimals
    ("0.50", ".5", True), ("3.14", "3.14159", False), ("2.000", "2", True), ("0.1", "1/10", True),
    ("1e3", "1000", True), ("10.000001", "10", False), ("-0.25", r"-\frac14", True), ("0.2", "0.02", False),
    # percentages
    ("50%", "0.5", True), (r"50\%", "50", True), ("50", r"50\%", True), ("0.5", "50%", True),
    ("25%", "0.3", False), (r"12.5\%", r"\frac{1}{8}", True),
    # units / currency / degrees
    ("5 cm", "5", True), (r"5\text{ cm}", "5", True), (r"5 \mbox{cm}^2", "5", True), ("5 cm", "6", False),
    (r"\$5", "5", True), ("5 dollars", "5.00", True), (r"90^\circ", "90", True), (r"90^{\circ}", r"\frac{\pi}{2}", False),
    ("12 apples", "12", True), ("3 hours", "3", True), ("3 hours", "4", False), ("10 km/h", "10", True),
    # equations / assignments
    ("x=3", "3", True), ("3", "x = 3", True), ("x = 3", "x=4", False), (r"y=\frac12", "0.5", True),
    (r"\theta = 30", "30", True), ("x=3", "x=3", True),
    # LaTeX forms, roots, pi
    (r"\sqrt{2}", r"2^{1/2}", True), (r"\sqrt2", r"\sqrt{2}", True), (r"2\sqrt{3}", r"\sqrt{12}", True),
    (r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}", True), (r"\sqrt{3}", "1.732", False),
    (r"\sqrt[3]{8}", "2", True), (r"\sqrt{16}", "4", True), (r"\frac{\pi}{4}", r"\pi/4", True),
    (r"2\pi", r"\pi", False), (r"\pi", "3.14159", False), (r"\left(\frac{1}{2}\right)^2", "0.25", True),
    (r"2^{10}", "1024", True), (r"10^{-2}", "0.01", True), (r"3 \cdot 4", "12", True), (r"3 \times 4", "13", False),
    (r"\boxed{7}", "7", True), ("$7$", "7", True), (r"\(7\)", "7", True), (r"\displaystyle\frac{1}{2}", "0.5", True),
    (r"\sqrt{8}", r"2\sqrt{2}", True), (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
    # intervals
    ("(1, 2]", r"\left(1,2\right]", True), ("(1,2)", "[1,2]", False), (r"[0, \infty)", r"[0,\infty)", True),
    (r"(-\infty, 3)", r"\left(-\infty, 3\right)", True), ("(1,2)", "(2,1)", False), (r"[0,\infty)", r"(0,\infty)", False),
    (r"(\frac12, 1]", "(0.5, 1]", True),
    # sets / lists
    (r"\{1, 2, 3\}", r"\{3, 2, 1\}", True), ("1, 2, 3", "3, 2, 1", True), (r"\{1,2\}", r"\{1,3\}", False),
    (r"\{1,2\}", "1,2", True), ("1, 2", "1, 2, 3", False), (r"\{-1, \frac12\}", r"\{0.5, -1\}", True),
    # symbolic (math-verify worker)
    ("2x+1", "1+2x", True), ("2x+1", "2x-1", False), ("x^2 - 1", "(x-1)(x+1)", True), (r"\frac{a}{b}", "a/b", True),
    (r"x \in (1, 2)", "(1,2)", True), ("a+b", "b+a", True), (r"\sin^2 x + \cos^2 x", "1", True),
    (r"2\frac{1}{2}", "2.5", True), (r"\frac{1}{x}", "x^{-1}", True), ("(a+b)^2", "a^2+2ab+b^2", True),
    ("(a+b)^2", "a^2+b^2", False), (r"\ln(e^2)", "2", True), (r"e^{\ln 3}", "3", True),
    (r"\sin(\pi/4)", r"\frac{\sqrt{2}}{2}", True),
    (r"\log_2 8", "3", True), (r"\sin(\pi/6)", r"\frac{1}{2}", True), (r"\cos 0", "0", False),
    (r"\{x, y\}", r"\{y, x\}", True), ("(x, 2x)", "(x, x+x)", True), ("y = 2x + 1", "2x+1", True),
    # multiple choice / text
    ("A", r"\text{(A)}", True), (r"\textbf{(B)}", "B", True), ("(C)", "D", False), ("B", "A", False),
    # degenerate
    ("", "5", False), ("five", "5", False), ("5", "", False),
]


@pytest.mark.parametrize("pred,gold,expected", CASES, ids=[f"{i}:{p}|{g}" for i, (p, g, _) in enumerate(CASES)])
def test_equivalence(pred, gold, expected):
    assert verify(pred, gold) is expected


def test_table_size():
    assert len(CASES) >= 100
    assert sum(e for *_, e in CASES) >= 40 and sum(not e for *_, e in CASES) >= 30
