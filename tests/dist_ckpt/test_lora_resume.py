"""LoRA through the DCP checkpoint (one process): only the trainable adapter goes into
dcp/ (frozen base weights are left out), the HF directory holds the adapter as before,
and a resume continues exactly."""
from pathlib import Path

import torch
from safetensors.torch import load_file

from grpo.config import load_config
from grpo.run.metrics import read_metrics
from grpo.train.trainer import train

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "tiny" / "r1_zero.yaml"
TIMING = ("time/", "tokens_per_s", "completions_per_s")


def _sets(tmp_path, name, steps):
    return [f"model.path={ROOT / 'data/tiny_model'}", f"output.dir={tmp_path}", f"output.name={name}",
            f"train.steps={steps}", "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=24",
            "output.save_every=2", "output.tensorboard=false", "data.num_samples=64", "train.threads=1",
            "model.lora={r: 4, alpha: 8}", "algorithm.beta=0.02", "train.lr=1e-3"]


def test_lora_resume_is_exact_and_saves_only_the_adapter(tmp_path):
    import torch.distributed.checkpoint as dcp
    train(load_config(RECIPE, _sets(tmp_path, "full", 4)))
    train(load_config(RECIPE, _sets(tmp_path, "part", 2)))
    train(load_config(RECIPE, _sets(tmp_path, "part", 4)), resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]  # noqa: E731
    a, b = strip(read_metrics(tmp_path / "full")), strip(read_metrics(tmp_path / "part"))
    assert [r["step"] for r in b] == [1, 2, 3, 4] and a == b
    wa = load_file(str(tmp_path / "full/checkpoints/step-4/adapter_model.safetensors"))
    wb = load_file(str(tmp_path / "part/checkpoints/step-4/adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in wa.items())
    md = dcp.FileSystemReader(str(tmp_path / "full/checkpoints/step-4/dcp")).read_metadata()
    model_keys = [k for k in md.state_dict_metadata if k.startswith("model.")]
    assert model_keys and all("lora_" in k for k in model_keys), model_keys[:5]
