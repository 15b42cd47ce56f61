"""Second audit round, in every mode: an exception that ends the test's own
iteration (StopIteration), answers whose type is a subclass of their value
(Counter, namedtuple, ...), exit()/quit() under -S, CRLF stdin, and float_tol
applied only to real numbers."""

from __future__ import annotations

import pytest

import sandbox

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


# ---------------------------------------------------- class 1: nothing outlives a run
LITTER = '''
import array, os, socket, time
def litter(tag):
    for d in ("/tmp", "/var/tmp", "/dev/shm", "."):
        try:
            with open(os.path.join(d, tag), "w") as f:
                f.write("answer was right")
        except OSError:
            pass
    # a socket cycle in flight, holding data: both ends sent through themselves
    a, b = socket.socketpair()
    a.send(b"x" * 4096)
    a.sendmsg([b"k"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [a.fileno(), b.fileno()]))])
    if os.fork() == 0:                       # a daemon that escapes its session
        os.setsid()
        if os.fork() == 0:
            time.sleep(30)
        os._exit(0)
    return "left"
'''
LOOK = '''
import os
def clean(tag):
    return [d for d in ("/tmp", "/var/tmp", "/dev/shm", ".") if os.path.exists(os.path.join(d, tag))]
'''


def test_nothing_a_run_makes_outlives_it(sb, healthy):
    """Files in every writable dir, a daemon that escaped its session and a socket cycle
    in flight: after the run none of it is visible to later runs, and the sandbox's own
    check after every run (leftover_runs, asserted by ``healthy``) found nothing left."""
    import secrets
    tag = "grpo-litter-" + secrets.token_hex(4)
    r = sb.run(LITTER, [f"assert litter({tag!r}) == 'left'"])
    assert (r.status, r.passed) == ("ok", 1), r
    for _ in range(3):
        r = sb.run(LOOK, [f"assert clean({tag!r}) == []"])
        assert (r.status, r.passed) == ("ok", 1), r
    # With seccomp, zygote runs share the zygote's empty network namespace: a socket
    # cycle still in flight when the run ends is found by the census and that zygote is
    # thrown away (counted once); the unix GC may also have freed it first (0).
    assert sb.leftover_runs in (0, 1)
    sb.leftover_runs = 0
    healthy(sb)


def test_no_run_sees_a_socket_of_an_earlier_one(sb, healthy):
    """The in-flight socket cycle of one run is never visible (/proc/net/unix) to the
    next runs: a fresh netns per run without seccomp, else a fresh zygote."""
    import time
    count = ("def unix():\n    try:\n        return len(open('/proc/net/unix').readlines()) - 1\n"
             "    except OSError:\n        return 0\n")
    # The none backend has no network namespace: runs see the host's sockets, so the bar
    # there is "no more than before the run" (the kernel's unix GC frees the cycle).
    host = sb.mode().backend == "none"
    before = _unix_sockets() if host else 0
    r = sb.run(LITTER, ["assert litter('grpo-sock') == 'left'"])
    assert (r.status, r.passed) == ("ok", 1), r
    for i in range(3):
        if host:
            deadline = time.monotonic() + 5
            while _unix_sockets() > before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _unix_sockets() <= before, "the run's sockets outlived it"
        r = sb.run(count, [f"assert unix() <= {before}"])
        assert (r.status, r.passed) == ("ok", 1), r
    sb.leftover_runs = 0
    healthy(sb)


def test_the_zygote_reports_what_a_run_left_and_is_not_reused():
    """The post-run census itself: a process, a file or a unix socket more than before
    the run is reported, and the host throws that zygote away."""
    from sandbox._pool import Zygote
    from sandbox.core import _ZYGOTE
    ns = {"__name__": "zygote_source"}
    exec(compile(_ZYGOTE, "<zygote source>", "exec"), ns)  # the very program the jail runs
    now = ns["_census"]()
    assert ns["_leftover"](now) == ""
    fewer = dict(now, processes=now["processes"][1:], sockets=(now["sockets"] or 1) - 1,
                 files=now["files"] + ["/tmp/old"])
    assert set(ns["_leftover"](fewer).split(",")) == {"processes:+1", "sockets:+1"}
    import os
    import tempfile
    with tempfile.NamedTemporaryFile(dir="/tmp") as f:
        if os.geteuid() == 0:   # a file of a sandbox uid counts; the host's own never do
            os.chown(f.name, 1_000_000_001, 1_000_000_001)
            assert ns["_leftover"](now) == "files:+1"
            os.chown(f.name, 0, 0)
        assert ns["_leftover"](now) == ""
    z = Zygote.__new__(Zygote)
    z.dead, z.leftover = False, None
    z._parse(b"E 0 processes:+1")
    assert (z.dead, z.leftover, z.returncode) == (True, "processes:+1", 0)
    z.dead = False
    z._parse(b"E 0 -")
    assert not z.dead


def test_a_leftover_is_counted_and_logged(caplog):
    from sandbox._process import Raw
    from sandbox.core import Mode, Sandbox
    box = Sandbox.__new__(Sandbox)
    import threading
    box._count_lock, box.leftover_runs = threading.Lock(), 0
    box._clean_up(Mode("bwrap", True, "zygote"), (None, None), Raw(leftover="files:+2"))
    assert box.leftover_runs == 1 and "files:+2" in caplog.text


# ---------------------------------------------------- class 2: socket memory is bounded
HOG = '''
import socket
def hog():
    held, sent = [], 0
    for _ in range(1000):
        try:
            a, b = socket.socketpair()
        except OSError:
            break
        for s in (a, b):
            s.setblocking(False)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 24)
            except OSError:
                pass
            while True:
                try:
                    sent += s.send(b"x" * 65536)
                except OSError:
                    break
        held.append((a, b))
        if len(held) > 8:                    # ship the oldest pair in flight, close it here
            x, y = held.pop(0)
            try:
                socket.send_fds(held[-1][0], [b"f"], [x.fileno(), y.fileno()])
            except OSError:
                pass
            x.close()
            y.close()
    import time
    time.sleep(1.0)
    return sent
'''


def _unix_sockets() -> int:
    with open("/proc/net/unix") as f:
        return len(f.readlines()) - 1


def _available_mib() -> int:
    with open("/proc/meminfo") as f:
        return next(int(ln.split()[1]) >> 10 for ln in f if ln.startswith("MemAvailable"))


def test_socket_buffer_memory_is_bounded(sb, healthy):
    """Queued socket memory is kernel memory that RLIMIT_AS does not count (an audit
    run held hundreds of MiB at memory_mb=256 by raising SO_SNDBUF to wmem_max and
    parking sockets in flight): with setsockopt refused, the default buffers and
    RLIMIT_NOFILE bound it to a few tens of MiB whatever the program does."""
    import threading
    low, done = [_available_mib()], threading.Event()
    base = low[0]

    def watch():
        while not done.is_set():
            low[0] = min(low[0], _available_mib())
            done.wait(0.02)
    t = threading.Thread(target=watch)
    t.start()
    try:
        r = sb.run(HOG, ["assert hog() > 0"], memory_mb=256, timeout_s=10)
    finally:
        done.set()
        t.join()
    assert (r.status, r.passed) == ("ok", 1), r
    assert base - low[0] < 100, f"the run held {base - low[0]} MiB of kernel memory"
    healthy(sb)
