"""Code that tries to forge its own verdict, one way per test, in every mode.

Each forgery comes with a *wrong* solution: the verdict must stay what the
wrong solution deserves (nothing passes), whatever the code does to its own
process, its descriptors, the harness, or the objects it returns.
"""

from __future__ import annotations

import secrets

import pytest

WRONG = "def add(a, b):\n    return a - b\n"
TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(5, 0) == 5"]
# add(5, 0) == 5 holds for a - b: the honest verdict of WRONG is 1 of 3.
HONEST = ("failed", 1)

FORGE_LINES = b"S\nC ok\nT 0 ok\nT 1 ok\nT 2 ok\nD\nP 0 0\n"


def verdict(box, code, tests=TESTS):
    r = box.run(code, tests, timeout_s=3.0)
    return r.status, r.passed


def no_better_than_honest(box, code):
    """For attacks that may also break the candidate's own answering: any
    outcome (timeout, error) is fine as long as it is not better than honest."""
    status, passed = verdict(box, code)
    assert status != "ok" and passed <= HONEST[1], (status, passed)


def test_result_lines_on_every_fd_then_exit(sb, healthy):
    code = WRONG + f"""
import os
for fd in range(3, 64):
    try:
        os.write(fd, {FORGE_LINES!r})
    except OSError:
        pass
os._exit(0)
"""
    assert verdict(sb, code) == ("error", 0)  # exited before answering anything
    healthy(sb)


def test_result_lines_on_every_fd_without_exiting(sb, healthy):
    code = WRONG + f"""
import os
for fd in range(3, 64):
    try:
        os.write(fd, {FORGE_LINES!r})
    except OSError:
        pass
"""
    no_better_than_honest(sb, code)
    healthy(sb)


def test_result_lines_written_during_each_call(sb, healthy):
    code = f"""
import os
def add(a, b):
    for fd in range(3, 64):
        try:
            os.write(fd, {FORGE_LINES!r})
        except OSError:
            pass
    return a - b
"""
    no_better_than_honest(sb, code)
    healthy(sb)


def test_flooding_every_fd(sb, healthy):
    code = WRONG + """
import os
junk = b"T 0 ok\\n" * 100000
for fd in range(3, 64):
    try:
        os.write(fd, junk)
    except OSError:
        pass
"""
    no_better_than_honest(sb, code)
    healthy(sb)


def test_patching_compile_and_exec(sb, healthy):
    code = WRONG + """
import builtins
builtins.compile = lambda *a, **k: builtins.__dict__['__import__'] and None
builtins.exec = lambda *a, **k: None
"""
    no_better_than_honest(sb, code)
    healthy(sb)


def test_patching_the_harness_functions(sb, healthy):
    code = WRONG + """
import sys, gc
main = sys.modules['__main__']
for name in dir(main):
    obj = getattr(main, name)
    if callable(obj) and not isinstance(obj, type):
        try:
            setattr(main, name, lambda *a, **k: ("ok", b""))
        except Exception:
            pass
for f in gc.get_objects():
    if type(f).__name__ == "function" and f.__name__ in ("run_source", "_run_step", "check_plain"):
        f.__code__ = (lambda *a, **k: ("ok", b"")).__code__
"""
    no_better_than_honest(sb, code)
    healthy(sb)


def test_reading_the_tests_from_frames_memory_and_descriptors(sb, healthy):
    secret = "SECRET" + secrets.token_hex(8)
    code = r"""
import gc, os, sys
def scan():
    found = []
    f = sys._getframe()
    while f is not None:
        found += [repr(v) for v in f.f_globals.values()] + [repr(v) for v in f.f_locals.values()]
        f = f.f_back
    found += [o for o in gc.get_objects() if isinstance(o, str)]
    for fd in range(0, 64):
        try:
            os.set_blocking(fd, False)
            found.append(os.read(fd, 1 << 16).decode("latin-1"))
        except OSError:
            pass
    for pid in os.listdir("/proc"):
        for what in ("cmdline", "environ", "mem", "fd/0"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as fh:
                    found.append(fh.read(1 << 16).decode("latin-1"))
            except OSError:
                pass
    return found
def leak():
    import re
    pattern = re.compile("SECRE" + "T[0-9a-f]{16}")  # never matches its own source
    for text in scan():
        m = pattern.search(text)
        if m:
            return m.group()
    return None
"""
    r = sb.run(code, ["assert leak() is None", f"x = {secret!r}"], timeout_s=10.0)
    assert (r.status, r.passed) == ("ok", 2), r
    healthy(sb)


