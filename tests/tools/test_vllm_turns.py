"""The vLLM engine's per-turn entry point (generate_ids: one TokensPrompt request per
episode and turn, ids as they are), with fake vLLM outputs: vllm is not installed here."""
import contextlib
import sys
from types import ModuleType, SimpleNamespace

import pytest
from tools_fixtures import tiny_dir, tiny_tok  # noqa: F401

from grpo.envs.calculator import Calculator
from grpo.rollout.base import SamplingParams
from grpo.rollout.multiturn import MultiTurnEngine, with_rows
from grpo.rollout.vllm import VLLMEngine

TURNS = ["<calc>2+2</calc>", "<answer>4</answer>"]


class FakeLLM:
    def __init__(self, tok):
        self.tok, self.requests = tok, []

    def generate(self, prompts, params, use_tqdm=False):
        self.requests.append((prompts, params))
        ids = self.tok(TURNS[min(len(self.requests) - 1, 1)], add_special_tokens=False).input_ids
        ids = ids + [self.tok.eos_token_id]                # vLLM keeps the EOS (or stop) token
        out = lambda: SimpleNamespace(token_ids=ids, finish_reason="stop",  # noqa: E731
                                      logprobs=SimpleNamespace(logprobs=[-0.1] * len(ids)))
        return [SimpleNamespace(outputs=[out() for _ in range(params.n)]) for _ in prompts]


@pytest.fixture
def engine(tiny_tok, monkeypatch):
    vllm, inputs = ModuleType("vllm"), ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    eng = VLLMEngine.__new__(VLLMEngine)
    eng.tok, eng._gen_config, eng._threads = tiny_tok, None, contextlib.nullcontext()
    eng._vllm = SimpleNamespace(SamplingParams=lambda **kw: SimpleNamespace(**kw))
    eng.llm = FakeLLM(tiny_tok)
    eng.wake = lambda: None
    return eng


def test_vllm_turns_continue_from_exact_ids(engine, tiny_tok):
    mt = MultiTurnEngine(engine, Calculator, tiny_tok, max_turns=4, max_total_tokens=100)
    groups = mt.generate(with_rows(["2+2="], [{"prompt": "2+2="}]), SamplingParams(n=3, max_new_tokens=40))
    enc = lambda s: tiny_tok(s, add_special_tokens=False).input_ids  # noqa: E731
    (first, p1), (second, p2) = engine.llm.requests
    assert p1.n == 3 and "</calc>" in p1.stop and p1.max_tokens == 40
    prompt_ids = tiny_tok("2+2=").input_ids
    assert first == [{"prompt_token_ids": prompt_ids}]
    assert p2.n == 1 and p2.max_tokens == 40
    assert second == [{"prompt_token_ids": prompt_ids + enc(TURNS[0]) + enc("<result>4</result>")}] * 3
    for c in groups[0].completions:          # turn 1 cut at its stop string, turn 2 ends with EOS
        assert c.token_ids == enc(TURNS[0]) + enc("<result>4</result>") + enc(TURNS[1]) + [tiny_tok.eos_token_id]
        assert c.text == TURNS[0] + "<result>4</result>" + TURNS[1]
        assert c.logprobs == [-0.1 if m else 0.0 for m in c.loss_mask]
