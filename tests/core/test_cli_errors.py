"""Bad input gets one clear line on stderr, exit status 2, and no traceback."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = str(ROOT / "recipes" / "tiny" / "r1_zero.yaml")


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "grpo.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args,needle", [
    (["train", "recipes/missing.yaml"], "recipe not found"),
    (["train", RECIPE, "--set", "train.setps=3"], "did you mean 'train.steps'"),
    (["train", RECIPE, "--set", "rewards=[{name: math_acuracy}]"], "did you mean 'math_accuracy'"),
    (["train", RECIPE, "--set", "rewards=[{name: countdown}]"], "needs dataset column"),
    (["train", RECIPE, "--set", "model.path=./models/does-not-exist"], "model path does not exist"),
    (["train", RECIPE, "--set", "model.path=/abs/models/missing"], "model path does not exist"),
    (["train", RECIPE, "--set", "model.path=nobody/no-such-model"], "model path does not exist"),
    (["train", RECIPE, "--set", "data.source=missing.jsonl"], "data file not found"),
])
def test_user_error_is_one_line(args, needle, tmp_path):
    r = run_cli(*args, "--set", f"output.dir={tmp_path}") if args[0] == "train" and len(args) > 2 else run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0] and lines[0].startswith("grpo: error:")


def test_fp8_without_gpu_is_a_clear_error(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    r = run_cli("train", RECIPE, "--set", "model.precision=fp8", "--set", f"output.dir={tmp_path}")
    assert r.returncode == 2 and "needs a CUDA GPU" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- issue 15: items 5-8, each one line
BAD_REWARDS = '''
import sys
def exits(prompts, completions, **kw):
    sys.exit(3)
def raises(prompts, completions, **kw):
    raise ZeroDivisionError("my reward is broken")
def wrong(completions):
    return [1.0] * len(completions)
'''


def _files(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "latin1.yaml").write_bytes(b"model:\n  path: data/tiny_model\n# caf\xe9\ndata:\n  source: builtin:arithmetic\n")
    (d / "bad.yaml").write_text("model:\n  path: data/tiny_model\ndata:\n  source: [builtin\n")
    (d / "empty.yaml").write_text("")
    (d / "nodata.yaml").write_text("model:\n  path: data/tiny_model\n")
    (d / "latin1.jsonl").write_bytes(b'{"prompt": "1+1", "answer": "2"}\n{"prompt": "caf\xe9", "answer": "2"}\n')
    (d / "broken.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n\n{"prompt": "2+2" "answer": "4"}\n')
    (d / "noanswer.jsonl").write_text("".join(json.dumps({"prompt": f"{i}+1", **({"answer": str(i + 1)} if i != 5 else {})}) + "\n" for i in range(8)))
    (d / "intprompt.jsonl").write_text("".join(json.dumps({"prompt": i if i == 3 else f"{i}+1", "answer": "1"}) + "\n" for i in range(8)))
    (d / "long.jsonl").write_text("".join(json.dumps({"prompt": "1+" * 1200 + "1", "answer": "1"}) + "\n" for i in range(8)))
    (d / "dir.jsonl").mkdir()
    (d / "bad_rewards.py").write_text(BAD_REWARDS)
    return d


TINY = ["--set", "train.steps=4", "--set", "train.prompts_per_step=2", "--set", "rollout.n=2",
        "--set", "rollout.max_new_tokens=16", "--set", "output.tensorboard=false", "--set", "data.num_samples=8"]


@pytest.mark.parametrize("case,needle", [
    ("latin1_recipe", "not UTF-8 text (byte 0xe9"),
    ("yaml_error", "invalid YAML: line 5, column 1: while parsing a flow sequence"),
    ("empty_recipe", "a recipe must name a model and data; missing model.path and data.source"),
    ("no_data", "missing data.source"),
    ("latin1_data", "not UTF-8 text (byte 0xe9 on line 2)"),
    ("broken_jsonl", "broken.jsonl line 3: invalid JSON"),
    ("answer_missing", "row 6 (1-based): reward 'math_accuracy' needs dataset column 'answer'"),
    ("int_prompt", "row 4 (1-based): 'prompt' must be a string or a list of chat messages"),
    ("dir_jsonl", "is a directory, not a data file"),
    ("long_prompts", "prompts are longer than the 496 tokens the model's context allows"),
    ("wrong_signature", "cannot be called as fn(prompts, completions, **columns)"),
    ("always_raises", "failed on every sample for 2 steps in a row; first error: ZeroDivisionError: my reward is broken"),
    ("sys_exit", "first error: RuntimeError: reward called SystemExit(3)"),
    ("eval_k0", "--k 0: need at least 1"),
    ("eval_n0", "--n 0: need at least 1"),
    ("eval_n_negative", "--n -2: need at least 1"),
    ("bad_set_yaml", "--set train.steps: invalid YAML value"),
    ("bad_weight", "invalid value for 'rewards.0.weight'"),
    ("lr_overflow", "invalid value for 'train.lr': Input should be less than or equal to 1000"),
])
def test_bad_input_is_one_line(case, needle, tmp_path):
    d = _files(tmp_path)
    out = ["--set", f"output.dir={tmp_path / 'runs'}"]
    rw = lambda fn: ["--set", f"rewards=[{{name: '{d}/bad_rewards.py:{fn}'}}]", "--set", "reward_max_failed_steps=2"]  # noqa: E731
    data = lambda name: ["--set", f"data.source={d / name}"]  # noqa: E731
    args = {
        "latin1_recipe": ["train", str(d / "latin1.yaml")],
        "yaml_error": ["train", str(d / "bad.yaml")],
        "empty_recipe": ["train", str(d / "empty.yaml")],
        "no_data": ["train", str(d / "nodata.yaml")],
        "latin1_data": ["train", RECIPE, *data("latin1.jsonl"), *out],
        "broken_jsonl": ["train", RECIPE, *data("broken.jsonl"), *out],
        "answer_missing": ["train", RECIPE, *data("noanswer.jsonl"), *out],
        "int_prompt": ["train", RECIPE, *data("intprompt.jsonl"), *out],
        "dir_jsonl": ["train", RECIPE, *data("dir.jsonl"), *out],
        "long_prompts": ["train", RECIPE, *data("long.jsonl"), *TINY, *out],
        "wrong_signature": ["train", RECIPE, *rw("wrong"), *TINY, *out],
        "always_raises": ["train", RECIPE, *rw("raises"), *TINY, *out],
        "sys_exit": ["train", RECIPE, *rw("exits"), *TINY, *out],
        "eval_k0": ["eval", RECIPE, "--k", "0"],
        "eval_n0": ["eval", RECIPE, "--n", "0"],
        "eval_n_negative": ["eval", RECIPE, "--n", "-2"],
        "bad_set_yaml": ["train", RECIPE, "--set", "train.steps=[", *out],
        "bad_weight": ["train", RECIPE, "--set", "rewards=[{name: math_accuracy, weight: .inf}]", *out],
        "lr_overflow": ["train", RECIPE, "--set", "train.lr=1e39", "--set", "train.warmup_steps=0", *TINY, *out],
    }[case]
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("grpo: error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    assert needle in errors[0], errors[0]


def test_failing_reward_is_shown_with_its_sample_once_per_step(tmp_path):
    d = _files(tmp_path)
    r = run_cli("train", RECIPE, "--set", f"rewards=[{{name: math_accuracy}}, {{name: '{d}/bad_rewards.py:raises'}}]",
                *TINY, "--set", "train.steps=2", "--set", f"output.dir={tmp_path / 'runs'}")
    assert r.returncode == 0, r.stderr[-3000:]           # another reward still scores: not a broken run
    warns = [ln for ln in r.stderr.splitlines() if "reward 'raises' failed" in ln]
    assert len(warns) == 2 and "step 1:" in warns[0] and "ZeroDivisionError: my reward is broken" in warns[0]
    assert "(sample 0:" in warns[0]
    logged = (tmp_path / "runs" / "tiny_r1_zero" / "reward_errors.jsonl").read_text().splitlines()
    assert len(logged) == 2 and json.loads(logged[0])["error"] == "ZeroDivisionError: my reward is broken"
