"""Second audit round, in every mode: an exception that ends the test's own
iteration (StopIteration), answers whose type is a subclass of their value
(Counter, namedtuple, ...), exit()/quit() under -S, CRLF stdin, and float_tol
applied only to real numbers."""

from __future__ import annotations

import pytest

from sandbox._stdio import outputs_match

# A wrong double() that raises StopIteration from the second call on: map, zip and
# filter over its calls would stop there, and all([...]) of what came before is True.
STOPS = """
calls = [0]
def double(x):
    calls[0] += 1
    if calls[0] > 1:
        raise StopIteration
    return 2 * x
"""
ITERATION_TESTS = [
    "assert all(map(lambda x: double(x) == 2 * x, [1, 2, 3, 4]))",
    "assert all(a == b for a, b in zip(map(double, [1, 2, 3]), [2, 4, 6]))",
    "assert list(filter(lambda x: double(x) != 2 * x, [1, 2, 3])) == []",
    "assert set(map(double, [1, 2])) <= {2, 4}",
]


@pytest.mark.parametrize("test", ITERATION_TESTS)
def test_stop_iteration_from_the_solution_never_ends_a_tests_iteration(sb, test):
    r = sb.run(STOPS.replace("calls[0] > 1", "calls[0] > 0"), [test], timeout_s=5.0)
    assert (r.status, r.passed) != ("ok", 1), r
    assert r.passed == 0, r


def test_stop_iteration_is_reported_by_name(sb):
    r = sb.run("def f():\n    raise StopIteration('done')", ["f()"], timeout_s=5.0)
    assert r.passed == 0 and "StopIteration" in r.stderr, r


def test_a_test_that_expects_a_plain_stop_iteration_still_runs(sb):
    """The test's own iterators are untouched: only the solution's exceptions change."""
    r = sb.run("def f(xs):\n    return [2 * x for x in xs]",
               ["it = iter(f([1]))\nassert next(it) == 2\ntry:\n    next(it)\nexcept StopIteration:\n    pass"])
    assert (r.status, r.passed) == ("ok", 1), r


VALUE_TYPES = {
    "Counter": ("from collections import Counter\ndef f(s):\n    return Counter(s)",
                "assert f('aab') == {'a': 2, 'b': 1}"),
    "defaultdict": ("from collections import defaultdict\ndef f(s):\n    d = defaultdict(list)\n"
                    "    for c in s:\n        d[c].append(1)\n    return d",
                    "assert f('ab') == {'a': [1], 'b': [1]}"),
    "OrderedDict": ("from collections import OrderedDict\ndef f():\n    return OrderedDict(x=1)",
                    "assert f() == {'x': 1}"),
    "namedtuple": ("from collections import namedtuple\nP = namedtuple('P', 'x y')\ndef f():\n"
                   "    return P(1, 2)", "assert f() == (1, 2)"),
    "nested": ("from collections import Counter\ndef f():\n    return [Counter('a'), (1, Counter('bb'))]",
               "assert f() == [{'a': 1}, (1, {'b': 2})]"),
    "Fraction": ("from fractions import Fraction\ndef f():\n    return Fraction(1, 3)",
                 "from fractions import Fraction\nassert f() == Fraction(2, 6)"),
    "Decimal": ("from decimal import Decimal\ndef f():\n    return Decimal('0.1')",
                "from decimal import Decimal\nassert f() == Decimal('0.10')"),
    "IntEnum": ("import enum\nclass C(enum.IntEnum):\n    A = 3\ndef f():\n    return C.A",
                "assert f() == 3 and type(f()) is int"),
    "str subclass": ("class S(str):\n    pass\ndef f():\n    return S('ab')", "assert f() == 'ab'"),
}


@pytest.mark.parametrize("kind", list(VALUE_TYPES))
def test_answers_of_value_subclasses_compare_as_their_values(sb, kind):
    code, test = VALUE_TYPES[kind]
    r = sb.run(code, [test])
    assert (r.status, r.passed) == ("ok", 1), r


def test_a_dict_subclass_that_claims_equality_is_judged_by_its_items(sb):
    code = "class D(dict):\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n" \
           "def f():\n    return D(wrong=1)"
    r = sb.run(code, ["assert f() == {'right': 1}", "assert f() == {'wrong': 1}"])
    assert (r.status, r.passed) == ("failed", 1), r


def test_wrong_fraction_and_counter_still_fail(sb):
    code = "from fractions import Fraction\nfrom collections import Counter\n" \
           "def f():\n    return Fraction(1, 4)\ndef g():\n    return Counter('ab')"
    r = sb.run(code, ["from fractions import Fraction\nassert f() == Fraction(1, 3)",
                      "assert g() == {'a': 2}"])
    assert (r.status, r.passed) == ("failed", 0), r


