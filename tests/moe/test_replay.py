"""Routing replay (R3): record the sampler's experts in the hf engine, force them in training."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo.moe import apply_expert_parallel
from grpo.moe.replay import dense_routing, moe_gates, record_routing, replay_batch, replay_routing
from grpo.model.policy import build_batch
from grpo.rollout.base import SamplingParams
from grpo.rollout.hf import HFEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_deepseek import tiny_dsv3_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOK = ROOT / "data" / "tiny_model"


@pytest.fixture(scope="module")
def sampled():
    """A tiny DeepseekV3 policy and 2 prompts x 3 completions sampled with routing recorded."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TOK)
    model = tiny_dsv3_model(vocab=len(tok))
    model.generation_config.pad_token_id = tok.pad_token_id
    eng = HFEngine(model, tok)
    eng.record_routing = True
    torch.manual_seed(0)
    groups = eng.generate(["1+1=", "a much longer prompt than the first one:"], SamplingParams(n=3, max_new_tokens=8))
    comps = [c for g in groups for c in g.completions]
    batch = build_batch([g.prompt_ids for g in groups for _ in range(3)], [c.token_ids for c in comps], tok.pad_token_id)
    return model, groups, comps, batch


def _used_routing(model):
    """Capture the expert ids each plain DeepseekV3 block actually hands its experts."""
    used, handles = [], []
    for block, _ in moe_gates(model):
        handles.append(block.experts.register_forward_pre_hook(lambda m, args: used.append(args[1].clone())))
    return used, handles


def test_engine_records_expert_ids_per_token(sampled):
    model, groups, comps, _ = sampled
    for g in groups:
        for c in g.completions:
            assert c.routing.shape == (len(g.prompt_ids) + len(c.token_ids), 2, 3)  # 2 MoE layers, top-3
            assert (c.routing[: len(g.prompt_ids) + len(c.token_ids) - 1] >= 0).all()  # all fed tokens known
            assert (c.routing[-1] == -1).all()  # the last token is never fed back: unknown
            assert c.routing.max() < 8


