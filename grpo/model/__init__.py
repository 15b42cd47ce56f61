"""Models and tokenizers: loading (Hugging Face, GGUF), checks, batches and log-probs."""
