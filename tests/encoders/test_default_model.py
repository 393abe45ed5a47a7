"""The bundled all-MiniLM-L6-v2 through TransformerEncoder (loaded once per module)."""

from __future__ import annotations

import numpy as np
import pytest

from lmrecsim.encoders import DEFAULT_MODEL_NAME, Encoder, TransformerEncoder, default_model_path

TEXTS = [
    "space exploration documentary",
    "a film about astronauts",
    "a romantic comedy",
    "Clicked 'Red Dust' (rated 5/5). Skipped 'Love in Paris'. Clicked 'Orbit' (rated 4/5).",
    "jazz",
    "a slow-burning thriller set on a night train crossing the Alps in winter",
    "cooking show",
    "history of the Roman empire, told through its roads, aqueducts and ports",
    "kids cartoon",
    "",
]


@pytest.fixture(scope="module")
def minilm() -> TransformerEncoder:
    # batch_size 4 so that TEXTS spans several length-sorted batches.
    return TransformerEncoder(batch_size=4)


def test_default_path_is_a_model_folder() -> None:
    path = default_model_path()
    assert (path / "config.json").is_file()


def test_metadata(minilm: TransformerEncoder) -> None:
    assert isinstance(minilm, Encoder)
    assert minilm.name == DEFAULT_MODEL_NAME
    assert minilm.dim == 384
    assert "pooling=mean" in minilm.identity and "max_length=128" in minilm.identity
    assert TransformerEncoder("default", batch_size=4).identity == minilm.identity


def test_semantic_neighbour(minilm: TransformerEncoder) -> None:
    v = minilm.encode(TEXTS[:3])
    # Rows are unit norm, so the dot product is the cosine.
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_shape_dtype_norm_determinism(minilm: TransformerEncoder) -> None:
    a = minilm.encode(TEXTS)
    b = minilm.encode(TEXTS)
    assert a.dtype == np.float32 and a.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, b)
    assert minilm.encode([]).shape == (0, 384)


def test_input_order_preserved(minilm: TransformerEncoder) -> None:
    base = minilm.encode(TEXTS)
    perm = np.random.default_rng(7).permutation(len(TEXTS))
    shuffled = minilm.encode([TEXTS[i] for i in perm])
    np.testing.assert_allclose(shuffled, base[perm], atol=1e-5)
    # And each row is the text's own vector, not a neighbour's.
    for i in (0, 4, 5):
        np.testing.assert_allclose(base[i], minilm.encode([TEXTS[i]])[0], atol=1e-5)


def test_mean_pooling_ignores_padding(minilm: TransformerEncoder) -> None:
    short = "jazz"
    long = " ".join(["a very long description of an epic space opera"] * 10)
    alone = minilm.encode([short])[0]
    padded = minilm.encode([long, short])[1]
    np.testing.assert_allclose(padded, alone, atol=1e-5)


def test_token_budget_counts_the_text_the_model_embeds(minilm: TransformerEncoder) -> None:
    # [CLS] and [SEP] take two of the 128 positions.
    assert minilm.text_token_limit == 126
    sentences = [
        "Clicked 'Red Dust' (rated 5/5).",
        "Skipped 'Love in Paris'.",
        "At sign-up said: I watch documentaries about the sea, never horror.",
    ]
    counts = minilm.token_counts(sentences)
    assert counts.dtype == np.int64 and counts.shape == (3,)
    joined = minilm.tokenizer(" ".join(sentences))["input_ids"]
    # The sentences' counts add up to the joined text's (special tokens aside): the history text
    # can be cut to a token budget from the counts of its sentences alone.
    assert len(joined) == counts.sum() + 2
    # A text past the limit loses its end: its encoding is that of its first 126 tokens.
    long = " ".join(f"Clicked 'Orbit {i}' (rated 4/5)." for i in range(40))
    assert minilm.token_counts([long])[0] > 126
    ids = minilm.tokenizer(long, add_special_tokens=False)["input_ids"][:126]
    head = minilm.tokenizer.decode(ids)
    np.testing.assert_allclose(minilm.encode([long]), minilm.encode([head]), atol=1e-5)
