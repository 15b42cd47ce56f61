"""One writer per run directory, and no run silently replaced or changed.

* :class:`RunLock`: ``<run>/.lock`` held with ``flock`` (released by the kernel when the
  process dies, SIGKILL included) and holding the owner's pid, host and start time. A
  second run is refused in one line naming the owner; a lock left by a dead process is
  detected as stale and taken over, with a note.
* :func:`open_run`: a run directory that already holds a run is refused unless the user
  says ``--resume`` (continue it) or ``--overwrite`` (replace it); ``--resume`` on a
  directory that holds no run is refused too (a typo in the name must not start afresh).
* :func:`resume_changes`: on ``--resume``, the recipe is compared with the run's
  ``config.yaml``; any change outside :data:`MAY_CHANGE` is refused, listing the keys,
  and allowed changes are appended to ``resume_changes.jsonl``.

>>> flatten({"a": {"b": 1, "c": [1, 2]}, "d": None})
{'a.b': 1, 'a.c': [1, 2], 'd': None}
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import yaml

# What a user may change on --resume, and why each is safe: none of these changes what a
# step computes. steps: extend or shorten the run; save/sample/keep/tensorboard/trackers: what is
# written, not what is trained; the reward time budget and failure policy: how a broken
# reward is handled; threads and gradient checkpointing: speed and memory for the same
# math; server_url: where the same engine now listens. output.dir/name name the run itself.
MAY_CHANGE = frozenset({
    "train.steps", "train.threads", "output.save_every", "output.keep_checkpoints",
    "output.full_checkpoint_every", "output.sample_every", "output.tensorboard",
    "output.report_to", "output.project", "reward_timeout_s", "reward_max_failed_steps", "reward_fail_on_error",
    "model.gradient_checkpointing", "rollout.server_url", "output.dir", "output.name",
})
# What a run writes into its directory (all that --overwrite removes; nothing else is touched).
ARTIFACTS = ("config.yaml", "metrics.jsonl", "metrics.tmp", "checkpoints", "samples", "tensorboard",
             "wandb", "mlruns", "trackio", ".wandb_run_id", ".mlflow_run_id", "report", "reward_errors.jsonl", "resume_changes.jsonl")
LOCK = ".lock"


class RunError(RuntimeError):
    """The run directory is in use, holds another run, or cannot be resumed; one line."""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (Linux), to tell a reused pid from its owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None
        self.owner: int | None = None
        self.stale: dict | None = None     # the record of a dead owner we took over

    def acquire(self) -> "RunLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._acquire()
        except OSError as e:
            where = e.filename or self.path.parent
            raise RunError(f"cannot use run directory {self.path.parent}: {e.strerror or e} ({where})") from None

    def _acquire(self) -> "RunLock":
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunError(self._busy(self._read())) from None
            try:                               # the file we locked may have been replaced meanwhile
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:
            raise RunError(f"could not lock {self.path}: it keeps being replaced")
        old = self._read()
        if old.get("pid") and old.get("pid") != os.getpid():
            # A live pid on this host owns it unless its start time shows the pid was reused.
            if old.get("host") == socket.gethostname() and _alive(old["pid"]) \
                    and old.get("start") in (None, _start_time(old["pid"])):
                os.close(fd)                   # flock not enforced here (some network filesystems)
                raise RunError(self._busy(old))
            self.stale = old
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid()),
              "since": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)
        self.fd, self.owner = fd, os.getpid()
        return self

    def _read(self) -> dict:
        try:
            rec = json.loads(self.path.read_text() or "{}")
            return rec if isinstance(rec, dict) else {}
        except (OSError, ValueError):
            return {}

    def _busy(self, rec: dict) -> str:
        who = f"pid {rec.get('pid', '?')} on {rec.get('host', '?')}, since {rec.get('since', '?')}" if rec else "another process"
        return (f"run directory {self.path.parent} is in use by another run ({who}); wait for it to "
                "finish, or give this run another output.name")

    def release(self) -> None:
        if self.fd is None or self.owner != os.getpid():   # a forked child never removes its parent's lock
            return
        try:
            self.path.unlink(missing_ok=True)   # no stale record left behind by a clean exit
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __del__(self):
        self.release()


def flatten(tree, prefix: str = "") -> dict:
    out = {}
    for k, v in (tree or {}).items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def has_run(run_dir: Path) -> bool:
    ck = run_dir / "checkpoints"
    return (run_dir / "config.yaml").exists() or (run_dir / "metrics.jsonl").exists() or \
        (ck.is_dir() and any(ck.iterdir()))


def _describe(run_dir: Path) -> str:
    from .checkpoint import all_steps
    parts = []
    m = run_dir / "metrics.jsonl"
    if m.exists():
        parts.append(f"{sum(1 for ln in m.read_text(errors='replace').splitlines() if ln.strip())} logged steps")
    steps = all_steps(run_dir / "checkpoints")
    parts.append(f"checkpoints {', '.join(f'step-{s}' for s in steps)}" if steps else "no checkpoint")
    return "; ".join(parts)


def open_run(run_dir: Path, new_tree: dict, resume: bool | str = False, overwrite: bool = False,
             normalize=None, log=None) -> RunLock:
    """Lock ``run_dir`` and apply the start policy. ``resume``: True (the run must exist),
    "auto" (resume if it does: pipelines), False (it must not, unless ``overwrite``)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if resume and overwrite:
        raise RunError("--resume and --overwrite contradict each other: choose one")
    lock = RunLock(run_dir).acquire()
    try:
        exists = has_run(run_dir)
        if overwrite and exists:
            log(f"grpo: note: --overwrite: replacing the run in {run_dir} ({_describe(run_dir)})")
            for name in ARTIFACTS:
                p = run_dir / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        elif exists and not resume:
            raise RunError(f"{run_dir} already holds a run ({_describe(run_dir)}); continue it with --resume, "
                           "replace it with --overwrite, or give this run another output.name")
        elif resume is True and not exists:
            raise RunError(f"--resume: there is no run in {run_dir} to resume; start it without --resume")
        elif exists:
            resume_changes(run_dir, new_tree, normalize)
        if lock.stale:                         # said only when this run goes ahead
            s = lock.stale
            log(f"grpo: note: took over a stale lock on {run_dir} (pid {s.get('pid')} on {s.get('host')}, "
                "no longer running)")
        return lock
    except BaseException:
        lock.release()
        raise


