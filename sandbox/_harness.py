"""Child side of the sandbox: the first (trusted) code in the sandboxed process.

Run as ``python -I -S -B -c <this source> <result_fd>`` (or forked from the
zygote, see _zygote.py); reads a marshal'd payload on stdin.  It applies the limits that must be set from inside, then
runs the untrusted code and the test snippets and reports on ``result_fd``,
one ASCII line per event, so that nothing the program prints on stdout can be
mistaken for a result:

    S                       set-up done, user code starts now
    X <msg>                 set-up failed (-> status "sandbox_error")
    C ok | C <kind> <msg>   the code itself ran / raised
    T <i> ok | T <i> <kind> <msg>
    D                       all tests ran

``kind`` is "error", "memory" (MemoryError) or "limit" (an OSError caused by
a resource limit: disk full, file too large, too many processes/files).

Imports are kept to builtin modules (plus ``resource``, and ``ctypes`` only in
the fallback backends) because interpreter start-up is most of the per-run
cost.  Nothing here is imported by the parent; this file is only executed.
"""

import errno
import marshal
import os
import sys

_LIMIT_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EMFILE,
                 errno.ENFILE, errno.EAGAIN}
_MS_NOSUID, _MS_NODEV = 2, 4
_PR_SET_SECCOMP, _PR_SET_NO_NEW_PRIVS, _SECCOMP_MODE_FILTER = 22, 38, 2


def _libc():
    import ctypes  # only the fallback backends need it (~3 ms of start-up)
    return ctypes, ctypes.CDLL(None, use_errno=True)


def _mount_tmpfs(mounts):
    # unshare backend and zygote runs: we are still root, in a private mount
    # namespace; give the run fresh size-capped tmpfs mounts (for unshare
    # they also hide the host's world-writable dirs).
    if not mounts:
        return
    ctypes, libc = _libc()
    for path, size in mounts:
        if os.path.isdir(path):
            opts = ("size=%d,mode=1777" % size).encode()
            if libc.mount(b"tmpfs", path.encode(), b"tmpfs",
                          _MS_NOSUID | _MS_NODEV, opts) != 0:
                raise OSError(ctypes.get_errno(), "mount tmpfs on " + path)


def _restrict(prog):
    """no_new_privs, then the seccomp filter if there is one (bwrap does both itself)."""
    ctypes, libc = _libc()

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = SockFprog(len(prog) // 8, ctypes.addressof(buf))
    # no_new_privs: setuid binaries cannot raise privileges again; it is also
    # what allows an unprivileged process to install a filter.
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS)")
    if prog and libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER,
                           ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(SECCOMP)")


def _drop_privileges(uid):
    # Each concurrent run gets its own uid, so RLIMIT_NPROC is per run (root
    # ignores it), and the code cannot signal, ptrace or read /proc/*/environ
    # of anything it did not start, nor write files owned by anyone else.
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgroups():
        raise OSError("privilege drop did not stick")


def _set_limits(rlimits):
    import resource
    for name, soft, hard in rlimits:
        resource.setrlimit(getattr(resource, name), (soft, hard))


def _setup(payload):
    # stdin carried the payload; user code reading input() must see EOF.
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if payload["setsid"]:
        # Leave the launcher's process group: kill(0, ...) from the code must
        # not reach unshare / the zygote (they may run as the same user).
        os.setsid()
    _mount_tmpfs(payload["mounts"])
    os.chdir(payload["cwd"])
    _set_limits(payload["rlimits"])
    if payload["uid"] is not None:
        _drop_privileges(payload["uid"])
    if payload["restrict"]:
        _restrict(payload["seccomp"])
    import _signal
    # Python ignores SIGXFSZ; restore the default so that hitting the file
    # size limit kills the run (reported as "killed") instead of raising.
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)


def _describe(exc):
    try:  # str() runs user code (__str__); it may raise
        text = "%s: %s" % (type(exc).__name__, exc)
    except BaseException:
        text = type(exc).__name__
    line, tb = None, exc.__traceback__
    while tb is not None:  # innermost frame that belongs to user code
        if tb.tb_frame.f_code.co_filename.startswith(("<solution>", "<test ")):
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is not None:
        text = "line %d: %s" % (line, text)
    return text.replace("\n", " ")[:300].encode("ascii", "backslashreplace")


def _kind(exc):
    if isinstance(exc, MemoryError):
        return b"memory"
    if isinstance(exc, OSError) and exc.errno in _LIMIT_ERRNOS:
        return b"limit"
    return b"error"


def _flush_user_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # the code may have replaced or closed them
            pass


def _run_step(source, filename, namespace, write, prefix):
    try:
        exec(compile(source, filename, "exec"), namespace)
    except BaseException as exc:  # SystemExit too: exiting early is no pass
        msg = _describe(exc)
        _flush_user_streams()
        write(b"%s %s %s\n" % (prefix, _kind(exc), msg))
        try:
            os.write(2, b"[sandbox] %s failed: %s\n" % (filename.encode(), msg))
        except OSError:
            pass
        return False
    _flush_user_streams()
    write(prefix + b" ok\n")
    return True


def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def run_child(fd):
    """Read the payload on stdin, set up, run, report on ``fd``; never returns."""
    write = lambda data: os.write(fd, data)  # noqa: E731
    try:
        payload = marshal.loads(_read_all(0))
        _setup(payload)
    except BaseException as exc:
        write(b"X " + _describe(exc) + b"\n")
        os._exit(1)
    write(b"S\n")
    namespace = {"__name__": "__sandbox__", "__builtins__": __builtins__}
    if _run_step(payload["code"], "<solution>", namespace, write, b"C"):
        for i, test in enumerate(payload["tests"]):
            _run_step(test, "<test %d>" % i, namespace, write, b"T %d" % i)
        write(b"D\n")
    # _exit: do not wait for threads the code started, nor run its atexit hooks.
    os._exit(0)


if __name__ == "__main__" and sys.argv[1:2] != ["--zygote"]:
    run_child(int(sys.argv[1]))
