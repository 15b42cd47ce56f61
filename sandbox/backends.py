"""Isolation backends: the command line that starts the sandboxed interpreter.

``bwrap``    bubblewrap: fresh pid/net/ipc/uts/mount namespaces; the new root
             holds read-only /usr, the Python prefix (its site-packages masked),
             /etc/ld.so.cache, a private /proc and /dev, and size-capped tmpfs
             at /tmp (the cwd) and /dev/shm.  No other host file is visible.
``unshare``  util-linux unshare: fresh pid/net/ipc/uts/mount namespaces; the
             host filesystem stays visible (read-only for the sandbox uid by
             ordinary permissions) but /tmp, /var/tmp and /dev/shm are
             replaced by size-capped tmpfs mounts by the harness.
``none``     plain subprocess: no namespaces.  Network is closed only by the
             seccomp filter; the cwd is a host temp dir; world-writable host
             dirs such as /tmp stay writable (each file capped by RLIMIT_FSIZE).

All three run ``python -I -S -B`` (isolated mode: no PYTHON* env vars, no
user site, no cwd on sys.path; no site-packages; no .pyc writes) with a fixed
environment, and the harness adds rlimits, the privilege drop and seccomp.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys

BACKENDS = ("bwrap", "unshare", "none")  # strongest first
WORKDIR = "/tmp"  # cwd inside bwrap/unshare: a fresh tmpfs per run
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_NS_FLAGS = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
             "--unshare-cgroup-try"]


def python_interpreter() -> tuple[str, str]:
    """(interpreter, prefix) of the base Python, not of a virtualenv.

    With -S nothing from the venv is used anyway, and the base prefix is the
    only tree that has to be visible inside the sandbox.
    """
    prefix = os.path.realpath(sys.base_prefix)
    exe = os.path.join(prefix, "bin", "python%d.%d" % sys.version_info[:2])
    if not os.access(exe, os.X_OK):
        exe = os.path.realpath(sys.executable)
    return exe, prefix


def _world_readable(path: str) -> bool:
    # The sandbox uid is "other" to every file: each ancestor needs o+x and
    # the stdlib dir o+rx (pyenv under a 0700 /root fails this).
    path = os.path.realpath(path)
    parts = [path]
    while parts[-1] != "/":
        parts.append(os.path.dirname(parts[-1]))
    try:
        if not all(os.stat(p).st_mode & 0o001 for p in parts):
            return False
        return bool(os.stat(path).st_mode & 0o004)
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def python_for(backend: str, root: bool) -> tuple[str, str]:
    """(interpreter, prefix) to run in ``backend``.

    bwrap rebuilds the path to the prefix with 0755 dirs, so the caller's own
    interpreter always works there.  The other backends see the host tree: if
    the sandbox uid cannot read the caller's stdlib, use the system python3.
    """
    exe, prefix = python_interpreter()
    stdlib = os.path.join(prefix, "lib", "python%d.%d" % sys.version_info[:2])
    if backend == "bwrap" or not root or _world_readable(stdlib):
        return exe, prefix
    for candidate in ("/usr/local/bin/python3", "/usr/bin/python3"):
        if os.access(candidate, os.X_OK) and _world_readable(candidate):
            real = os.path.realpath(candidate)
            return real, os.path.dirname(os.path.dirname(real))
    return exe, prefix  # the probe will fail and say why


def harness_flags() -> list[str]:
    return ["-I", "-S", "-B"]


def child_env(workdir: str) -> dict[str, str]:
    """The complete environment of the sandboxed process; nothing is inherited."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        # glibc reserves 64 MiB of address space per malloc arena and thread;
        # without this a few threads would exhaust RLIMIT_AS.
        "MALLOC_ARENA_MAX": "2",
    }


def which(name: str) -> str | None:
    # Look in fixed system dirs, not the caller's PATH: a writable dir on PATH
    # must not decide which binary runs as root.
    return shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


def _ro_bind_with_parents(path: str) -> list[str]:
    # bwrap would create the missing parents mode 0700, unreadable once the
    # harness drops to the sandbox uid, so create them 0755 first.
    args, parent = [], os.path.dirname(path)
    parents = []
    while parent not in ("/", ""):
        parents.append(parent)
        parent = os.path.dirname(parent)
    for p in reversed(parents):
        args += ["--perms", "0755", "--dir", p]
    return args + ["--ro-bind", path, path]