def open_run_ranks(run_dir: Path, new_tree: dict, resume: bool | str = False, overwrite: bool = False,
                   normalize=None, log=None) -> tuple[RunLock | None, Path | None]:
    """:func:`open_run` for every rank of a run (one process: just that): rank 0 takes the
    lock, applies the start policy and picks the checkpoint to resume from; the other ranks
    wait for its decision (collective) and get the same checkpoint, or raise its error.
    Returns (the lock on rank 0, else None; the checkpoint or None)."""
    from ..dist import ckpt as dist_ckpt
    from .checkpoint import CheckpointError, latest_resumable
    log = log or (lambda msg: print(msg, file=sys.stderr))
    lock = None

    def decide() -> str | None:
        nonlocal lock
        lock = open_run(run_dir, new_tree, resume, overwrite, normalize, log)
        try:
            ckpt = latest_resumable(run_dir / "checkpoints", log=log) if resume and has_run(run_dir) else None
        except BaseException:
            lock.release()
            raise
        if resume and ckpt is None and has_run(run_dir):
            log(f"grpo: note: no checkpoint in {run_dir / 'checkpoints'} yet; the run starts again from step 0")
        return None if ckpt is None else str(ckpt)

    ckpt = dist_ckpt.one_decides(decide, errors=(RunError, CheckpointError))
    return lock, None if ckpt is None else Path(ckpt)


def resume_changes(run_dir: Path, new_tree: dict, normalize=None) -> dict:
    """Compare the recipe with the run's config.yaml: refuse changes outside MAY_CHANGE,
    record the others in resume_changes.jsonl. Returns {key: [old, new]}."""
    path = run_dir / "config.yaml"
    if not path.exists():
        return {}
    try:
        old_tree = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise RunError(f"--resume: the run's {path} is unreadable ({type(e).__name__}); restore it, or "
                       "start over with --overwrite") from None
    if normalize is not None:
        try:
            old_tree = normalize(old_tree)      # defaults filled in, as for the new recipe
        except Exception:  # noqa: BLE001 -- an older schema: compare what is there
            pass
    old, new = flatten(old_tree if isinstance(old_tree, dict) else {}), flatten(new_tree)
    changed = {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
    refused = [k for k in changed if k not in MAY_CHANGE]
    if refused:
        show = ", ".join(f"{k} ({_short(changed[k][0])} -> {_short(changed[k][1])})" for k in refused[:8])
        more = f" and {len(refused) - 8} more" if len(refused) > 8 else ""
        raise RunError(f"--resume: the recipe differs from the run's config.yaml in {show}{more}; these cannot "
                       f"change mid-run (may change: {', '.join(sorted(MAY_CHANGE - {'output.dir', 'output.name'}))}); "
                       "resume with the run's values, or start over with --overwrite")
    changed = {k: v for k, v in changed.items() if k not in ("output.dir", "output.name")}
    if changed:
        with open(run_dir / "resume_changes.jsonl", "a") as fh:
            fh.write(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "changed": changed}) + "\n")
    return changed


def _short(v) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s if len(s) <= 40 else s[:37] + "..."
