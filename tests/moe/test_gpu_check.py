"""bench/gpu_check.sh --dry-run: the GPU script's non-GPU parts run on CPU at toy sizes."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(ROOT / "bench/gpu_check.sh"), "--dry-run"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    log = (tmp_path / "gpu_check.log").read_text()
    assert r.returncode == 0, log[-3000:]
    assert "=== done: 0 step(s) failed" in log
    assert "payload 0.516x bf16" in log and "gemm speed-up grouped/loop" in log and "fp8+dedup" in log
    results = [line for line in log.splitlines() if line.startswith("RESULT")]
    assert len(results) == 2 and all("tokens/s=" in line and "step_time=" in line for line in results)
