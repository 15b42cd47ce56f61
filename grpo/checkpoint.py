"""Atomic checkpoints and exact resume.

A checkpoint is written to ``checkpoints/.tmp-step-N`` and renamed to ``step-N`` only
when complete, so a run killed at any instant (SIGKILL included) leaves either a whole
checkpoint or none: ``latest()`` never sees a half-written one. Each holds the model
(a loadable Hugging Face directory, or the LoRA adapter), tokenizer, optimizer and
scheduler state, and every RNG state, so a resumed run samples exactly what the
uninterrupted run would have sampled.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

STATE = "trainer_state.json"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(ckpt_root: Path, step: int, model, tokenizer, optimizer, scheduler, keep: int,
         state_dict: dict | None = None) -> Path:
    """``state_dict`` overrides the model's own (the unsharded weights of an expert-parallel model)."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step}"
    tmp = ckpt_root / f".tmp-step-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if state_dict is None:
        model.save_pretrained(tmp, safe_serialization=True)
    else:
        model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                        "numpy": np.random.get_state()}}, tmp / "trainer.pt")
    (tmp / STATE).write_text(json.dumps({"step": step}))
    for f in tmp.iterdir():               # data on disk before the rename makes it visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _fsync_dir(ckpt_root)
    for old in all_steps(ckpt_root)[:-keep]:
        shutil.rmtree(ckpt_root / f"step-{old}", ignore_errors=True)
    return final


def all_steps(ckpt_root: Path) -> list[int]:
    if not ckpt_root.is_dir():
        return []
    steps = [int(m.group(1)) for p in ckpt_root.iterdir()
             if (m := re.fullmatch(r"step-(\d+)", p.name)) and (p / STATE).is_file()]
    return sorted(steps)


def latest(ckpt_root: Path) -> Path | None:
    """The newest complete checkpoint; leftovers of a save that was killed are removed."""
    if ckpt_root.is_dir():
        for partial in ckpt_root.glob(".tmp-step-*"):
            shutil.rmtree(partial, ignore_errors=True)
    steps = all_steps(ckpt_root)
    return ckpt_root / f"step-{steps[-1]}" if steps else None


def restore_trainer_state(ckpt: Path, optimizer, scheduler) -> int:
    state = torch.load(ckpt / "trainer.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    return json.loads((ckpt / STATE).read_text())["step"]
