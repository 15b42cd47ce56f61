"""Child side of the sandbox: the first (trusted) code in the sandboxed process.

Run as ``python -I -S -B -c <_wire.py + _candidate.py + _tester.py + this
file> <result_fd>`` (or forked for the run from the zygote, see _zygote.py).
The host writes on stdin: a 4-byte length, a marshal'd *header* (set-up,
the code), then (tests mode) a marshal'd *test spec*.  This process, G,
reads only the header, applies the limits that must be set from inside,
writes ``S`` on ``result_fd`` and then, in tests mode, forks two processes:

* U, the candidate: closes stdin and the result pipe, drops to the run's
  uid, installs the filter, runs the code, and answers calls (_candidate.py);
* T, the tester: drops to a second uid, becomes non-dumpable, and only then
  reads the test spec from stdin; it runs the tests against proxies of U's
  functions and writes the verdicts on ``result_fd`` (_tester.py).

G waits for T, kills U, reports both wait statuses and exits.  Lines on
``result_fd`` (one ASCII line each; only G and T hold it):

    S                        set-up done, user code starts now
    X <msg>                  set-up failed (-> status "sandbox_error")
    C ok | C <kind> <msg>    the code itself ran / raised (kind "dead": U died)
    T <i> ok | T <i> <kind> <msg>   (kind "dead": U died; "nocall": the test
                             never used the solution, with require_calls)
    D                        all tests ran
    P <T status> <U status>  wait statuses of the two processes

``kind`` is "error", "memory" (exactly MemoryError, or ENOMEM) or "limit"
(an OSError caused by a resource limit: disk full, file too large, too many
processes/files).  In stdio mode G runs the program itself, after closing
``result_fd``; the host compares its stdout and reads its exit status (0
ran, 1 raised, 3 memory, 4 limit).

Imports are kept to builtin modules (plus ``resource``, and ``ctypes`` for
the tester and the fallback backends) because interpreter start-up is most
of the per-run cost.  Nothing here is imported by the parent.
"""

import errno
import marshal
import os
import sys

_LIMIT_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EMFILE,
                 errno.ENFILE, errno.EAGAIN}
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 32, 4096, 16384
_PR_SET_DUMPABLE, _PR_SET_SECCOMP, _PR_SET_NO_NEW_PRIVS, _SECCOMP_MODE_FILTER = 4, 22, 38, 2


def _libc():
    import ctypes  # only the fallback backends need it (~3 ms of start-up)
    return ctypes, ctypes.CDLL(None, use_errno=True)


def _mount_tmpfs(mounts):
    # unshare backend and namespaced runs: we are still root, in a private
    # mount namespace; give the run fresh size- and inode-capped tmpfs mounts
    # (for unshare they also hide the host's world-writable and package
    # dirs), and bind allowed packages read-only.
    if not mounts:
        return
    ctypes, libc = _libc()
    for kind, path, opts, readonly in mounts:
        if kind == "bind":
            os.makedirs(path, 0o755, exist_ok=True)
            flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
            if (libc.mount(opts.encode(), path.encode(), None, _MS_BIND | _MS_REC, None) != 0
                    or libc.mount(None, path.encode(), None, flags, None) != 0):
                raise OSError(ctypes.get_errno(), "bind " + opts + " on " + path)
        elif os.path.isdir(path):
            flags = _MS_NOSUID | _MS_NODEV | (_MS_RDONLY if readonly else 0)
            if libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, opts.encode()) != 0:
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


def _undumpable():
    # Non-dumpable: /proc/PID/{mem,fd,environ,...} of this process belong to
    # root and ptrace access needs CAP_SYS_PTRACE, even for the same uid.
    ctypes, libc = _libc()
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(SET_DUMPABLE)")


def _to_devnull(fd):
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _stdin_file(data):
    # stdio mode: the program's stdin is a real file (read(0), open(0),
    # sys.stdin all work), written before the limits and unlinked at once.
    fd = os.open(".stdin", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.unlink(".stdin")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, 0)
        os.dup2(fd, 0)
    finally:
        os.close(fd)


def _ipc_limits(limits):
    # Defence in depth for modes without seccomp (which refuses shmget and
    # msgget): cap SysV IPC in the run's own IPC namespace.  Best effort:
    # /proc/sys is read-only where the run has no fresh /proc of its own.
    for name, value in limits:
        try:
            with open("/proc/sys/kernel/" + name, "w") as f:
                f.write(str(value))
        except OSError:
            pass


