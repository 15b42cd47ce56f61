"""One RL step: the trainer loop, the policy update, the KL reference, reward models, optimizer, FP8."""
