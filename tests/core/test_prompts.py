"""One prompt renderer for train, eval, sample, sft and the pipeline (data.render_prompt):
string and chat-message prompts, system prompts, instructions, chat templates, and the
R1-Zero template's sentence ending."""
import pytest

from grpo.data import DataError, R1_ZERO, apply_template, render_prompt


class ChatTok:
    """A tokenizer stand-in with a ChatML chat template (as SmolLM2 and Qwen have)."""
    chat_template = "chatml"

    def apply_chat_template(self, msgs, tokenize=False, add_generation_prompt=True):
        out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs)
        return out + ("<|im_start|>assistant\n" if add_generation_prompt else "")


@pytest.mark.parametrize("question,tail", [
    ("How many apples are left?", "User: How many apples are left? Assistant:"),
    ("Compute 3+4", "User: Compute 3+4. Assistant:"),
    ("Compute 3+4.", "User: Compute 3+4. Assistant:"),
    ("Find $x$ if $x^2=4$", "User: Find $x$ if $x^2=4$ Assistant:"),
    ("Wow!  ", "User: Wow! Assistant:"),
    ("计算 3+4？", "User: 计算 3+4？ Assistant:"),
])
def test_r1_zero_sentence_end(question, tail):
    out = apply_template("r1_zero", question)
    assert out.endswith(tail) and "?." not in out and ".." not in out
    assert out.startswith(R1_ZERO.split("{prompt}")[0])


def test_instruction_and_system_prompt_in_text_templates():
    out = render_prompt(None, "What is 2+3?", "r1_zero", instruction="Put the final answer within \\boxed{}.")
    assert out.endswith("User: What is 2+3?\nPut the final answer within \\boxed{}. Assistant:")
    out = render_prompt(None, "Q?", "plain", system_prompt="Be brief.")
    assert out == "Be brief.\nQ?"
    msgs = [{"role": "system", "content": "S."}, {"role": "user", "content": "Q?"}]
    assert render_prompt(None, msgs, "plain", instruction="I.") == "S.\nQ?\nI."


def test_chat_template_with_system_prompt_and_instruction():
    tok = ChatTok()
    out = render_prompt(tok, "What is 2+3?", "chat", system_prompt="You are a math tutor.",
                        instruction="Answer in \\boxed{}.")
    assert out == ("<|im_start|>system\nYou are a math tutor.<|im_end|>\n<|im_start|>user\nWhat is 2+3?\n"
                   "Answer in \\boxed{}.<|im_end|>\n<|im_start|>assistant\n")
    # A message-list prompt keeps its own system turn; the instruction goes on the last user turn.
    msgs = [{"role": "system", "content": "Own."}, {"role": "user", "content": "A"},
            {"role": "assistant", "content": "B"}, {"role": "user", "content": "C"}]
    out = render_prompt(tok, msgs, "chat", system_prompt="Ignored.", instruction="I.")
    assert out.count("system") == 1 and "Own." in out and "Ignored." not in out and "C\nI.<|im_end|>" in out


@pytest.mark.parametrize("prompt,template,needle", [
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "chat", "end with a user turn"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
      {"role": "user", "content": "c"}], "r1_zero", "use data.template: chat"),
    ([{"role": "user"}], "plain", "list of {role, content}"),
    (42, "plain", "must be a string"),
    ([], "plain", "must be a string"),
    ("q", "chat", "no chat template"),              # the tokenizer below has none
    ("q", "r1_zeroo", "unknown template"),
])
def test_bad_prompts_are_one_line_errors(prompt, template, needle):
    with pytest.raises(DataError, match=needle) as e:
        render_prompt(object(), prompt, template)
    assert "\n" not in str(e.value)


def test_train_and_eval_render_identical_prompts(tmp_path, monkeypatch, tiny_overrides):
    """The trainer and grpo eval send the same text for the same row, with the recipe's
    system prompt, instruction and stop strings (eval on the training rows, by flag)."""
    from grpo.config import load_config
    from grpo.stages.eval import eval_config
    from grpo.rollout.hf import HFEngine
    from grpo.train.trainer import Trainer
    cfg = load_config("recipes/tiny/r1_zero.yaml", tiny_overrides + [
        "data.system_prompt=Solve it.", "data.instruction=Answer in tags.", "rollout.stop=[</answer>]"])
    tr = Trainer(cfg)
    want = [tr._prompt(r["prompt"]) for r in tr.rows[:3]]
    seen = []
    real = HFEngine.generate

    def spy(self, prompts, sp):
        seen.append((list(prompts), sp))
        return real(self, prompts, sp)
    monkeypatch.setattr(HFEngine, "generate", spy)
    eval_config(cfg, k=2, n=3, on_train_rows=True, progress=False)
    prompts, sp = seen[0]
    assert prompts == want and sp.stop == ["</answer>"]
    assert want[0].startswith("Solve it.\nUser: ") and "\nAnswer in tags.\nAssistant:" in want[0]


def test_chat_template_without_one_fails_before_training(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "grpo.cli", "train", "recipes/tiny/r1_zero.yaml", "--set",
                        "data.template=chat", "--set", f"output.dir={tmp_path}"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]      # (above it: transformers' weight-loading bar)
    assert last.startswith("grpo: error:") and "no chat template" in last and r.stderr.count("grpo: error") == 1
    assert not (tmp_path / "r1_zero" / "metrics.jsonl").exists()