@pytest.mark.parametrize("end", ["exit()", "quit()", "exit(0)", "quit(0)"])
def test_exit_and_quit_end_a_program_cleanly(sb, end):
    r = sb.run(f"print(int(input()) * 2)\n{end}\nprint('never')", [{"input": "4\n", "output": "8\n"}])
    assert (r.status, r.passed) == ("ok", 1), r


def test_exit_with_an_error_code_fails(sb):
    r = sb.run("print(8)\nexit(3)", [{"input": "", "output": "8\n"}])
    assert r.passed == 0, r


def test_crlf_stdin_reads_as_lines(sb):
    code = "a = input()\nb = input()\nprint(a == 'abc', b == 'de', len(a + b))"
    r = sb.run(code, [{"input": "abc\r\nde\r\n", "output": "True True 5\r\n"}])
    assert (r.status, r.passed) == ("ok", 1), r


def test_float_tol_never_forgives_an_integer(sb):
    cases = [{"input": "", "output": "3\n"}]
    assert sb.run("print(4)", cases, float_tol=1.0).passed == 0
    assert sb.run("print(3)", cases, float_tol=1.0).passed == 1
    real = [{"input": "", "output": "0.3333333\n"}]
    assert sb.run("print(1 / 3)", real, float_tol=1e-6).passed == 1


@pytest.mark.parametrize("got,expected,tol,ok", [
    ("4", "3", 1.0, False), ("2", "3", 0.5, False), ("-1", "0", 1.0, False),
    ("100001", "100000", 1e-3, False),               # relative tolerance must not forgive ints either
    ("3.0000001", "3.0", 1e-6, True), ("3", "3.0", 1e-6, True), ("2.9", "3.0", 1e-6, False),
    ("1e5", "1.00000001e5", 1e-6, True), ("inf", "inf", 1e-6, True), ("1e309", "inf", 1.0, False),
    ("nan", "nan", 1e-6, True), ("0.5", "nan", 1.0, False), ("0x10", "16.0", 1e-6, False),
])
def test_outputs_match_tolerance_only_for_real_numbers(got, expected, tol, ok):
    assert outputs_match(got, expected, float_tol=tol) is ok


HIDE = '''
import array, socket
def hide(name):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        a.bind("\\0" + name)
    except OSError as exc:
        return type(exc).__name__
    # keep it alive past the run: send both ends through themselves (SCM_RIGHTS)
    a.sendmsg([b"k"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [a.fileno(), b.fileno()]))])
    return "bound"
'''
SEEK = '''
import socket
def seek(name):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for how in ("sendto", "connect", "sendmsg"):
        try:
            if how == "sendto":
                a.sendto(b"x", "\\0" + name)
            elif how == "connect":
                a.connect("\\0" + name)
            else:
                a.sendmsg([b"x"], [], 0, "\\0" + name)
            return "reached by " + how
        except OSError:
            pass
    return "unreachable"
'''


def test_no_socket_name_outlives_a_run_or_reaches_another(sb, healthy):
    """An abstract unix name kept alive by descriptors in flight was visible to later
    runs of a pooled worker: names cannot be taken, and none is reachable."""
    import secrets
    name = "grpo-leak-" + secrets.token_hex(4)
    r = sb.run(HIDE, [f"assert hide({name!r}) == 'PermissionError'"])
    assert (r.status, r.passed) == ("ok", 1), r
    for _ in range(3):  # later runs, likely on the same pooled worker
        r = sb.run(SEEK, [f"assert seek({name!r}) == 'unreachable'"])
        assert (r.status, r.passed) == ("ok", 1), r
    healthy(sb)


def test_socket_buffers_cannot_grow(sb):
    code = ("import socket\ndef grow():\n    a, b = socket.socketpair()\n    try:\n"
            "        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 30)\n"
            "    except OSError as exc:\n        return type(exc).__name__\n    return 'grown'")
    r = sb.run(code, ["assert grow() == 'PermissionError'"])
    assert (r.status, r.passed) == ("ok", 1), r


def test_socketpair_still_works_for_honest_code(sb):
    code = ("import socket\ndef echo(x):\n    a, b = socket.socketpair()\n    a.sendall(x.encode())\n"
            "    return b.recv(100).decode()")
    r = sb.run(code, ["assert echo('hi') == 'hi'"])
    assert (r.status, r.passed) == ("ok", 1), r
