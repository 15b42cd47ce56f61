"""On-policy distillation: algorithm.teacher scores the student's own samples."""
from pathlib import Path

import pytest
import torch

from grpo.config import load_config
from grpo.run.metrics import read_metrics
from grpo.model.policy import load_policy
from grpo.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "data/tiny_model"


def _cfg(tmp_path, name, teacher, steps=3, mode="sampled", *extra: str):
    """The opd recipe, small and fast; ``extra`` overrides come last (they win)."""
    return load_config(ROOT / "recipes/tiny/opd/student.yaml", [f"algorithm.distill_loss={mode}",
        f"model.path={TINY}", f"algorithm.teacher={teacher}", f"output.dir={tmp_path}", f"output.name={name}",
        f"train.steps={steps}", "train.prompts_per_step=2", "rollout.n=4", "rollout.max_new_tokens=24",
        "output.tensorboard=false", "data.num_samples=16", "train.lr=1e-3",
        "algorithm.teacher_temperature=1.0",       # the recipe sharpens its teacher (0.6): tests say when
        "algorithm.mu=1", "algorithm.distill_replay=0",   # ...and reuses each batch 44x
        "train.schedule=constant",                        # at a decaying lr
        *extra])


def _perturbed_teacher(out, seed: int):
    """The tiny model with every weight moved by 0.05 * N(0, 1), saved to ``out``."""
    tok, teacher = load_policy(str(TINY), trainable=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    teacher.save_pretrained(out)
    tok.save_pretrained(out)
    return tok, teacher


def _kl(row: dict) -> float:
    """The teacher term's logged KL: reverse (sampled, full) or forward."""
    return row["distill/forward_kl"] if "distill/forward_kl" in row else row["distill/reverse_kl"]


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("mode", ["sampled", "full", "forward"])
def test_a_teacher_equal_to_the_student_teaches_nothing(tmp_path, mode):
    tr = Trainer(_cfg(tmp_path, "same", TINY, steps=2, mode=mode))
    before = _flat(tr.policy).clone()
    rows = read_metrics(tr.train())
    assert all(abs(_kl(r)) < 1e-5 for r in rows)
    if mode == "sampled":                # the teacher's log-prob of each token is the student's, bit for bit
        torch.testing.assert_close(_flat(tr.policy), before, atol=1e-6, rtol=0)
    else:   # the full distributions agree to ~1e-6 only (the no-grad forward rounds differently):
        assert rows[0]["grad_norm"] < 1e-9, rows[0]   # a gradient of float noise (Adam still steps on it)


@pytest.mark.parametrize("mode", ["sampled", "full", "forward"])
def test_the_student_moves_towards_a_different_teacher(tmp_path, mode):
    tok, teacher = _perturbed_teacher(tmp_path / "teacher", seed=0)
    def exact_kl(student):               # full-vocabulary KL(student || teacher) on fixed sequences
        ids = torch.tensor([tok(f"User: What is {a}+{b}? Assistant: <think> {a}+{b}").input_ids
                            for a, b in [(12, 17), (31, 45), (60, 18), (29, 93)]])
        with torch.no_grad():
            s, t = (torch.log_softmax(m(ids).logits.float(), -1) for m in (student, teacher))
        return (s.exp() * (s - t)).sum(-1).mean().item()

    tr = Trainer(_cfg(tmp_path, "diff", tmp_path / "teacher", steps=10, mode=mode))
    before = _flat(tr.policy).clone()
    kl0 = exact_kl(tr.policy)
    rows = read_metrics(tr.train())
    kl = [_kl(r) for r in rows]
    assert all(k == k for k in kl) and kl[0] > 0.01, kl        # finite, and the teacher differs
    assert not torch.equal(_flat(tr.policy), before)
    assert exact_kl(tr.policy) < 0.9 * kl0                      # the student moved towards the teacher


def test_the_shipped_teacher_is_bigger_speaks_the_students_tokens_and_teaches(tmp_path):
    """data/tiny_teacher (data/build_tiny_teacher.py): another shape, the same token ids; the
    opd recipes point at it, and a student trained on it moves (different width and depth)."""
    teacher_dir = ROOT / "data/tiny_teacher"
    s_tok, student = load_policy(str(TINY), trainable=False)
    t_tok, teacher = load_policy(str(teacher_dir), trainable=False)
    assert s_tok.get_vocab() == t_tok.get_vocab()
    n = lambda m: sum(p.numel() for p in m.parameters())   # noqa: E731
    assert n(teacher) > 2 * n(student) and teacher.config.hidden_size > student.config.hidden_size
    assert load_config(ROOT / "recipes/tiny/opd/student.yaml").algorithm.teacher == "data/tiny_teacher"
    tr = Trainer(_cfg(tmp_path, "shipped", teacher_dir, steps=2))
    rows = read_metrics(tr.train())
    assert all(r["distill/reverse_kl"] > 0.01 for r in rows), rows


def _reverse(logp, logq):      # KL(pi || q) and its gradient pi * (log pi - log q - KL)
    pi = logp.exp()
    kl = (pi * (logp - logq)).sum(-1)
    return kl, pi * (logp - logq - kl.unsqueeze(-1))


def _forward(logp, logq):      # KL(q || pi) and its gradient pi - q (cross-entropy to the teacher)
    return (logq.exp() * (logq - logp)).sum(-1), logp.exp() - logq.exp()


@pytest.mark.parametrize("form, want", [("full", _reverse), ("forward", _forward)])
def test_full_vocabulary_kls_have_the_analytic_gradient(form, want):
    """distill.KL_FORMS: each KL's value and its gradient in the student's logits z match the
    closed forms; nothing reaches the teacher's logits; KL >= 0."""
    from grpo.algos.distill import KL_FORMS
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 7, generator=g, requires_grad=True)
    zt = torch.randn(2, 3, 7, generator=g, requires_grad=True)
    kl = KL_FORMS[form](z, zt)
    kl.sum().backward()
    want_kl, want_grad = want(torch.log_softmax(z.detach(), -1), torch.log_softmax(zt.detach(), -1))
    torch.testing.assert_close(kl.detach(), want_kl)
    torch.testing.assert_close(z.grad, want_grad)
    assert zt.grad is None and bool((kl >= 0).all())


