"""grpo.stages.sft: completion-only loss, weights change, loss goes down, a loadable model comes out."""
import pytest
import torch

from grpo.config import ConfigError
from grpo.data import DataError
from grpo.stages.sft import collate, load_sft_config, sft, tokenize_example

ROWS = [{"prompt": f"What is {a}+{b}?", "completion": f" <think>{a}+{b}={a + b}.</think> <answer>{a + b}</answer>"}
        for a, b in [(12, 5), (30, 7), (41, 3), (25, 9), (18, 2), (33, 6), (27, 4), (50, 8)]]


def _cfg(tmp_path, model, write_jsonl, **train):
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    t = {"steps": 3, "batch_size": 8, "micro_batch_size": 4, "lr": 1e-2, "threads": 1, **train}
    return load_sft_config(None, tree={"model": {"path": model}, "data": {"source": data},
                                       "template": "r1_zero_tiny", "train": t,
                                       "output": {"dir": str(tmp_path), "name": "s"}})


def test_sft_lowers_loss_and_changes_weights(tmp_path, tiny_lm, write_jsonl):
    from transformers import AutoModelForCausalLM
    res = sft(_cfg(tmp_path, tiny_lm, write_jsonl), progress=False)
    assert res["loss_after"] < res["loss_before"]
    before = AutoModelForCausalLM.from_pretrained(tiny_lm).state_dict()
    after = AutoModelForCausalLM.from_pretrained(res["model"]).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "s" / "metrics.jsonl").read_text().count("\n") == 3
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "s").iterdir())


def test_loss_is_on_completion_tokens_only(tiny_lm):
    from grpo.model.policy import load_tokenizer
    tok = load_tokenizer(tiny_lm)
    ids, n_p = tokenize_example(tok, "User: Q\nAssistant:", " <answer>1</answer>", 64)
    _, attn, labels = collate([(ids, n_p), (ids[:n_p + 1], n_p)], tok.pad_token_id)
    assert (labels[0, :n_p] == -100).all() and (labels[0, n_p:] != -100).all()
    assert labels[0, -1] == tok.eos_token_id                  # the model learns to stop
    assert (labels[1, n_p + 1:] == -100).all() and attn[1].sum() == n_p + 1


def test_bad_input_is_one_line(tmp_path, tiny_lm, write_jsonl):
    cfg = _cfg(tmp_path, tiny_lm, write_jsonl)
    write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "answer": "1"}])
    with pytest.raises(DataError, match="'prompt' and 'completion'"):
        sft(cfg, progress=False)
    with pytest.raises(ConfigError, match="did you mean 'train.steps'"):
        load_sft_config(None, ["train.setps=1"], tree={"data": {"source": "x.jsonl"}})
