"""Completion token ids are exactly what was sampled (up to and including a sampled end
token or the token completing a stop string) and the text is the decoding of exactly
those ids: the shared trimming logic on hostile fake outputs, the vLLM output adapter on
fake vLLM outputs, and the hf engine on the tiny model with pad == eos."""
import copy
from types import SimpleNamespace

import pytest
import torch

from grpo.rollout.base import (END_OF_TURN, SamplingParams, completion_from_vllm, end_token_ids,
                               finish_completion)

VOCAB = {1: "a", 2: "</answer>", 3: "b", 4: "</ans", 5: "wer>", 6: "</answer>\nUser:", 7: " x",
         8: "<|im_end|>", 9: "<eos>"}
SPECIAL = {8, 9}
dec = lambda ids: "".join(VOCAB[i] for i in ids if i not in SPECIAL)  # noqa: E731
EOS, EOT = 9, 8


@pytest.mark.parametrize("ids,end,stops,want", [
    ([1, 2, 9, 9, 9], [9], ["</answer>"], ([1, 2], "stop")),          # pad == eos after a stop string
    ([1, 9, 9], [9], [], ([1, 9], "stop")),                           # sampled EOS kept, padding dropped
    ([9, 9], [9], ["</answer>"], ([9], "stop")),                      # EOS as the first token
    ([1, 9, 2, 9], [9], ["</answer>"], ([1, 9], "stop")),             # EOS before the stop string
    ([1, 4, 5, 3, 9], [9], ["</answer>"], ([1, 4, 5], "stop")),       # stop string across tokens
    ([1, 6, 7, 9], [9], ["</answer>"], ([1, 6], "stop")),             # stop string inside a token
    ([1, 7, 2, 6], [9], ["User:", "</answer>"], ([1, 7, 2], "stop")), # the earliest of several stops
    ([1, 3, 1], [9], ["</answer>"], ([1, 3, 1], "length")),           # neither: cut at max_new_tokens
    ([], [9], ["</answer>"], ([], "length")),
    ([1, 8, 0 + 9, 9], [9, 8], [], ([1, 8], "stop")),                 # end-of-turn token ends it too
    ([1, 2, 8, 8], [9, 8], ["</answer>"], ([1, 2], "stop")),
])
def test_finish_completion_keeps_exactly_the_sampled_ids(ids, end, stops, want):
    got_ids, text, finish = finish_completion(ids, dec, end, stops)
    assert (got_ids, finish) == want
    assert text == dec(got_ids)                      # the text is the decoding of exactly these ids
    assert got_ids == ids[:len(got_ids)]             # a prefix of what was sampled, nothing appended


def test_finish_completion_stop_is_the_first_token_completing_it():
    ids = [1, 3] * 20 + [4, 5] + [1] * 10 + [9] * 5
    got, text, finish = finish_completion(ids, dec, [EOS], ["</answer>"])
    assert got == [1, 3] * 20 + [4, 5] and text.endswith("</answer>") and finish == "stop"
    assert "</answer>" not in dec(got[:-1])


def _vllm_out(token_ids, finish_reason, text="vllm's own text", flat=True):
    lps = [-0.1 * (i + 1) for i in range(len(token_ids))]
    logprobs = SimpleNamespace(logprobs=lps) if flat else [{t: SimpleNamespace(logprob=lp)}
                                                             for t, lp in zip(token_ids, lps)]
    return SimpleNamespace(token_ids=token_ids, finish_reason=finish_reason, text=text, logprobs=logprobs)


class _Tok:
    def decode(self, ids, skip_special_tokens=True):
        return dec(ids)


@pytest.mark.parametrize("flat", [True, False])
def test_vllm_output_adapter(flat):
    sp = SamplingParams(n=1, stop=["</answer>"])
    c = completion_from_vllm(_vllm_out([1, 6], "stop", "a</answer>", flat), sp, _Tok(), [EOS, EOT])
    assert c.token_ids == [1, 6] and c.text == "a</answer>\nUser:" and c.finish_reason == "stop"
    assert c.logprobs == pytest.approx([-0.1, -0.2])
    c = completion_from_vllm(_vllm_out([1, 3, EOT], "stop", "ab", flat), sp, _Tok(), [EOS, EOT])
    assert c.token_ids == [1, 3, EOT] and c.text == "ab" and len(c.logprobs) == 3
    c = completion_from_vllm(_vllm_out([1, 3, 1], "length", flat=flat), sp, _Tok(), [EOS])
    assert c.token_ids == [1, 3, 1] and c.text == "aba" and c.finish_reason == "length"


