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


def _tiny_dsv3(path: Path) -> None:
    """DeepseekV3ForCausalLM: MLA, dense first layer, 4 experts in 2 groups (1 per rank), top-2."""
    from transformers import AutoTokenizer, DeepseekV3Config, DeepseekV3ForCausalLM
    tok = AutoTokenizer.from_pretrained(TOK)
    torch.manual_seed(0)
    cfg = DeepseekV3Config(vocab_size=len(tok), hidden_size=128, intermediate_size=128, moe_intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, n_routed_experts=4,
                           num_experts_per_tok=2, n_shared_experts=1, n_group=2, topk_group=1,
                           first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16,
                           qk_rope_head_dim=16, v_head_dim=32, max_position_embeddings=256,
                           tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                           pad_token_id=tok.pad_token_id)
    DeepseekV3ForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)


def _run_ep(tmp_path, model: Path, port: int, extra=()):
    (tmp_path / "rw.py").write_text(REWARD)
    sets = [f"model.path={model}", f"output.dir={tmp_path}", "output.name=ep", "parallel.expert=2",
            "train.steps=2", "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=16",
            f"rewards=[{{name: '{tmp_path}/rw.py:digits'}}]", "algorithm.track_kl=false",
            "output.tensorboard=false", "data.num_samples=32", "train.lr=1e-3", "train.threads=1"]
    cmd = ["torchrun", "--nproc-per-node", "2", "--master-port", str(port), "-m", "grpo.cli", "train",
           str(ROOT / "recipes/tiny/r1_zero.yaml")]
    for s in [*sets, *extra]:
        cmd += ["--set", s]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = (tmp_path / "ep" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    return load_file(str(model / "model.safetensors")), load_file(str(tmp_path / "ep/checkpoints/step-2/model.safetensors"))


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_expert_parallel_grpo_steps(tmp_path):
    model = tmp_path / "moe"
    _tiny_moe(model)
    before, after = _run_ep(tmp_path, model, 29533)
    _check_trained(before, after)


def _check_trained(before, after):
    experts = [k for k in before if ".experts." in k]
    assert experts and all(after[k].shape == before[k].shape for k in experts)   # unsharded on save
    assert any(not torch.equal(before[k], after[k]) for k in experts)             # experts trained
    assert any(not torch.equal(before[k], after[k]) for k in before if "self_attn" in k)


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_deepseek_v3_expert_parallel_grpo_steps_with_native_balancing(tmp_path):
    model = tmp_path / "dsv3"
    _tiny_dsv3(model)
    before, after = _run_ep(tmp_path, model, 29534, ["parallel.expert_balance_rate=0.01",
                                                     "algorithm.routing_replay=true", "train.share_prompt=false"])
    import json
    rows = [json.loads(x) for x in (tmp_path / "ep" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= r["moe/routing_mismatch"] <= 1 for r in rows)  # replayed under expert parallelism
    _check_trained(before, after)
    bias = [k for k in before if k.endswith("gate.e_score_correction_bias")]
    assert bias and not any("balancer" in k for k in after)          # the model's own buffer, saved
    assert any(not torch.equal(before[k], after[k]) for k in bias)    # and stepped by the balancer
    assert all(after[k].abs().max() <= 2 * 0.01 + 1e-6 for k in bias)  # two steps of +-gamma
    from transformers import AutoModelForCausalLM   # restored: loading the checkpoint brings it back
    restored = AutoModelForCausalLM.from_pretrained(tmp_path / "ep/checkpoints/step-2").state_dict()
    assert all(torch.equal(restored[k], after[k]) for k in bias)
