"""Atomic checkpoints and exact resume.

A checkpoint is written to ``checkpoints/.tmp-step-N`` and renamed to ``step-N`` only
when complete, so a run killed at any instant (SIGKILL included) leaves either a whole
checkpoint or none: ``latest()`` never sees a half-written one. Each holds the model
(a loadable Hugging Face directory, or the LoRA adapter), tokenizer, optimizer and
scheduler state, and every RNG state, so a resumed run samples exactly what the
uninterrupted run would have sampled. ``trainer_state.json`` records each file's size.

Never saved: non-finite weights (a CheckpointError instead). A full disk gives a
one-line CheckpointError and leaves no partial directory. A weights-only checkpoint
(``full=False``: no optimizer state) can be evaluated but not resumed from; rotation
always keeps the newest full one. On resume, :func:`latest_resumable` skips (with a
warning) checkpoints that are damaged: missing or truncated files, unreadable state,
non-finite weights.
"""
from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

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
    """Names of the tensors in ``(name, tensor)`` pairs holding inf or nan."""
    return [n for n, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def save(ckpt_root: Path, step: int, model, tokenizer, optimizer, scheduler, keep: int,
         state_dict: dict | None = None, full: bool = True) -> Path:
    """``state_dict`` overrides the model's own (the unsharded weights of an expert-parallel model)."""
    weights = state_dict if state_dict is not None else dict(model.named_parameters())
    bad = non_finite(weights.items())
    if bad:
        raise CheckpointError(f"not saving step {step}: {len(bad)} weight tensor(s) are non-finite "
                              f"(first: {bad[0]}); earlier checkpoints in {ckpt_root} are untouched")
    final = ckpt_root / f"step-{step}"
    tmp = ckpt_root / f".tmp-step-{step}"
    try:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _write(tmp, step, model, tokenizer, optimizer, scheduler, state_dict, full)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(ckpt_root)
    except Exception as e:  # noqa: BLE001 -- torch and safetensors report a full disk as their own errors
        full = isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) or _disk_full(ckpt_root)
        shutil.rmtree(tmp, ignore_errors=True)      # a partial checkpoint must not keep the disk full
        why = "no space left on device" if full else f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        raise CheckpointError(f"could not save checkpoint step-{step} in {ckpt_root}: {why}; the partial "
                              "checkpoint was removed, earlier ones are intact; free some space, then continue "
                              "with --resume") from None
    _rotate(ckpt_root, keep)
    return final


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free < 1 << 20
    except OSError:
        return False


def _write(tmp: Path, step, model, tokenizer, optimizer, scheduler, state_dict, full: bool) -> None:
    if state_dict is None:
        model.save_pretrained(tmp, safe_serialization=True)
    else:
        model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if full:
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                            "numpy": np.random.get_state()}}, tmp / "trainer.pt")
    files = {f.name: f.stat().st_size for f in sorted(tmp.iterdir()) if f.is_file()}
    (tmp / STATE).write_text(json.dumps({"step": step, "full": full, "files": files}))
    for f in tmp.iterdir():               # data on disk before the rename makes it visible
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


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


def restore_trainer_state(ckpt: Path, optimizer, scheduler) -> int:
    state = torch.load(ckpt / "trainer.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    return json.loads((ckpt / STATE).read_text())["step"]
