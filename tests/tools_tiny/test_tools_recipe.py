"""recipes/tiny/tools.yaml as shipped (2 short steps): the multi-turn run finishes, logs the
tool metrics, and the sampled episodes' observations are exactly the calculator's answers
to the calls before them (the model's <calc> turns alternate with <result> observations)."""
import json
import re
from pathlib import Path

from grpo.config import load_config
from grpo.envs.calculator import CalcError, evaluate
from grpo.train.trainer import train

ROOT = Path(__file__).resolve().parents[2]


def test_the_tools_recipe_runs_and_its_episodes_follow_the_protocol(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)                           # the recipe names data/tiny_tools_model
    cfg = load_config(ROOT / "recipes" / "tiny" / "tools.yaml",
                      ["train.steps=2", "train.prompts_per_step=4", f"output.dir={tmp_path}",
                       "output.sample_every=1", "output.save_every=100", "output.tensorboard=false"])
    out = train(cfg, overwrite=True)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for r in rows:
        for k in ("tool/calls_per_completion", "tool/error_rate", "tool/time", "tool/turns",
                  "reward/math_accuracy/mean"):
            assert isinstance(r[k], (int, float)), k
    samples = [json.loads(x) for f in sorted((out / "samples").glob("*.jsonl"))
               for x in f.read_text().splitlines()]
    assert len(samples) == 2 * 4 * 8
    for s in samples:
        text = s["completion"]
        for expr, obs in re.findall(r"<calc>([^<]*)</calc>(<result>[^<]*</result>)?", text):
            try:
                want = f"<result>{evaluate(expr)}</result>"
            except CalcError:
                want = None
            assert obs and (obs == want or (want is None and "error:" in obs)), text
        assert text.count("<result>") == text.count("</calc>")   # an observation after every call
