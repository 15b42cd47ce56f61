"""Rebuild math_verify_cases.jsonl from a checkout of huggingface/Math-Verify.

    python tests/rewards/data/make_math_verify_cases.py /path/to/Math-Verify > tests/rewards/data/math_verify_cases.jsonl

Every parametrized case of its tests/ that compares a gold and a prediction is
recorded faithfully: each test function is run once per case with Math-Verify's
``compare_strings`` / ``parse`` / ``verify`` replaced by recorders, so the row
keeps the exact strings (gold first, as the helper calls them), the expected
label and the options the test used (match types, precision, strict,
allow_set_relation_comp).  Tests of Math-Verify internals (timeouts, mocks,
sympy objects, StringExtractionConfig output lists) have no (gold, pred) pair
and are not recorded.
"""

import importlib
import inspect
import json
import sys


class _Any:
    def __eq__(self, other):
        return True

    __req__ = __eq__

    def __bool__(self):
        return True


def main(root: str) -> None:
    sys.path.insert(0, root)
    sys.path.insert(0, root + "/src")
    calls = []

    def rec_compare(gold, pred, match_types=("latex", "expr"), precision=6, strict=True,
                    allow_set_relation_comp=False):
        calls.append(dict(gold=gold, pred=pred, match_types=list(match_types), precision=precision,
                          strict=strict, allow_set_relation_comp=allow_set_relation_comp))
        return _Any()

    def rec_parse(s, *a, **k):
        return ("PARSED", s)

    def rec_verify(g, p, *a, **k):
        calls.append(dict(gold=g[1], pred=p[1], match_types=["latex", "expr"], precision=6, strict=True,
                          allow_set_relation_comp=False))
        return _Any()

    import tests.test_all as ta

    ta.compare_strings = rec_compare
    out = []
    for name in ["test_all", "test_boxed", "test_numina_cases", "test_open_thoughts", "test_strict",
                 "test_yujianll"]:
        mod = importlib.import_module(f"tests.{name}")
        if hasattr(mod, "compare_strings"):
            mod.compare_strings = rec_compare
        if name == "test_yujianll":
            mod.parse, mod.verify = rec_parse, rec_verify
        for fname, fn in inspect.getmembers(mod, inspect.isfunction):
            if not fname.startswith("test_") or fn.__module__ != mod.__name__:
                continue
            marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
            if not marks:
                continue
            argnames, values = marks[0].args[0], marks[0].args[1]
            argnames = [a.strip() for a in (argnames.split(",") if isinstance(argnames, str) else argnames)]
            for i, v in enumerate(values):
                v = v.values if hasattr(v, "values") else v
                kw = dict(zip(argnames, v))
                n0 = len(calls)
                try:
                    fn(**kw)
                except (AssertionError, TypeError):  # int(recorded) in test_yujianll; the call is recorded
                    assert len(calls) > n0, (name, fname, i)
                exp = kw.get("expected", kw.get("result"))
                for c in calls[n0:]:
                    out.append(dict(source=f"tests/{name}.py::{fname}[{i}]", expected=int(exp), **c))
    for row in out:
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
