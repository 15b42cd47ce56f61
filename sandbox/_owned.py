"""Shared by the host and the jail: which files in the world-writable dirs a
uid owns.

Both imported (by _slots.py, on the host) and executed as source text (core.py
puts it into the zygote's ``python -I -S -B -c`` program, before _zygote.py),
so only builtin modules may be used here, and nothing relative.

>>> isinstance(owned_entries(lambda uid: False), list)
True
"""

import os

UID_BASE = 1_000_000_000  # sandbox uids are this and up (see _slots.py)
SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def owned_entries(owned):
    """The top-level entries (``os.DirEntry``) of SHARED_DIRS whose owner's
    uid passes ``owned(uid)``; a dir or entry that cannot be read is skipped
    (it may vanish while we look)."""
    out = []
    for d in SHARED_DIRS:
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if owned(e.stat(follow_symlinks=False).st_uid):
                    out.append(e)
            except OSError:
                pass
    return out
