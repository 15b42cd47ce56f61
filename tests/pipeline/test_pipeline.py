"""grpo.stages.pipeline: automatic wiring between stages, resume at a stage boundary, summary."""
import json

import pytest
import yaml

import grpo.stages.pipeline as P
from grpo.config import ConfigError
from grpo.config import SourceConfig


def _recipe(tmp_path, base) -> str:
    tree = {"name": "p", "output_dir": str(tmp_path / "runs"), "model": str(base),
            "eval": {"data": {"source": "builtin:arithmetic", "num_samples": 2}},
            "stages": [
                {"name": "s1", "type": "sft", "config": {"data": {"source": "cold.jsonl"}}},
                {"name": "r2", "type": "rl", "config": {"train": {"steps": 3}}},
                {"name": "rs", "type": "sample", "config": {}},
                {"name": "s3", "type": "sft", "config": {"data": {"source": "x.jsonl"}},
                 "data": "auto", "model": "@base", "eval": True},
                {"name": "r4", "type": "rl", "config": {},
                 "prompts": [{"source": "builtin:arithmetic", "num_samples": 2, "kind": "reasoning"}]}]}
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)


@pytest.fixture
def base(tmp_path):
    (tmp_path / "base").mkdir()
    return tmp_path / "base"


def test_wiring(tmp_path, base):
    cfg, base_dir = P.load_pipeline(_recipe(tmp_path, base), ["r4.train.steps=7", "eval.k=2"])
    s1, r2, rs, s3, r4 = P.plan(cfg, base_dir)
    run = tmp_path / "runs" / "p"
    assert s1.inputs["model"] == str(base)
    assert r2.inputs["model"] == s1.outputs["model"] == str(run / "s1" / "model")
    assert rs.inputs["model"] == r2.outputs["model"] == str(run / "r2" / "checkpoints" / "step-3")
    assert s3.inputs == {"model": str(base), "data": rs.outputs["data"]}       # @base, data: auto
    assert s3.cfg.data.source == rs.outputs["data"]
    assert r4.inputs["model"] == s3.outputs["model"]
    assert r4.cfg.data.source == r4.inputs["prompts"] and r4.cfg.train.steps == 7
    assert r4.outputs["model"].endswith("step-7") and cfg.eval.k == 2
    assert all(st.cfg.output.dir == str(run) and st.cfg.output.name == st.spec.name for st in (s1, r2, rs))


@pytest.mark.parametrize("stage, msg", [
    ({"name": "a", "type": "sft", "config": {"data": {"source": "x"}}, "data": "auto"}, "needs a sample stage"),
    ({"name": "a", "type": "rl", "config": {}, "model": "@nope"}, "names no earlier stage"),
    ({"name": "a", "type": "rl", "config": {"train": {"setps": 1}}}, "did you mean 'train.steps'"),
    ({"name": "a", "type": "rl", "model": "/no/such/model", "config": {}}, "not found"),
    ({"name": "a", "type": "rl"}, "give a 'recipe' file or an inline 'config'"),
])
def test_plan_errors_are_one_line(tmp_path, base, stage, msg):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"model": str(base), "stages": [stage]}))
    with pytest.raises(ConfigError, match=msg):
        P.plan(*P.load_pipeline(path))


def _fake(monkeypatch, calls):
    def runner(kind):
        def run(st):
            calls.append(st.spec.name)
            return {"ran": kind}
        return run
    for kind in P.RUNNERS:
        monkeypatch.setitem(P.RUNNERS, kind, runner(kind))

    def evaluator(model, ev):
        calls.append(f"eval:{model}")
        return {"pass@1": 0.5, "format_rate": 1.0, "n_prompts": 2, "k": ev.k}
    return evaluator


def test_resume_skips_finished_stages(tmp_path, base, monkeypatch):
    calls = []
    evaluator = _fake(monkeypatch, calls)
    cfg, base_dir = P.load_pipeline(_recipe(tmp_path, base))
    summary = P.run_pipeline(cfg, base_dir, evaluator=evaluator, log=lambda *a: None)
    run = tmp_path / "runs" / "p"
    assert [c for c in calls if not c.startswith("eval")] == ["s1", "r2", "rs", "s3", "r4"]
    assert len([c for c in calls if c.startswith("eval")]) == 5           # base + 4 model stages
    assert [s["name"] for s in summary["stages"]] == ["base", "s1", "r2", "rs", "s3", "r4"]
    assert json.loads((run / "summary.json").read_text())["stages"][2]["eval"]["pass@1"] == 0.5
    assert (run / "final_model").resolve() == (run / "r4" / "checkpoints" / "step-100").resolve()

    calls.clear()                                                          # all finished: nothing runs
    P.run_pipeline(cfg, base_dir, evaluator=evaluator, log=lambda *a: None)
    assert calls == []
    cfg_k2, _ = P.load_pipeline(_recipe(tmp_path, base), ["eval.k=2"])     # new eval settings:
    P.run_pipeline(cfg_k2, base_dir, evaluator=evaluator, log=lambda *a: None)
    assert len(calls) == 5 and all(c.startswith("eval:") for c in calls)  # re-evaluated, not re-run
    calls.clear()

    state = json.loads((run / "pipeline_state.json").read_text())        # killed after stage rs
    for name in ("s3", "r4"):
        del state["stages"][name]
    (run / "pipeline_state.json").write_text(json.dumps(state))
    P.run_pipeline(cfg_k2, base_dir, evaluator=evaluator, log=lambda *a: None)
    assert calls == ["s3", f"eval:{run / 's3' / 'model'}", "r4", f"eval:{run / 'r4' / 'checkpoints' / 'step-100'}"]


def test_changed_finished_stage_needs_from(tmp_path, base, monkeypatch):
    calls = []
    evaluator = _fake(monkeypatch, calls)
    cfg, base_dir = P.load_pipeline(_recipe(tmp_path, base))
    P.run_pipeline(cfg, base_dir, evaluator=evaluator, log=lambda *a: None)
    cfg, base_dir = P.load_pipeline(_recipe(tmp_path, base), ["rs.rollout.n=3"])
    with pytest.raises(ConfigError, match="--from rs"):
        P.run_pipeline(cfg, base_dir, evaluator=evaluator, log=lambda *a: None)
    calls.clear()
    P.run_pipeline(cfg, base_dir, from_stage="rs", evaluator=evaluator, log=lambda *a: None)
    assert [c for c in calls if not c.startswith("eval")] == ["rs", "s3", "r4"]


def test_write_prompts_mixes_kinds(tmp_path, write_jsonl):
    general = write_jsonl(tmp_path / "g.jsonl", [
        {"prompt": "Greet Ann.", "completion": "x", "split": "train"},
        {"prompt": "Greet Bo.", "completion": "y", "split": "test"}])
    kinds = P.write_prompts([SourceConfig(source="builtin:arithmetic", num_samples=3, kind="reasoning"),
                             SourceConfig(source=general, kind="general")], tmp_path / "p.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert kinds == {"reasoning": 3, "general": 1}                         # split: train only
    assert all(set(r) == {"prompt", "answer", "numbers", "kind", "question"} for r in rows)
    assert rows[-1]["answer"] is None and rows[-1]["question"] == "Greet Ann."
