"""Atomic, sharded checkpoints and exact resume, for one process or many (``torchrun``).

``step-N/`` holds a plain Hugging Face directory (config, tokenizer, ``model.safetensors``
or the LoRA adapter: what eval, sample, the pipeline and ``from_pretrained`` load), and,
in a full checkpoint, what a resume needs: ``dcp/`` (model and optimizer state written by
``torch.distributed.checkpoint``, each rank its own shard: dist/ckpt.py), ``rng-R.pt``
(rank R's RNG states), ``trainer.pt`` (scheduler, world size); ``trainer_state.json`` is
the size manifest of every file. The prompts of a step are a function of (seed, step)
(data.PromptSampler), so they need no state.

Atomic: every rank writes into ``checkpoints/.tmp-step-N``; when all are done (agreed
collectively), rank 0 writes the manifest and renames it to ``step-N``, so a run killed at
any instant (SIGKILL of any rank included) leaves either a whole checkpoint or none. A
failure on any rank (a full disk, an exception) is agreed on, the partial directory
removed and one CheckpointError raised on every rank; earlier checkpoints are untouched.

Never saved: non-finite weights (a CheckpointError instead). A weights-only checkpoint
(``full=False``: no optimizer state) can be evaluated but not resumed from; rotation
always keeps the newest full one. On resume, :func:`latest_resumable` skips (with a
warning) checkpoints that are damaged: missing or truncated files, unreadable state,
non-finite weights.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import torch

from ..dist import ckpt as D

STATE = "trainer_state.json"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read; the message is one line meant for the user."""


