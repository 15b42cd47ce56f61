"""The shipped easy word problems (data/word_problems) and the recipe that trains on them."""
import json
import sys
from pathlib import Path

import pytest

from grpo.config import ConfigError, load_config
from grpo.stages.eval import eval_engine_name, held_out_rows

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "cpu" / "smollm2_word_problems.yaml"


def _read(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def test_shipped_files_are_what_the_builder_writes(tmp_path):
    sys.path.insert(0, str(ROOT / "data"))
    from build_word_problems import main
    out = main(tmp_path)
    for name in ("train.jsonl", "test.jsonl"):
        assert (out / name).read_bytes() == (ROOT / "data" / "word_problems" / name).read_bytes(), name


def test_held_out_rows_are_the_test_file_and_share_no_question_with_training():
    cfg = load_config(RECIPE, ["data.num_samples=null"])
    train = _read(ROOT / "data" / "word_problems" / "train.jsonl")
    held = held_out_rows(cfg, 200)
    assert len(held) == 200
    assert not {r["question"] for r in train} & {r["prompt"] for r in held}
    # the gsm8k preset's extraction: the gold is the number after ####
    test = _read(ROOT / "data" / "word_problems" / "test.jsonl")[:200]
    assert [r["answer"] for r in held] == [t["answer"].split("#### ")[1] for t in test]


def test_eval_engine_is_the_recipes_unless_given():
    cfg = load_config(RECIPE, ["rollout.engine=hf"])
    assert eval_engine_name(cfg) == "hf" and eval_engine_name(load_config(RECIPE, ["rollout.engine=server"])) == "hf"
    with pytest.raises(ConfigError, match="hf or vllm"):
        eval_engine_name(cfg, "tgi")


def test_eval_with_vllm_absent_is_one_line():
    import importlib.util
    import subprocess
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    p = subprocess.run([sys.executable, "-m", "grpo.cli", "eval", str(RECIPE), "--engine", "vllm", "--n", "2"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "vllm is not installed" in p.stderr and "Traceback" not in p.stderr