def _setup(header):
    """Limits shared by every process of the run; G is still privileged."""
    if header["setsid"]:
        # Leave the launcher's process group: kill(0, ...) from the code must
        # not reach unshare / the zygote (they may run as the same user).
        os.setsid()
    _mount_tmpfs(header["mounts"])
    _ipc_limits(header["ipc_limits"])
    os.chdir(header["cwd"])
    if header["mode"] == "stdio":
        _stdin_file(header["stdin"])
    _set_limits(header["rlimits"])
    if header["uid"] is None:  # no private uids: keep the payload pipe from U
        _undumpable()


def _become(uid, header):
    """Drop to ``uid`` and install the restrictions: last step before untrusted input."""
    sys.path.extend(header["sys_path"])  # allowed packages, if any
    if uid is not None:
        _drop_privileges(uid)
    if header["restrict"]:
        _restrict(header["seccomp"])
    import _signal
    # Python ignores SIGXFSZ; restore the default so that hitting the file
    # size limit kills the run (reported as "killed") instead of raising.
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)


def _cap_recursion(cap):
    """``sys.setrecursionlimit`` clamped to what ``memory_mb`` can hold: in 3.11
    Python frames live on the heap, so an unbounded limit turns a runaway
    recursion into minutes of paging and a "timeout" instead of the
    RecursionError it is.  Honest deep recursion (DFS to 10^5) is unaffected."""
    real = sys.setrecursionlimit

    def setrecursionlimit(limit):
        real(min(limit.__index__(), cap))

    sys.setrecursionlimit = setrecursionlimit


def _type_name(cls):
    try:  # the C slot: a metaclass cannot intercept it
        return type.__dict__["__name__"].__get__(cls, type)
    except BaseException:
        return "?"


def _describe(exc):
    try:  # str() runs user code (__str__); it may raise
        text = str(exc)
        text = "%s: %s" % (_type_name(type(exc)), text if type(text) is str else "")
    except BaseException:
        text = _type_name(type(exc))
    line = None
    try:
        tb = exc.__traceback__
        while tb is not None:  # innermost frame that belongs to user code
            if tb.tb_frame.f_code.co_filename.startswith(("<solution>", "<test ")):
                line = tb.tb_lineno
            tb = tb.tb_next
    except BaseException:
        pass
    if type(line) is int:
        text = "line %d: %s" % (line, text)
    return bytes(c if 32 <= c < 127 else 63
                 for c in text[:300].encode("ascii", "backslashreplace"))


def exc_kind(exc):
    """"memory" / "limit" / "dead" / "error", from the exception's real type."""
    try:
        t = type(exc)
        if t is MemoryError or (issubclass(t, MemoryError) and issubclass(t, RemoteError)):
            return "memory"
        if t is CandidateGone:
            return "dead"
        if issubclass(t, OSError):
            code = OSError.__dict__["errno"].__get__(exc, OSError)
            if code == errno.ENOMEM:
                return "memory"
            if code in _LIMIT_ERRNOS:
                return "limit"
    except BaseException:
        pass
    return "error"


def _flush_user_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # the code may have replaced or closed them
            pass


def run_source(source, filename, namespace):
    """exec one snippet (source, or code compiled with ``filename``); (kind,
    one-line message) where kind "ok" means it ran."""
    try:
        exec(compile(source, filename, "exec") if type(source) is str else source, namespace)
    except BaseException as exc:  # SystemExit too: exiting early is no pass
        kind, msg = exc_kind(exc), _describe(exc)
        _flush_user_streams()
        try:
            os.write(2, b"[sandbox] %s failed: %s\n" % (filename.encode(), msg))
        except BaseException:
            pass
        return kind, msg
    _flush_user_streams()
    return "ok", b""


_EXIT_CODES = {"ok": 0, "error": 1, "memory": 3, "limit": 4}


def _program_exit(code):
    """What Python's own exit does: wait for non-daemon threads (a common
    competitive-programming pattern runs main() in a big-stack thread), flush."""
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
    except BaseException:
        code = 1
    _flush_user_streams()
    os._exit(code)


def _exit(code=None):
    raise SystemExit(code)


def _add_quitters():
    """``exit()`` / ``quit()``: the site module defines them, and ``-S`` skips it."""
    import builtins
    for name in ("exit", "quit"):
        if not hasattr(builtins, name):
            setattr(builtins, name, _exit)


