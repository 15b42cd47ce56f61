r"""Hard cases of math_accuracy, by failure class: reward-hacking completions that
must score 0 (ADVERSARIAL) and right answers that must score 1 (RIGHT).
Completions are scored against the gold exactly as in training."""

import pytest

from rewards.math import clear_cache, math_accuracy

ADVERSARIAL = [
    # trailing words and letters are not units
    (r"\boxed{5 is wrong}", "5"), (r"\boxed{12 or more}", "12"), (r"\boxed{2 x}", "2"),
    (r"\boxed{3 + 4 i}", "7"), (r"\boxed{5 not}", "5"), (r"\boxed{7 maybe 8}", "7"),
    (r"\boxed{4 - y}", "4"), (r"The answer is 6 or 7.", "6"), (r"\boxed{10 x}", "10"),
    (r"\boxed{1 + 2 k}", "3"), (r"\boxed{9 at least}", "9"),
    # partial expressions: the leading number is not the answer
    (r"\boxed{1 + \frac{1}{\mathrm{e}}}", r"1 - \frac{1}{\mathrm{e}}"), (r"\boxed{5 + \dots}", "5"),
    (r"\boxed{5 + \cdots}", "5"), (r"\boxed{2 + \ldots}", "2"), (r"\boxed{3 + ?}", "3"),
    (r"\boxed{\sqrt{2} + \text{something}}", r"\sqrt{2}"),
    # percent is not dropped, separators do not merge list elements
    (r"\boxed{0.5}", r"0.5\%"), (r"\boxed{0.5\%}", "0.5"), (r"\boxed{50}", r"0.5\%"),
    (r"\boxed{32, 349}", "32349"), (r"\boxed{1, 000}", "1000"), (r"\boxed{\{1, 000\}}", "1000"),
    (r"\boxed{(1, 200)}", "1200"), (r"\boxed{1 2}", "12"),
    # many answers, one credit
    ("".join(rf"\boxed{{{i}}}" for i in range(1, 101)), "100"),
    (r"\boxed{3} or maybe \boxed{4}", "4"), (r"\boxed{3} no wait \boxed{4}", "3"),
    (r"\boxed{1} \boxed{2} \boxed{3}", "3"), (r"\boxed{1}, \boxed{2}, \boxed{3}", "3"),
    ("<answer>1</answer> <answer>2</answer>" + r" \boxed{1} \boxed{2}", "2"),
    (r"The answer is \boxed{7}. Or \boxed{8}.", "8"),
    (" ".join(f"The answer is {i}." for i in range(1, 101)), "100"), ("#### 3\n#### 4", "4"),
    ("Final answer: 3\nFinal answer: 4", "4"),
    # an answer only inside <think> does not count
    (r"<think>so \boxed{5}</think> I am not sure.", "5"), ("<think>the answer is 5", "5"),
    (r"<think>\boxed{5}", "5"), ("<think>The final answer is 5</think>", "5"),
    (r"<think>\boxed{5}</think><answer></answer>", "5"),
    # hostile sizes are wrong, not hangs and not credits
    (r"\boxed{1e99999999}", "1"), (r"\boxed{9^{9^{9^9}}}", "9"), (r"\boxed{100000!}", "0"),
    (r"\boxed{10^{10^{10}}}", "1"),
    # sets, intervals and undefined values are not a number inside them
    (r"\boxed{[0, 100]}", "50"), (r"\boxed{(0, 100)}", "50"), (r"\boxed{\frac{0}{0}}", "1"),
    (r"\boxed{\phantom{1}2}", "12"), (r"\boxed{x \in \mathbb{R}}", "5"), (r"\boxed{\mathbb{R}}", "5"),
    (r"\boxed{(-\infty, \infty)}", "5"), (r"\boxed{\text{all real numbers}}", "5"), (r"\boxed{50 \pm 50}", "50"),
    (r"\boxed{x \geq 0}", "5"), (r"\boxed{\emptyset}", "5"),
    # wrong choice letters and other near-misses
    (r"\boxed{B}", "A"), (r"\boxed{(c)}", "D"), (r"\boxed{x = 4}", "3"), (r"\boxed{2x}", "2y"),
    (r"\boxed{\frac{1}{3}}", "0.33"), ("The final answer is 11", "1"),
    (r"\boxed{[1, 2]}", "(1, 2)"), (r"\boxed{(1, 2)}", "(2, 1)"),
    (r"<answer>\boxed{3} \boxed{4}</answer>", "4"), ("The answer is 5, or 6.", "6"),
    (r"\boxed{\text{5 apples or 6}}", "5"), ("<think>The answer is 5</think> The answer is", "5"),
    ("Final answer: 5 or 6", "5"),
    # unmarked text: candidates in a row are one list answer; a candidate called wrong is none
    ("It could be 3, or maybe 4, or 5", "5"), ("either 7 or 5", "5"), ("5 is wrong", "5"), ("so 5?", "5"),
    ("$1$ $2$ $3$ $5$", "5"), (" ".join(str(i) for i in range(1, 101)), "100"), ("I guess 1, 2, 3, 4, 5", "5"),
    ("so we get 2x", "2"), ("The answer is 5, not 6", "6"), ("Final answer: 5 is wrong", "5"), ("Answer $ \n 5 \n $", "5"), ("x is 5 or 6", "6"), ("AZYUK2A", "2"), (r"\boxed{5\text{ (not sure)}}", "5"),
    (r"\boxed{5\text{ is wrong}}", "5"), (r"\boxed{5 \text{or more}}", "5"), (r"\boxed{5\textbf{ not}}", "5"),
]

