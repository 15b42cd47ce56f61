"""Pure, vectorized algorithm registries (advantages, KL, aggregation, policy losses, distillation), open to ``file.py:fn``."""
