"""Several processes: the process group, FSDP2, sharded (DCP) checkpoints, metrics across ranks."""
