"""A run directory has one writer, and no run is replaced or restarted by accident."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grpo.run.metrics import read_metrics
from grpo.run.rundir import RunError, RunLock, open_run

ROOT = Path(__file__).resolve().parents[2]
RECIPE = str(ROOT / "recipes" / "tiny" / "r1_zero.yaml")


def _cli(overrides, *extra, wait=True):
    args = [sys.executable, "-m", "grpo.cli", "train", RECIPE]
    for o in overrides:
        args += ["--set", o]
    args += list(extra)
    if not wait:   # SIGINT at its default: a shell's background job (CI) starts with it ignored
        return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _one_error_line(r) -> str:
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("grpo: error:")]
    assert len(lines) == 1, r.stderr[-2000:]
    return lines[0]


GATE = '''
import os, time

def gated(prompts, completions, **kw):
    """Holds the first run in its first reward call until the test opens the gate."""
    gate = os.path.join(os.path.dirname(__file__), "gate")
    deadline = time.time() + 120
    while not os.path.exists(gate) and time.time() < deadline:
        time.sleep(0.05)
    return [float(len(c) % 2) for c in completions]
'''


def test_second_concurrent_run_is_refused_and_the_first_finishes(tiny_overrides, tmp_path):
    (tmp_path / "gate_reward.py").write_text(GATE)     # no race with the first run's speed
    sets = tiny_overrides + ["train.steps=6", "reward_timeout_s=300",
                             f"rewards=[{{name: '{tmp_path / 'gate_reward.py'}:gated', weight: 1.0}}]"]
    first = _cli(sets, wait=False)
    lock = tmp_path / "t" / ".lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text()):
        assert first.poll() is None and time.time() < deadline, first.stderr.read() if first.poll() is not None else "no lock"
        time.sleep(0.05)
    try:
        line = _one_error_line(_cli(sets))
        assert "in use by another run" in line and f"pid {first.pid}" in line
        resume = _cli(sets, "--resume")          # also refused: one writer
        assert "in use by another run" in _one_error_line(resume)
        assert first.poll() is None              # still held in its first reward call
    finally:
        (tmp_path / "gate").touch()
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert [r["step"] for r in read_metrics(tmp_path / "t")] == [1, 2, 3, 4, 5, 6]
    assert not lock.exists()                                              # released at the end


def test_lock_between_two_processes_without_training(tmp_path):
    code = ("import sys, time; from grpo.run.rundir import RunLock; l = RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match=f"in use by another run \\(pid {holder.pid} "):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL leaves the lock file: it is stale (its pid is dead) and taken over with a note.
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == holder.pid
    notes = []
    lock = open_run(tmp_path, {}, log=notes.append)
    assert "stale lock" in notes[0] and str(holder.pid) in notes[0]
    lock.release()


def test_stale_lock_record_with_a_dead_pid(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"pid": 2 ** 22 + 12345, "host": os.uname().nodename}))
    lock = RunLock(tmp_path).acquire()
    assert lock.stale["pid"] == 2 ** 22 + 12345
    lock.release()
    (tmp_path / ".lock").write_text("")                                  # torn record: also stale
    RunLock(tmp_path).acquire().release()


def test_rerun_without_resume_is_refused_and_overwrite_replaces(tiny_overrides, tmp_path):
    assert _cli(tiny_overrides + ["train.steps=2"]).returncode == 0
    run = tmp_path / "t"
    before = (run / "metrics.jsonl").read_text()
    line = _one_error_line(_cli(tiny_overrides + ["train.steps=2"]))
    assert "already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert (run / "metrics.jsonl").read_text() == before                 # untouched
    r = _cli(tiny_overrides + ["train.steps=2", "train.seed=1"], "--overwrite")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--overwrite: replacing the run" in r.stderr
    assert [x["step"] for x in read_metrics(run)] == [1, 2]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-2"]
    assert "seed: 1" in (run / "config.yaml").read_text()


def test_overwrite_clears_old_checkpoints_so_resume_cannot_finish_the_old_run(tiny_overrides, tmp_path):
    assert _cli(tiny_overrides + ["train.steps=6", "output.keep_checkpoints=3"]).returncode == 0
    assert _cli(tiny_overrides + ["train.steps=2"], "--overwrite").returncode == 0
    assert sorted(p.name for p in (tmp_path / "t" / "checkpoints").iterdir()) == ["step-2"]


def test_resume_of_a_run_that_never_existed_is_refused(tiny_overrides, tmp_path):
    line = _one_error_line(_cli(tiny_overrides + ["output.name=nope"], "--resume"))
    assert "no run in" in line and "nope" in line
    assert not (tmp_path / "nope" / "metrics.jsonl").exists()
    line = _one_error_line(_cli(tiny_overrides, "--resume", "--overwrite"))
    assert "contradict" in line


def test_pipeline_style_auto_resume_starts_or_continues(tmp_path):
    lock = open_run(tmp_path / "new", {}, resume="auto")
    lock.release()
    with pytest.raises(RunError, match="no run in"):
        open_run(tmp_path / "new", {}, resume=True)


def _wait_for(path: Path, proc, timeout=120):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None and time.time() < deadline, "run ended early"
        time.sleep(0.05)


def test_ctrl_c_releases_the_lock_and_resume_continues(tiny_overrides, tmp_path):
    run = tmp_path / "t"
    # Far more steps than the run gets to (on an idle machine 4 steps end before a signal lands).
    p = _cli(tiny_overrides + ["train.steps=2000"], wait=False)
    _wait_for(run / "metrics.jsonl", p)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").read_text().strip():          # a first logged step
        assert p.poll() is None and time.time() < deadline, "run ended early"
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "interrupted; resume with --resume" in err, err[-2000:]
    assert not (run / ".lock").exists()
    n = len(read_metrics(run))
    assert 1 <= n < 2000
    r = _cli(tiny_overrides + [f"train.steps={n + 2}"], "--resume")   # train.steps may change on resume
    assert r.returncode == 0, r.stderr[-2000:]
    assert [x["step"] for x in read_metrics(run)] == list(range(1, n + 3))


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_at_step_0(tiny_overrides, tmp_path):
    run = tmp_path / "t"
    p = _cli(tiny_overrides + ["train.steps=4", "output.save_every=4"], wait=False)
    _wait_for(run / "metrics.jsonl", p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not list((run / "checkpoints").glob("step-*")) if (run / "checkpoints").exists() else True
    r = _cli(tiny_overrides + ["train.steps=4", "output.save_every=4"], "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "the run starts again from step 0" in r.stderr and "stale lock" in r.stderr
    assert [x["step"] for x in read_metrics(run)] == [1, 2, 3, 4]


def test_a_live_owner_without_flock_is_respected_and_a_reused_pid_is_not(tmp_path):
    host = os.uname().nodename
    (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": host}))           # flock not enforced
    with pytest.raises(RunError, match="in use by another run \\(pid 1 "):
        RunLock(tmp_path).acquire()
    (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": host, "start": "-1"}))   # pid 1 reused
    RunLock(tmp_path).acquire().release()


def test_run_directory_that_is_a_file_is_one_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunError, match="cannot use run directory"):
        RunLock(tmp_path / "f").acquire()
