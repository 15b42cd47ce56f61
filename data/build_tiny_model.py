"""Build the shipped tiny base model: a ~1M-parameter Llama pre-trained on arithmetic traces.

    python data/build_tiny_model.py            # writes data/tiny_model/ (a few minutes on 2 cores)
    python data/build_tiny_model.py --steps 50 --out /tmp/m   # a quick smoke build
    python data/build_tiny_model.py --tools    # writes data/tiny_tools_model/ (see below)

Deterministic: fixed seeds, a fixed thread count and deterministic torch algorithms,
so the same torch version on the same CPU type rebuilds the same weights.

The corpus is ``grpo.data.tasks.arithmetic_trace`` under the R1-Zero tiny template: sums of
3-4 one-digit numbers worked step by step. Most traces are quick and slip on 35% of
steps; 15% open with "wait, let me verify each step." and make no slips; 15% give the
answer outside <answer> tags. The model therefore starts as a base model should for
R1-Zero: it mostly follows the format, is right about a third of the time at
temperature 1, and rarely verifies. The tokenizer is character level plus four tag
tokens. Build time: about 4.5 minutes on 2 idle cores (400 steps), final loss ~0.18.

``--tools`` builds the tool-using variant (recipes/tiny/tools.yaml): sums of 3-5 terms,
``grpo.data.tasks.tool_corpus_trace``: at a low base rate (``--tool-rate``, 8%) the trace hands
every step to the calculator (``<think><calc>3+7</calc><result>10</result> <calc>10+2</calc>
<result>12</result></think> ...``, observations written as the calculator env writes
them), the rest are quick traces (35% slips per step, 5% untagged, no careful style).
Four more tag tokens: <calc>, </calc>, <result>, </result>. The shipped data/tiny_tools_model is
``--tools --threads 1`` (400 steps, final loss 0.219, 583 s on the shared 2-core box).
The default build is byte-identical to what it was before --tools existed.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from grpo.data import apply_template  # noqa: E402
from grpo.data.tasks import (TOOL_TAGS, arithmetic_problem, arithmetic_trace,  # noqa: E402
                        tool_corpus_trace)

TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]


def build_tokenizer(extra_tags=()):
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(SPECIAL + chars)}
    # BPE with no merges is a character-level model that round-trips any ASCII text.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    # Prepend <s> like Llama tokenizers do, so prompts at RL time look like pre-training text.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                 eos_token="</s>", unk_token="<unk>")
    hf.add_tokens(TAGS + list(extra_tags))  # single tokens: the format is one decision
    return hf


def corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = arithmetic_problem(rng)
        out.append(apply_template("r1_zero_tiny", p["prompt"]) + arithmetic_trace(p, rng))
    return out


def tools_corpus(n: int, seed: int, tool_rate: float) -> list[str]:
    """The --tools corpus: sums of 3-5 terms, calculator traces at ``tool_rate``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = arithmetic_problem(rng, n_terms=(3, 5))
        out.append(apply_template("r1_zero_tiny", p["prompt"])
                   + tool_corpus_trace(p, rng, tool_rate=tool_rate))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None,
                    help="default: data/tiny_model, or data/tiny_tools_model with --tools")
    ap.add_argument("--tools", action="store_true", help="the calculator-using variant")
    ap.add_argument("--tool-rate", type=float, default=0.08,
                    help="--tools: share of traces that call the calculator")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads (fixed: the weights depend on it; the shipped tools "
                         "model used 1, faster on a shared machine)")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    tok = build_tokenizer(TOOL_TAGS if args.tools else ())
    model = llama(tok, hidden=128, layers=4, heads=4)
    n = args.steps * args.batch
    texts = tools_corpus(n, args.seed, args.tool_rate) if args.tools else corpus(n, args.seed)
    print(f"tiny model: {n_params(model) / 1e6:.2f}M parameters, {len(texts)} traces, {args.steps} steps")
    pretrain(model, tok, texts, args.steps, args.batch, args.lr, log_every=100)
    out = Path(args.out or Path(__file__).parent / ("tiny_tools_model" if args.tools
                                                    else "tiny_model"))
    save(model, tok, out)
    print(f"saved to {out}")


def llama(tok, hidden: int, layers: int, heads: int):
    """A small Llama over ``tok``'s vocabulary: MLP 3x wide, tied embeddings, 512 positions
    (the tiny model and the tiny teacher)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=3 * hidden,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=512, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def pretrain(model, tok, texts: list[str], steps: int, batch: int, lr: float, log_every: int) -> float:
    """Next-token pre-training on ``texts`` in order, ``batch`` per step (AdamW, one-cycle
    schedule, clip 1.0); returns the last loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    t0 = time.time()
    model.train()
    for step in range(steps):
        texts_b = [t + tok.eos_token for t in texts[step * batch:(step + 1) * batch]]
        enc = tok(texts_b, return_tensors="pt", padding=True)       # adds <s>
        labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        if step % log_every == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - t0:6.1f}s", flush=True)
    return loss.item()


def save(model, tok, out: Path) -> None:
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    model.generation_config.save_pretrained(out)

if __name__ == "__main__":
    main()
