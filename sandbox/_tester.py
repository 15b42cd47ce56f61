"""Child side: the tester process, which holds the tests and computes the verdicts.

Executed, never imported (see _wire.py).  The tester is a separate process
from the candidate (its own uid when the sandbox runs as root, and never
dumpable, so the candidate can neither signal it, nor read or write its
memory or descriptors).  It reads the tests from its stdin *after* the
candidate process was forked and had closed that pipe, so the tests are
never in the candidate's memory; it alone writes the result pipe.

The tests run here with every function the code defined bound to a
``Remote`` proxy: calling it sends the (plain-data) arguments to the
candidate process and returns the (plain-data) answer, so ``assert f(2) ==
4`` compares two objects built here, by this interpreter's own ``==``.
Plain global values of the code (``N = 10``) are copied once, after the code
ran; modules the code imported are imported here again by name.  Names of
builtins and dunder names are never taken from the candidate.
"""

import builtins
import sys

_REMOTE_ERRORS = {}


class CandidateGone(BaseException):
    """The candidate process died or broke the protocol: no more answers."""


class RemoteError(Exception):
    """An exception raised in the candidate process (message: its class and text)."""


class _RemoteBase(BaseException):
    """Like RemoteError, for BaseException-only classes (SystemExit, ...)."""


def _remote_exception(name, msg, memory):
    """An exception to raise here for one the candidate raised: a subclass of
    the builtin class of that name (so ``except ValueError`` in a test still
    works) that never *is* that class.  MemoryError only when the candidate's
    exception was exactly MemoryError (not a subclass, not a lookalike).
    StopIteration and StopAsyncIteration become RuntimeError (PEP 479): raised
    through a test's ``all(map(f, xs))``, ``zip`` or ``filter``, they would end
    the iteration early and the assert would pass."""
    if type(name) is not str or type(msg) is not str:
        return RemoteError("malformed exception")
    key = (name, bool(memory))
    cls = _REMOTE_ERRORS.get(key)
    if cls is None:
        base = getattr(builtins, name, None)
        if not (type(base) is type and issubclass(base, BaseException)):
            base = Exception  # a class of the code's own
        if issubclass(base, (StopIteration, StopAsyncIteration)):
            base = RuntimeError
        if issubclass(base, MemoryError) and not memory:
            base = Exception  # only exactly MemoryError counts as memory
        if memory:
            base = MemoryError
        if issubclass(base, Exception):
            bases = (RemoteError,) if base is Exception else (RemoteError, base)
        else:  # SystemExit, KeyboardInterrupt, ...: no `except Exception` catches it
            bases = (_RemoteBase,)
        cls = _REMOTE_ERRORS[key] = type("Remote" + name[:40], bases, {})
    return cls("%s: %s" % (name[:80], msg[:300]))


class Channel:
    def __init__(self, wfd, rfd):
        self.wfd, self.rfd = wfd, rfd
        self.calls, self.gone = 0, None

    def request(self, req):
        if self.gone:
            raise CandidateGone(self.gone)
        self.calls += 1
        try:
            send(self.wfd, req)  # noqa: F821 (defined in _wire.py)
        except (ValueError, TypeError):
            raise TypeError("argument cannot be sent to the solution (plain data only)")
        except OSError as exc:
            self.gone = "the solution process is gone (%s)" % exc
            raise CandidateGone(self.gone)
        try:
            reply = recv_plain(self.rfd)  # noqa: F821
        except (ChannelClosed, OSError) as exc:  # noqa: F821
            self.gone = "the solution process is gone (%s)" % exc
            raise CandidateGone(self.gone)
        return self.decode_reply(reply)

    def decode_reply(self, reply):
        if type(reply) is not tuple or len(reply) < 2:
            raise RemoteError("malformed answer")
        if reply[0] == "raise" and len(reply) == 4:
            raise _remote_exception(reply[1], reply[2], reply[3])
        if reply[0] != "ok":
            raise RemoteError("malformed answer")
        return self.decode(reply[1])

    def decode(self, item):
        if type(item) is not tuple or len(item) != 2:
            raise RemoteError("malformed value")
        tag, value = item
        if tag == "v":
            return value
        if tag == "r" and type(value) is int:
            return Remote(self, ("ref", value))
        if tag == "i" and type(value) is list:
            return [self.decode(x) for x in value]
        if tag == "q" and type(value) is tuple and len(value) == 2 and all(type(x) is int for x in value):
            import fractions
            if value[1] > 0:
                return fractions.Fraction(*value)
        if tag == "d" and type(value) is str and len(value) < 4096:
            import decimal
            try:
                return decimal.Decimal(value)
            except (ArithmeticError, ValueError):
                pass
        raise RemoteError("malformed value")

    def encode(self, value):
        if type(value) is Remote and value._target[0] == "ref":
            return ("r", value._target[1])
        return ("v", value)


