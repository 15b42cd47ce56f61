"""The other stages of a pipeline and the pipeline itself: SFT, rejection sampling, evaluation."""