class NonFiniteError(CheckpointError):
    """The weights became non-finite: nothing more is trained or saved."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def non_finite(tensors) -> list[str]:
    """Names of the tensors in ``(name, tensor)`` pairs holding inf or nan (of a DTensor:
    this rank's shard)."""
    return [n for n, t in tensors if t.is_floating_point() and not bool(torch.isfinite(D.local(t)).all())]


def save(ckpt_root: Path, step: int, model, tokenizer, optimizer, scheduler, keep: int,
         state_dict: dict | None = None, full: bool = True) -> Path:
    """Every rank calls it (one process: no communication). ``state_dict`` overrides the
    weights exported for eval (the unsharded weights of an expert-parallel model)."""
    main = D.rank() == 0
    export = state_dict if state_dict is not None else D.full_model_state_dict(model)   # collective
    weights = [(n, D.local(p.detach())) for n, p in model.named_parameters()]
    bad = non_finite([*weights, *((export or {}).items() if main else ())])
    if D.agree(bool(bad)):
        first = f"first: {bad[0]}" if bad else "on another rank"
        raise CheckpointError(f"not saving step {step}: {len(bad) or 'some'} weight tensor(s) are non-finite "
                              f"({first}); earlier checkpoints in {ckpt_root} are untouched")
    final = ckpt_root / f"step-{step}"
    tmp = ckpt_root / f".tmp-step-{step}"
    try:
        _phase(lambda: main and _fresh(ckpt_root, tmp))
        _phase(lambda: _write(tmp, step, model, tokenizer, optimizer, scheduler, export, full))
        _phase(lambda: main and _publish(ckpt_root, tmp, final, step, full))
    except BaseException as e:  # noqa: BLE001 -- torch, safetensors, DCP: their own errors
        if not _is_error(e):
            raise
        full_disk = _disk_full_error(e) or _disk_full(ckpt_root)
        if main:
            shutil.rmtree(tmp, ignore_errors=True)  # a partial checkpoint must not keep the disk full
        why = "no space left on device" if full_disk else _one_line(e)
        raise CheckpointError(f"could not save checkpoint step-{step} in {ckpt_root}: {why}; the partial "
                              "checkpoint was removed, earlier ones are intact; free some space, then continue "
                              "with --resume") from None
    if main:
        _rotate(ckpt_root, keep)
    return final


class _RankFailed(RuntimeError):
    """A save phase failed on some rank; ``errors``: (rank, exception or its text) of each."""
    def __init__(self, errors: list):
        self.errors = errors
        r, e = errors[0]
        super().__init__(f"on rank {r}: {_one_line(e)}" if D.world() > 1 else _one_line(e))


def _phase(fn) -> None:
    """Run this rank's part of a save phase, then agree (collective): when any rank failed,
    every rank raises _RankFailed naming the failures, so none waits in a later collective."""
    err = None
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 -- reported to every rank below
        if not _is_error(e):
            raise
        err = e
    if not D.agree(err is not None):
        return
    if D.world() == 1:
        raise _RankFailed([(0, err)])
    import torch.distributed as dist
    texts = [None] * D.world()
    dist.all_gather_object(texts, None if err is None else ("ENOSPC" if _disk_full_error(err) else _one_line(err)))
    errors = [(r, err if r == D.rank() else t) for r, t in enumerate(texts) if t is not None]
    raise _RankFailed(errors)


def _is_error(e: BaseException) -> bool:
    """An error of the save (DCP's CheckpointException is a BaseException), not Ctrl-C or exit;
    told by name so that importing this module does not import DCP (1.6 s)."""
    return isinstance(e, Exception) or type(e).__name__ == "CheckpointException"


def _one_line(e) -> str:
    if isinstance(e, str):
        return e
    if isinstance(e, _RankFailed):
        return str(e)
    text = str(e).splitlines()[0][:200] if str(e) else ""
    return f"{type(e).__name__}: {text}"


def _disk_full_error(e) -> bool:
    """Whether a full disk is behind ``e`` (its causes, DCP's per-rank failures, other ranks' reports)."""
    seen, todo = set(), [e]
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if x == "ENOSPC" or isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(x, BaseException):
            todo += [x.__cause__, x.__context__, *(v for _, v in getattr(x, "errors", ())),
                     *(v[0] if isinstance(v, tuple) else v for v in getattr(x, "failures", {}).values())]
    return False


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free < 1 << 20
    except OSError:
        return False


def _fresh(ckpt_root: Path, tmp: Path) -> None:
    ckpt_root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()


def _write(tmp: Path, step, model, tokenizer, optimizer, scheduler, export, full: bool) -> None:
    """This rank's files: its DCP shard and RNG state; rank 0 also the HF export and trainer.pt."""
    if full:
        D.save_sharded(tmp / D.DCP_DIR, model, optimizer)           # collective
        _save_synced(D.rng_state(), tmp / f"rng-{D.rank()}.pt")
    if D.rank() != 0:
        return
    if export is None:
        model.save_pretrained(tmp, safe_serialization=True)
    else:
        model.save_pretrained(tmp, state_dict=export, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if full:
        _save_synced({"scheduler": scheduler.state_dict(), "world": D.world(), "step": step}, tmp / "trainer.pt")


def _save_synced(obj, path: Path) -> None:
    torch.save(obj, path)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _publish(ckpt_root: Path, tmp: Path, final: Path, step: int, full: bool) -> None:
    """Rank 0, once every rank wrote its part: the size manifest, then the rename."""
    files = {str(f.relative_to(tmp)): f.stat().st_size for f in sorted(tmp.rglob("*")) if f.is_file()}
    (tmp / STATE).write_text(json.dumps({"step": step, "full": full, "world": D.world(), "files": files}))
    for f in tmp.iterdir():               # data on disk before the rename makes it visible (DCP syncs its own)
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if (tmp / D.DCP_DIR).is_dir():
        _fsync_dir(tmp / D.DCP_DIR)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _fsync_dir(ckpt_root)


def _rotate(ckpt_root: Path, keep: int) -> None:
    steps = all_steps(ckpt_root)
    full = [s for s in steps if _state(ckpt_root / f"step-{s}").get("full", True)]
    keep_set = set(steps[-keep:]) | set(full[-1:])      # resume needs the newest full one
    for old in steps:
        if old not in keep_set:
            shutil.rmtree(ckpt_root / f"step-{old}", ignore_errors=True)


def _state(ckpt: Path) -> dict:
    try:
        s = json.loads((ckpt / STATE).read_text())
        return s if isinstance(s, dict) else {}
    except (OSError, ValueError):
        return {}


def all_steps(ckpt_root: Path) -> list[int]:
    if not ckpt_root.is_dir():
        return []
    steps = [int(m.group(1)) for p in ckpt_root.iterdir()
             if (m := re.fullmatch(r"step-(\d+)", p.name)) and (p / STATE).is_file()]
    return sorted(steps)


def _step_dirs(ckpt_root: Path) -> list[int]:
    """Every ``step-N`` directory, intact or not."""
    if not ckpt_root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in ckpt_root.iterdir() if (m := re.fullmatch(r"step-(\d+)", p.name)))


def clean_partial(ckpt_root: Path) -> None:
    if ckpt_root.is_dir():
        for partial in ckpt_root.glob(".tmp-step-*"):
            shutil.rmtree(partial, ignore_errors=True)


def latest(ckpt_root: Path) -> Path | None:
    """The newest complete checkpoint; leftovers of a save that was killed are removed."""
    clean_partial(ckpt_root)
    steps = all_steps(ckpt_root)
    return ckpt_root / f"step-{steps[-1]}" if steps else None


def damage(ckpt: Path, need_full: bool = True) -> str | None:
    """Why ``ckpt`` cannot be resumed from, or None when it is intact."""
    state = _state(ckpt)
    if not isinstance(state.get("step"), int):
        return f"{STATE} is missing or unreadable"
    if need_full and not state.get("full", True):
        return "weights only (no optimizer state)"
    for name, size in (state.get("files") or {}).items():
        f = ckpt / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, {size} were written"
    if need_full and not (ckpt / "trainer.pt").is_file():
        return "trainer.pt is missing"
    if need_full and "world" in state:    # the sharded format: every rank's RNG and the DCP directory
        missing = [f"rng-{r}.pt" for r in range(state["world"]) if not (ckpt / f"rng-{r}.pt").is_file()]
        if missing:
            return f"{missing[0]} is missing"
        why = D.metadata_error(ckpt / D.DCP_DIR)
        if why:
            return why
    for js in sorted(ckpt.glob("*.json")):
        try:
            json.loads(js.read_text())
        except (OSError, ValueError):
            return f"{js.name} is unreadable"
    if not any(ckpt.glob("*.safetensors")):
        return "no weights (*.safetensors) in it"
    try:
        if need_full and zipfile.ZipFile(ckpt / "trainer.pt").testzip() is not None:
            return "trainer.pt is corrupted (CRC mismatch)"
        from safetensors import safe_open
        for st in sorted(ckpt.glob("*.safetensors")):
            with safe_open(str(st), "pt") as fh:
                bad = non_finite((k, fh.get_tensor(k)) for k in fh.keys())
            if bad:
                return f"{st.name} holds non-finite weights ({bad[0]})"
    except Exception as e:  # noqa: BLE001 -- any unreadable file makes the checkpoint unusable
        return f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
    return None


def latest_resumable(ckpt_root: Path, log=None) -> Path | None:
    """The newest intact full checkpoint; each damaged newer one is reported and skipped."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    clean_partial(ckpt_root)
    steps, damaged = _step_dirs(ckpt_root), 0
    for s in reversed(steps):
        ckpt = ckpt_root / f"step-{s}"
        why = damage(ckpt)
        if why is None:
            return ckpt
        if why != "weights only (no optimizer state)":
            damaged += 1
            log(f"grpo: warning: checkpoint {ckpt} is damaged ({why}); trying an older one")
    if steps and damaged == len(steps):
        raise CheckpointError(f"no intact checkpoint to resume from in {ckpt_root}; start over with --overwrite")
    return None


def restore(ckpt: Path, model, optimizer, scheduler, seed: int = 0, log=None) -> int:
    """Load ``ckpt`` into the (already wrapped) model, the optimizer, the scheduler and this
    rank's RNG (collective); returns its step. Another world size: DCP reshards the model and
    optimizer, and each rank's RNG restarts from (seed, step, rank), with a note: the data
    order is the same, the sampled completions are not those of an uninterrupted run."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    state = _state(ckpt)
    step = state["step"]
    tp = torch.load(ckpt / "trainer.pt", weights_only=False)
    if "optimizer" in tp:                 # a single-process checkpoint written before DCP
        optimizer.load_state_dict(tp["optimizer"])
        scheduler.load_state_dict(tp["scheduler"])
        D.set_rng_state(tp["rng"])
        return step
    saved = state.get("world", 1)
    if saved != D.world() and D._ep_names(model)[0]:
        raise CheckpointError(f"{ckpt} was written by {saved} processes with expert parallelism; resume it "
                              f"with {saved} processes (torchrun --nproc-per-node {saved})")
    D.load_sharded(ckpt / D.DCP_DIR, model, optimizer)
    scheduler.load_state_dict(tp["scheduler"])
    if saved == D.world():
        D.set_rng_state(torch.load(ckpt / f"rng-{D.rank()}.pt", weights_only=False))
    else:
        D.reseed(seed, step)
        if D.rank() == 0:
            log(f"grpo: note: {ckpt} was written by {saved} process(es), this run has {D.world()}: weights and "
                "optimizer state are resharded, the prompts of each step are the same, but the sampling RNG "
                "restarts, so completions differ from an uninterrupted run")
    return step
