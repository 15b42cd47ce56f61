"""grpo.stages.sample: the filters as pure functions, and a run on scripted completions that keeps
only correct, readable samples and counts every rejection reason."""
import json

import pytest

from grpo.rollout.base import Completion, Group
from grpo.stages.sample import (FilterConfig, content_failures, has_code_block, is_mixed_language,
                         load_sample_config, longest_paragraph, sample, select)

GOOD = " <think>12+5=17.</think> <answer>17</answer>"
SCRIPT = {  # completion -> the reason it must be rejected for (None: kept)
    GOOD: None,
    " <think>12+5=18.</think> <answer>18</answer>": "incorrect",
    " <think>12+5=17.</think> The answer is 17.": "format",
    " <think>12+5=17. 所以答案是十七 so it is</think> <answer>17</answer>": "mixed_language",
    " <think>" + "12+5 is seventeen, " * 12 + "</think> <answer>17</answer>": "long_paragraph",
    " <think>```python\nprint(12+5)\n```</think> <answer>17</answer>": "code_block",
}


def test_filters_are_pure_functions():
    assert has_code_block("a ```x``` b") and not has_code_block("a `x` b")
    assert longest_paragraph("one\n\nthree three\n\nx") == len("three three")
    assert longest_paragraph("") == 0
    assert is_mixed_language("<think>计算 the sum of it</think>")
    assert not is_mixed_language("<think>12+5=17.</think>")            # no words: not mixed
    assert not is_mixed_language("<think>计算总和</think>", target="zh")
    f = FilterConfig(max_paragraph_chars=10)
    assert content_failures("<think>计算 ```x``` and more words</think>", f) == \
        ["mixed_language", "long_paragraph", "code_block"]
    assert content_failures("<think>ok</think>", FilterConfig(language=None, reject_code_blocks=False,
                                                                max_paragraph_chars=None)) == []


def test_select_reasons_in_order():
    texts = ["a", "b", "a", "c", "d"]
    kept, reasons, _ = select(texts, [True, False, True, True, True], [True, True, True, False, True],
                              FilterConfig(max_per_prompt=1))
    assert kept == [0]
    assert reasons == [None, "incorrect", "duplicate", "format", "per_prompt_cap"]


class ScriptedEngine:
    """Every prompt gets the scripted completions, plus a duplicate of the good one."""
    def generate(self, prompts, sp):
        texts = list(SCRIPT) + [GOOD]
        assert sp.n == len(texts)
        return [Group(p, [1], [Completion(t, [1] * len(t), None, "stop") for t in texts]) for p in prompts]


def test_sample_keeps_only_correct_and_counts_reasons(tmp_path, monkeypatch, write_jsonl):
    import grpo.model.policy
    import grpo.rollout
    monkeypatch.setattr(grpo.model.policy, "load_policy", lambda *a, **k: (None, None))
    monkeypatch.setattr(grpo.rollout, "make_engine", lambda *a, **k: ScriptedEngine())
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "What is 12+5?", "answer": "17"}] * 3)
    general = write_jsonl(tmp_path / "g.jsonl", [{"prompt": "Greet Ann.", "completion": " Hello, Ann!"}])
    cfg = load_sample_config(None, tree={
        "model": {"path": "unused"}, "data": {"source": prompts, "template": "r1_zero_tiny"},
        "rollout": {"n": len(SCRIPT) + 1, "engine": "hf"},
        "filters": {"max_paragraph_chars": 200}, "mix": {"source": general, "ratio": 0.5},
        "output": {"dir": str(tmp_path), "name": "rs"}})
    stats = sample(cfg, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "rs" / "data.jsonl").read_text().splitlines()]
    reasoning = [r for r in rows if r["kind"] == "reasoning"]
    assert [r["completion"] for r in reasoning] == [GOOD] * 3 and all(r["answer"] == "17" for r in reasoning)
    assert stats["kept"] == 3 and stats["samples"] == 3 * (len(SCRIPT) + 1)
    assert stats["generated_tokens"] == 3 * sum(len(t) for t in [*SCRIPT, GOOD])   # rejected ones too
    want = {c: 0 for c in stats["rejected"]}
    for reason in SCRIPT.values():
        if reason:
            want[reason] += 3
    want["duplicate"] = 3
    assert stats["rejected"] == want
    assert stats["failed_checks"]["mixed_language"] == 3
    assert stats["mixed_in"]["rows"] == 3 and stats["dataset_rows"] == 6      # ratio 0.5
    assert json.loads((tmp_path / "rs" / "stats.json").read_text())["rejected"] == want


def test_mix_needs_completions(tmp_path, monkeypatch, write_jsonl):
    import grpo.model.policy
    import grpo.rollout
    from grpo.config import ConfigError
    monkeypatch.setattr(grpo.model.policy, "load_policy", lambda *a, **k: (None, None))
    monkeypatch.setattr(grpo.rollout, "make_engine", lambda *a, **k: ScriptedEngine())
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "What is 12+5?", "answer": "17"}])
    general = write_jsonl(tmp_path / "g.jsonl", [{"prompt": "Greet Ann."}])
    cfg = load_sample_config(None, tree={
        "data": {"source": prompts}, "rollout": {"n": len(SCRIPT) + 1},
        "mix": {"source": general}, "output": {"dir": str(tmp_path)}})
    with pytest.raises(ConfigError, match="'completion' column"):
        sample(cfg, progress=False)
