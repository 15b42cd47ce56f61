"""Recipe schema: overrides, unknown keys with suggestions, type errors, the shipped recipes."""
from pathlib import Path

import pytest

from grpo.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.lr=2e-5", "rollout.stop=['</answer>']", "algorithm.advantage=rloo"])
    assert cfg.train.lr == 2e-5 and cfg.rollout.stop == ["</answer>"] and cfg.algorithm.advantage == "rloo"


@pytest.mark.parametrize("override,needle", [
    ("trian.steps=3", "did you mean 'train'"),
    ("algorithm.clip_hgh=0.3", "did you mean 'algorithm.clip_high'"),
    ("rewards=[{name: math_accuracy, wieght: 2}]", "did you mean 'rewards.weight'"),
])
def test_unknown_key_suggests(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [override])


def test_literal_choice_error_is_one_line():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["algorithm.advantage=ppo"])
    assert "algorithm.advantage" in str(e.value) and "\n" not in str(e.value)


def test_type_error():
    with pytest.raises(ConfigError, match="train.steps"):
        load_config(None, ["train.steps=many"])


def test_missing_recipe():
    with pytest.raises(ConfigError, match="recipe not found"):
        load_config("nope/missing.yaml")


def test_bad_set_syntax():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["train.steps"])


TRAIN_RECIPES = ["recipes/r1_zero.yaml", "recipes/tiny/r1_zero.yaml", "recipes/tiny/aha.yaml"]


@pytest.mark.parametrize("recipe", TRAIN_RECIPES)
def test_shipped_train_recipes_validate(recipe, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config(recipe)
    assert cfg.output.name and cfg.rewards
