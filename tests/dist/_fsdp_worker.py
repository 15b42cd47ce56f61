"""One process of the FSDP2 tests (run by torchrun, or plainly for the 1-process reference).

    python tests/dist/_fsdp_worker.py OUT.pt SCENARIOS.json

Each scenario builds a Trainer from the tiny recipe with its ``--set`` overrides, swaps the
rollout engine for :class:`FixedEngine` (the same completions for a prompt on any number of
ranks: a seeded function of the prompt text), runs its steps, and rank 0 writes, per
scenario, the logged metrics, the full weights after the steps and every rank's
parameter / gradient / optimizer bytes (grpo.dist.fsdp.shard_bytes).
"""
from __future__ import annotations

import json
import os
import sys
import time
import zlib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from grpo.dist import fsdp as F  # noqa: E402
from grpo.config import load_config  # noqa: E402
from grpo.rollout.base import Completion, Group  # noqa: E402
from grpo.train.trainer import Trainer  # noqa: E402

REWARDS = '''
import os, zlib

def digits(prompts, completions, **kw):
    """The share of digits: varies within a group of random completions."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]

def chars(prompts, completions, **kw):
    """Text length: varies within any group of random-length completions, whatever the vocabulary."""
    return [len(c) / 100 for c in completions]

def some_flat(prompts, completions, **kw):
    """digits, but constant (a zero-variance group) for the prompts whose crc32 is divisible by 3."""
    return [0.5 if zlib.crc32(p.encode()) % 3 == 0 else sum(ch.isdigit() for ch in c) / max(len(c), 1)
            for p, c in zip(prompts, completions)]

def flat_on_rank0(prompts, completions, **kw):
    """Every group on rank 0 zero-variance (the rank that logs has nothing to train on), digits elsewhere."""
    if os.environ.get("RANK", "0") == "0":
        return [0.0] * len(completions)
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]
'''


class FixedEngine:
    """G completions per prompt, a pure function of the prompt's text (crc32-seeded)."""

    def __init__(self, tok, max_new: int):
        self.tok, self.max_new = tok, max_new

    def generate(self, prompts, sampling):
        out = []
        for p in prompts:
            gen = torch.Generator().manual_seed(zlib.crc32(p.encode()))
            ids = self.tok(p, add_special_tokens=True).input_ids
            comps = []
            for _ in range(sampling.n):
                n = int(torch.randint(1, self.max_new + 1, (1,), generator=gen))
                toks = torch.randint(3, len(self.tok), (n,), generator=gen).tolist()
                comps.append(Completion(self.tok.decode(toks), toks, None, "length" if n == self.max_new else "stop"))
            out.append(Group(p, ids, comps))
        return out

    def update_weights(self, named_tensors=()):
        pass

    def sleep(self):
        pass


def run(scenario: dict, tmp: Path) -> dict | None:
    sets = [f"output.dir={tmp}", f"output.name={scenario['name']}", "output.tensorboard=false",
            "train.threads=1", "data.num_samples=64", "rollout.max_new_tokens=12", "train.lr=1e-3",
            f"train.steps={scenario.get('steps', 1)}", "output.save_every=1000", *scenario["sets"]]
    cfg = load_config(ROOT / "recipes/tiny/r1_zero.yaml", sets)
    tr = Trainer(cfg, overwrite=True)
    if scenario.get("fixed", True):
        tr.engine = FixedEngine(tr.tok, cfg.rollout.max_new_tokens)
    rows = []                                     # rows each update trained on, this rank
    update = tr._update
    tr._update = lambda batch, *a, **k: rows.append(len(batch)) or update(batch, *a, **k)
    grads = []                                    # gradient shard bytes at each optimizer step
    tr.opt.register_step_pre_hook(lambda *_: grads.append(F.shard_bytes(tr.policy)["grads"]))
    weights = scenario.get("weights", True)
    before = _weights(tr) if weights else {}
    metrics = [tr.step(s) for s in range(cfg.train.steps)]
    mem = tr.par.gather_objects({**F.shard_bytes(tr.policy, tr.opt), "grads": max(grads, default=0)})
    rows = tr.par.gather_objects(rows)
    after = _weights(tr) if weights else {}
    t0 = time.perf_counter()
    for _ in range(3):                            # what unsharding for generation costs
        with tr.par.gathered(tr.policy):
            pass
    gather_s = (time.perf_counter() - t0) / 3
    if tr.lock is not None:
        tr.lock.release()
    if not tr.par.is_main:
        return None
    return {"metrics": metrics, "before": before, "after": after, "mem": mem, "rows": rows,
            "world": tr.par.world, "gather_s": gather_s}


def _weights(tr) -> dict:
    """The full weights, each tied tensor once (as Parallel.full_state_dict gives them)."""
    own = {n for n, _ in tr.policy.named_parameters()} | {n for n, _ in tr.policy.named_buffers()}
    return tr.par.full_state_dict(tr.policy) or {k: v.detach().clone() for k, v in tr.policy.state_dict().items()
                                                 if k in own}


def main() -> None:
    out, scenarios = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    tmp = out.parent / f"runs-{os.environ.get('WORLD_SIZE', '1')}"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "rw.py").write_text(REWARDS)
    results = {}
    for sc in scenarios:
        sc = {**sc, "sets": [s.replace("@RW", str(tmp / "rw.py")) for s in sc["sets"]]}
        results[sc["name"]] = run(sc, tmp)
    if results and all(v is not None for v in results.values()):
        torch.save(results, out)


if __name__ == "__main__":
    main()
