"""A random-weight model of a real model's shape, with the tiny model's tokenizer, for
throughput benchmarks on a GPU (issue #3: "a 0.5B-1.5B-shaped model, random weights are fine"):

    python bench/make_random_model.py --shape qwen2.5-0.5b --out /tmp/qwen05b-shaped
    python bench/bench_rollout.py --model /tmp/qwen05b-shaped --variants hf,hf-overlap,trl --threads 1

The layers are the real model's (hidden size, depth, heads, MLP width); the vocabulary is the
tiny model's 104 tokens, so no hub download is needed and the prompts are the same (the
embedding and LM head are then small: the parameter count below excludes most of the real
vocabulary's ~136M / 233M embedding parameters). Random weights sample random text, which
runs to max_new_tokens: a worst case for length, fine for throughput.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {   # Qwen2.5 configs (hidden, layers, heads, kv heads, intermediate)
    "qwen2.5-0.5b": (896, 24, 14, 2, 4864),
    "qwen2.5-1.5b": (1536, 28, 12, 2, 8960),
    "tiny": (128, 2, 4, 2, 256),            # for a CPU smoke test of this script
}


def build(shape: str, out: Path, dtype: str = "bfloat16") -> int:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
    hidden, layers, heads, kv, inter = SHAPES[shape]
    tok = AutoTokenizer.from_pretrained(ROOT / "data" / "tiny_model")
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=inter,
                      max_position_embeddings=4096, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).to(getattr(torch, dtype))
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=list(SHAPES), default="qwen2.5-0.5b")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    a = ap.parse_args(argv)
    n = build(a.shape, a.out, a.dtype)
    print(f"{a.shape}-shaped model, {n / 1e6:.1f}M parameters, random weights: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
