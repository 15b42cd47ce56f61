"""Fixtures: throwaway tiny models (random weights, the shipped char tokenizer), made in seconds,
so these tests need neither data/tiny_model nor a network."""
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "data"))


def _tokenizer():
    from build_tiny_model import build_tokenizer
    return build_tokenizer()


def _small_llama(tok, **extra):
    """A 1-layer, 32-wide Llama config over the tiny model's tokenizer."""
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                       pad_token_id=tok.pad_token_id, **extra)


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> str:
    """A 1-layer, 32-wide random Llama causal LM with the tiny model's tokenizer."""
    from transformers import LlamaForCausalLM
    torch.manual_seed(0)
    tok = _tokenizer()
    cfg = _small_llama(tok, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id)
    out = tmp_path_factory.mktemp("lm")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_rm(tmp_path_factory) -> str:
    """A random two-logit sequence classifier (helpfulness, harmlessness)."""
    from transformers import LlamaForSequenceClassification
    torch.manual_seed(0)
    tok = _tokenizer()
    cfg = _small_llama(tok, num_labels=2)
    out = tmp_path_factory.mktemp("rm")
    LlamaForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def write_jsonl():
    """write_jsonl(path, rows) -> str(path)"""
    return _write_jsonl
