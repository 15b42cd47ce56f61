"""Build a small seccomp-BPF deny-list, in the parent, as raw bytes.

The program is a classic BPF array of ``struct sock_filter`` (8 bytes each).
It is handed to ``bwrap --seccomp FD`` or, in the fallback backends, installed
by the child harness with ``prctl(PR_SET_SECCOMP)``.  Building it here in
pure Python keeps the child free of any seccomp library.

What it blocks (returns EPERM, so Python raises ``PermissionError``):

* ``socket``: no new sockets of any family.  This is what keeps the network
  closed in the ``none`` backend, where there is no network namespace, and it
  also closes abstract unix sockets of the host, which live in the network
  namespace and ignore file permissions.  ``socketpair`` stays allowed
  (asyncio and multiprocessing use it and it cannot reach anything).
* ``bind``, ``connect``, ``listen``, ``accept``/``accept4``: a socketpair is
  connected already and needs none of them; without them no socket gets an
  (abstract) name that a later run, or a host process, could reach, and none
  reaches one (in-flight SCM_RIGHTS descriptors kept a run's sockets, with
  their names, alive past its end).
* ``setsockopt``: no SO_SNDBUF/SO_RCVBUF growth; queued socket memory is
  kernel memory that RLIMIT_AS does not count, so each socket keeps the
  default buffer sizes (with at most 64 open plus 64 in flight per user).
* ``io_uring_setup``: io_uring can create sockets without calling ``socket``.
* ``ptrace``, ``process_vm_readv/writev``: no poking into other processes.
* ``bpf``, ``perf_event_open``, ``userfaultfd``, ``keyctl``, ``add_key``,
  ``request_key``: rarely needed, large kernel attack surface.
* New user namespaces: ``unshare`` and ``clone`` with ``CLONE_NEWUSER`` in
  their flags (an argument check), and ``clone3`` altogether, which returns
  ENOSYS so that glibc falls back to ``clone`` (whose flags a classic filter
  can read; clone3's live in memory it cannot).  A user namespace would give
  the code CAP_SYS_ADMIN over fresh mounts (a tmpfs past the disk cap) and
  the kernel's namespaced-admin attack surface (CVE-2022-0185 et al.).
* The new mount API (``fsopen``, ``fsconfig``, ``fsmount``, ``fspick``,
  ``open_tree``, ``move_mount``, ``mount_setattr``): no sandboxed process
  needs it; the zygote and harness use ``mount(2)``.
* Memory outside RLIMIT_AS: SysV shared memory and message queues
  (``shmget``, ``shmat``, ``msgget``: segments outlive the process and, in
  the ``none`` backend, the run) and ``memfd_create`` (anonymous files that
  are never mapped, so RLIMIT_AS does not see them).  POSIX shared memory
  (``multiprocessing.shared_memory``) lives in the size-capped /dev/shm tmpfs.

It is a deny-list, not an allow-list: everything else is allowed.  Only
x86_64 and aarch64 are supported; elsewhere :func:`build` returns None and
``capabilities()`` reports seccomp as unavailable.

>>> prog = build()
>>> prog is None or len(prog) % 8 == 0
True
"""

from __future__ import annotations

import errno
import platform
import struct

# BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: load a 32-bit word of seccomp_data
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16  # offsets in struct seccomp_data
_CLONE_NEWUSER = 0x10000000
_X32_SYSCALL_BIT = 0x40000000

# Syscall numbers from the kernel's tables: name -> (x86_64, aarch64).
_DENIED = {
    "socket": (41, 198), "bind": (49, 200), "connect": (42, 203), "listen": (50, 201),
    "accept": (43, 202), "accept4": (288, 242), "setsockopt": (54, 208),
    "ptrace": (101, 117), "io_uring_setup": (425, 425), "bpf": (321, 280),
    "perf_event_open": (298, 241), "userfaultfd": (323, 282), "keyctl": (250, 219),
    "add_key": (248, 217), "request_key": (249, 218),
    "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "shmget": (29, 194), "shmat": (30, 196), "msgget": (68, 186), "memfd_create": (319, 279),
    "open_tree": (428, 428), "move_mount": (429, 429), "fsopen": (430, 430),
    "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442),
}
_NS_CHECKED = {"clone": (56, 220), "unshare": (272, 97)}  # flags (arg 0) may not hold CLONE_NEWUSER
_ENOSYS = {"clone3": (435, 435)}                           # answered ENOSYS
_AUDIT = {"x86_64": (0xC000003E, 0), "aarch64": (0xC00000B7, 1)}  # audit arch, column above


def _arch():
    """(audit arch, denied, CLONE_NEWUSER-checked, ENOSYS) numbers here, or None."""
    found = _AUDIT.get(platform.machine())
    if found is None:
        return None
    audit, col = found
    pick = lambda table: {name: nrs[col] for name, nrs in table.items()}  # noqa: E731
    return audit, pick(_DENIED), pick(_NS_CHECKED), pick(_ENOSYS)


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def denied_syscalls() -> list[str]:
    """Names of the syscalls the filter refuses on this architecture."""
    arch = _arch()
    if not arch:
        return []
    return sorted([*arch[1], *(f"{n}(CLONE_NEWUSER)" for n in arch[2]), *arch[3]])


def build() -> bytes | None:
    """Return the filter program for this architecture, or None if unsupported."""
    arch = _arch()
    if arch is None:
        return None
    audit_arch, numbers, ns_checked, enosys = arch
    deny = _RET_ERRNO | errno.EPERM
    prog = [
        _ins(_LD_W_ABS, 0, 0, _OFF_ARCH),
        # A syscall made through another ABI (e.g. 32-bit int 0x80 on x86_64)
        # has different numbers, so the list below would not apply: kill.
        _ins(_JEQ_K, 1, 0, audit_arch),
        _ins(_RET_K, 0, 0, _RET_KILL_PROCESS),
        _ins(_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if platform.machine() == "x86_64":
        # x32 syscalls share the x86_64 audit arch but set this bit.
        prog += [_ins(_JGE_K, 0, 1, _X32_SYSCALL_BIT), _ins(_RET_K, 0, 0, deny)]
    for nr in sorted(numbers.values()):
        prog += [_ins(_JEQ_K, 0, 1, nr), _ins(_RET_K, 0, 0, deny)]
    for nr in sorted(enosys.values()):
        prog += [_ins(_JEQ_K, 0, 1, nr), _ins(_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS)]
    # clone/unshare: allowed unless CLONE_NEWUSER is set in the (low word of
    # the) flags; the accumulator is reloaded, so this block comes last.
    checked = sorted(ns_checked.values())
    for i, nr in enumerate(checked):  # jump to the flag check, else fall on
        prog.append(_ins(_JEQ_K, len(checked) - i, 0, nr))
    prog += [
        _ins(_RET_K, 0, 0, _RET_ALLOW),
        _ins(_LD_W_ABS, 0, 0, _OFF_ARG0),  # little-endian: low 32 bits of arg 0
        _ins(_JSET_K, 0, 1, _CLONE_NEWUSER),
        _ins(_RET_K, 0, 0, deny),
        _ins(_RET_K, 0, 0, _RET_ALLOW),
    ]
    return b"".join(prog)
