"""How far apart are the policy losses' updates from one state? A side-by-side diagnosis.

    python bench/bench_policy_losses.py --warm-steps 5 --mu 2

Trains the tiny R1-Zero recipe ``--warm-steps`` steps with ppo_clip (at ``--mu``), then takes
the next step's batch and, from the same weights and optimizer state, runs the ``_update`` of
every policy loss on it. Prints each loss's weight change against ppo_clip's (cosine, norm
ratio) and the ratio statistics of the last inner iteration: on-policy (mu 1) all losses
share one gradient; at mu 2 they differ only through the off-policy second iteration.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from grpo.config import load_config  # noqa: E402
from grpo.train.trainer import Trainer  # noqa: E402

LOSSES = [("ppo_clip", []), ("cispo", []), ("sapo", []),
          ("sapo", ["algorithm.sapo_tau_pos=4.0", "algorithm.sapo_tau_neg=4.2"]),
          ("gspo", ["algorithm.clip_low=0.2", "algorithm.clip_high=0.28"]),
          ("gspo", ["algorithm.clip_low=null", "algorithm.clip_high=null"])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm-steps", type=int, default=5)
    ap.add_argument("--mu", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = tempfile.mkdtemp()
    base = [f"model.path={ROOT / 'data/tiny_model'}", f"output.dir={out}", "output.name=diag",
            "output.tensorboard=false", f"algorithm.mu={args.mu}", f"train.seed={args.seed}",
            f"train.steps={args.warm_steps + 1}", "train.threads=1", "algorithm.track_kl=false"]
    tr = Trainer(load_config(ROOT / "recipes/tiny/r1_zero.yaml", base))
    seen = {}
    real = tr._update
    tr._update = lambda *a, **k: seen.setdefault("args", (a, k)) and real(*a, **k)
    for s in range(args.warm_steps):
        seen.clear()
        tr.step(s)
        tr._sync()
    seen.clear()
    tr._update = lambda *a, **k: seen.setdefault("args", (a, k)) and {}
    tr.step(args.warm_steps)
    upd_args, upd_kw = seen["args"]
    w0 = copy.deepcopy(tr.policy.state_dict())
    o0, s0 = copy.deepcopy(tr.opt.state_dict()), copy.deepcopy(tr.sched.state_dict())
    deltas = {}
    for name, extra in LOSSES:
        cfg = load_config(ROOT / "recipes/tiny/r1_zero.yaml", base + [f"algorithm.policy_loss={name}", *extra])
        tr.cfg = cfg
        tr.policy.load_state_dict(w0)
        tr.opt.load_state_dict(o0)
        tr.sched.load_state_dict(s0)
        up = real(*upd_args, **upd_kw)
        d = torch.cat([(p.detach() - w0[n]).flatten() for n, p in tr.policy.named_parameters()])
        al = cfg.algorithm
        key = f"{name} ({al.clip_low:g}/{al.clip_high:g})" if name != "sapo" else f"sapo (tau {al.sapo_tau_pos:g})"
        deltas[key] = d
        print(f"{key:26s} clip_frac {up['clip_frac']:.4f}  loss {up['loss']:+.4f}  grad_norm {up['grad_norm']:.3f}")
    ref = deltas[next(iter(deltas))]
    print(f"update vs ppo_clip after {args.warm_steps} warm steps, mu {args.mu} (same batch, same state):")
    for key, d in deltas.items():
        cos = torch.nn.functional.cosine_similarity(d, ref, dim=0).item()
        print(f"  {key:26s} cosine {cos:.4f}   |delta| / |delta_ppo| {d.norm() / ref.norm():.3f}")


if __name__ == "__main__":
    main()
