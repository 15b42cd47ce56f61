"""The dictionary returned by ``capabilities()``."""

from __future__ import annotations

from . import _seccomp, backends, limits

_FILESYSTEM = {
    "bwrap": "new root: read-only /usr + Python prefix (site-packages hidden); "
             "cwd is a private tmpfs at /tmp; nothing else of the host visible",
    "unshare": "host filesystem visible (ordinary permissions; read-only for the "
               "sandbox uid); private size-capped tmpfs at /tmp (cwd), /var/tmp, /dev/shm",
    "none": "host filesystem visible (ordinary permissions); cwd is a fresh host "
            "temp dir; world-writable host dirs (/tmp, /dev/shm) stay writable",
}
_LAUNCH = {
    "zygote": "pre-forked: a warm interpreter in a long-lived sandbox forks each run "
              "into fresh pid/mount/IPC namespaces (network too without seccomp); checked after every run",
    "spawn": "a new sandbox and interpreter per run",
}


def _network(name: str | None, seccomp: bool) -> str:
    parts = []
    if name in ("bwrap", "unshare"):
        parts.append("empty network namespace (loopback only, not the host's)")
    if seccomp:
        parts.append("seccomp refuses socket()")
    return " + ".join(parts) or "NOT ISOLATED: the code can open network connections"


def describe(sb, mode) -> dict:
    name, seccomp, launch = mode or (None, False, None)
    ns = name in ("bwrap", "unshare")
    works = {b: any(v == "ok" for m, v in sb.probes.items() if m.backend == b)
             for b in backends.BACKENDS}
    return {
        "backend": name,  # what run() uses; None: nothing works, runs return sandbox_error
        "launch": launch,
        "launch_detail": _LAUNCH.get(launch, ""),
        "seccomp": seccomp,
        "available": works,
        "probes": {"/".join([m.backend, "seccomp" if m.seccomp else "no-seccomp", m.launch]): v
                   for m, v in sb.probes.items()},
        "bwrap": backends.which("bwrap"),
        "unshare": backends.which("unshare"),
        "namespaces": {"pid": ns, "net": ns, "mount": ns, "ipc": ns, "uts": ns,
                       "user": ns and not sb.root},
        "network": _network(name, seccomp),
        "filesystem": _FILESYSTEM.get(name, ""),
        "seccomp_supported": sb.prog is not None,
        "seccomp_denied_syscalls": _seccomp.denied_syscalls() if seccomp else [],
        "uid_separation": sb.root,  # a private uid per concurrent run
        "rlimits": [n for n, _, _ in limits.rlimits(1.0, 512)],
        "cgroups": False,  # not used: memory_mb is per process (RLIMIT_AS)
        "python": backends.python_for(name, sb.root)[0] if name else None,
        "allowed_packages": [entry for _, entry in sb.allowed],
        "limits": {
            "max_output_bytes": limits.MAX_OUTPUT_BYTES,
            "max_file_bytes": limits.MAX_FILE_BYTES,
            "disk_bytes": limits.DISK_BYTES if ns else None,
            "nproc": limits.NPROC,
            "nofile": limits.NOFILE,
        },
        # Runs after which something of theirs remained (checked after every run); 0 expected.
        "leftover_runs": sb.leftover_runs,
    }
