"""The real-model tier (``pytest -m real``): SmolLM2-135M-Instruct, built once per machine
from the PyPI GGUF (scripts/build_real_model.py, cached), and a GSM8K-format fixture (``real_model``: tests/conftest.py)."""
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "cpu" / "smollm2_gsm8k.yaml"

# Easy problems in openai/gsm8k's exact format: question: str, answer: str ending "#### N".
GSM8K = [
    ("What is 5 + 7?", "5 + 7 = <<5+7=12>>12\n#### 12"),
    ("Tom has 3 apples and buys 4 more. How many apples does Tom have now?", "3 + 4 = <<3+4=7>>7\n#### 7"),
    ("A box holds 6 pens. How many pens are in 2 boxes?", "6 * 2 = <<6*2=12>>12\n#### 12"),
    ("What is 10 - 3?", "10 - 3 = <<10-3=7>>7\n#### 7"),
    ("Sara has 2 cats and 2 dogs. How many pets does she have?", "2 + 2 = <<2+2=4>>4\n#### 4"),
    ("What is 9 + 1?", "9 + 1 = <<9+1=10>>10\n#### 10"),
    ("A pack has 5 cards. How many cards are in 3 packs?", "5 * 3 = <<5*3=15>>15\n#### 15"),
    ("What is 8 + 8?", "8 + 8 = <<8+8=16>>16\n#### 16"),
]


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).startswith(str(Path(__file__).parent)):
            item.add_marker(pytest.mark.real)


@pytest.fixture(scope="session")
def gsm8k_files(tmp_path_factory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("gsm8k")
    train, test = d / "gsm8k_train.parquet", d / "gsm8k_test.parquet"
    pd.DataFrame({"question": [q for q, _ in GSM8K], "answer": [a for _, a in GSM8K]}).to_parquet(train)
    pd.DataFrame({"question": [q for q, _ in GSM8K[::-1]], "answer": [a for _, a in GSM8K[::-1]]}).to_parquet(test)
    return str(train), str(test)


@pytest.fixture(scope="session")
def real_overrides(real_model, gsm8k_files):
    """The CPU recipe, shrunk to seconds per step (B=4, G=4, 48 new tokens)."""
    return [f"model.path={real_model}", f"data.source={gsm8k_files[0]}", "data.num_samples=null",
            "train.steps=2", "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=48",
            "output.save_every=1", "output.tensorboard=false", "train.lr=1e-5", "train.warmup_steps=0",
            "train.seed=0"]
