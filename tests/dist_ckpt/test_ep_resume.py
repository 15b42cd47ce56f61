"""parallel.expert=2 (two gloo processes): expert weights, saved per expert-parallel rank
(``NAME@epK/E`` in dcp/), resume exactly: 2 steps + --resume to 4 == 4 steps."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "moe"))
from test_ep_train import REWARD, _tiny_moe  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_torchrun_resume import ROOT, RECIPE, TIMING, _env, _errors  # noqa: E402


def _run(tmp_path, name: str, steps: int, *extra):
    sets = [f"model.path={tmp_path / 'moe'}", f"output.dir={tmp_path}", f"output.name={name}", "parallel.expert=2",
            f"train.steps={steps}", "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=16",
            f"rewards=[{{name: '{tmp_path}/rw.py:digits'}}]", "algorithm.track_kl=false", "output.save_every=2",
            "output.tensorboard=false", "data.num_samples=32", "train.lr=1e-3", "train.threads=1"]
    cmd = ["torchrun", "--standalone", "--nproc-per-node", "2", "-m", "grpo.cli", "train", str(RECIPE)]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd + list(extra), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, _errors(r.stderr)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_expert_parallel_resume_is_exact(tmp_path):
    _tiny_moe(tmp_path / "moe")
    (tmp_path / "rw.py").write_text(REWARD)
    _run(tmp_path, "full", 4)
    _run(tmp_path, "part", 2)
    _run(tmp_path, "part", 4, "--resume")
    rows = lambda n: [{k: v for k, v in json.loads(ln).items() if not k.startswith(TIMING)}  # noqa: E731
                      for ln in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
    assert rows("full") == rows("part") and len(rows("part")) == 4
    a = load_file(str(tmp_path / "full/checkpoints/step-4/model.safetensors"))
    b = load_file(str(tmp_path / "part/checkpoints/step-4/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    import torch.distributed.checkpoint as dcp
    md = dcp.FileSystemReader(str(tmp_path / "full/checkpoints/step-4/dcp")).read_metadata()
    assert any(k.endswith("@ep1/2") for k in md.state_dict_metadata)
