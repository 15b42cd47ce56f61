"""Sandbox: picks the strongest working mode, runs code, runs batches."""

from __future__ import annotations

import logging
import marshal
import os
import shutil
import tempfile
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from . import _packages, _seccomp, _stdio, backends, limits
from ._jobs import Job, check_args, plan_jobs
from ._pool import Zygote, ZygotePool
from ._process import Raw, spawn_run
from ._slots import Slots, remove_leftovers
from ._status import Result, classify, classify_program

_HERE = Path(__file__).parent
# The child's source: executed with ``python -c``, never imported (see _harness.py).
_HARNESS = "\n".join((_HERE / f).read_text()
                     for f in ("_wire.py", "_candidate.py", "_tester.py", "_harness.py"))
_ZYGOTE = "\n".join([_HARNESS] + [(_HERE / f).read_text() for f in ("_owned.py", "_zygote.py")])
LAUNCHES = ("zygote", "spawn")  # pre-forked server, or one process per run
log = logging.getLogger(__name__)


class Mode(NamedTuple):
    backend: str  # see backends.BACKENDS
    seccomp: bool
    launch: str  # see LAUNCHES


def _seccomp_supported() -> bool:
    try:
        return "Seccomp:" in Path("/proc/self/status").read_text()
    except OSError:
        return False


def _close_pools(pools: dict) -> None:
    for pool in list(pools.values()):
        pool.close()


def _clean_exit(raw: Raw | None) -> bool:
    # A spawned run that ended on its own tore its pid namespace down before
    # the launcher exited; one we killed is torn down asynchronously.
    return raw is not None and raw.exited and not raw.timed_out and not raw.output_exceeded


def _finish(results: list[Result], cases, float_tol) -> Result:
    return results[0] if cases is None else _stdio.aggregate(results, cases, float_tol)


