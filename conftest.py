"""Collection rules for the whole tree (pytest runs every module's doctests).

grpo/rollout/vllm_gloo.py subclasses vLLM's weight-transfer engine and is imported only
inside vLLM's processes; without vllm installed (the default tier) it is not collected.
"""
import importlib.util

collect_ignore = [] if importlib.util.find_spec("vllm") else ["grpo/rollout/vllm_gloo.py"]