def test_end_token_ids_include_end_of_turn_specials(tiny_model_dir):
    from grpo.model.policy import load_tokenizer
    tok = load_tokenizer(str(tiny_model_dir))
    assert end_token_ids(tok) == [tok.eos_token_id]
    tok.add_special_tokens({"additional_special_tokens": ["<|im_end|>", "<|im_start|>"]})
    gen = SimpleNamespace(eos_token_id=[tok.eos_token_id, 77])
    ids = end_token_ids(tok, gen)
    assert ids[:2] == [tok.eos_token_id, 77]
    assert set(ids[2:]) == {tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|im_start|>")}
    assert end_token_ids(tok, gen, end_of_turn=False) == [tok.eos_token_id]
    assert "<|im_end|>" in END_OF_TURN


@pytest.mark.parametrize("pad_is_eos", [True, False])
def test_hf_engine_ids_are_what_was_sampled(tiny_model_dir, pad_is_eos):
    from grpo.model.policy import load_policy
    from grpo.rollout.hf import HFEngine
    tok, model = load_policy(str(tiny_model_dir), trainable=False)
    if pad_is_eos:                                     # as load_tokenizer does for Qwen, SmolLM2...
        tok = copy.deepcopy(tok)
        tok.pad_token = tok.eos_token
    torch.manual_seed(0)
    eng = HFEngine(model, tok, return_logprobs=True)
    stops = ["</answer>", "+"]
    sp = SamplingParams(n=8, max_new_tokens=24, stop=stops)
    groups = eng.generate(["User: 3+4?\nAssistant:", "User: 12+30?\nAssistant:"], sp)
    comps = [c for g in groups for c in g.completions]
    n_stop_string = 0
    for c in comps:
        assert c.text == tok.decode(c.token_ids, skip_special_tokens=True)
        assert len(c.logprobs) == len(c.token_ids)
        assert tok.eos_token_id not in c.token_ids[:-1]
        body = c.token_ids[:-1] if c.token_ids and c.token_ids[-1] == tok.eos_token_id else c.token_ids
        head = tok.decode(body[:-1], skip_special_tokens=True)
        assert not any(s in head for s in stops)       # nothing sampled after the first stop string
        if c.token_ids and c.token_ids[-1] == tok.eos_token_id:   # a real EOS: no stop string before it
            assert not any(s in tok.decode(body, skip_special_tokens=True) for s in stops)
        elif c.finish_reason == "stop":
            n_stop_string += 1
            assert any(s in c.text for s in stops)
        else:
            assert len(c.token_ids) == sp.max_new_tokens
    assert n_stop_string > 0                            # the case the bug was in did happen


def test_special_token_stop_strings_become_end_ids(tiny_model_dir):
    from grpo.model.policy import load_tokenizer
    tok = load_tokenizer(str(tiny_model_dir))
    tok.add_special_tokens({"additional_special_tokens": ["<tool_call>"]})
    tid = tok.convert_tokens_to_ids("<tool_call>")
    assert tid in end_token_ids(tok, stops=["<tool_call>", "</answer>"])
    assert tid not in end_token_ids(tok, stops=["</answer>"])
    # decoded text never shows a special token, so only its id can stop a completion
    assert finish_completion([5, tid, 6], lambda x: tok.decode(x, skip_special_tokens=True),
                             end_token_ids(tok, stops=["<tool_call>"]), ["<tool_call>"])[0] == [5, tid]


def test_empty_stop_strings_are_ignored(tiny_model_dir):
    from grpo.model.policy import load_policy
    from grpo.rollout.hf import HFEngine
    tok, model = load_policy(str(tiny_model_dir), trainable=False)
    groups = HFEngine(model, tok).generate(["User: 1+1?\nAssistant:"], SamplingParams(n=2, max_new_tokens=8, stop=[""]))
    for c in groups[0].completions:
        assert c.text == tok.decode(c.token_ids, skip_special_tokens=True)
        assert c.finish_reason == "stop" or len(c.token_ids) == 8
