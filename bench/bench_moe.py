"""MoE dispatch benchmarks, each a side-by-side comparison in one invocation.

    python bench/bench_moe.py                      # quant: FP8 quantizer, torch (+ Triton on CUDA)
    python bench/bench_moe.py --hidden 7168 --tokens 8192 --topk 8   # DeepSeek-V3 sizes
    python bench/bench_moe.py --section gemm       # grouped GEMM vs a Python loop over experts
    python bench/bench_moe.py --section bytes      # dispatch bytes: bf16 / FP8 / FP8+dedup

quant: tokens/s for gather(top-k copies)+quantize, i.e. building the dispatch
payload, and the payload bytes vs bf16.  gemm: local experts' forward+backward
time.  bytes: wire bytes one rank of a ``--world``-rank EP group sends, computed
from a DeepSeek-V3 gate's real routing (group-limited: one expert group per rank)
with the row sizes of ``grpo.moe.bytes_per_row`` (the gloo tests in
tests/moe/test_moe_dist.py measure the same accounting on real collectives).
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


def bench_gemm(args, dev, sync) -> None:
    from grpo.moe.experts import LocalExperts

    e, h, i = args.experts, args.hidden[0], args.inter
    torch.manual_seed(0)
    dt = torch.bfloat16 if dev == "cuda" else torch.float32  # the CUDA grouped kernel is bf16-only
    gu, dn = torch.randn(e, 2 * i, h, device=dev, dtype=dt) * 0.02, torch.randn(e, h, i, device=dev, dtype=dt) * 0.02
    rows = args.tokens * args.topk // args.world  # rows one rank's experts receive
    sizes = torch.distributions.Multinomial(rows, torch.ones(e)).sample().long().tolist()
    x = torch.randn(rows, h, device=dev, dtype=dt)
    res = {}
    for grouped in (False, True):  # forced: the auto choice is what is being measured
        m = LocalExperts(gu, dn, torch.nn.functional.silu, requires_grad=True, grouped=grouped)

        def step():
            m(x, sizes).square().mean().backward()

        res[grouped] = bench(step, args.iters, sync)
        print(f"gemm {dev} {dt} experts={e} rows={rows} hidden={h} inter={i} {'grouped' if grouped else 'loop   '}"
              f" {res[grouped] * 1e3:8.2f} ms fwd+bwd")
    print(f"gemm speed-up grouped/loop: {res[False] / res[True]:.2f}x")


def bench_bytes(args) -> None:
    from transformers import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3TopkRouter

    w, e, h = args.world, args.experts, args.hidden[0]
    cfg = DeepseekV3Config(hidden_size=h, n_routed_experts=e, num_experts_per_tok=args.topk, n_group=w,
                           topk_group=args.topk_group, norm_topk_prob=True)
    torch.manual_seed(0)
    gate = DeepseekV3TopkRouter(cfg)
    torch.nn.init.normal_(gate.weight, std=0.02)
    with torch.no_grad():
        _, _, idx = gate(torch.randn(args.tokens, h))
    dest = idx // (e // w)  # [N, k] destination rank of each pair; this is rank 0
    pairs = int((dest != 0).sum())
    uniq = int(sum((dest == r).any(-1).sum() for r in range(1, w)))
    mask_bytes = -(-(e // w) // 8)
    b = {"bf16": pairs * bytes_per_row(h, False), "fp8": pairs * bytes_per_row(h, True),
         "fp8+dedup": uniq * (bytes_per_row(h, True) + mask_bytes) + pairs * 4}  # + fp32 weight per pair
    print(f"bytes world={w} experts={e} top_k={args.topk} topk_group={args.topk_group} hidden={h} tokens={args.tokens}")
    for k, v in b.items():
        print(f"  dispatch {k:10s} {v / 1e6:9.3f} MB  {v / b['bf16']:.3f}x bf16")
    print(f"  combine  bf16       {pairs * bytes_per_row(h, False) / 1e6:9.3f} MB  1.000x")
    print(f"  combine  bf16+dedup {uniq * bytes_per_row(h, False) / 1e6:9.3f} MB  {uniq / pairs:.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 2048, 7168])
    ap.add_argument("--topk", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--section", choices=["quant", "gemm", "bytes"], default="quant")
    ap.add_argument("--experts", type=int, default=64)
    ap.add_argument("--inter", type=int, default=256, help="expert intermediate size (gemm)")
    ap.add_argument("--world", type=int, default=8, help="EP ranks (gemm rows, bytes)")
    ap.add_argument("--topk-group", type=int, default=4)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    if args.section == "gemm":
        return bench_gemm(args, dev, sync)
    if args.section == "bytes":
        return bench_bytes(args)
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
