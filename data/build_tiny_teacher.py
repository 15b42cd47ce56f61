"""Build the shipped tiny *teacher*: a ~2.0M-parameter Llama (2.3x the student) with the student's
tokenizer, pre-trained on more careful arithmetic traces, for on-policy distillation tests and
recipes/tiny/opd/.

    python data/build_tiny_teacher.py          # writes data/tiny_teacher/
    python data/build_tiny_teacher.py --steps 50 --out /tmp/t   # a quick smoke build

It reuses the student's tokenizer and corpus code (data/build_tiny_model.py, grpo.data.tasks), so
token ids mean the same to both models; what differs: width 160 and 6 layers (the student:
128 and 4), and traces that slip on 8% of steps (the student's corpus: 35%), open with the
careful "wait, let me verify each step." style 40% of the time (15%), and leave the answer
untagged 5% of the time (15%). Deterministic like the student's build (fixed seeds, one
thread, deterministic torch algorithms). Saved in bfloat16 (4.0 MB). Build time: 18 minutes
(600 steps of 32 traces, final loss ~0.14) on the shared 2-core CPU box, 2026-12-01; held-out
pass@1 0.9925 (`grpo eval recipes/tiny/r1_zero.yaml --model data/tiny_teacher --n 200 --k 4`;
the student: 0.496).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_tiny_model import build_tokenizer, llama, n_params, pretrain, save  # noqa: E402
from grpo.data import apply_template  # noqa: E402
from grpo.data.tasks import arithmetic_problem, arithmetic_trace  # noqa: E402


def careful_corpus(n: int, seed: int, slip: float, careful: float, untagged: float) -> list[str]:
    """``n`` training texts: prompt (the R1-Zero tiny template) + a trace, with the given rates."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = arithmetic_problem(rng)
        trace = arithmetic_trace(p, rng, slip_rate=slip, careful_rate=careful, untagged_rate=untagged)
        out.append(apply_template("r1_zero_tiny", p["prompt"]) + trace)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "tiny_teacher"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=160)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--slip", type=float, default=0.08)
    ap.add_argument("--careful", type=float, default=0.4)
    ap.add_argument("--untagged", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    tok = build_tokenizer()
    model = llama(tok, hidden=args.hidden, layers=args.layers, heads=args.hidden // 32)
    texts = careful_corpus(args.steps * args.batch, args.seed, args.slip, args.careful, args.untagged)
    print(f"tiny teacher: {n_params(model) / 1e6:.2f}M parameters, {len(texts)} traces, {args.steps} steps")
    t0 = time.time()
    pretrain(model, tok, texts, args.steps, args.batch, args.lr, log_every=50)
    out = Path(args.out)
    save(model.to(torch.bfloat16), tok, out)
    print(f"saved to {out} in {time.time() - t0:.0f}s")

if __name__ == "__main__":
    main()
