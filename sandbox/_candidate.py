"""Child side: the candidate process, which runs the untrusted code and serves calls.

Executed, never imported (see _wire.py).  Everything here runs in the same
address space as the untrusted code, so none of it is trusted: the code may
replace any of these functions, write anything on the channel, or exit.  The
tester (_tester.py) assumes exactly that; this side only has to be *robust*
for honest code (a weird exception class must not lose the next test).

Protocol (requests from the tester, answers back, all plain marshal data):

    first answer           ("code", kind, message, [(name, tag, value), ...])
    ("call", target, args, kwargs)      target: ("name", str) | ("ref", int)
    ("getattr", ref, name) ("iter", ref) ("len", ref) ("str", ref)
    ("bool", ref) ("getitem", ref, key)
    answers                ("ok", value) | ("raise", class name, message, memory)

A value is ("v", plain data) or ("r", handle) for anything marshal cannot
carry (an instance, a generator): the object stays here and the tester gets
a handle it can call, iterate, index or take attributes of.
"""

import sys

_ITER_MAX = 1 << 20  # items one "iter" request may materialise


class _Items(list):
    """The answer to "iter": items encoded one by one."""


def _message(exc):
    try:  # str() runs user code (__str__); it may raise or return garbage
        text = str(exc)
        return text[:300] if type(text) is str else ""
    except BaseException:
        return ""


class Candidate:
    def __init__(self, rfd, wfd):
        self.rfd, self.wfd = rfd, wfd
        self.refs, self.ns = {}, None

    def encode(self, value):
        try:
            marshal.dumps(value)  # noqa: F821 (imported by _wire.py)
            return ("v", value)
        except BaseException:
            pass
        try:
            return _exact(value)
        except BaseException:
            key = len(self.refs) + 1
            self.refs[key] = value
            return ("r", key)

    def decode(self, item):
        tag, value = item
        return self.refs[value] if tag == "r" else value

    def listing(self):
        out = []
        for name, value in list(self.ns.items()):
            if type(name) is not str or name.startswith("__"):
                continue
            if type(value) is type(sys):
                out.append((name, "m", _type_name_of_module(value)))
            elif callable(value):
                out.append((name, "f", None))
            else:
                try:
                    marshal.dumps(value)  # noqa: F821
                except BaseException:
                    continue  # not plain data: the tests cannot see it
                out.append((name, "v", value))
        return out

    def handle(self, req):
        op = req[0]
        if op == "call":
            kind, key = req[1]
            fn = self.ns[key] if kind == "name" else self.refs[key]
            args = [self.decode(a) for a in req[2]]
            kwargs = {k: self.decode(v) for k, v in req[3].items()}
            return fn(*args, **kwargs)
        obj = self.refs[req[1]]
        if op == "getattr":
            return getattr(obj, req[2])
        if op == "iter":
            out = []
            for item in obj:
                if len(out) >= _ITER_MAX:
                    raise MemoryError("more than %d items" % _ITER_MAX)
                out.append(self.encode(item))
            return _Items(out)
        if op == "len":
            return len(obj)
        if op == "str":
            return str(obj)
        if op == "bool":
            return bool(obj)
        if op == "getitem":
            return obj[self.decode(req[2])]
        raise ValueError("unknown request %r" % (op,))

    def answer(self, req):
        try:
            value = self.handle(req)
        except BaseException as exc:
            cls = type(exc)
            reply = ("raise", _type_name(cls), _message(exc), cls is MemoryError)
        else:
            if type(value) is _Items:
                reply = ("ok", ("i", list(value)))
            else:
                reply = ("ok", self.encode(value))
        _flush_user_streams()  # noqa: F821 (defined in _harness.py)
        send(self.wfd, reply)  # noqa: F821 (defined in _wire.py)

    def serve(self):
        while True:
            try:
                req = marshal.loads(recv_raw(self.rfd))  # noqa: F821
            except BaseException:
                return  # the tester is done (EOF)
            self.answer(req)


_PLAIN_TYPES = (int, float, complex, str, bytes, bool, type(None))


def _plain(value, depth=0):
    """``value`` as exact builtin types when it is one by value: subclasses of
    dict, list, tuple, set and the scalars (Counter, defaultdict, OrderedDict,
    namedtuple, IntEnum) and numpy scalars (``.item()``); TypeError otherwise.
    The tester compares what it gets by its own ``==``, so this only lets an
    honest answer of those types be seen as its value (no verdict can follow
    from it that the plain value would not give)."""
    if type(value) in _PLAIN_TYPES:
        return value
    if depth > 64:
        raise TypeError("nested too deep")
    d = depth + 1
    if isinstance(value, bool):
        return bool(value)
    for base in (int, float, complex, str, bytes):
        if isinstance(value, base):
            return base(value)
    if isinstance(value, dict):
        return {_plain(k, d): _plain(v, d) for k, v in dict.items(value)}
    if isinstance(value, (list, tuple)):
        items = [_plain(x, d) for x in (list.__iter__ if isinstance(value, list) else tuple.__iter__)(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, (set, frozenset)):
        items = [_plain(x, d) for x in (set.__iter__ if isinstance(value, set) else frozenset.__iter__)(value)]
        return set(items) if isinstance(value, set) else frozenset(items)
    if type(value).__module__ == "numpy" and type(value).__name__ not in ("ndarray", "matrix"):
        return _plain(value.item(), d)
    raise TypeError("not plain data")


def _exact(value):
    """The wire form of a value marshal cannot carry but the tester can rebuild:
    plain by value (see ``_plain``), or a Fraction / Decimal ("q" / "d")."""
    name = type(value).__module__, type(value).__name__
    if name == ("fractions", "Fraction"):
        return ("q", (int(value.numerator), int(value.denominator)))
    if name == ("decimal", "Decimal"):
        return ("d", str(value))
    plain = _plain(value)
    marshal.dumps(plain)  # noqa: F821
    return ("v", plain)


def _type_name_of_module(mod):
    try:
        name = mod.__name__
        return name if type(name) is str else ""
    except BaseException:
        return ""


def candidate_main(rfd, wfd, code):
    """Run the code in a module named ``__sandbox__`` (so pickle, hence
    multiprocessing, finds its functions), report, then serve; never returns."""
    mod = type(sys)("__sandbox__")
    sys.modules["__sandbox__"] = mod
    box = Candidate(rfd, wfd)
    box.ns = mod.__dict__
    box.ns["__builtins__"] = __builtins__
    kind, msg = run_source(code, "<solution>", box.ns)  # noqa: F821 (_harness.py)
    try:
        send(wfd, ("code", kind, msg, box.listing() if kind == "ok" else []))  # noqa: F821
    except BaseException:
        os._exit(1)  # noqa: F821
    if kind == "ok":
        box.serve()
    _flush_user_streams()  # noqa: F821
    os._exit(0)  # noqa: F821