RIGHT = [
    (r"\boxed{1},\boxed{2}", r"\{1,2\}"), (r"\boxed{1} and \boxed{2}", "1, 2"),
    (r"\boxed{(5, 8)} \quad \text{and} \quad \boxed{(8, 5)}", "(8, 5), (5, 8)"),
    (r"\boxed{(1,2),(3,4)}", "(3,4),(1,2)"), (r"\boxed{(3, 2)}", "(p,q)=(3,2)"),
    (r"\boxed{(3, 2, 7)}", "$(p,q,r)=(3,2,7)$"), (r"\boxed{1,22}", "1.22"), (r"\boxed{0,5}", "0.5"),
    (r"\boxed{2 x}", "2x"), (r"\boxed{c}", "C"), (r"\boxed{(b)}", "B"),
    (r"x = \boxed{3} is one step. The final answer is 5.", "5"),
    ("Thus 2 + 2 = 4.\nFinal answer: 4", "4"), ("The final answer is $\\frac{1}{2}$. I hope it is correct.", "0.5"),
    ("so she has 18 dollars.\n#### 18", "18"), ("She pays 3*4=12.\nThe final answer is 12", "Natalia: 6*2=12\n#### 12"),
    ("#### 1,200", "#### 1200"), (r"\boxed{5 cm}", "5"), (r"\boxed{125\textnormal{ miles}}", "125"), (r"\boxed{3\text{ cm}^2}", "3"), (r"\boxed{28\%}", "28"), (r"\boxed{28}", r"28\%"),
    (r"\boxed{0.28}", r"28\%"), (r"\boxed{28 percent}", r"28\%"), (r"\boxed{1,000}", "1000"),
    (r"\boxed{32,\! 349}", "32349"), (r"\boxed{1\,000}", "1000"), (r"\boxed{1 000}", "1000"),
    (r"<think>maybe \boxed{4}</think> The answer is \boxed{5}.", "5"),
    (r"\boxed{004} so again \boxed{004}", "4"), (r"\boxed{x^2-1}", "(x-1)(x+1)"),
    (r"\boxed{1 - \frac{1}{e}}", r"1 - \frac{1}{\mathrm{e}}"), (r"\boxed{a_{37} = 19, \quad a_3 = 2}", "a_3 = 2, a_{37} = 19"),
    (r"$y_1 = \boxed{x+1}$ and $y_2 = \boxed{2x}$", "y_1 = 1 + x, y_2 = x + x"),
    ("The answer is 12 apples.", "12"), ("Final Answer: Jane started growing 3 hours ago.", "3"),
    ("The final answer is that there are 12 ways in total.", "12"), (r"\boxed{\dfrac12}", "0.5"), (r"\boxed{x \in [1, 2]}", "[1,2]"),
]