def test_full_mode_logs_the_exact_kl_and_matches_the_sampled_form_in_expectation(tmp_path):
    """distill_loss: full reports KL(pi || q) over the vocabulary (>= 0 always), the sampled
    form its one-sample estimate: on the same first batch they agree on the sign and scale."""
    _perturbed_teacher(tmp_path / "teacher", seed=1)
    got = {}
    for mode in ("sampled", "full"):
        tr = Trainer(_cfg(tmp_path, mode, tmp_path / "teacher", steps=1, mode=mode))
        got[mode] = read_metrics(tr.train())[0]["distill/reverse_kl"]
    assert got["full"] > 0.01 and got["sampled"] > 0
    assert 0.3 < got["sampled"] / got["full"] < 3, got


def test_full_mode_with_mu_2_scores_each_micro_batch_with_the_teacher_once(tmp_path):
    """mu passes over one batch reuse the teacher's logits: teacher tokens stay those of the
    samples, not mu times them."""
    cfg = _cfg(tmp_path, "mu2", TINY, steps=2, mode="full")
    cfg.algorithm.mu = 2
    tr = Trainer(cfg)
    calls = []
    real = tr.teacher.forward
    tr.teacher.forward = lambda *a, **k: calls.append(1) or real(*a, **k)
    n_mb = []
    upd = tr._update
    tr._update = lambda batch, *a, **k: (lambda out: n_mb.append(out["micro_batches"]) or out)(upd(batch, *a, **k))
    tr.train()
    # share_prompt: two forwards (the prompts, then the completions) per teacher scoring
    assert len(calls) == 2 * sum(n_mb) and sum(n_mb) >= 2, (len(calls), n_mb)