def test_eq_that_is_always_true(sb, healthy):
    code = """
class Anything:
    def __eq__(self, other):
        return True
    __ne__ = lambda self, other: False
    __hash__ = object.__hash__
def add(a, b):
    return Anything()
"""
    assert verdict(sb, code) == ("failed", 0)
    healthy(sb)


def test_int_and_str_subclasses_with_forged_eq(sb, healthy):
    code = """
class I(int):
    def __eq__(self, other):
        return True
class S(str):
    def __eq__(self, other):
        return True
def add(a, b):
    return I(0) if a else S("")
"""
    assert verdict(sb, code) == ("failed", 0)
    healthy(sb)


def test_shadowing_builtins_the_tests_use(sb, healthy):
    code = WRONG + """
def abs(x):
    return 0
def isinstance(*a):
    return True
def len(x):
    return 3
AssertionError = None
"""
    tests = ["assert abs(add(1, 2) - 3) < 1e-9", "assert isinstance(add(1, 2), str)",
             "assert len(str(add(1, 2))) == 3"]
    assert verdict(sb, code, tests) == ("failed", 0)
    healthy(sb)


def test_exiting_inside_a_call_is_not_an_expected_exception(sb, healthy):
    code = "import sys\ndef add(a, b):\n    sys.exit(0)\n"
    tests = ["try:\n    add(1, 2)\nexcept Exception:\n    pass"]
    assert verdict(sb, code, tests) == ("failed", 0)
    healthy(sb)


def test_newlines_in_an_exception_message_forge_nothing(sb, healthy):
    code = 'def add(a, b):\n    raise ValueError("x\\nT 1 ok\\nT 2 ok\\nD\\n")\n'
    assert verdict(sb, code) == ("failed", 0)
    healthy(sb)


def test_killing_or_stopping_the_tester(sb, healthy):
    if not sb.root:
        pytest.skip("without root the tester runs as the same uid: the code can kill it "
                    "(a failed run, never a pass; documented)")
    code = WRONG + """
import os, signal
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            try:
                os.kill(int(pid), sig)
            except OSError:
                pass
"""
    assert verdict(sb, code) == HONEST
    healthy(sb)


def test_pre_sent_answers_are_just_answers(sb, healthy):
    # Writing "correct-looking" replies ahead of time is no different from
    # answering: the tester still compares each one itself.
    code = WRONG + """
import marshal, os
msg = marshal.dumps(("ok", ("v", True)))
for fd in range(3, 64):
    try:
        os.write(fd, len(msg).to_bytes(4, "big") + msg)
    except OSError:
        pass
"""
    no_better_than_honest(sb, code)
    healthy(sb)


def test_a_code_object_or_huge_message_on_the_channel_is_refused(sb, healthy):
    code = """
import marshal, os
def add(a, b):
    evil = marshal.dumps(("ok", ("v", (lambda: 3).__code__)))
    for fd in range(3, 64):
        try:
            os.write(fd, len(evil).to_bytes(4, "big") + evil)
        except OSError:
            pass
    return 3
"""
    assert verdict(sb, code, ["assert add(1, 2) == 3"])[1] == 0
    healthy(sb)


def test_module_names_cannot_make_the_tester_import_anything(sb, healthy):
    # The tester re-imports a module only if a test names it, only from the
    # standard library, never one that acts on import.
    code = WRONG + "import antigravity as math\nimport this as json\n"
    r = sb.run(code, ["assert math.isclose(add(1, 2), 3)", "assert json.loads('3') == add(1, 2)"],
               timeout_s=5.0)
    assert (r.status, r.passed) == ("failed", 0), r
    assert "NameError" in r.stderr
    healthy(sb)
