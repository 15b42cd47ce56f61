"""Tests of the R1 pipeline pieces: sft, sample, pipeline, reward_model."""
