"""Tiny `transformers` model folders for tests, built here (never from a hub).

Each builder seeds its own generator, so `tiny_llama()` built twice has equal weights: a
test can compare what it reads back with a fresh model's state dict. The folders hold what
a real one does: config.json, safetensors weights (sharded on request, with the index) and
a tokenizer.json with a pad token, written by the `tokenizers` library.
"""

from __future__ import annotations

import os
import pathlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: no hub, ever

import torch
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

__all__ = [
    "SPECIAL_TOKENS",
    "VOCAB_SIZE",
    "make_bert_folder",
    "make_gpt2_folder",
    "make_llama_folder",
    "make_tokenizer_json",
    "save_folder",
    "tiny_bert",
    "tiny_gpt2",
    "tiny_llama",
    "tiny_vocab",
]

VOCAB_SIZE = 64
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def tiny_vocab(size: int = VOCAB_SIZE) -> list[str]:
    """The special tokens (ids 0-4: [PAD] is 0), then made-up words, `size` in all."""
    return [*SPECIAL_TOKENS, *(f"w{i}" for i in range(size - len(SPECIAL_TOKENS)))]


def make_tokenizer_json(path: str | os.PathLike[str], vocab: list[str]) -> Tokenizer:
    """A WordPiece tokenizer over `vocab` (which holds the special tokens), padding with
    [PAD] and framing with [CLS] ... [SEP], saved as tokenizer.json at `path`."""
    ids = {token: i for i, token in enumerate(vocab)}
    tokenizer = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer.enable_padding(pad_id=ids["[PAD]"], pad_token="[PAD]")
    tokenizer.save(str(path))
    return tokenizer


def _seeded(build: type[transformers.PreTrainedModel], config: transformers.PreTrainedConfig) -> transformers.PreTrainedModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build(config).eval()


def tiny_bert() -> transformers.PreTrainedModel:
    return _seeded(transformers.BertModel, transformers.BertConfig(
        vocab_size=VOCAB_SIZE, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, pad_token_id=0))


def tiny_llama() -> transformers.PreTrainedModel:
    return _seeded(transformers.LlamaForCausalLM, transformers.LlamaConfig(
        vocab_size=VOCAB_SIZE, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=32, max_position_embeddings=64, pad_token_id=0, bos_token_id=2, eos_token_id=3))


def tiny_gpt2() -> transformers.PreTrainedModel:
    # GPT-2 ties lm_head to the token embeddings: the file holds the matrix once.
    return _seeded(transformers.GPT2LMHeadModel, transformers.GPT2Config(
        vocab_size=VOCAB_SIZE, n_embd=16, n_layer=2, n_head=2, n_positions=64, pad_token_id=0, bos_token_id=2, eos_token_id=3))


def save_folder(model: transformers.PreTrainedModel, folder: pathlib.Path, *, max_shard_size: str | None = None) -> pathlib.Path:
    """`model` saved as a base model folder (safetensors; shards and an index when
    `max_shard_size` is smaller than the model) with a tokenizer.json."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    make_tokenizer_json(folder / "tokenizer.json", tiny_vocab(model.config.vocab_size))
    return folder


def make_bert_folder(tmp: pathlib.Path) -> pathlib.Path:
    """A tiny BERT folder at `tmp`/bert (one model.safetensors)."""
    return save_folder(tiny_bert(), tmp / "bert")


def make_llama_folder(tmp: pathlib.Path, *, max_shard_size: str | None = None) -> pathlib.Path:
    """A tiny Llama folder at `tmp`/llama; `max_shard_size="20KB"` gives two shards."""
    return save_folder(tiny_llama(), tmp / "llama", max_shard_size=max_shard_size)


def make_gpt2_folder(tmp: pathlib.Path) -> pathlib.Path:
    """A tiny GPT-2 folder at `tmp`/gpt2 (tied embeddings, generation_config.json)."""
    return save_folder(tiny_gpt2(), tmp / "gpt2")
