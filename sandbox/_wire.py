"""Child side, shared: framing of the channel between the tester and the candidate.

Executed, never imported: core.py concatenates this file with _candidate.py,
_tester.py and _harness.py into the source that the sandboxed interpreter
runs (``python -c``).  Only builtin modules may be used here.

Messages are ``marshal`` data behind a 4-byte big-endian length.  The tester
accepts from the candidate only *plain data*: after ``marshal.loads`` it
walks the value and refuses anything that is not None, bool, int, float,
complex, str, bytes, or a tuple/list/set/frozenset/dict of those (marshal can
also build code objects: refused).  Marshal writes only exact builtin types
(a subclass of int, say, is "unmarshallable"), so no object with its own
``__eq__`` or ``__hash__`` can cross.
"""

import marshal
import os

_MAX_MESSAGE = 32 << 20  # bytes; a bigger answer is refused, not read
_PLAIN_ATOMS = (type(None), bool, int, float, complex, str, bytes, type(...))
_PLAIN_BOXES = (tuple, list, set, frozenset)


class ChannelClosed(Exception):
    """The other side is gone (EOF), or sent something malformed."""


def read_exact(fd, n):
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise ChannelClosed("EOF")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send(fd, obj):
    data = marshal.dumps(obj)
    write_all(fd, len(data).to_bytes(4, "big") + data)


def recv_raw(fd):
    n = int.from_bytes(read_exact(fd, 4), "big")
    if n > _MAX_MESSAGE:
        raise ChannelClosed("message of %d bytes is over the %d-byte limit" % (n, _MAX_MESSAGE))
    return read_exact(fd, n)


def check_plain(value):
    """Return ``value`` if it is plain data all the way down, else raise ChannelClosed."""
    todo, seen = [value], set()  # marshal's back-references can build cycles
    while todo:
        v = todo.pop()
        t = type(v)
        if t in _PLAIN_ATOMS:
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        if t in _PLAIN_BOXES:
            todo.extend(v)
        elif t is dict:
            todo.extend(v.keys())
            todo.extend(v.values())
        else:
            raise ChannelClosed("not plain data: %s" % t.__name__)
    return value


def recv_plain(fd):
    """One message from an untrusted peer, as plain data only."""
    try:
        value = marshal.loads(recv_raw(fd))
    except (ValueError, EOFError, TypeError) as exc:
        raise ChannelClosed("malformed message: %s" % exc)
    return check_plain(value)
