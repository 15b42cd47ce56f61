"""Build the tiny "general" task and its reward model for the tiny R1 pipeline's stages 3-4.

    python data/build_tiny_reward_model.py     # writes data/general_tiny.jsonl, data/tiny_reward_model/

The general task stands in for R1's non-reasoning data (writing, QA, ...; R1 report
2.3.3-2.3.4) at a size the char-level tiny model can learn: four kinds of short social
request (greet, thank, say goodbye, wish luck), each in six phrasings, e.g.

    User: Say thanks.\nAssistant: <think>the user wants thanks.</think> <answer>Thank you very much!</answer>

Two phrasings of each kind are held out (``split: test``) to evaluate the policy on requests
it never trained on; their patterns ("Please ...", "Can you ...?") occur in training with
other kinds.

The reward model is a ~0.15M-parameter ``LlamaForSequenceClassification`` with two logits,
trained with binary cross-entropy on generated, labelled texts (``grpo.train.reward_model.rm_input``):

* logit 0, **helpfulness**, reads prompt + *summary* (the answer): 1 for the reply that
  fits the request; 0 for another request's reply, a reply with a typo, a cut-off reply,
  a number, an empty answer, or extra text after the reply;
* logit 1, **harmlessness**, reads prompt + *whole response*: 0 when an insult
  ("you idiot", "shut up", ...) appears anywhere, reasoning included; 1 otherwise.

That is all it knows -- it rewards the one expected reply per request kind and penalises
insults -- and its accuracy per case on fresh examples is written to ``rm_card.json``:
near-perfect on every case except typos, most of which (a single wrong character) it
misses.
It is a stand-in that makes the stage-4 plumbing testable on CPU, not a model of human
preference. Deterministic (fixed seeds, one thread, deterministic algorithms); a few
minutes at most on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data"))
from build_tiny_model import build_tokenizer  # noqa: E402
from grpo.data import apply_template  # noqa: E402
from grpo.train.reward_model import rm_input  # noqa: E402

REQUESTS = [  # (plan in the reasoning, the reply, phrasings of the request; two held out, HELD_OUT)
    ("a greeting.", "Hello, nice to meet you!",
     ["Greet me.", "Say hello.", "Please greet me.", "Say hi.", "Can you greet me?", "Greet the user."]),
    ("thanks.", "Thank you very much!",
     ["Thank me.", "Say thanks.", "Please thank me.", "Say thank you.", "Can you thank me?", "Thank the user."]),
    ("a goodbye.", "Goodbye, take care!",
     ["Say goodbye.", "Say bye.", "Please say goodbye.", "Bid me farewell.", "Can you say bye?",
      "Say goodbye to the user."]),
    ("good luck wishes.", "Good luck, you can do it!",
     ["Wish me luck.", "Say good luck.", "Please wish me luck.", "Cheer me on.", "Can you wish me luck?",
      "Wish the user luck."]),
]
# Held-out phrasings per kind: each one's pattern ("Please ...", "Can you ...?") is seen in
# training with other kinds, so a policy can get them right by composing what it learned.
HELD_OUT = [{2, 4}, {3, 5}, {4, 0}, {5, 1}]
INSULTS = ["you idiot", "stupid", "shut up", "I hate you", "go away, fool", "dumb"]


def response(plan: str, reply: str) -> str:
    return f" <think>the user wants {plan}</think> <answer>{reply}</answer>"


def general_rows() -> list[dict]:
    """The general prompts with reference completions (stage-3 SFT data, stage-4 prompts)."""
    return [{"prompt": q, "completion": response(plan, reply), "kind": "general",
             "split": "test" if j in HELD_OUT[k] else "train"}
            for k, (plan, reply, qs) in enumerate(REQUESTS) for j, q in enumerate(qs)]


UNHELPFUL = ["other_request", "typo", "cut_off", "number", "empty", "extra_text"]


def _unhelpful(rng: random.Random, k: int) -> tuple[str, str]:
    """A reply that does not do what request ``k`` asked, and how it fails."""
    reply = REQUESTS[k][1]
    kind = rng.choice(UNHELPFUL[:2] * 2 + UNHELPFUL[2:])
    if kind == "other_request":
        text = rng.choice([r for i, (_, r, _) in enumerate(REQUESTS) if i != k])
    elif kind == "typo":                                # one or two characters wrong
        chars = list(reply)
        for _ in range(rng.randint(1, 2)):
            chars[rng.randrange(len(chars))] = rng.choice("aeinostuy!,")
        text = "".join(chars) if "".join(chars) != reply else reply[:-1]
    elif kind == "cut_off":
        text = reply[:rng.randint(1, len(reply) - 2)]
    elif kind == "number":
        text = str(rng.randint(0, 40))
    elif kind == "empty":
        text = ""
    else:
        text = reply + rng.choice([" 12", " Hello!", " and", " you"])
    return text, kind


def _insult(rng: random.Random, text: str) -> str:
    """``text`` with an insult inserted in the reasoning or the answer."""
    word = rng.choice(INSULTS)
    tag = rng.choice(["</think>", "</answer>"]) if "</think>" in text else None
    if tag and tag in text:
        return text.replace(tag, f" {word}{tag}", 1)
    return f"{text} {word}"


def examples(n: int, seed: int, helpful_share: float = 0.5) -> list[tuple[str, int, float, str]]:
    """(classifier input, logit index, target, case) tuples, helpfulness then harmlessness."""
    from grpo.data.tasks import arithmetic_problem, arithmetic_trace
    rng, out = random.Random(seed), []
    for i in range(n):
        k = rng.randrange(len(REQUESTS))
        plan, reply, qs = REQUESTS[k]
        prompt = apply_template("r1_zero_tiny", rng.choice(qs))
        if i < n * helpful_share:                       # helpfulness: the summary only
            text, case = (reply, "right_reply") if rng.random() < 0.5 else _unhelpful(rng, k)
            out.append((rm_input(prompt, text), 0, float(case == "right_reply"), case))
            continue
        if rng.random() < 0.3:                          # harmlessness: any whole response
            p = arithmetic_problem(rng)
            prompt, text = apply_template("r1_zero_tiny", p["prompt"]), arithmetic_trace(p, rng)
        else:
            text = response(plan, reply if rng.random() < 0.6 else _unhelpful(rng, k)[0])
        harmful = rng.random() < 0.5
        out.append((rm_input(prompt, _insult(rng, text) if harmful else text), 1, float(not harmful),
                    "insult" if harmful else "clean"))
    return out


def train(tok, data, steps: int, batch: int, lr: float, seed: int):
    from transformers import LlamaConfig, LlamaForSequenceClassification
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=192, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                      num_labels=2, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, problem_type="multi_label_classification")
    model = LlamaForSequenceClassification(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    rng = random.Random(seed)
    helpful = [x for x in data if x[1] == 0]          # short inputs: batched apart, 2 of 3 steps
    harmless = [x for x in data if x[1] == 1]         # (harmlessness is the easy head)
    t0 = time.time()
    model.train()
    for step in range(steps):
        chunk = rng.sample(harmless if step % 3 == 2 else helpful, batch)
        enc = tok([x[0] for x in chunk], return_tensors="pt", padding=True)
        logits = model(**enc).logits
        idx = torch.tensor([x[1] for x in chunk])
        target = torch.tensor([x[2] for x in chunk])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits.gather(1, idx[:, None]).squeeze(1), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}  {time.time() - t0:5.1f}s", flush=True)
    return model.eval()


@torch.no_grad()
def accuracy(model, tok, data) -> dict:
    """Held-out accuracy per head and per case (which mistakes it catches, which it misses)."""
    right: dict[str, list[bool]] = {}
    for i in range(0, len(data), 128):
        chunk = data[i:i + 128]
        logits = model(**tok([x[0] for x in chunk], return_tensors="pt", padding=True)).logits
        for (_, j, y, case), row in zip(chunk, logits):
            ok = (row[j].item() > 0) == (y > 0.5)
            for key in (("helpfulness", "harmlessness")[j], f"{('helpfulness', 'harmlessness')[j]}/{case}"):
                right.setdefault(key, []).append(ok)
    return {k: round(sum(v) / len(v), 3) for k, v in sorted(right.items())}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "data" / "tiny_reward_model"))
    ap.add_argument("--general-out", default=str(ROOT / "data" / "general_tiny.jsonl"))
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)          # also the fastest on a busy machine
    torch.use_deterministic_algorithms(True)

    rows = general_rows()
    Path(args.general_out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} general rows to {args.general_out}")
    tok = build_tokenizer()
    tok.padding_side = "right"
    model = train(tok, examples(12000, args.seed, 0.67), args.steps, args.batch, args.lr, args.seed)
    acc = accuracy(model, tok, examples(2000, args.seed + 1))
    print("held-out accuracy:", json.dumps(acc, indent=1))
    model.save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    (Path(args.out) / "rm_card.json").write_text(json.dumps(
        {"labels": {"0": "helpfulness (prompt + summary)", "1": "harmlessness (prompt + whole response)"},
         "built_by": "data/build_tiny_reward_model.py", "steps": args.steps, "seed": args.seed,
         "held_out_accuracy": acc}, indent=1))
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
