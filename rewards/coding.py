"""Code reward: the fraction of a sample's unit tests that the generated code
passes, run in the project's ``sandbox`` package (isolated processes with time
and memory limits; imported lazily so the other rewards work without it).

>>> extract_code("Here:\\n```python\\nprint(1)\\n```\\nbetter:\\n```python\\nprint(2)\\n```")
'print(2)'
>>> extract_code("def f():\\n    return 1")
'def f():\\n    return 1'
"""

from __future__ import annotations

import json
import re

from rewards._text import completion_text
from rewards.registry import register

_FENCE = re.compile(r"```[ \t]*(python3?|py)?[ \t]*\n(.*?)```", re.S | re.I)


def extract_code(text: str) -> str:
    """Code of the last ```python fenced block (any fenced block if none is
    tagged python; an unclosed final fence counts), else the whole text."""
    blocks = _FENCE.findall(text)
    tagged = [code for lang, code in blocks if lang]
    if tagged or blocks:
        return (tagged or [c for _, c in blocks])[-1].strip("\n")
    m = re.search(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*)$", text, re.S | re.I)  # truncated fence
    if m:
        return m.group(1).strip("\n")
    return text.strip("\n")


def _tests(t):
    """Datasets often store the test list JSON-encoded; run as code, such a
    string would be a no-op expression that "passes"."""
    if isinstance(t, str) and t.lstrip().startswith("["):
        try:
            v = json.loads(t)
        except ValueError:
            return t
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
    return t


@register("code_tests")
def code_tests(prompts, completions, tests, timeout_s: float = 5.0, memory_mb: int = 512,
               workers: int | None = None, **kwargs):
    """Fraction of ``tests`` passed by the completion's code (0.0 when the code
    fails to run or times out); None where a sample has no tests.  ``tests`` is
    passed to the sandbox as is (e.g. a list of assert statements)."""
    import sandbox  # lazy: the sandbox is optional for the other rewards

    if not hasattr(sandbox, "run_batch"):
        raise RuntimeError("sandbox.run_batch is not available (is the sandbox package installed?)")
    idx = [i for i, t in enumerate(tests) if t]
    items = [(extract_code(completion_text(completions[i])), _tests(tests[i])) for i in idx]
    out: list = [None] * len(completions)
    if not items:
        return out
    results = sandbox.run_batch(items, timeout_s=timeout_s, memory_mb=memory_mb, workers=workers)
    if len(results) != len(items):
        raise RuntimeError(f"sandbox.run_batch returned {len(results)} results for {len(items)} items")
    for i, r in zip(idx, results):
        total = getattr(r, "total", 0) or 0
        out[i] = (getattr(r, "passed", 0) or 0) / total if total > 0 else 0.0
    return out


# The sandbox bounds each test run itself; a batch legitimately takes longer than
# RewardSet's default per-call limit, so opt out of it (see RewardSet docs).
code_tests.timeout_s = None
