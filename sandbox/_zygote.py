"""Pre-forked sandbox server ("zygote"), child side.

Executed inside a bwrap/unshare sandbox as ``python -I -S -B -c <_harness.py
+ this file> --zygote <sock_fd>``; it reuses ``run_child`` and ``_libc`` from
the harness source it is concatenated with.  Why: starting an interpreter
costs ~15-25 ms of CPU, forking a warm one well under 1 ms, and code rewards
need thousands of runs per training step.

Per request ("R" plus four fds over a SOCK_SEQPACKET socket: stdin, stdout,
stderr and result pipe) the zygote forks a process C that is pid 1 of a
*fresh pid namespace*; C takes fresh mount and IPC namespaces, mounts its own
/proc and runs the harness (which forks the candidate and becomes the tester,
see _harness.py).  So each run still gets:

* its own pid namespace: it sees only itself, and when C dies (run over, or
  the host asked to kill it with "K") the kernel kills everything inside,
  including processes that escaped with setsid;
* its own mount namespace with fresh tmpfs at /tmp and /dev/shm (mounted by
  the harness), gone with the run; its own SysV IPC / POSIX mqueue namespace;
* the same rlimits, uid drop and (inherited from bwrap, or installed by the
  harness) seccomp filter as a spawned run.

Where no seccomp filter is in force, each run also gets its own network
namespace (``--netns-per-run``).  With one, runs share the zygote's empty
network namespace, in which no socket can be created (socketpair aside),
named or connected, and after every run the census below finds any socket
left in it (in flight, SCM_RIGHTS): that zygote is then never reused.  So
the next run on a zygote never meets a socket of an earlier one.  What runs
also share with the zygote: a copy of the zygote's memory, which never holds a payload:
payloads go straight from the host to C through C's own stdin pipe.  The
zygote itself is trusted code running as root with CAP_SYS_ADMIN, SETUID and
SETGID inside the sandbox; C closes every descriptor but its four pipes and
its processes drop to the run's uids before any untrusted input is read.

Messages to the host: "READY" once, then "E <wait status of C> <leftover>" per
run, where <leftover> is "-" when the zygote's processes, run files in /tmp,
/var/tmp, /dev/shm and unix sockets are what they were before the run (see ``_leftover``).
"""

import os
import select
import signal

_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x08000000, 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MS_REC, _MS_PRIVATE = 0x4000, 0x40000


def _check(ctypes, ret, what):
    if ret != 0:
        raise OSError(ctypes.get_errno(), what)


