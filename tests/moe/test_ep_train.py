"""A tiny MoE policy trains GRPO steps with parallel.expert: 2 (two gloo processes, torchrun)."""
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
TOK = ROOT / "data" / "tiny_model"

REWARD = '''
def digits(prompts, completions, **kw):
    """Any signal with variance will do for a random-weight model: the share of digits."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]
'''


def _tiny_moe(path: Path) -> None:
    from transformers import AutoTokenizer, Qwen2MoeConfig, Qwen2MoeForCausalLM
    tok = AutoTokenizer.from_pretrained(TOK)
    torch.manual_seed(0)
    cfg = Qwen2MoeConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=128,
                         moe_intermediate_size=64, shared_expert_intermediate_size=64, num_experts=4,
                         num_experts_per_tok=2, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, max_position_embeddings=256, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    Qwen2MoeForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_expert_parallel_grpo_steps(tmp_path):
    model = tmp_path / "moe"
    _tiny_moe(model)
    (tmp_path / "rw.py").write_text(REWARD)
    sets = [f"model.path={model}", f"output.dir={tmp_path}", "output.name=ep", "parallel.expert=2",
            "train.steps=2", "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=16",
            f"rewards=[{{name: '{tmp_path}/rw.py:digits'}}]", "algorithm.track_kl=false",
            "output.tensorboard=false", "data.num_samples=32", "train.lr=1e-3", "train.threads=1"]
    cmd = ["torchrun", "--nproc-per-node", "2", "--master-port", "29533", "-m", "grpo.cli", "train",
           str(ROOT / "recipes/tiny/r1_zero.yaml")]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = (tmp_path / "ep" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    before = load_file(str(model / "model.safetensors"))
    after = load_file(str(tmp_path / "ep/checkpoints/step-2/model.safetensors"))
    experts = [k for k in before if ".experts." in k]
    assert experts and all(after[k].shape == before[k].shape for k in experts)   # unsharded on save
    assert any(not torch.equal(before[k], after[k]) for k in experts)             # experts trained
    assert any(not torch.equal(before[k], after[k]) for k in before if "self_attn" in k)
