"""Code reward: the fraction of a sample's tests that the generated code
passes, run in the project's ``sandbox`` package (isolated processes with time
and memory limits; imported lazily so the other rewards work without it).

The verdicts are the sandbox's: assert-style tests run in a separate tester
process against proxies of the solution's functions, stdin/stdout cases are
compared on the host (see sandbox/__init__.py).  Test columns: see
rewards/code_formats.py; the program is found with rewards/code_extract.py.

>>> extract_code("Here:\\n```python\\nprint(1)\\n```\\nbetter:\\n```python\\nprint(2)\\n```")
'print(2)'
>>> extract_code("def f():\\n    return 1")
'def f():\\n    return 1'
"""

from __future__ import annotations

import functools
import inspect
import logging

from rewards._text import completion_text, prompt_text
from rewards.code_extract import defines, entry_name, extract_code, prompt_header
from rewards.code_formats import spec
from rewards.registry import register

__all__ = ["code_tests", "extract_code"]
log = logging.getLogger(__name__)
_COLUMNS = ("test", "entry_point", "test_list", "test_setup_code", "test_imports",
            "input_output")


def _column(kwargs, name, n):
    """One value per completion; a scalar (e.g. a recipe's ``entry_point:
    solve``) applies to all of them."""
    value = kwargs.get(name)
    if value is None or isinstance(value, (str, bytes, dict)):
        return [value] * n
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise ValueError(f"column {name!r} must have one entry per completion ({n})")
    return list(value)


def _specs(tests, kwargs, n):
    """Per sample: (tests, entry point) or None (no usable tests; counted)."""
    cols = {c: _column(kwargs, c, n) for c in _COLUMNS}
    tests = [None] * n if tests is None else _column({"tests": tests}, "tests", n)
    out, bad = [], {}
    for i in range(n):
        try:
            out.append(spec(tests[i], **{c: cols[c][i] for c in _COLUMNS}))
        except (ValueError, TypeError) as exc:
            out.append(None)
            bad[str(exc)] = bad.get(str(exc), 0) + 1
    if bad:  # failures counted and shown, never a silent 0
        log.warning("code_tests: %d of %d samples have no usable tests (scored None): %s",
                    sum(bad.values()), n, "; ".join(f"{k} (x{v})" for k, v in bad.items()))
    return out


@functools.lru_cache(maxsize=256)
def _prompt_code(text: str, name: str) -> tuple[str, str, str]:
    """(the prompt's code, its import header, its helpers), parsed once per prompt:
    a batch holds each prompt G times, and program and trusted_tests both need it."""
    head = extract_code(text, name)
    return (head, *prompt_header(head, name))


def program(prompt, completion, entry_point: str | None) -> str:
    """The code to run for one completion.  HumanEval-style continuations
    (the prompt ends in the signature and docstring, the completion is the
    body) are joined to the prompt's code when that is what defines the
    entry point; a full solution gets the prompt's import header first (as
    HumanEval's harness runs prompt + completion: ``List`` without an import).

    >>> program("def f(x):\\n    'Double.'\\n", "    return 2 * x\\n", "f")
    "def f(x):\\n    'Double.'\\n    return 2 * x"
    >>> program("from typing import List\\ndef f(x: List[int]):\\n    ''\\n", "def f(x: List[int]):\\n    return x", "f")
    'from typing import List\\ndef f(x: List[int]):\\n    return x'
    """
    name = entry_name(entry_point)
    code = extract_code(completion_text(completion), name)
    if not name or prompt is None:
        return code
    head, imports, _ = _prompt_code(prompt_text(prompt), name)
    if defines(code, name):
        return imports + "\n" + code if imports else code
    if not defines(head, name):
        return code
    joined = head.rstrip() + "\n" + completion_text(completion).strip("\n").rstrip()
    return joined if defines(joined, name) else code


def trusted_tests(prompt, tests, entry_point: str | None):
    """The tests with the prompt's helpers (its imports and the functions it
    defines in full, other than the entry point) defined first, on the
    tester's side: a completion that redefines ``encode_cyclic`` or ``poly``
    changes only its own copy, never what the test calls."""
    if prompt is None or not entry_point or not all(isinstance(t, str) for t in tests):
        return tests
    helpers = _prompt_code(prompt_text(prompt), entry_name(entry_point))[2]
    return [helpers + "\n" + t for t in tests] if helpers else tests


def _options(run_batch, float_tol, allow_packages) -> dict:
    """The trust options, for a run_batch that has them (a stand-in may not)."""
    try:
        params = inspect.signature(run_batch).parameters
    except (TypeError, ValueError):
        params = {}
    opts = {"require_calls": True, "float_tol": float_tol}
    if allow_packages:
        if "allow_packages" not in params:
            raise RuntimeError("this sandbox.run_batch cannot allow packages")
        opts["allow_packages"] = tuple(allow_packages)
    return {k: v for k, v in opts.items() if k in params}


@register("code_tests")
def code_tests(prompts, completions, tests=None, timeout_s: float = 5.0, memory_mb: int = 512,
               workers: int | None = None, all_or_nothing: bool = False,
               float_tol: float | None = None, allow_packages=(), **kwargs):
    """Fraction of a sample's tests passed by the completion's code (0.0 when
    the code fails to run or times out); None where a sample has no usable
    tests.  ``all_or_nothing``: 1.0 only when every test passes.  ``float_tol``:
    numeric tolerance for stdin/stdout outputs.  ``allow_packages``: installed
    packages the code may import (default: the standard library only).
    ``timeout_s`` is per run, and
    for stdin/stdout tests per case.  Tests that never call the solution count
    as failed (they cannot fail, so they cannot be evidence)."""
    import sandbox  # lazy: the sandbox is optional for the other rewards

    if not hasattr(sandbox, "run_batch"):
        raise RuntimeError("sandbox.run_batch is not available (is the sandbox package installed?)")
    specs = _specs(tests, kwargs, len(completions))
    idx = [i for i, s in enumerate(specs) if s is not None]
    items = []
    for i in idx:
        t, entry = specs[i]
        prompt = prompts[i] if i < len(prompts) else None
        code, t = program(prompt, completions[i], entry), trusted_tests(prompt, t, entry)
        items.append((code, t) if entry is None else (code, t, entry_name(entry)))
    out: list = [None] * len(completions)
    if not items:
        return out
    results = sandbox.run_batch(items, timeout_s=timeout_s, memory_mb=memory_mb, workers=workers,
                                **_options(sandbox.run_batch, float_tol, allow_packages))
    if len(results) != len(items):
        raise RuntimeError(f"sandbox.run_batch returned {len(results)} results for {len(items)} items")
    for i, r in zip(idx, results):
        total = getattr(r, "total", 0) or 0
        frac = (getattr(r, "passed", 0) or 0) / total if total > 0 else 0.0
        out[i] = float(frac >= 1.0) if all_or_nothing else frac
    return out


# The sandbox bounds each test run itself; a batch legitimately takes longer than
# RewardSet's default per-call limit, so opt out of it (see RewardSet docs).
code_tests.timeout_s = None