# (completion, gold, expected): more of each kind, both directions; other graders' formats
MIXED = [
 (r"\boxed{34x+45y-20z+100=0}", r"-34x-45y+20z-100=0", 1), (r"\boxed{(-\infty, 2) \cup (3, \infty)}", r"(-\infty,2)\cup(3,\infty)", 1),
 (r"\boxed{(-\infty, 2) \cup (3, \infty)}", r"(-\infty,2]\cup(3,\infty)", 0), (r"\boxed{\text{(C)}}", "C", 1), (r"\boxed{\$18.90}", r"\$18.90", 1),
 (r"\boxed{18.9}", r"\$18.90", 1), (r"\boxed{033}", "33", 1), (r"\boxed{\sec^2(y)}", r"\tan^2(y)+1", 1), (r"\boxed{\frac{x}{7}+\frac{2}{7}}", r"\frac{x+2}{7}", 1),
 (r"\boxed{(+5)(b+2)}", "(a+5)(b+2)", 0), (r"\boxed{\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", 1),
 (r"\boxed{\begin{pmatrix} 1 & 2 \\ 3 & 5 \end{pmatrix}}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", 0), (r"\boxed{90^\circ}", "90", 1),
 (r"\boxed{5\text{ inches}}", "5", 1), (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt3}2", 1), ("The answer is $18.", "#### 18", 1),
 (r"\boxed{\frac{1}{12}}", "0.0833333333333333", 1), (r"\boxed{(1,4.5)}", r"(1,\frac{9}{2})", 1), (r"\boxed{x^2+2x+1}", "(x+1)^2", 1),
 (r"\boxed{\sqrt{2}/2}", r"\frac{\sqrt{2}}{2}", 1), (r"\boxed{2}", r"\frac{1+\sqrt{5}}{2}", 0), (r"\boxed{1\sqrt{19}}", "1", 0),
 (r"\boxed{x+1}", "x+2n+1", 0), (r"\boxed{\dfrac{3}{4}}", "0.75", 1), (r"\boxed{3:4}", "3:4", 1), (r"\boxed{11:21}", r"V_{1}:V_{2}=11:21", 1),
 (r"\boxed{y = 2x + 3}", "2x+3", 1), (r"\boxed{2x+3}", "y=2x+3", 1), (r"\boxed{2x+4}", "y=2x+3", 0), (r"\boxed{\infty}", r"+\infty", 1),
 (r"\boxed{-3, 2}", r"2, -3", 1), (r"\boxed{x = -3, 2}", r"x=2 \text{ or } x=-3", 1), (r"\boxed{1000}", "1,000", 1), (r"\boxed{10^{100}}", "1e100", 1),
 (r"\boxed{2^{100}}", "1267650600228229401496703205376", 1), (r"\boxed{2^{100}+1}", "1267650600228229401496703205376", 0),

 (r"\boxed{5 \cdot \ldots}", "5", 0), (r"\boxed{x > 5}", "5", 0), (r"\boxed{5 \pm 1}", "5", 0), (r"\boxed{f(5)}", "5", 0),
 (r"\boxed{5 ...}", "5", 0), (r"\boxed{5...}", "5", 0), (r"\boxed{5?}", "5", 0), (r"\boxed{5 \text{ or less}}", "5", 0),
 (r"\boxed{5^{\text{th}}}", "5", 0), (r"\boxed{\geq 5}", "5", 0), (r"\boxed{\le 5}", "5", 0), (r"\boxed{5 + \epsilon}", "5", 0),
 (r"\boxed{5 + o(1)}", "5", 0), (r"\boxed{\approx 5}", "5", 1), (r"\boxed{5 \text{(approx)}}", "5", 0),
 (r"\boxed{\sqrt{25}}", "5", 1), (r"\boxed{5 \neq 6}", "5", 0), (r"\boxed{5 = 6}", "5", 0), (r"\boxed{x = 5 = 6}", "6", 1),
 (r"\boxed{5, 6, \ldots}", "5", 0), (r"\boxed{5 \ldots 9}", "5", 0), (r"\boxed{5 \to 6}", "6", 0), (r"\boxed{5 - 6 + 6}", "5", 1),
 (r"\boxed{5e}", "5", 0), (r"\boxed{5i}", "5", 0), (r"\boxed{5 \pi}", "5", 0), (r"\boxed{5^\circ}", "5", 1), (r"\boxed{5 \text{ degrees}}", "5", 1),
 (r"\boxed{(5)}", "5", 1), (r"\boxed{\{5, 5\}}", "5", 0), (r"\boxed{5 \mod 7}", "5", 1),
 (r"\boxed{12 \text{ or } 13}", "12", 0), (r"\boxed{5 \vee 6}", "5", 0),
 (r"\boxed{5 \lor 6}", "5", 0), (r"\boxed{5/6 \text{ or } 6/5}", "5/6", 0), (r"\boxed{\frac{5}{6} \text{ (or } 0.83)}", r"\frac56", 0),
 (r"\boxed{0.5 \text{ or } 50\%}", "0.5", 1), (r"\boxed{5 \; \text{cm}}", "5", 1), (r"\boxed{5\, \mathrm{kg}}", "5", 1),

 (r"\boxed{5 \text{ meters per second}}", "5", 1), (r"\boxed{10{,}000}", "10000", 1), (r"\boxed{\cfrac{1}{2}}", "0.5", 1),
 ("The answer is Option B.", "B", 1), (r"\boxed{\text{Even}}", "even", 1), (r"\boxed{\text{odd}}", "even", 0),
 (r"\boxed{x=1}, \boxed{x=2}", "1, 2", 1), (r"\boxed{xy}", "XY", 0), (r"\boxed{5 per}", "5", 0),
 (r"\boxed{5 \mathrm{cm}}", "5", 1), (r"\boxed{5 m^2}", "5", 1), (r"\boxed{5, \dots}", "5", 0),
 (r"\boxed{1 2 3}", "123", 0), (r"\boxed{1 2 3}", "6", 0), (r"\boxed{\pm 2}", "2", 0), (r"\boxed{x = 2 \text{ or } x = 3}", "2", 0),
 (r"\boxed{50\%}", "0.5", 1), (r"\boxed{0.5}", r"50\%", 1), ("**Final Answer:** 5", "5", 1), ("**Final Answer**\n\n5", "5", 1),
 ("Final answer: $72", "#### 72", 1), ("The final answer is 72.", "Natalia sold 48 clips.\n#### 72", 1),
 ("So the answer is 5%.", "5", 1), (r"\boxed{3,14}", "3.14", 1), (r"\boxed{-0,5}", "-0.5", 1),
 (r"The answer is \(\frac{3}{4}\).", "0.75", 1), ("Answer: (B)", "B", 1), ("Answer: b", "B", 1),
 (r"\boxed{5}" + " " * 10 + r"\boxed{5}", "5", 1), (r"\boxed{5} \boxed{5.0}", "5", 1),
 (r"\boxed{1 + \frac{1}{e}}", r"1 - \frac{1}{e}", 0), (r"\boxed{\frac{1}{2} + \dots}", r"\frac{1}{2}", 0),
 (r"\boxed{2\sqrt{2} \approx 2.83}", r"2\sqrt{2}", 1), (r"\boxed{5 \text{ or } 6}", "5", 0), (r"\boxed{5 \text{ and } 6}", "5", 0),
 (r"\boxed{x=5}", "5", 1), (r"\boxed{y = 5}", "x = 5", 1), (r"\boxed{5}", "x=5", 1), (r"\boxed{5 apples}", "5", 1),
 (r"\boxed{5 is the answer}", "5", 0), (r"\boxed{5\%}", r"5", 1), (r"\boxed{0.05}", r"5\%", 1), (r"\boxed{5}", r"0.05", 0),
 (r"\boxed{\text{5 is wrong}}", "5", 0), (r"\boxed{5\ \text{is wrong}}", "5", 0), (r"\boxed{5} is wrong \boxed{6}", "5", 0),
 (r"\boxed{12 \text{ or more}}", "12", 0), (r"\boxed{2 x}", "2", 0), (r"\boxed{2x}", "2", 0), (r"\boxed{3 + 4i}", "7", 0),
 (r"\boxed{3+4 i}", "3+4i", 1), (r"\boxed{\{1, 2\}}", "1,2", 1), (r"\boxed{1, 2}", r"\{2, 1\}", 1), (r"\boxed{(1, 2)}", r"\{1, 2\}", 0),
 (r"\boxed{1,000,000}", "1000000", 1), (r"\boxed{1 000 000}", "1000000", 1), (r"\boxed{1, 000, 000}", "1000000", 0),
 (r"\boxed{\frac{1}{2}}\boxed{\frac{1}{3}}", r"\frac{1}{3}", 0), ("The answer is 3. The answer is 4.", "4", 0), ("The answer is 4. So the final answer is 4.", "4", 1),
 ("<answer>5</answer><answer>5</answer>", "5", 1), ("</think>\n<answer>5</answer>", "5", 1), ("<think>\n\\boxed{5}\n</think>", "5", 0),
 ("The answer is \\boxed{5}\n<think>", "5", 0), (r"\boxed{ 5 }", "5", 1), (r"\boxed{5.}", "5", 1), (r"\boxed{05}", "5", 1),
 (r"\boxed{5e0}", "5", 1), (r"\boxed{1e3}", "1000", 1), (r"\boxed{10^{3}}", "1000", 1), (r"\boxed{3!}", "6", 1),
 (r"\boxed{\dfrac{\sqrt{3}}{2}}", r"\frac{\sqrt3}{2}", 1), (r"\boxed{\infty}", r"\infty", 1), (r"\boxed{-\infty}", r"\infty", 0),
 (r"\boxed{A}", "(A)", 1), (r"\boxed{\textbf{(A)}}", "A", 1), (r"\boxed{A, B}", "A", 0), (r"\boxed{AB}", "A", 0),
]


