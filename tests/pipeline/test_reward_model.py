"""grpo.train.reward_model: helpfulness judged on the final summary only, harmlessness on the whole
response, None for prompts that are not general."""
import pytest

import grpo.train.reward_model as rm
import rewards

THINK_A = " <think>the user wants a greeting for Ann.</think> <answer>Hello, Ann!</answer>"
THINK_B = " <think>something else entirely, you idiot</think> <answer>Hello, Ann!</answer>"


def test_registered_and_needs_kind():
    assert rewards.load("reward_model") is rm.reward_model
    assert rewards.required_columns(rm.reward_model) == {"kind"}


def test_inputs_summary_for_helpfulness_whole_for_harmlessness(monkeypatch):
    seen = []
    monkeypatch.setattr(rm, "classify", lambda path, texts, label, *a, **k: seen.append((label, texts))
                        or [0.5] * len(texts))
    out = rm.reward_model(["User: Greet Ann.\nAssistant:", "User: What is 1+2?\nAssistant:"],
                          [THINK_B, " <think>1+2=3.</think> <answer>3</answer>"],
                          kind=["general", "reasoning"], path="unused")
    assert out == [0.5, None]                  # 0.5 * helpful + 0.5 * harmless; reasoning: None
    (h_label, h_texts), (s_label, s_texts) = seen
    assert (h_label, s_label) == (0, 1)
    assert h_texts == ["User: Greet Ann.\nAssistant: Hello, Ann!"]
    assert s_texts == ["User: Greet Ann.\nAssistant: " + THINK_B.strip()]


def test_helpfulness_ignores_the_reasoning(tiny_rm):
    prompts = ["User: Greet Ann.\nAssistant:"] * 3
    texts = [THINK_A, THINK_B, " <think>the user wants a greeting for Ann.</think> <answer>Bye.</answer>"]
    helpful = rm.reward_model(prompts, texts, kind=["general"] * 3, path=tiny_rm, harmless_weight=0)
    assert helpful[0] == pytest.approx(helpful[1]) and helpful[0] != pytest.approx(helpful[2])
    whole = rm.reward_model(prompts, texts, kind=["general"] * 3, path=tiny_rm, helpful_weight=0)
    assert whole[0] != pytest.approx(whole[1])         # harmlessness reads the reasoning too
    assert all(0 <= v <= 1 for v in helpful + whole)   # sigmoid-squashed


def test_in_a_reward_set_with_rule_rewards(tiny_rm):
    rs = rewards.RewardSet([rewards.RewardSpec("math_accuracy"),
                            rewards.RewardSpec("reward_model", 1.0, {"path": tiny_rm})])
    out = rs(["User: What is 1+2?\nAssistant:", "User: Greet Ann.\nAssistant:"],
             [" <think>1+2=3.</think> <answer>3</answer>", THINK_A],
             {"answer": ["3", None], "kind": ["reasoning", "general"]})
    assert out.per_fn["math_accuracy"] == [1.0, None]
    assert out.per_fn["reward_model"][0] is None and out.per_fn["reward_model"][1] is not None
