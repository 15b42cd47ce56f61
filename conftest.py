"""Collection rules for the whole tree (pytest runs every module's doctests).

- grpo/rollout/vllm_gloo.py subclasses vLLM's weight-transfer engine and is imported only
  inside vLLM's processes; without vllm installed (the default tier) it is not collected.
- The old flat paths of grpo/ (grpo/trainer.py, ...; issue 32) are aliases that replace
  themselves in sys.modules with the moved module: their doctests run at the new path.
"""
import importlib.util
import pathlib

_HERE = pathlib.Path(__file__).parent
collect_ignore = [] if importlib.util.find_spec("vllm") else ["grpo/rollout/vllm_gloo.py"]
collect_ignore += [str(f.relative_to(_HERE)) for f in (_HERE / "grpo").glob("*.py")
                   if "from ._moved import alias" in f.read_text()]
