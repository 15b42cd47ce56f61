"""On-policy distillation: algorithm.teacher scores the student's own samples."""
from pathlib import Path

import torch

from grpo.config import load_config
from grpo.metrics import read_metrics
from grpo.policy import load_policy
from grpo.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "data/tiny_model"


def _cfg(tmp_path, name, teacher, steps=3):
    return load_config(ROOT / "recipes/tiny/opd/student.yaml", [
        f"model.path={TINY}", f"algorithm.teacher={teacher}", f"output.dir={tmp_path}", f"output.name={name}",
        f"train.steps={steps}", "train.prompts_per_step=2", "rollout.n=4", "rollout.max_new_tokens=24",
        "output.tensorboard=false", "data.num_samples=16", "train.lr=1e-3"])


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_a_teacher_equal_to_the_student_teaches_nothing(tmp_path):
    tr = Trainer(_cfg(tmp_path, "same", TINY, steps=2))
    before = _flat(tr.policy).clone()
    rows = read_metrics(tr.train())
    assert all(abs(r["distill/reverse_kl"]) < 1e-5 for r in rows)
    torch.testing.assert_close(_flat(tr.policy), before, atol=1e-6, rtol=0)


def test_the_student_moves_towards_a_different_teacher(tmp_path):
    tok, teacher = load_policy(str(TINY), trainable=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    teacher.save_pretrained(tmp_path / "teacher")
    tok.save_pretrained(tmp_path / "teacher")
    def exact_kl(student):               # full-vocabulary KL(student || teacher) on fixed sequences
        ids = torch.tensor([tok(f"User: What is {a}+{b}? Assistant: <think> {a}+{b}").input_ids
                            for a, b in [(12, 17), (31, 45), (60, 18), (29, 93)]])
        with torch.no_grad():
            s, t = (torch.log_softmax(m(ids).logits.float(), -1) for m in (student, teacher))
        return (s.exp() * (s - t)).sum(-1).mean().item()

    tr = Trainer(_cfg(tmp_path, "diff", tmp_path / "teacher", steps=10))
    before = _flat(tr.policy).clone()
    kl0 = exact_kl(tr.policy)
    rows = read_metrics(tr.train())
    kl = [r["distill/reverse_kl"] for r in rows]
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
