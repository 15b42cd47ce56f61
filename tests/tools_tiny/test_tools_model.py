"""The shipped tool-using tiny model (data/tiny_tools_model, built by
``data/build_tiny_model.py --tools``): it calls the calculator at about the planted
rate, its calls are well-formed, and the calculator path is the accurate one, so RL
has something to raise. Checked with plain ``generate`` stopping at ``</calc>`` and a
hand-written observation, independently of grpo's multi-turn rollout."""
import random
import re
from pathlib import Path

import pytest
import torch

from grpo.data import apply_template
from grpo.data.tasks import TOOL_TAGS, arithmetic_problem, calculator_trace

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "data" / "tiny_tools_model"
N = 256                 # samples per check: the planted rate 0.08 +- 3 sd is 0.03-0.13


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(MODEL)
    return AutoModelForCausalLM.from_pretrained(MODEL).eval(), tok


def _generate(model, tok, ids: list[list[int]], max_new: int) -> list[list[int]]:
    """Sample one continuation per id list (temperature 1), stopping at </s> or </calc>."""
    stop = [tok.eos_token_id, tok.convert_tokens_to_ids("</calc>")]
    width = max(map(len, ids))
    x = torch.tensor([[tok.pad_token_id] * (width - len(i)) + i for i in ids])  # left pad
    mask = (torch.arange(width) >= torch.tensor([[width - len(i)] for i in ids])).long()
    with torch.no_grad():
        out = model.generate(input_ids=x, attention_mask=mask, do_sample=True, temperature=1.0,
                             top_k=0, top_p=1.0, max_new_tokens=max_new, eos_token_id=stop,
                             pad_token_id=tok.pad_token_id)
    new = out[:, width:].tolist()
    return [row[:next((k + 1 for k, t in enumerate(row) if t in stop), len(row))] for row in new]


def _calc(expr: str) -> str:
    """The calculator's observation, for these tests (sums and products of integers)."""
    ok = re.fullmatch(r"[0-9]+([+*-][0-9]+)*", expr) is not None
    return f"<result>{eval(expr) if ok else 'error: bad expression'}</result>"  # noqa: S307


def _episodes(model, tok, problems: list[dict], prefix: str = "", max_turns: int = 6):
    """Model turns that stop at </calc> or </s>; after a call, the observation as the
    calculator writes it (<result>VALUE</result>) and another turn. ``prefix``: text forced
    after the prompt (e.g. " <think><calc>": the tool path). Returns each episode's text
    (prefix included) and its calls' expressions."""
    ids = [tok(apply_template("r1_zero_tiny", p["prompt"]) + prefix).input_ids for p in problems]
    texts, calls = [prefix] * len(problems), [[] for _ in problems]
    active = list(range(len(problems)))
    for _ in range(max_turns):
        if not active:
            break
        turns = _generate(model, tok, [ids[i] for i in active], 48)
        still = []
        for i, turn in zip(active, turns):
            ids[i] = ids[i] + turn
            texts[i] += tok.decode(turn)
            if texts[i].endswith("</calc>"):
                m = re.search(r"<calc>([^<]*)</calc>$", texts[i])
                calls[i].append(m.group(1) if m else None)
                obs = _calc(m.group(1) if m else "")
                ids[i] += tok(obs, add_special_tokens=False).input_ids
                texts[i] += obs
                still.append(i)
        active = still
    return texts, calls


def _answer(text: str) -> str | None:
    m = re.search(r"<answer>(.*?)</answer>", text)
    return m.group(1).strip() if m else None


def test_tokenizer_has_the_tool_tags_as_single_tokens(tiny):
    _, tok = tiny
    for tag in TOOL_TAGS:
        assert len(tok(tag, add_special_tokens=False).input_ids) == 1, tag
    trace = calculator_trace({"numbers": [3, 7, 2]}, random.Random(0), untagged_rate=0.0)
    ids = tok(trace, add_special_tokens=False).input_ids
    assert tok.decode(ids) == trace           # round trip: what the env appends is re-readable


def _planted_calls(numbers: list[int]) -> list[str]:
    """A call per step, "running total + next term", the total from the last result."""
    acc, out = numbers[0], []
    for x in numbers[1:]:
        out.append(f"{acc}+{x}")
        acc += x
    return out


def test_calls_the_calculator_at_about_the_planted_rate(tiny):
    model, tok = tiny
    torch.manual_seed(1)
    rng = random.Random(1)
    problems = [arithmetic_problem(rng) for _ in range(N)]
    texts, calls = _episodes(model, tok, problems)
    rate = sum(map(bool, calls)) / N
    assert 0.03 <= rate <= 0.16, f"tool-using episodes {rate:.3f}, planted 0.08"
    made = [c for cs in calls for c in cs]
    malformed = sum(c is None for c in made)        # a </calc> with no <calc>: an error turn
    assert made and malformed <= 0.25 * len(made), f"{malformed}/{len(made)} calls malformed"


def test_the_calculator_path_is_the_accurate_one(tiny):
    """RL's room, on the recipe's prompts (sums of 3-4 terms): forced onto the tool path
    (" <think><calc>"), the model makes the planted calls and answers right far more
    often than its free samples that add by hand (which slip). Measured over seeds 3-6:
    planted calls exactly 0.73-0.80, right 0.69-0.75 vs 0.25-0.29 by hand (the tool
    path's misses are mostly a wrong term fetched from the prompt, a skill the 1M
    model has imperfectly)."""
    model, tok = tiny
    torch.manual_seed(2)
    rng = random.Random(2)
    problems = [arithmetic_problem(rng) for _ in range(N)]
    texts, calls = _episodes(model, tok, problems, prefix=" <think><calc>")
    exact = sum(c == _planted_calls(p["numbers"]) for c, p in zip(calls, problems)) / N
    acc_tool = sum(_answer(t) == p["answer"] for t, p in zip(texts, problems)) / N
    free, free_calls = _episodes(model, tok, problems)
    hand = [_answer(t) == p["answer"] for t, c, p in zip(free, free_calls, problems) if not c]
    acc_hand = sum(hand) / len(hand)
    assert exact >= 0.6 and acc_tool >= 0.55 and acc_hand <= 0.4, (exact, acc_tool, acc_hand)
    assert acc_tool - acc_hand >= 0.25, (acc_tool, acc_hand)