@pytest.fixture(autouse=True)
def _fresh():
    clear_cache()


TIMEOUT_S = 20.0  # correctness, not speed: a busy box may need over a second for one sympy case


def _run(rows):
    return math_accuracy(["q"] * len(rows), [c for c, _ in rows], answer=[g for _, g in rows], timeout_s=TIMEOUT_S)


def test_adversarial_table_has_zero_false_credits():
    got = _run(ADVERSARIAL)
    credited = [row for row, r in zip(ADVERSARIAL, got) if r != 0.0]
    assert credited == [], credited
    assert len(ADVERSARIAL) >= 50


def test_right_answers_are_credited():
    got = _run(RIGHT)
    missed = [row for row, r in zip(RIGHT, got) if r != 1.0]
    assert missed == [], missed


def test_mixed_table():
    got = math_accuracy(["q"] * len(MIXED), [c for c, _, _ in MIXED], answer=[g for _, g, _ in MIXED],
                        timeout_s=TIMEOUT_S)
    wrong = [(c, g, e) for (c, g, e), r in zip(MIXED, got) if r != e]
    assert wrong == [], wrong


def test_multiple_answers_option():
    comp = [r"\boxed{3} no wait \boxed{4}"]
    assert math_accuracy(["q"], comp, answer=["4"]) == [0.0]
    assert math_accuracy(["q"], comp, answer=["4"], multiple="last") == [1.0]
    with pytest.raises(ValueError, match="multiple"):
        math_accuracy(["q"], comp, answer=["4"], multiple="first")


