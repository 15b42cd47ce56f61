"""Length-packed micro-batches (train.micro_batch_tokens): same rows, less padding, same gradient."""
from pathlib import Path

import pytest
import torch

from grpo.config import load_config
from grpo.model.policy import build_batch, load_policy, micro_batches, score
from grpo.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]


def _batch(seed=0, n=12, pad=0):
    g = torch.Generator().manual_seed(seed)
    P = [torch.randint(3, 100, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g).tolist() for _ in range(n)]
    C = [torch.randint(3, 100, (int(torch.randint(1, 20, (1,), generator=g)),), generator=g).tolist() for _ in range(n)]
    return P, C, build_batch(P, C, pad)


def test_micro_batches_cover_every_row_once_within_caps():
    P, C, b = _batch()
    for rows, tokens in [(4, None), (5, 40), (12, 60), (3, 1)]:
        mbs = micro_batches(b, rows, tokens)
        assert sorted(torch.cat(mbs).tolist()) == list(range(len(P)))
        for idx in mbs:
            assert len(idx) <= rows
            padded = len(idx) * max(len(P[i]) + len(C[i]) for i in idx.tolist())
            assert tokens is None or padded <= tokens or len(idx) == 1


def test_packing_cuts_padding():
    P, C, b = _batch(n=32)
    full = b.input_ids.numel()
    packed = sum(b.slice(i).trim().input_ids.numel() for i in micro_batches(b, 32, 120))
    assert packed < 0.8 * full, (packed, full)


def test_trim_keeps_log_probs():
    """A trimmed micro-batch scores each completion exactly as the full-width batch does."""
    tok, model = load_policy(str(ROOT / "data/tiny_model"), trainable=False)
    P, C, b = _batch(pad=tok.pad_token_id)
    full, _ = score(model, b)
    for idx in micro_batches(b, 4, 50):
        sub = b.slice(idx).trim()
        lp, _ = score(model, sub)
        assert sub.input_ids.shape[1] < b.input_ids.shape[1] or len(idx) == 1
        torch.testing.assert_close(lp * sub.mask, full[idx, :lp.shape[1]] * sub.mask, atol=1e-5, rtol=1e-5)
        assert (b.mask[idx, lp.shape[1]:] == 0).all()       # nothing cut but padding


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean", "constant"])
def test_packed_update_gives_the_same_gradient(tmp_path, agg):
    grads = []
    for tokens in (None, 90):
        over = [f"model.path={ROOT / 'data/tiny_model'}", f"output.dir={tmp_path}", "output.tensorboard=false",
                f"output.name=m{tokens}",              # two live trainers: two run directories
                "data.num_samples=16", "algorithm.track_kl=false", f"algorithm.loss_agg={agg}",
                "train.micro_batch_size=12", f"train.share_prompt={str(bool(tokens)).lower()}"] + \
            ([f"train.micro_batch_tokens={tokens}"] if tokens else [])
        tr = Trainer(load_config(ROOT / "recipes/tiny/r1_zero.yaml", over))
        tr.opt.zero_grad = lambda set_to_none=True: None   # keep the grads to compare
        P, C, b = _batch(seed=1, pad=tr.tok.pad_token_id)
        b.group = torch.arange(len(P)) // 3                  # groups of 3 rows share a prompt
        for i in range(len(P)):
            P[i] = P[i - i % 3]
        b = build_batch(P, C, tr.tok.pad_token_id, group=b.group.tolist())
        adv = torch.linspace(-1, 1, len(P))
        out = tr._update(b, adv)
        assert (out["micro_batches"] > 1) if tokens else out["micro_batches"] == 1
        grads.append(torch.cat([p.grad.flatten() for p in tr.policy.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def test_shared_prompt_scoring_matches_per_row_scoring():
    """Each prompt run once with its KV cache shared by its G completions: same log-probs,
    entropies and gradients as scoring every row whole."""
    from grpo.model.policy import score_shared_prompt
    tok, model = load_policy(str(ROOT / "data/tiny_model"), trainable=True)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 100, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
               for _ in range(3)]
    P, C, grp = [], [], []
    for i, p in enumerate(prompts):
        for _ in range(4):
            P.append(p), grp.append(i)
            C.append(torch.randint(3, 100, (int(torch.randint(1, 15, (1,), generator=g)),), generator=g).tolist())
    b = build_batch(P, C, tok.pad_token_id, group=grp).slice(torch.randperm(12, generator=g))  # groups interleaved
    w = torch.randn(b.mask.shape, generator=g)
    out = []
    for fn in (score, score_shared_prompt):
        model.zero_grad()
        lp, ent = fn(model, b, with_entropy=True)
        (lp * b.mask * w).sum().backward()
        out.append((lp * b.mask, ent * b.mask, torch.cat([p.grad.flatten() for p in model.parameters()])))
    (lp1, e1, g1), (lp2, e2, g2) = out
    torch.testing.assert_close(lp2, lp1, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(e2, e1, atol=1e-4, rtol=1e-4)
    assert (g2 - g1).norm() / g1.norm() < 1e-4


def test_share_prompt_refuses_gradient_checkpointing(tmp_path):
    from grpo.config import ConfigError
    cfg = load_config(ROOT / "recipes/tiny/r1_zero.yaml", [
        f"model.path={ROOT / 'data/tiny_model'}", f"output.dir={tmp_path}", "train.share_prompt=true",
        "model.gradient_checkpointing=true", "data.num_samples=16"])
    with pytest.raises(ConfigError, match="gradient checkpointing"):
        Trainer(cfg)


def test_score_all_with_shared_prompts_matches():
    from grpo.model.policy import score_all
    tok, model = load_policy(str(ROOT / "data/tiny_model"), trainable=False)
    P, C, _ = _batch(seed=3, n=12, pad=tok.pad_token_id)
    P = [P[i - i % 4] for i in range(12)]                       # 3 prompts x 4 completions
    b = build_batch(P, C, tok.pad_token_id, group=[i // 4 for i in range(12)])
    plain = score_all(model, b, 5, 80)
    shared = score_all(model, b, 5, 80, shared_prompt=True)
    torch.testing.assert_close(shared * b.mask, plain * b.mask, atol=1e-5, rtol=1e-5)
