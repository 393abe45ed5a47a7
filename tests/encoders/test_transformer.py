"""TransformerEncoder on tiny BERT / GPT-2 models built offline: pooling, padding, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lmrecsim.encoders import EncoderError, TransformerEncoder

from .conftest import CORPUS

# Lengths differ a lot so every batch holds right padding.
TEXTS = ["a", "the film about space astronauts and a rocket star", "love", *CORPUS]


def _reference(enc: TransformerEncoder, text: str, pooling: str) -> np.ndarray:
    """Run the model on one text alone (no padding) and pool by hand."""
    batch = enc.tokenizer([text], return_tensors="pt", truncation=True, max_length=enc.max_length)
    with torch.inference_mode():
        hidden = enc.model(**batch).last_hidden_state[0]
    vec = {"mean": hidden.mean(0), "cls": hidden[0], "last": hidden[-1]}[pooling]
    vec = vec / vec.norm()
    return vec.numpy()


@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
def test_bert_poolings_match_unpadded_reference(tiny_bert_path: Path, pooling: str) -> None:
    enc = TransformerEncoder(tiny_bert_path, pooling=pooling, batch_size=4)
    out = enc.encode(TEXTS)
    assert out.shape == (len(TEXTS), 32) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(out[i], _reference(enc, text, pooling), atol=1e-5)


def test_poolings_differ(tiny_bert_path: Path) -> None:
    # Guards the reference test against a pooling argument that is silently ignored.
    vecs = {
        p: TransformerEncoder(tiny_bert_path, pooling=p).encode(TEXTS[:2])
        for p in ("mean", "cls", "last")
    }
    assert not np.allclose(vecs["mean"], vecs["cls"], atol=1e-3)
    assert not np.allclose(vecs["mean"], vecs["last"], atol=1e-3)
    assert not np.allclose(vecs["cls"], vecs["last"], atol=1e-3)


def test_last_pooling_skips_right_padding(tiny_bert_path: Path) -> None:
    enc = TransformerEncoder(tiny_bert_path, pooling="last")
    short, long = "love", TEXTS[1]
    batch = enc.tokenizer([long, short], padding=True, return_tensors="pt")
    assert batch["attention_mask"][1, -1] == 0  # the short text really is right-padded
    np.testing.assert_allclose(enc.encode([long, short])[1], enc.encode([short])[0], atol=1e-5)


def test_gpt2_gets_pad_token_and_last_pooling(tiny_gpt2_path: Path) -> None:
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tiny_gpt2_path).pad_token is None
    enc = TransformerEncoder(tiny_gpt2_path, pooling="last", batch_size=3)
    assert enc.tokenizer.pad_token == enc.tokenizer.eos_token
    assert enc.tokenizer.padding_side == "right"
    out = enc.encode(TEXTS)
    assert out.shape == (len(TEXTS), 32)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(out[i], _reference(enc, text, "last"), atol=1e-5)


def test_gpt2_empty_text_gets_a_unit_vector(tiny_gpt2_path: Path) -> None:
    enc = TransformerEncoder(tiny_gpt2_path, pooling="last")
    out = enc.encode(["", "love in paris", ""])
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out[0], out[2])
    assert enc.encode([""]).shape == (1, 32)


def test_mean_pooling_ignores_padding(tiny_bert_path: Path) -> None:
    enc = TransformerEncoder(tiny_bert_path)
    long = " ".join(CORPUS * 3)
    np.testing.assert_allclose(enc.encode([long, "love"])[1], enc.encode(["love"])[0], atol=1e-5)


def test_truncation_to_max_length(tiny_bert_path: Path) -> None:
    enc = TransformerEncoder(tiny_bert_path, max_length=8)
    long = " ".join(CORPUS * 20)  # far beyond max_position_embeddings=64
    assert enc.encode([long]).shape == (1, 32)


@pytest.mark.parametrize(
    ("model", "max_length", "limit"), [("bert", 16, 14), ("gpt2", 16, 16), ("bert", 512, 62)]
)
def test_token_budget_is_the_text_the_model_sees(
    tiny_bert_path: Path, tiny_gpt2_path: Path, model: str, max_length: int, limit: int
) -> None:
    from lmrecsim.encoders.base import token_budget

    path = tiny_bert_path if model == "bert" else tiny_gpt2_path
    enc = TransformerEncoder(path, max_length=max_length)
    # BERT spends two positions on [CLS] and [SEP], this GPT-2 none; 512 is capped by the
    # model's 64 positions.
    assert enc.text_token_limit == limit
    counts, budget = token_budget(enc)  # type: ignore[misc]
    assert budget == limit
    long = " ".join(CORPUS * 20)
    ids = enc.tokenizer(long, add_special_tokens=False)["input_ids"]
    assert counts([long, "", long[:40]]).tolist() == [
        len(ids),
        0,
        len(enc.tokenizer(long[:40], add_special_tokens=False)["input_ids"]),
    ]
    # What the model is given for a long text: its first `limit` tokens, and the specials.
    fed = enc.tokenizer(long, truncation=True, max_length=enc.effective_max_length)["input_ids"]
    special = set(enc.tokenizer.all_special_ids)
    assert [i for i in fed if i not in special] == ids[:limit]
    assert len(fed) == enc.effective_max_length


def test_encoders_without_a_token_budget_say_so(tmp_path: Path, fake: object) -> None:
    from lmrecsim.encoders import CachedEncoder, EmbeddingCache, LRUEncoder
    from lmrecsim.encoders.base import token_budget

    assert token_budget(fake) is None
    wrapped = CachedEncoder(fake, EmbeddingCache(tmp_path))  # type: ignore[arg-type]
    assert token_budget(wrapped) is None and token_budget(LRUEncoder(wrapped)) is None
    with pytest.raises(TypeError, match="no token budget"):
        wrapped.token_counts(["a"])


def test_wrappers_pass_the_token_budget_through(tiny_bert_path: Path, tmp_path: Path) -> None:
    from lmrecsim.encoders import CachedEncoder, EmbeddingCache, LRUEncoder
    from lmrecsim.encoders.base import token_budget

    enc = TransformerEncoder(tiny_bert_path, max_length=16)
    for wrapper in (CachedEncoder(enc, EmbeddingCache(tmp_path)), LRUEncoder(enc)):
        counts, limit = token_budget(wrapper)  # type: ignore[misc]
        assert limit == 14
        assert counts(CORPUS).tolist() == enc.token_counts(CORPUS).tolist()


def test_empty_input_and_bad_input(tiny_bert_path: Path) -> None:
    enc = TransformerEncoder(tiny_bert_path)
    assert enc.encode([]).shape == (0, 32)
    assert enc.encode([]).dtype == np.float32
    with pytest.raises(TypeError):
        enc.encode("a single string")
    # A lone surrogate reached the tokenizer, which failed with its own TypeError.
    with pytest.raises(ValueError, match=r"^encode\(\): item 1 holds '\\ud800' at character 4 "):
        enc.encode(["fine", "bad \ud800 text"])
    assert enc.encode(["caf\u00e9 \u2603"]).shape == (1, 32)  # any other Unicode is text


def test_identity(tiny_bert_path: Path, tmp_path: Path) -> None:
    a = TransformerEncoder(tiny_bert_path)
    assert TransformerEncoder(str(tiny_bert_path)).identity == a.identity
    assert TransformerEncoder(tiny_bert_path, pooling="cls").identity != a.identity
    assert TransformerEncoder(tiny_bert_path, max_length=64).identity != a.identity
    # Same folder name, different config content -> different identity.
    copy = tmp_path / tiny_bert_path.name
    shutil.copytree(tiny_bert_path, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["layer_norm_eps"] = 1e-6
    (copy / "config.json").write_text(json.dumps(cfg))
    assert TransformerEncoder(copy).identity != a.identity


def test_show_progress(tiny_bert_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    enc = TransformerEncoder(tiny_bert_path, batch_size=2, show_progress=True)
    assert enc.encode(TEXTS).shape == (len(TEXTS), 32)
    assert "batch" in capsys.readouterr().err


# -- errors -----------------------------------------------------------------------------------


def _assert_one_line_error(model: object, needle: str) -> str:
    with pytest.raises(EncoderError) as info:
        TransformerEncoder(model)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "\n" not in msg
    assert needle in msg
    assert msg.startswith("encoder.model:")
    return msg


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such-model"
    msg = _assert_one_line_error(missing, str(missing))
    assert "does not exist" in msg
    _assert_one_line_error(str(missing), str(missing))


def test_empty_folder(tmp_path: Path) -> None:
    msg = _assert_one_line_error(tmp_path, str(tmp_path))
    assert "config.json" in msg


def test_file_instead_of_folder(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    _assert_one_line_error(f, str(f))


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"hidden_size": 3}', "\x00\xff"])
def test_garbage_config(tmp_path: Path, content: str) -> None:
    (tmp_path / "config.json").write_text(content, encoding="latin-1")
    _assert_one_line_error(tmp_path, str(tmp_path))


def test_broken_weights(tiny_bert_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert_path, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    msg = _assert_one_line_error(broken, str(broken))
    assert "weights" in msg


def test_missing_tokenizer(tiny_bert_path: Path, tmp_path: Path) -> None:
    no_tok = tmp_path / "no-tok"
    no_tok.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert_path / name, no_tok / name)
    _assert_one_line_error(no_tok, str(no_tok))


def test_unknown_hub_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    msg = _assert_one_line_error("no-such-org/no-such-model", "'no-such-org/no-such-model'")
    assert "cache" in msg


def test_name_from_local_hub_cache(
    tiny_bert_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    # The on-disk layout huggingface_hub uses for a downloaded repo.
    repo = tmp_path / "models--some-org--tiny-bert"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_bert_path, repo / "snapshots" / commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    enc = TransformerEncoder("some-org/tiny-bert")
    assert enc.name == "some-org/tiny-bert"
    direct = TransformerEncoder(tiny_bert_path)
    np.testing.assert_array_equal(enc.encode(TEXTS), direct.encode(TEXTS))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"pooling": "max"}, "encoder.pooling"),
        ({"max_length": 0}, "encoder.max_length"),
        ({"batch_size": 0}, "encoder.batch_size"),
        ({"device": "tpu"}, "encoder.device"),
    ],
)
def test_bad_arguments(tiny_bert_path: Path, kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(EncoderError, match=key):
        TransformerEncoder(tiny_bert_path, **kwargs)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_requested_without_cuda(tiny_bert_path: Path) -> None:
    with pytest.raises(EncoderError, match="CUDA is not available"):
        TransformerEncoder(tiny_bert_path, device="cuda")


def test_batches_follow_token_counts_and_tokenise_once(
    tiny_bert_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enc = TransformerEncoder(tiny_bert_path, batch_size=2)
    # Few characters but many tokens (letters of unknown words split into pieces) against many
    # characters in few tokens: character length would pair them wrongly.
    texts = ["xqzj vbkw", "the film about space astronauts", "qxz", "romantic comedy in paris"]
    n_tokens = [len(enc.tokenizer(t)["input_ids"]) for t in texts]
    assert n_tokens[0] > n_tokens[1] and len(texts[0]) < len(texts[1])
    tok_calls: list[int] = []
    widths: list[int] = []
    tokenizer = enc.tokenizer
    real_tok, real_batch = type(tokenizer).__call__, enc._encode_batch

    def spy_tok(self: object, batch: list[str], **kw: object) -> object:
        tok_calls.append(len(batch))
        return real_tok(self, batch, **kw)

    def spy_batch(inputs: dict[str, torch.Tensor]) -> np.ndarray:
        widths.append(int(inputs["input_ids"].shape[1]))
        return real_batch(inputs)

    monkeypatch.setattr(type(tokenizer), "__call__", spy_tok)
    monkeypatch.setattr(enc, "_encode_batch", spy_batch)
    out = enc.encode(texts)
    assert tok_calls == [len(texts)]
    longest_first = sorted(n_tokens, reverse=True)
    assert widths == [longest_first[0], longest_first[2]]  # each batch padded to its own longest
    monkeypatch.undo()
    for i, text in enumerate(texts):
        np.testing.assert_allclose(out[i], _reference(enc, text, "mean"), atol=1e-5)


def test_identity_follows_the_weights_not_their_file_sizes(
    tiny_bert_path: Path, tmp_path: Path
) -> None:
    # The identity keys the embedding cache. It used to hash file names and sizes only, so a
    # checkpoint fine-tuned and saved in place (same sizes), or another model in a folder of the
    # same name, reused the old model's cached embeddings.
    from transformers import BertModel

    a = tmp_path / "a" / "tiny"
    b = tmp_path / "b" / "tiny"
    shutil.copytree(tiny_bert_path, a)
    shutil.copytree(tiny_bert_path, b)
    same = TransformerEncoder(a).identity
    assert TransformerEncoder(b).identity == same  # same bytes, same identity, any folder
    model = BertModel.from_pretrained(str(b))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    sizes = {f.name: f.stat().st_size for f in b.iterdir()}
    model.save_pretrained(b)
    assert {f.name: f.stat().st_size for f in b.iterdir()} == sizes
    changed = TransformerEncoder(b)
    assert changed.identity != same
    assert not np.allclose(changed.encode(["a test"]), TransformerEncoder(a).encode(["a test"]))


def test_a_checkpoint_missing_weights_is_one_line(tiny_bert_path: Path, tmp_path: Path) -> None:
    # Used to load with randomly initialised layers (different vectors in every process) after a
    # multi-line load report.
    folder = tmp_path / "deeper"
    shutil.copytree(tiny_bert_path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] += 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(EncoderError, match="do not match its config.json .* missing, e.g. encoder"):
        TransformerEncoder(folder)


def test_a_checkpoint_of_another_shape_is_one_line(tiny_bert_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "wider"
    shutil.copytree(tiny_bert_path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] *= 2
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(EncoderError, match="do not match its config.json \\(parameters of another"):
        TransformerEncoder(folder)


@pytest.mark.skipif(
    getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    reason="MPS present",
)
def test_mps_requested_without_mps(tiny_bert_path: Path) -> None:
    # The schema accepts mps; the encoder used to refuse it as "expected 'cpu' or 'cuda'" even
    # where it exists.
    with pytest.raises(EncoderError, match="'mps' requested but Apple's MPS is not available"):
        TransformerEncoder(tiny_bert_path, device="mps")


def test_canonical_shapes_stay_within_the_models_position_limit(tmp_path: Path) -> None:
    # The canonical padded width (a multiple of 16) went past a limit of 50 positions and crashed.
    from tests.encoders.conftest import _tiny_bert

    folder = _tiny_bert(tmp_path / "short")
    config = json.loads((folder / "config.json").read_text())
    assert config["max_position_embeddings"] > 50
    from transformers import BertConfig, BertModel

    cfg = BertConfig(**{**config, "max_position_embeddings": 50})
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(folder)
    enc = TransformerEncoder(folder, max_length=128)
    long_text = " ".join(["word"] * 200)
    np.testing.assert_array_equal(
        enc.encode_canonical([long_text, "short"])[0], enc.encode_canonical([long_text])[0]
    )


def test_a_tokenizer_larger_than_the_embedding_table_is_one_line(
    tiny_bert_path: Path, tmp_path: Path
) -> None:
    # Loaded without complaint, then the first text with a token id past the table died in the
    # forward pass with torch's 'IndexError: index out of range in self' traceback.
    from transformers import BertConfig, BertModel

    folder = tmp_path / "small-vocab"
    shutil.copytree(tiny_bert_path, folder)
    config = json.loads((folder / "config.json").read_text())
    torch.manual_seed(0)
    BertModel(BertConfig(**{**config, "vocab_size": 10})).save_pretrained(folder)
    with pytest.raises(EncoderError, match="token ids up to \\d+ but the model's embedding table"):
        TransformerEncoder(folder)