def default_workers() -> int:
    """Four runs per usable CPU: each run is two processes that take turns
    (tester and candidate), so while they wait on each other others compute."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return 4 * cpus


class Sandbox:
    """Runs code in the strongest mode that works here (see capabilities()).

    ``backend``/``launch``/``use_seccomp`` pin a mode instead of choosing;
    a pinned mode that does not work makes every run a "sandbox_error".
    """

    def __init__(self, backend: str | None = None, launch: str | None = None,
                 use_seccomp: bool | None = None, allow_packages=()):
        if backend not in (None, *backends.BACKENDS) or launch not in (None, *LAUNCHES):
            raise ValueError(f"backend in {backends.BACKENDS}, launch in {LAUNCHES}")
        # Installed packages the code may import on purpose (see _packages.py).
        self.allowed = _packages.resolve(allow_packages)
        self._pins = (backend, launch, use_seccomp)
        self._lock = threading.Lock()
        self._mode: Mode | None | bool = False  # False: not chosen yet
        self.probes: dict[Mode, str] = {}  # mode -> "ok" or why it failed
        self.root = os.geteuid() == 0
        self.prog = _seccomp.build() if _seccomp_supported() else None
        self.slots = Slots()
        self._count_lock, self.leftover_runs = threading.Lock(), 0  # runs after which something of theirs remained (see _clean_up)
        self._pools: dict[Mode, ZygotePool] = {}
        self._pools_lock = threading.Lock()
        # Stop idle zygotes when this object goes away or at interpreter exit
        # (they would also exit by themselves on EOF of their sockets).
        self._finalizer = weakref.finalize(self, _close_pools, self._pools)

    # -- choosing a mode ---------------------------------------------------
    def _candidates(self, pinned: bool = True) -> list[Mode]:
        backend, launch, seccomp = self._pins if pinned else (None, None, None)
        out = []
        for name in [backend] if backend else backends.BACKENDS:
            if name != "none" and not backends.which(name):
                continue
            for sec in [seccomp] if seccomp is not None else [True, False]:
                for lau in [launch] if launch else LAUNCHES:
                    if (sec and not self.prog) or (lau == "zygote" and name == "none"):
                        continue  # none: no namespaces to give each forked run
                    out.append(Mode(name, sec, lau))
        return out

    def _probe(self, mode: Mode) -> bool:
        code = ("import os\ndef ids():\n    return os.getuid(), os.geteuid()\n"
                "def sock():\n    import _socket\n    try:\n        _socket.socket()\n"
                "    except PermissionError:\n        return 'denied'\n    return 'open'\n")
        tests = ["assert os.getcwd() and ids()"]
        if self.root:  # both processes of the run: the candidate's and the tester's
            tests.append("assert 0 not in ids() and 0 not in (os.getuid(), os.geteuid())")
        if mode.seccomp:
            tests.append("assert sock() == 'denied', 'seccomp filter not active'")
        r = self._execute(mode, Job(code, tuple(tests)), 5.0, 128)
        self.probes[mode] = "ok" if r.status == "ok" else f"{r.status}: {r.stderr[-400:]}"
        return r.status == "ok"

    def mode(self) -> Mode | None:
        """The mode runs use, chosen (by probing) on first use; None if none works."""
        with self._lock:
            if self._mode is False:
                self._mode = next((m for m in self._candidates() if self._probe(m)), None)
                weak = self._mode is None or self._mode.backend != "bwrap" or not self._mode.seccomp
                if weak and self._pins == (None, None, None):  # never weaken silently
                    log.warning("sandbox: bwrap+seccomp unusable here, using %s; "
                                "see sandbox.capabilities()", self._mode)
            return self._mode

    def capabilities(self) -> dict:
        from ._caps import describe
        mode = self.mode()
        with self._lock:  # also find out what else would work here
            for name in backends.BACKENDS:
                todo = [m for m in self._candidates(pinned=False) if m.backend == name]
                if not any(self.probes.get(m) == "ok" for m in todo):
                    next((m for m in todo if m not in self.probes and self._probe(m)), None)
        return describe(self, mode)

    # -- running -----------------------------------------------------------
    def run(self, code: str, tests, language: str = "python", timeout_s: float = 5.0,
            memory_mb: int = 512, *, entry_point: str | None = None,
            require_calls: bool = False, float_tol: float | None = None) -> Result:
        """See sandbox.run."""
        check_args(code, language, timeout_s, memory_mb)
        jobs, cases = plan_jobs(code, tests, entry_point, require_calls)
        results = [self._run_job(j, timeout_s, memory_mb) for j in jobs]
        return _finish(results, cases, float_tol)

    def run_batch(self, items, timeout_s: float = 5.0, memory_mb: int = 512,
                  workers: int | None = None, *, require_calls: bool = False,
                  float_tol: float | None = None) -> list[Result]:
        """See sandbox.run_batch; items are (code, tests) or (code, tests, entry_point)."""
        plans = []
        for item in items:  # fail fast on bad input, before spawning anything
            code, tests, entry = (*item, None)[:3]
            check_args(code, "python", timeout_s, memory_mb)
            plans.append(plan_jobs(code, tests, entry, require_calls))
        jobs = [j for js, _ in plans for j in js]
        workers = min(workers or default_workers(), self.slots.size, max(len(jobs), 1))
        run_one = lambda j: self._run_job(j, timeout_s, memory_mb)  # noqa: E731
        if workers <= 1:
            flat = [run_one(j) for j in jobs]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="sandbox") as pool:
                flat = list(pool.map(run_one, jobs))
        out, i = [], 0
        for js, cases in plans:
            out.append(_finish(flat[i:i + len(js)], cases, float_tol))
            i += len(js)
        return out

    def close(self) -> None:
        """Stop idle zygotes (also done when garbage-collected and at exit)."""
        _close_pools(self._pools)

    def _run_job(self, job: Job, timeout_s: float, memory_mb: int) -> Result:
        mode = self.mode()
        if mode is None:
            why = "; ".join(f"{m}: {v}" for m, v in self.probes.items()) or "nothing to try"
            return Result("sandbox_error", 0, len(job.tests), "",
                          f"[sandbox] no working mode: {why}", 0.0)
        return self._execute(mode, job, timeout_s, memory_mb)

    def _execute(self, mode: Mode, job: Job, timeout_s: float, memory_mb: int) -> Result:
        with self.slots.acquire() as slot:
            uids = (self.slots.uid(slot), self.slots.tester_uid(slot)) if self.root else (None, None)
            workdir, raw = None, None
            try:
                if mode.backend == "none":
                    workdir = tempfile.mkdtemp(prefix="grpo-sandbox-")
                    if uids[0] is not None:
                        os.chown(workdir, uids[0], uids[0])
                raw = self._launch(mode, job, timeout_s, memory_mb, uids, workdir)
            except OSError as exc:  # parent-side trouble, e.g. out of fds
                raw = Raw(spawn_error=f"sandbox set-up failed: {exc}")
            finally:
                self._clean_up(mode, uids, raw)
                if workdir:
                    shutil.rmtree(workdir, ignore_errors=True)
        stderr = raw.stderr.decode("utf-8", "replace")
        if job.stdin is not None:
            (status, note), passed, total = classify_program(raw), 0, 1
        else:
            status, passed, note = classify(raw, len(job.tests))
            total = len(job.tests)
        if note:
            stderr += ("\n" if stderr and not stderr.endswith("\n") else "") + f"[sandbox] {note}\n"
        return Result(status, passed, total, raw.stdout.decode("utf-8", "replace"),
                      stderr, raw.duration_s)

    def _clean_up(self, mode: Mode, uids, raw: Raw | None) -> None:
        """After every run: kill and delete what it left (``none``), then check that
        nothing of it remains; zygote runs are checked by the zygote (Raw.leftover)."""
        left = [raw.leftover] if raw is not None and raw.leftover else []
        for uid in uids:
            if mode.backend == "none":
                self.slots.kill_all(uid)  # escaped grandchildren (no pid namespace)
            if mode.backend == "none" or (mode.launch == "spawn" and not _clean_exit(raw)):
                if not self.slots.wait_gone(uid):
                    left.append(f"processes of uid {uid}")
            if mode.backend == "none" and remove_leftovers(uid) and remove_leftovers(uid):
                left.append(f"files of uid {uid}")     # a second pass still found some
        if left:
            with self._count_lock:   # not self._lock: mode() holds it while probing runs
                self.leftover_runs += 1
            log.error("sandbox: a run left %s behind (that worker is not reused)", ", ".join(left))

    def _payload(self, mode: Mode, job: Job, timeout_s, memory_mb, uids, cwd) -> bytes:
        header = marshal.dumps({
            "code": job.code, "cwd": cwd, "uid": uids[0], "tester_uid": uids[1],
            "mode": "tests" if job.stdin is None else "stdio", "stdin": job.stdin or b"",
            "sys_path": _packages.sys_path(mode.backend, self.allowed),
            "allowed": sorted({entry.split(".")[0] for _, entry in self.allowed}),
            "max_depth": limits.max_recursion(memory_mb),
            # Only namespaced runs have an IPC namespace of their own.
            "ipc_limits": limits.ipc_limits(memory_mb) if mode.backend != "none" else [],
            # Without a pid namespace we kill the run through its process
            # group, so there it must stay in the launcher's.
            "setsid": mode.backend != "none",
            "mounts": backends.harness_mounts(mode.backend, mode.launch == "zygote",
                                              limits.DISK_BYTES, limits.SHM_BYTES,
                                              limits.INODES, self.root,
                                              backends.python_for(mode.backend, self.root)[1],
                                              self.allowed),
            "rlimits": limits.rlimits(timeout_s, memory_mb, self.slots.nproc(uids[0], mode.backend)),
            # bwrap sets no_new_privs and the filter itself (a zygote's runs
            # inherit both); elsewhere the harness does.
            "restrict": mode.backend != "bwrap",
            "seccomp": self.prog if mode.seccomp and mode.backend != "bwrap" else b"",
        })
        # The test spec comes after the header: only the tester reads it.
        spec = b"" if job.stdin is not None else marshal.dumps({
            "tests": list(job.tests), "entry_point": job.entry_point,
            "require_calls": job.require_calls})
        return len(header).to_bytes(4, "big") + header + spec

    def _launch(self, mode, job, timeout_s, memory_mb, uids, workdir) -> Raw:
        cwd = workdir or backends.WORKDIR
        payload = self._payload(mode, job, timeout_s, memory_mb, uids, cwd)
        lim = dict(timeout_s=timeout_s, startup_s=limits.STARTUP_S,
                   max_output=job.max_output)
        if mode.launch == "zygote":
            return self._pool(mode).run(payload, **lim)
        result_r, result_w = os.pipe()
        pass_fds = [result_w]
        try:
            argv = self._argv(mode, pass_fds)
            watchdog = backends.which("timeout")
            # Bounds the run even if this Python process dies mid-run; bwrap
            # needs none: --die-with-parent ties it to the waiting thread.
            if watchdog and mode.backend != "bwrap":
                hard = limits.STARTUP_S + timeout_s + limits.WATCHDOG_GRACE_S
                argv = [watchdog, "-s", "KILL", "%.0f" % hard] + argv
            argv += ["-c", _HARNESS, str(result_w)]
        except BaseException:
            for fd in (result_r, *pass_fds):
                os.close(fd)
            raise
        # Killing the run's uids first lets each launcher reap its own child, so
        # no orphan is left for the host's init to reap (slowly, or never).
        pre_kill = None
        if uids[0] is not None:
            pre_kill = lambda: [self.slots.kill_all(u) for u in uids]  # noqa: E731
        return spawn_run(argv, payload, env=backends.child_env(cwd), cwd=workdir,
                         pass_fds=tuple(pass_fds), result_r=result_r, pre_kill=pre_kill, **lim)

    def _argv(self, mode: Mode, pass_fds: list[int]) -> list[str]:
        """Launcher + interpreter argv; appends fds the child must inherit."""
        python, prefix = backends.python_for(mode.backend, self.root)
        if mode.backend == "bwrap":
            seccomp_fd = None
            if mode.seccomp:
                r, w = os.pipe()  # bwrap reads the BPF program from this fd
                pass_fds.append(r)
                try:
                    os.write(w, self.prog)  # a few hundred bytes: fits the pipe buffer
                finally:
                    os.close(w)
                seccomp_fd = r
            argv = backends.bwrap_argv(backends.which("bwrap"), prefix, root=self.root,
                                       seccomp_fd=seccomp_fd, disk_bytes=limits.DISK_BYTES,
                                       shm_bytes=limits.SHM_BYTES,
                                       zygote=mode.launch == "zygote", allowed=self.allowed)
        elif mode.backend == "unshare":
            argv = backends.unshare_argv(backends.which("unshare"), root=self.root)
        else:
            argv = []
        return argv + [python, *backends.harness_flags()]

    def _pool(self, mode: Mode) -> ZygotePool:
        with self._pools_lock:  # not self._lock: probing (under it) lands here
            pool = self._pools.get(mode)
            if pool is None:
                me = weakref.ref(self)  # the finalizer holds the pools: no cycle to self
                pool = self._pools[mode] = ZygotePool(lambda: me()._new_zygote(mode),
                                                      self.slots.size)
            return pool

    def _new_zygote(self, mode: Mode) -> Zygote:
        pass_fds: list[int] = []
        try:
            argv = self._argv(mode, pass_fds) + ["-c", _ZYGOTE]
            return Zygote(argv, backends.child_env(backends.WORKDIR), limits.STARTUP_S,
                          extra_fds=tuple(pass_fds), args=() if mode.seccomp else ("--netns-per-run",))
        finally:
            for fd in pass_fds:
                os.close(fd)
