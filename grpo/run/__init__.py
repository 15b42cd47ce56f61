"""A run's files: checkpoints and resume, the run directory and its lock, metrics, trackers, reports."""