def _run_program(header, fd):
    """stdio mode: the verdict is the host's (stdout, exit status); drop the pipe."""
    os.close(fd)
    _become(header["uid"], header)
    _cap_recursion(header["max_depth"])
    _add_quitters()
    mod = type(sys)("__main__")  # a script: its main guard runs, pickle finds it
    sys.modules["__main__"] = mod
    mod.__dict__["__builtins__"] = __builtins__
    try:
        exec(compile(header["code"], "<solution>", "exec"), mod.__dict__)
    except SystemExit as exc:  # sys.exit(0) / exit() are a normal end
        code = exc.code
        if code is not None and type(code) is not int:
            try:
                os.write(2, str(code).encode("utf-8", "replace")[:1000] + b"\n")
            except BaseException:
                pass
        _program_exit(0 if code is None or (type(code) is int and code == 0) else 1)
    except BaseException as exc:
        msg = _describe(exc)
        try:
            os.write(2, b"[sandbox] <solution> failed: %s\n" % msg)
        except BaseException:
            pass
        _program_exit(_EXIT_CODES.get(exc_kind(exc), 1))
    _program_exit(0)


def _fork_candidate(header, fd, req_r, req_w, rsp_r, rsp_w):
    pid = os.fork()
    if pid == 0:
        try:
            _to_devnull(0)  # the test spec is still in the stdin pipe
            for x in (fd, req_w, rsp_r):
                os.close(x)
            _become(header["uid"], header)
            _cap_recursion(header["max_depth"])
            _add_quitters()
        except BaseException:
            os._exit(70)
        candidate_main(req_r, rsp_w, header["code"])  # noqa: F821 (_candidate.py)
        os._exit(0)
    return pid


_REAPED = {}  # pid -> wait status, filled by _reap


def _reap(*_):
    # As pid 1 of the run's namespace (zygote runs) we inherit the
    # candidate's orphans: reap them, so their zombies do not count
    # against its process limit; remember how the candidate itself ended.
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return
        _REAPED[pid] = status


def _wait_status(pid, grace_s):
    """U's raw wait status, waiting up to ``grace_s`` for it to die (0: alive)."""
    import time
    deadline = time.monotonic() + grace_s
    while True:
        _reap()
        if pid in _REAPED or time.monotonic() >= deadline:
            return _REAPED.get(pid, 0)
        time.sleep(0.001)


def _run_pair(header, fd, write):
    """Fork U, then become T, the tester.  U is our child, so we can report how
    it ended; after the privilege drop we can no longer signal it: the run's
    pid namespace (or the host, in the ``none`` backend) kills what is left."""
    req_r, req_w = os.pipe()  # tester -> candidate
    rsp_r, rsp_w = os.pipe()  # candidate -> tester
    u = _fork_candidate(header, fd, req_r, req_w, rsp_r, rsp_w)
    if os.getpid() == 1:
        import _signal
        _signal.signal(_signal.SIGCHLD, _reap)
    try:
        os.close(req_r)
        os.close(rsp_w)
        _become(header["tester_uid"], header)
        _undumpable()  # before the tests are in memory
        ALLOWED_TOPS.update(header["allowed"])  # noqa: F821 (_tester.py)
        spec = marshal.loads(read_all(0))  # noqa: F821 (_wire.py)
        _to_devnull(0)
    except BaseException as exc:
        write(b"X tester: " + _describe(exc) + b"\n")
        os._exit(1)
    chan = Channel(req_w, rsp_r)  # noqa: F821 (_tester.py)
    tester_main(chan, spec["tests"], spec["entry_point"], spec["require_calls"], write)  # noqa: F821
    os.close(req_w)  # EOF: an idle candidate exits by itself
    write(b"P 0 %d\n" % _wait_status(u, 0.05 if chan.gone else 0.0))
    os._exit(0)


def run_child(fd):
    """Read the header on stdin, set up, run, report on ``fd``; never returns."""
    write = lambda data: os.write(fd, data)  # noqa: E731
    try:
        n = int.from_bytes(read_exact(0, 4), "big")  # noqa: F821 (_wire.py)
        header = marshal.loads(read_exact(0, n))  # noqa: F821
        _setup(header)
    except BaseException as exc:
        write(b"X " + _describe(exc) + b"\n")
        os._exit(1)
    write(b"S\n")
    if header["mode"] == "stdio":
        _run_program(header, fd)
    _run_pair(header, fd, write)


if __name__ == "__main__" and sys.argv[1:2] != ["--zygote"]:
    run_child(int(sys.argv[1]))