def test_teacher_temperature_scores_the_teachers_logits_over_it():
    """algorithm.teacher_temperature T: the sampled form's teacher log-probs are those of
    logits / T, in both scoring paths (plain and shared prompt), and the full form's target
    is softmax(logits / T): a teacher equal to the student is no longer a zero KL."""
    from grpo.algos.distill import full_reverse_kl, score_with_teacher
    from grpo.model.policy import build_batch, completion_logits, score_all, token_logprobs
    tok, model = load_policy(str(TINY), trainable=False)
    g = torch.Generator().manual_seed(0)
    P = [p for p in (torch.randint(4, 100, (5,), generator=g).tolist() for _ in range(2)) for _ in range(3)]
    C = [torch.randint(4, 100, (int(n),), generator=g).tolist() for n in torch.randint(3, 9, (6,), generator=g)]
    b = build_batch(P, C, tok.pad_token_id, group=[i // 3 for i in range(6)])
    with torch.no_grad():
        logits = completion_logits(model, b)
    for T in (0.5, 2.0):
        want = token_logprobs(logits / T, b.completion_ids) * b.mask
        for shared in (False, True):
            got = score_all(model, b, 4, None, shared_prompt=shared, temperature=T) * b.mask
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        _, _, kl = score_with_teacher(completion_logits, model, model, b, temperature=T)
        torch.testing.assert_close(kl.detach(), full_reverse_kl(logits, logits / T).detach(), atol=1e-5, rtol=1e-5)
        assert float((kl.detach() * b.mask).sum()) > 0.01
    torch.testing.assert_close(score_all(model, b, 4, temperature=1.0) * b.mask,
                               token_logprobs(logits, b.completion_ids) * b.mask, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["sampled", "full"])
def test_a_sharpened_copy_of_the_student_as_teacher_lowers_its_entropy(tmp_path, mode):
    """teacher_temperature 0.5 with the student itself as the teacher: the only thing to
    learn is the sharpening. Both forms see a non-zero KL (at T 1 it is exactly 0, test
    above); with the exact KL the student's entropy on fixed text must fall within 6 steps
    (the sampled form's one-token estimate is too noisy to show it in a few steps)."""
    from grpo.model.policy import load_tokenizer
    tok = load_tokenizer(str(TINY))
    ids = torch.tensor([tok(f"User: What is {a}+{b}? Assistant: <think> {a}+{b}=").input_ids
                        for a, b in [(3, 4), (6, 2), (5, 1)]])

    def entropy(m):
        with torch.no_grad():
            lp = torch.log_softmax(m(ids).logits.float(), -1)
        return -(lp.exp() * lp).sum(-1).mean().item()

    cfg = _cfg(tmp_path, "sharp", TINY, steps=6, mode=mode)
    cfg.algorithm.teacher_temperature = 0.5
    tr = Trainer(cfg)
    h0 = entropy(tr.policy)
    rows = read_metrics(tr.train())
    assert rows[0]["distill/reverse_kl"] > 0.01, rows[0]
    if mode == "full":
        assert entropy(tr.policy) < 0.9 * h0, (h0, entropy(tr.policy))


def test_teacher_temperature_is_validated():
    with pytest.raises(Exception, match="teacher_temperature"):
        load_config(ROOT / "recipes/tiny/opd/student.yaml", ["algorithm.teacher_temperature=0"])


def test_the_sft_baseline_recipes_chain():
    """`grpo sample opd/teacher_samples.yaml` writes exactly the file `grpo sft opd/sft.yaml`
    reads (they named different paths, so the README's two commands did not chain)."""
    from grpo.stages.sample import load_sample_config
    from grpo.stages.sft import load_sft_config
    sample = load_sample_config(ROOT / "recipes/tiny/opd/teacher_samples.yaml")
    sft = load_sft_config(ROOT / "recipes/tiny/opd/sft.yaml")
    assert Path(sft.data.source) == sample.run_dir() / "data.jsonl"
    assert sample.model.path == load_config(ROOT / "recipes/tiny/opd/student.yaml").algorithm.teacher


def test_one_sample_per_prompt_distills_but_a_reward_group_of_one_is_refused(tmp_path):
    """rollout.n=1: the teacher's per-token KL needs no group, so distillation spreads its
    samples over more prompts; GRPO's group of one would have advantage 0 (and grpo's
    unbiased std of one reward is NaN), so a recipe training on a reward is refused."""
    from grpo.config import ConfigError
    _perturbed_teacher(tmp_path / "teacher", seed=1)
    cfg = _cfg(tmp_path, "n1", tmp_path / "teacher", 3, "full", "rollout.n=1", "train.prompts_per_step=8")
    assert cfg.rollout.n == 1
    tr = Trainer(cfg)
    before = _flat(tr.policy).clone()
    rows = read_metrics(tr.train())
    assert len(rows) == 3 and all(r["distill/reverse_kl"] > 0.01 and r["loss"] == r["loss"] for r in rows), rows
    assert not torch.equal(_flat(tr.policy), before)
    for recipe, extra in [("r1_zero.yaml", []), ("opd/student.yaml", ["rewards=[{name: math_accuracy, weight: 1.0}]"])]:
        with pytest.raises(ConfigError, match=r"^invalid recipe: rollout.n=1 gives each prompt a group of one"):
            load_config(ROOT / "recipes/tiny" / recipe, ["rollout.n=1", *extra])


def test_distill_replay_reuses_kept_batches_without_new_teacher_tokens(tmp_path):
    """distill_replay: k: each step also passes over the last k steps' scored batches, with
    the teacher logits kept from when they were scored: the teacher runs once per micro-batch
    of each *new* batch only, the replayed KL is logged, and the lr schedule counts the extra
    optimizer steps (linear decay ends at 0 on the last one)."""
    from grpo.train import update as U
    _perturbed_teacher(tmp_path / "teacher", seed=1)
    cfg = _cfg(tmp_path, "replay", tmp_path / "teacher", 4, "full", "algorithm.distill_replay=2",
               "train.schedule=linear", "train.warmup_steps=0", "train.lr=3e-3")
    tr = Trainer(cfg)
    calls, n_mb, updated = [], [], []
    real = tr.teacher.forward
    tr.teacher.forward = lambda *a, **k: calls.append(1) or real(*a, **k)
    upd = tr._update                  # this step's own update
    own = []
    tr._update = lambda batch, *a, **k: (own.append(id(batch)), n_mb.append((out := upd(batch, *a, **k))["micro_batches"]),
                                         out)[-1]
    real_update = U.update            # every update: this step's and the replays'

    def spy(tr_, batch, *a, **k):
        updated.append(id(batch))
        return real_update(tr_, batch, *a, **k)
    U.update = spy
    try:
        rows = read_metrics(tr.train())
    finally:
        U.update = real_update
    assert [r["distill/replay_batches"] for r in rows] == [0, 1, 2, 2]
    assert rows[0]["distill/reverse_kl_replayed"] is None
    assert all(r["distill/reverse_kl_replayed"] > 0.01 for r in rows[1:]), rows
    assert len(updated) == 4 + 0 + 1 + 2 + 2 and len(n_mb) == 4
    # share_prompt: two teacher forwards per scoring, and only the 4 new batches are scored
    assert len(calls) == 2 * sum(n_mb), (len(calls), n_mb)
    assert tr.sched.last_epoch == 1 + 2 + 3 + 3 and tr.opt.param_groups[0]["lr"] == 0.0
    # the last step replayed steps 2 and 3 (oldest first), then kept 3 and 4
    assert updated[-2:] == own[1:3] and [id(b) for b, _ in tr.replay] == own[2:]


def test_distill_replay_is_only_for_pure_distillation():
    from grpo.config import ConfigError
    base = ROOT / "recipes/tiny/opd/student.yaml"
    for extra in (["algorithm.teacher=null"], ["algorithm.distill_loss=sampled"],
                  ["rewards=[{name: math_accuracy, weight: 1.0}]", "rollout.n=2"], ["rollout.max_staleness=1"]):
        with pytest.raises(ConfigError, match=r"^invalid recipe: algorithm.distill_replay needs pure distillation"):
            load_config(base, ["algorithm.distill_replay=2", "rollout.n=2", *extra])
    for bad in ("-1", "65", "1.5", "x"):
        with pytest.raises(ConfigError, match=r"^invalid value for 'algorithm.distill_replay'"):
            load_config(base, [f"algorithm.distill_replay={bad}"])
    assert load_config(base, ["algorithm.distill_replay=3"]).algorithm.distill_replay == 3
