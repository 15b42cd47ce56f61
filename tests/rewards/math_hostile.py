"""Pathological completions for the math reward (gold "3"): each must be scored
within the per-sample bound, from any thread or process; only the two that
really end in \boxed{3} after a long run of text may be credited."""

DEEP = 10000
HOSTILE = {
    "huge_exponent": r"\boxed{1e99999999}",
    "huge_exponent_gold_side": r"\boxed{10^{99999999}}",
    "tower": r"\boxed{9^{9^{9^{9}}}}",
    "tower_plain": r"\boxed{9^9^9^9}",
    "factorial": r"\boxed{100000!}",
    "factorial_tower": r"\boxed{(10^{10})!}",
    "newlines_after_phrase": "The answer is" + "\n" * 50000,
    "newlines_before_box": "\n" * 100000 + r"\boxed{3}",
    "spaces_after_phrase": "The final answer is" + " " * 100000,
    "long_output": "step " * 20000 + r"\boxed{3}",
    "long_digits": r"\boxed{" + "9" * 100000 + "}",
    "deep_braces": r"\boxed{" + "{" * DEEP + "1" + "}" * DEEP + "}",
    "unclosed_braces": r"\boxed{" + "{" * 100000,
    "nested_frac": r"\boxed{" + r"\frac{1}{" * DEEP + "2" + "}" * DEEP + "}",
    "many_boxes": "".join(rf"\boxed{{{i}}}" for i in range(20000)),
    "many_dollars": "$" * 100000,
    "many_answer_phrases": "the answer is 1. " * 10000,
    "parens": "(" * 50000 + ")" * 50000,
    "many_commas": r"\boxed{" + ",".join(["1"] * 30000) + "}",
    "raw_long": "1 + " * 25000 + "1",
    "many_open_answer_tags": "<answer>" * 20000,
    "many_answer_tags": "<answer>1</answer>" * 10000,
    "digits_then_letter": r"\boxed{" + "1" * 999 + "x}",
    "commas_then_letter": r"\boxed{" + "1," * 499 + "x}",
    "many_think_tags": "<think>" * 20000 + "</think>" * 20000,
    "frac_chain": r"\boxed{" + r"\frac{1}{2}" * 500 + "}",
    "power_chain": r"\boxed{" + "2^" * 50 + "2}",
    "sqrt_nest": r"\boxed{" + r"\sqrt{" * 3000 + "2" + "}" * 3000 + "}",
}
