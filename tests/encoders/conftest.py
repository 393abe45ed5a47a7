"""Fixtures for the encoder tests: tiny offline-built BERT and GPT-2 folders, a fake encoder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = (
    "the a an of in about film movie space astronauts romantic comedy documentary exploration "
    "love paris red dust rocket star clicked skipped rated enjoys hard sci fi and avoids romance"
).split()
CORPUS = [
    "the film about space astronauts",
    "a romantic comedy in paris",
    "clicked red dust rated five stars",
    "skipped love in paris",
    "enjoys hard sci fi and space documentaries, avoids romance",
]


def _tiny_bert(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789,.'"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters]
    vocab += [f"##{c}" for c in letters]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    # Positional: the argument is `vocab_file` in transformers 4 and `vocab` in 5.
    BertTokenizer(str(vocab_file)).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(dict.fromkeys(vocab)),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(config).save_pretrained(folder)
    return folder


def _tiny_gpt2(folder: Path) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    folder.mkdir(parents=True)
    eos = "<|endoftext|>"
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 5, vocab_size=320, min_frequency=1, special_tokens=[eos])
    # Deliberately no pad token: GPT-2 ships without one and the encoder must add it.
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=eos, bos_token=eos)
    tok.save_pretrained(folder)
    config = GPT2Config(
        vocab_size=len(tok),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        GPT2Model(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_gpt2_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2")


class FakeEncoder:
    """Deterministic hash-seeded unit vectors; records every call it receives."""

    def __init__(self, dim: int = 8, identity: str = "fake|v1") -> None:
        self.name = "fake"
        self.dim = dim
        self.identity = identity
        self.received: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        self.received.append(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out

    @property
    def n_texts(self) -> int:
        return sum(len(c) for c in self.received)


@pytest.fixture
def fake() -> FakeEncoder:
    return FakeEncoder()