class Remote:
    """A function or object that lives in the candidate process."""

    __slots__ = ("_chan", "_target")

    def __init__(self, chan, target):
        object.__setattr__(self, "_chan", chan)
        object.__setattr__(self, "_target", target)

    def __call__(self, *args, **kwargs):
        c = self._chan
        return c.request(("call", self._target, [c.encode(a) for a in args],
                          {k: c.encode(v) for k, v in kwargs.items()}))

    def _ref(self):
        if self._target[0] != "ref":
            raise TypeError("operation not supported on a remote function")
        return self._target[1]

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._chan.request(("getattr", self._ref(), name))

    def __iter__(self):
        return iter(self._chan.request(("iter", self._ref())))

    def __len__(self):
        n = self._chan.request(("len", self._ref()))
        if type(n) is not int:
            raise TypeError("len() of the remote object is not an int")
        return n

    def __bool__(self):
        return self._chan.request(("bool", self._ref())) is True

    def __getitem__(self, key):
        return self._chan.request(("getitem", self._ref(), self._chan.encode(key)))

    def __str__(self):
        s = self._chan.request(("str", self._ref()))
        return s if type(s) is str else "<remote>"

    def __repr__(self):
        return "<remote %s %r>" % self._target

    def __eq__(self, other):  # identity only: never ask the candidate
        return type(other) is Remote and other._target == self._target

    def __hash__(self):
        return hash(self._target)


ALLOWED_TOPS = set()  # allowed packages (set by the harness from the header)
_NO_IMPORT = {"antigravity", "this", "webbrowser", "turtle", "tkinter", "idlelib", "pydoc"}


def _importable(module):
    """Modules the code imported are imported here again only from the
    standard library, and never one that acts on import."""
    top = module.split(".")[0]
    return ((top in getattr(sys, "stdlib_module_names", ()) or top in ALLOWED_TOPS)
            and top not in _NO_IMPORT)


def _bind(ns, chan, listing, entry_point, wanted=None):
    """Put the candidate's names into the tests' namespace (see module doc);
    ``wanted``: the global names the tests use (None: all)."""
    if type(listing) is not list:
        return
    for item in listing:
        if type(item) is not tuple or len(item) != 3 or type(item[0]) is not str:
            continue
        name, tag, value = item
        if name.startswith("__") or (hasattr(builtins, name) and name != entry_point):
            continue
        if tag == "f":
            ns[name] = Remote(chan, ("name", name))
        elif tag == "v":
            ns[name] = value
        elif tag == "m" and type(value) is str and value and (
                (wanted is None or name in wanted) and _importable(value)):
            try:
                ns[name] = __import__(value, fromlist=["_"])
            except BaseException:
                pass


def _global_names(code):
    names, todo = set(), [code]
    while todo:
        c = todo.pop()
        names.update(c.co_names)
        todo.extend(k for k in c.co_consts if type(k) is type(c))
    return names


def _uses_values(code, values):
    return type(code) is not str and bool(_global_names(code) & values)


def _compile_all(tests):
    """Code objects (a test that does not compile stays source: running it
    reports the SyntaxError), and the global names they use."""
    codes, names = [], set()
    for i, test in enumerate(tests):
        try:
            code = compile(test, "<test %d>" % i, "exec")
        except BaseException:
            codes.append(test)
            continue
        codes.append(code)
        names |= _global_names(code)
    return codes, names


def tester_main(chan, tests, entry_point, require_calls, write):
    """Receive the code's outcome, run each test, write the verdicts; returns."""
    try:
        first = recv_plain(chan.rfd)  # noqa: F821
    except BaseException as exc:
        chan.gone = "the solution process is gone (%s)" % exc
        write(b"C dead\n")
        return
    if type(first) is not tuple or len(first) != 4 or first[0] != "code":
        write(b"C error malformed report from the solution process\n")
        return
    _, kind, msg, listing = first
    if kind != "ok":
        kind = kind if kind in ("error", "memory", "limit") else "error"
        write(b"C %s %s\n" % (kind.encode(), _ascii(msg)))
        return
    write(b"C ok\n")
    ns = {"__name__": "__sandbox__", "__builtins__": builtins}
    codes, wanted = _compile_all(tests)
    _bind(ns, chan, listing, entry_point, wanted)
    values = {n for n, v in ns.items() if type(v) is not Remote and not n.startswith("__")}
    for i, code in enumerate(codes):
        if chan.gone:
            write(b"T %d dead\n" % i)
            continue
        before = chan.calls
        kind, msg = run_source(code, "<test %d>" % i, ns)  # noqa: F821 (_harness.py)
        if kind == "ok" and require_calls and chan.calls == before and not _uses_values(code, values):
            kind, msg = "nocall", b"the test never called the solution: it cannot fail"
        write(b"T %d %s %s\n" % (i, kind.encode(), msg))
    write(b"D\n")


def _ascii(msg):
    """Untrusted text as one printable ASCII line (no forged record lines)."""
    if type(msg) is str:
        msg = msg.encode("ascii", "backslashreplace")
    if type(msg) is not bytes:
        return b""
    return bytes(c if 32 <= c < 127 else 63 for c in msg[:300])
