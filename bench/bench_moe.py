"""Throughput of the FP8 dispatch quantizer (torch path; + Triton path on CUDA).

    python bench/bench_moe.py                      # CPU: torch path only
    python bench/bench_moe.py --hidden 7168 --tokens 8192 --topk 8   # DeepSeek-V3 sizes

Reports tokens/s for gather(top-k copies)+quantize, i.e. building the dispatch
payload, and the payload bytes vs bf16.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install
from grpo.moe import bytes_per_row, quantize_fp8, quantize_fp8_torch, triton_available  # noqa: E402


def bench(fn, iters: int, sync) -> float:
    fn()  # warm-up (and Triton JIT)
    sync()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t) / iters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 2048, 7168])
    ap.add_argument("--topk", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    dtype = torch.bfloat16
    print(f"device={dev} threads={torch.get_num_threads()} tokens={args.tokens} top_k={args.topk} dtype={dtype}")
    for h in args.hidden:
        x = torch.randn(args.tokens, h, device=dev, dtype=dtype)
        rows = torch.randint(0, args.tokens, (args.tokens * args.topk,), device=dev)  # permuted top-k copies
        paths = {"torch": lambda: quantize_fp8_torch(x, rows)}
        if dev == "cuda" and triton_available():
            paths["triton"] = lambda: quantize_fp8(x, rows, use_triton=True)
        ratio = bytes_per_row(h, True) / bytes_per_row(h, False)
        for name, fn in paths.items():
            dt = bench(fn, args.iters, sync)
            gbs = rows.numel() * h * x.element_size() / dt / 1e9
            print(
                f"hidden={h:5d} {name:6s} {args.tokens / dt:12,.0f} tokens/s  {rows.numel() / dt:12,.0f} rows/s"
                f"  {gbs:7.2f} GB/s bf16-in  payload {ratio:.3f}x bf16"
            )


if __name__ == "__main__":
    main()