def package_dirs(prefix: str) -> list[str]:
    """Installed-package dirs of the base Python and of the system's Pythons
    (``sys.path.append("/usr/lib/python3/dist-packages")`` must find nothing)."""
    import glob
    ver = "python%d.%d" % sys.version_info[:2]
    pats = [os.path.join(prefix, "lib", ver, "site-packages"), "/usr/lib/python3/dist-packages",
            "/usr/lib/python3*/*-packages", "/usr/local/lib/python3*/*-packages",
            "/usr/lib64/python3*/*-packages", "/usr/local/lib64/python3*/*-packages"]
    found = {os.path.realpath(p) for pat in pats for p in glob.glob(pat) if os.path.isdir(p)}
    return sorted(found)


def _filesystem(prefix: str) -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for d in _SYSTEM_DIRS:  # merged-/usr systems have symlinks here
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    if not prefix.startswith("/usr/"):
        args += _ro_bind_with_parents(prefix)
    for site in package_dirs(prefix):  # stdlib only: hide the host's installed packages
        args += ["--tmpfs", site]
    return args + ["--perms", "0755", "--dir", "/etc",
                   "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]


def bwrap_argv(bwrap: str, prefix: str, *, root: bool, seccomp_fd: int | None,
               disk_bytes: int, shm_bytes: int, zygote: bool = False,
               allowed=()) -> list[str]:
    args = [bwrap, *_NS_FLAGS, "--new-session", "--clearenv", "--hostname", "sandbox"]
    if not zygote:
        # The parent-death signal fires when the *thread* that forked us
        # exits, so a long-lived zygote (started from a short-lived worker
        # thread) must not use it; it exits on EOF of its control socket.
        args += ["--die-with-parent"]
    if root:
        # Real root keeps all capabilities inside bwrap unless told otherwise;
        # keep only what the harness needs to switch to the sandbox uid (and
        # what a zygote needs to make per-run namespaces and mounts).
        # CAP_SYS_ADMIN: the harness mounts inode-capped tmpfs (see harness_mounts).
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                 "--cap-add", "CAP_SYS_ADMIN"]
        if zygote:  # per-run namespaces and mounts; killing a run's pid 1 (the
            # tester, which runs as another uid) when the host asks
            args += ["--cap-add", "CAP_KILL"]
    else:
        # Unprivileged bwrap nests a second user namespace, which cannot
        # enter the pid namespace a zygote needs: only "spawn" works here.
        args += ["--unshare-user"]
    for key, value in child_env(WORKDIR).items():
        args += ["--setenv", key, value]
    from ._packages import bwrap_args
    args += _filesystem(prefix) + bwrap_args(list(allowed))
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(shm_bytes), "--perms", "1777", "--tmpfs", "/dev/shm",
             "--size", str(disk_bytes), "--perms", "1777", "--tmpfs", WORKDIR,
             # The new root is itself an unbounded tmpfs, owned by the sandbox
             # user when bwrap runs unprivileged: make it read-only.
             "--remount-ro", "/", "--chdir", WORKDIR]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    return args


def unshare_argv(unshare: str, *, root: bool) -> list[str]:
    args = [unshare, "--fork", "--pid", "--kill-child", "--mount-proc", "--net",
            "--ipc", "--uts", "--mount", "--propagation", "private"]
    if not root:
        args += ["--user", "--map-root-user"]
    return args


def _tmpfs(path: str, size: int, inodes: int) -> tuple[str, str, str, bool]:
    return "tmpfs", path, "size=%d,nr_inodes=%d,mode=1777" % (size, inodes), False


def harness_mounts(backend: str, zygote: bool, disk_bytes: int, shm_bytes: int,
                   inodes: int, root: bool = True, prefix: str | None = None,
                   allowed=()) -> list[tuple[str, str, str, bool]]:
    """(kind, path, tmpfs options or bind source, read-only) mounts the harness
    makes, in order, as root in the run's mount namespace, before dropping
    uid: size- and inode-capped tmpfs for every writable dir (bwrap's own
    --tmpfs has no inode cap); for unshare, the allowed packages bound
    read-only into /tmp, then empty read-only tmpfs over the host's package dirs.
    """
    if backend == "unshare":
        from ._packages import harness_binds
        hide = [("tmpfs", d, "size=4096,nr_inodes=16,mode=0755", True)
                for d in package_dirs(prefix or python_interpreter()[1])]
        return [_tmpfs(WORKDIR, disk_bytes, inodes), _tmpfs("/var/tmp", shm_bytes, inodes),
                _tmpfs("/dev/shm", shm_bytes, inodes)] + harness_binds(list(allowed)) + hide
    if backend == "bwrap" and (zygote or root):
        return [_tmpfs(WORKDIR, disk_bytes, inodes), _tmpfs("/dev/shm", shm_bytes, inodes)]
    return []