def test_replay_forces_recorded_routing_and_measures_mismatch(sampled):
    model, _, comps, batch = sampled
    trainer = copy.deepcopy(model)  # the trainer one optimizer step later: routers moved
    torch.manual_seed(1)
    with torch.no_grad():
        for _, gate in moe_gates(trainer):
            gate.weight.add_(torch.randn_like(gate.weight) * 0.3)
    routing = [c.routing for c in comps]
    forced = dense_routing(batch.attention_mask, routing)
    known = (forced[..., 0] >= 0).all(-1)  # [N, T]
    P = batch.input_ids.shape[1] - batch.completion_ids.shape[1]
    for force in (False, True):
        used, handles = _used_routing(trainer)
        with replay_batch(trainer, batch, routing, force=force) as rep:
            out = trainer(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        for h in handles:
            h.remove()
        n, t = batch.input_ids.shape
        got = torch.stack([u.view(n, t, -1) for u in used], 2)  # [N, T, L, k] what the experts got
        same = (got.sort(-1).values == forced.sort(-1).values).all(-1).all(-1)  # [N, T]
        actual = 1 - same[known].float().mean().item()
        if force:
            assert actual == 0.0  # identical routing on every recorded token
            assert rep.mismatch() > 0  # and the metric still reports what replay prevented
            out.logits.float().square().mean().backward()
            assert all(g.weight.grad is not None and g.weight.grad.abs().sum() > 0 for _, g in moe_gates(trainer))
        else:
            without = rep.mismatch()
            assert 0 < without <= 1  # measured, not assumed
            comp_known = known.clone()
            comp_known[:, :P] = False
            assert without == pytest.approx(1 - same[comp_known].float().mean().item())


def test_replay_of_own_routing_changes_nothing(sampled):
    """Forcing the routing the model would choose anyway gives the same logits (same gate values)."""
    model, _, _, batch = sampled
    with record_routing(model) as rec, torch.no_grad():
        ref = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    n, t = batch.input_ids.shape
    forced = torch.stack([c[0].view(n, t, -1) for _, c in sorted(rec.calls.items())], 2)
    with replay_routing(model, forced) as rep, torch.no_grad():
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    torch.testing.assert_close(out, ref)
    assert rep.mismatch() == 0.0


def test_expert_parallel_block_replays_like_plain_block(sampled):
    model, _, comps, batch = sampled
    ep = apply_expert_parallel(copy.deepcopy(model), None, fp8=False, comm_dtype=None).eval()
    noisy = {}
    for m in (model, ep):
        torch.manual_seed(1)
        m2 = copy.deepcopy(m)
        with torch.no_grad():
            for _, gate in moe_gates(m2):
                gate.weight.add_(torch.randn_like(gate.weight) * 0.3)
        with replay_batch(m2, batch, [c.routing for c in comps]) as rep, torch.no_grad():
            noisy[m is ep] = (m2(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, rep.mismatch())
    torch.testing.assert_close(noisy[True][0], noisy[False][0], rtol=1e-5, atol=1e-5)
    assert noisy[True][1] == noisy[False][1] > 0


def test_replay_rejects_mismatched_shapes(sampled):
    model, _, comps, batch = sampled
    with pytest.raises(ValueError, match="routing replay: row 0"):
        dense_routing(batch.attention_mask, [comps[0].routing[:-1]] + [c.routing for c in comps[1:]])
    forced = dense_routing(batch.attention_mask, [c.routing for c in comps])
    with pytest.raises(ValueError, match="share_prompt"), replay_routing(model, forced[:1]), torch.no_grad():
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    with pytest.raises(ValueError, match="no MoE layer"), replay_routing(torch.nn.Linear(2, 2), forced):
        pass


def test_grpo_run_with_routing_replay(tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TOK)
    model = tiny_dsv3_model(vocab=len(tok))
    for k in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.config, k, getattr(tok, k))
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    (tmp_path / "rw.py").write_text("def digits(prompts, completions, **kw):\n"
                                    "    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]\n")
    sets = [f"model.path={tmp_path / 'm'}", f"output.dir={tmp_path}", "output.name=r3", "algorithm.routing_replay=true",
            "train.steps=2", "train.prompts_per_step=2", "rollout.n=4", "rollout.max_new_tokens=12",
            "rollout.engine=hf", "train.share_prompt=false", f"rewards=[{{name: '{tmp_path}/rw.py:digits'}}]",
            "algorithm.track_kl=false", "output.tensorboard=false", "data.num_samples=16", "train.threads=1"]  # fmt: skip
    cmd = [sys.executable, "-m", "grpo.cli", "train", str(ROOT / "recipes/tiny/r1_zero.yaml")]
    r = subprocess.run(cmd + [a for s in sets for a in ("--set", s)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    rows = [json.loads(x) for x in (tmp_path / "r3" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 <= row["moe/routing_mismatch"] <= 1 for row in rows)


def _family_blocks():
    from transformers import MixtralConfig, OlmoeConfig, Qwen2MoeConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
    from transformers.models.olmoe.modeling_olmoe import OlmoeSparseMoeBlock
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

    from test_deepseek import _blocks

    h = 64
    return {
        "qwen2_moe": lambda: Qwen2MoeSparseMoeBlock(Qwen2MoeConfig(hidden_size=h, num_experts=8, num_experts_per_tok=2,
                                                                   moe_intermediate_size=16, norm_topk_prob=False,
                                                                   shared_expert_intermediate_size=16)),
        "mixtral": lambda: MixtralSparseMoeBlock(MixtralConfig(hidden_size=h, num_local_experts=8, num_experts_per_tok=2,
                                                               intermediate_size=16)),
        "olmoe": lambda: OlmoeSparseMoeBlock(OlmoeConfig(hidden_size=h, num_experts=8, num_experts_per_tok=2,
                                                         intermediate_size=16, norm_topk_prob=True)),
        "deepseek_v2": _blocks()["deepseek_v2"],
    }  # fmt: skip


@pytest.mark.parametrize("name", ["qwen2_moe", "mixtral", "olmoe", "deepseek_v2"])
def test_replay_gate_values_match_each_family(name):
    """Forcing a block's own routing reproduces its output: gate_weights is each router's formula;
    forcing another routing changes it."""
    torch.manual_seed(0)
    block = _family_blocks()[name]()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.1)
    x = torch.randn(2, 5, block.gate.weight.shape[1])
    with record_routing(block) as rec, torch.no_grad():
        ref = block(x)
    own = rec.calls[0][0].view(2, 5, 1, -1)
    with replay_routing(block, own) as rep, torch.no_grad():
        torch.testing.assert_close(block(x), ref, rtol=1e-5, atol=1e-6)
    assert rep.mismatch() == 0.0
    other = (own + 1) % 8  # a bijection: still k distinct experts per token, none the same set
    with replay_routing(block, other) as rep, torch.no_grad():
        assert not torch.allclose(block(x), ref)
    assert rep.mismatch() == 1.0


def test_replay_config_errors_are_one_line():
    from grpo.config import load_config
    from grpo.moe.replay import replay_config_error

    class HFEngine:  # only the class name matters
        pass

    class VLLMEngine:
        pass

    recipe = ROOT / "recipes/tiny/r1_zero.yaml"
    on = ["algorithm.routing_replay=true", "train.share_prompt=false"]
    assert replay_config_error(load_config(recipe, on), HFEngine()) is None
    assert replay_config_error(load_config(recipe, ["algorithm.routing_replay=false"]), VLLMEngine()) is None
    for sets, engine, words in [(on, VLLMEngine(), "rollout.engine=hf"),
                                (on[:1] + ["train.share_prompt=true"], HFEngine(), "share_prompt"),
                                (on + ["algorithm.mu=2"], HFEngine(), "mu=1")]:  # fmt: skip
        msg = replay_config_error(load_config(recipe, sets), engine)
        assert words in msg and "\n" not in msg