def _pid1(ctypes, libc, fds, netns):
    """C: pid 1 of the run's namespace, and the run's harness.  Never returns."""
    # Without seccomp, a fresh network namespace per run: abstract unix names and every
    # socket a run makes live in it. With seccomp no socket can take a name or reach one
    # (socket/bind/connect/listen/accept/setsockopt refused) and a socket left in flight
    # is caught by the post-run census, so the ~20% a netns costs per run is not paid.
    flags = _CLONE_NEWNS | _CLONE_NEWIPC | (_CLONE_NEWNET if netns else 0)
    _check(ctypes, libc.unshare(flags), "unshare")
    # Private propagation: the run's mounts never reach the zygote or host.
    _check(ctypes, libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount private")
    _check(ctypes, libc.mount(b"proc", b"/proc", b"proc",
                              _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None), "mount proc")
    # fds are all >= 3 and the targets 0..2 come first, so no dup2
    # overwrites a source that is still needed.
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(4, 1 << 20)  # the control socket must not leak to the run
    # C itself is the harness: it forks the candidate and becomes the tester
    # (see _harness.py), which as pid 1 also reaps the run's orphans.
    run_child(3)  # noqa: F821 (defined in _harness.py, concatenated)


def _serve(ctypes, libc, sock, own_pidns, fds, baseline, netns):
    # Re-enter our own pid namespace for children, then ask for a new one:
    # unshare(CLONE_NEWPID) only works while the two are the same.
    _check(ctypes, libc.setns(own_pidns, _CLONE_NEWPID), "setns")
    _check(ctypes, libc.unshare(_CLONE_NEWPID), "unshare pid")
    pid = os.fork()
    if pid == 0:
        try:
            sock.close()
            os.close(own_pidns)
            _pid1(ctypes, libc, fds, netns)
        finally:
            os._exit(70)
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    try:
        while True:
            ready = select.select([sock, pidfd], [], [])[0]
            if pidfd in ready:
                status = os.waitpid(pid, 0)[1]
                sock.send(b"E %d %s" % (status, _leftover(baseline).encode() or b"-"))
                return True
            msg = sock.recv(64)
            if msg == b"K" or not msg:
                os.kill(pid, signal.SIGKILL)  # the whole pid namespace dies
            if not msg:  # the host is gone: clean up and stop serving
                os.waitpid(pid, 0)
                return False
    finally:
        os.close(pidfd)


def _census():
    """What the zygote's own namespaces hold, to compare after every run: the
    processes of its pid namespace, files of sandbox uids in its /tmp, /var/tmp
    and /dev/shm, and the unix sockets of its network namespace (None where
    unreadable)."""
    def read(f):
        try:
            return f()
        except OSError:
            return None
    return {
        "processes": read(lambda: sorted(n for n in os.listdir("/proc") if n.isdigit())),
        "files": read(_run_files),
        "sockets": read(lambda: sum(1 for _ in open("/proc/self/net/unix", "rb"))),
    }


def _run_files():
    """Entries of /tmp, /var/tmp and /dev/shm (the zygote's own: bwrap's tmpfs, or
    the host's for unshare) owned by a sandbox uid: only a run makes those, and
    the host's own files never count. ``owned_entries`` and ``UID_BASE`` come from
    _owned.py, concatenated before this file (the host's _slots.py imports it)."""
    return sorted(e.path for e in owned_entries(lambda uid: uid >= UID_BASE))  # noqa: F821


def _leftover(baseline):
    """'' when everything a run made is gone (its pid 1 reaped: the kernel has
    killed and reaped its pid namespace), else what remains, e.g.
    'processes:+1'. Checked after every run; the host throws a zygote that
    reports anything away."""
    now, out = _census(), []
    for what, before in baseline.items():
        after = now[what]
        if before is None or after is None or after == before:
            continue
        extra = after - before if what == "sockets" else len(set(after) - set(before))
        if extra > 0:
            out.append("%s:+%d" % (what, extra))
    return ",".join(out)


def _warm_up():
    """Exercise, once, what every run does (compile, exec, the channel's data
    checks, the proxies), so that lazily built state exists before the fork
    and runs do not each build (and page-fault) their own copy."""
    ns = {"__builtins__": __builtins__}
    run_source("def _f(x):\n    return [x, (x,), {x: 1.5}]\n", "<solution>", ns)  # noqa: F821
    box = Candidate(-1, -1)  # noqa: F821 (_candidate.py)
    box.ns = ns
    listing = box.listing()
    value = check_plain(marshal.loads(marshal.dumps(ns["_f"]("a"))))  # noqa: F821
    req_r, req_w = os.pipe()
    rsp_r, rsp_w = os.pipe()
    box.rfd, box.wfd = req_r, rsp_w
    chan = Channel(req_w, rsp_r)  # noqa: F821 (_tester.py)
    tns = {"__builtins__": __builtins__}
    _bind(tns, chan, listing, None)  # noqa: F821
    for args in ([1], ["x"], [None]):  # one round trip, both ends in this process
        send(req_w, ("call", ("name", "_f"), [chan.encode(a) for a in args], {}))  # noqa: F821
        box.answer(marshal.loads(recv_raw(req_r)))  # noqa: F821
        chan.decode_reply(recv_plain(rsp_r))  # noqa: F821
    for fd in (req_r, req_w, rsp_r, rsp_w):
        os.close(fd)
    run_source("assert [1] == [1] and %r" % (value,), "<test 0>", tns)  # noqa: F821
    _uses_values(_compile_all(["x = y"])[0][0], {"y"})  # noqa: F821


def zygote_main(sock_fd, netns=False):
    import socket
    import resource  # noqa: F401  (warm import: the harness needs it per run)
    ctypes, libc = _libc()  # noqa: F821 (defined in _harness.py)
    sock = socket.socket(fileno=sock_fd)
    own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY)
    try:
        _warm_up()
    except Exception:  # only an optimisation: never a reason not to serve
        pass
    import gc
    gc.freeze()  # keep the GC of each forked run from writing to (copying) our pages
    baseline = _census()
    sock.send(b"READY")
    while True:
        msg, fds, _, _ = socket.recv_fds(sock, 64, 8)
        if not msg:
            return
        if msg != b"R" or len(fds) != 4:
            for fd in fds:
                os.close(fd)
            continue
        if not _serve(ctypes, libc, sock, own_pidns, fds, baseline, netns):
            return


if __name__ == "__main__" and __import__("sys").argv[1:2] == ["--zygote"]:
    zygote_main(int(__import__("sys").argv[2]), __import__("sys").argv[3:4] == ["--netns-per-run"])