def test_think_opened_by_prompt():
    prompt = ["User: 2+3?\nAssistant: <think>"]
    assert math_accuracy(prompt, [r"it is \boxed{5}"], answer=["5"]) == [0.0]  # still thinking
    assert math_accuracy(prompt, [r"it is 5</think><answer>5</answer>"], answer=["5"]) == [1.0]


def test_gsm8k_answer_format():
    comps = ["3 + 4 = 7 so 7 * 2 = 14.\n#### 14", "so 5 then 14", "#### 15", "14 \\boxed{13}"]
    got = math_accuracy(["q"] * 4, comps, answer=["#### 14"] * 4, answer_format="gsm8k")
    assert got == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="answer_format"):
        math_accuracy(["q"], ["1"], answer=["1"], answer_format="gsm9k")


def test_no_marker_fallback_option():
    assert math_accuracy(["q"], ["I think it is 7 today"], answer=["7"]) == [1.0]
    assert math_accuracy(["q"], ["I think it is 7 today"], answer=["7"], fallback=False) == [0.0]
    assert math_accuracy(["q"] * 2, ["7", "it is 7"], answer=["7"] * 2, fallback="bare") == [1.0, 0.0]
    assert math_accuracy(["q"], ["7"], answer=["7"], fallback=False) == [0.0]
    with pytest.raises(ValueError, match="fallback"):
        math_accuracy(["q"], ["7"], answer=["7"], fallback="yes")
