"""On-disk embedding cache and the :class:`CachedEncoder` that puts it in front of a model.

Layout under ``cache_dir``::

    embeddings/<sha256(identity)>.npz   # one file per encoder identity
    arrays/<sha256(key)>.npz            # generic named arrays (e.g. a fitted PCA projection)

Each file holds its payload plus a sha256 checksum of it. Files are written to a temporary name
in the same folder and moved into place with :func:`os.replace`, so a reader sees either the old
or the new file, never a partial one. A file that cannot be read, has the wrong layout or fails
its checksum is reported with one :class:`CacheCorruptionWarning`, deleted, and rebuilt on the
next store.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_file
from .base import Encoder, TokenBudgetOfWrapped, check_texts, empty_vectors
from .errors import CacheCorruptionWarning, EncoderError

__all__ = ["CachedEncoder", "EmbeddingCache", "default_cache_dir", "text_hash"]

_FORMAT_VERSION = 1
_HASH_BYTES = 32


def default_cache_dir() -> Path:
    """``$LMRECSIM_CACHE_DIR`` if set, else ``~/.cache/lmrecsim``."""
    env = os.environ.get("LMRECSIM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lmrecsim"


def text_hash(text: str) -> bytes:
    """sha256 digest (32 bytes) of the UTF-8 text; the key under which its vector is stored."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _sha_name(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _checksum(*parts: np.ndarray | str) -> np.ndarray:
    """sha256 over dtype, shape and bytes of each part, as a (32,) uint8 array."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            h.update(b"s" + part.encode("utf-8", "surrogatepass") + b"\0")
        else:
            arr = np.ascontiguousarray(part)
            h.update(f"a{arr.dtype.str}{arr.shape}\0".encode())
            h.update(arr.tobytes())
    return np.frombuffer(h.digest(), dtype=np.uint8).copy()


def _unusable(path: Path, exc: OSError, doing: str) -> EncoderError:
    """The one-line error for a cache location that cannot be read or written."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return EncoderError(
        f"{path}: cannot {doing} the embedding cache ({reason}; expected a writable folder: set "
        "encoder.cache_dir or $LMRECSIM_CACHE_DIR)"
    )


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` as .npz via a temp file in the same folder + os.replace."""
    try:
        with atomic_file(path, fsync=True) as fh:
            np.savez(fh, **arrays)
    except OSError as exc:
        raise _unusable(path.parent, exc, "write") from None


class _Corrupt(Exception):
    """Internal: a cache file failed validation."""


def _load_npz(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Read every array in ``names`` fully (never lazily) or raise _Corrupt."""
    try:
        # Open the file ourselves: np.load leaks its handle when the zip header is bad.
        with open(path, "rb") as fh:
            # np.load takes anything that is not a zip for a pickle and says so, which misleads.
            if fh.read(4) != b"PK\x03\x04":
                raise _Corrupt("not an .npz archive")
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as z:
                missing = [n for n in names if n not in z.files]
                if missing:
                    raise _Corrupt(f"missing {missing}")
                return {n: np.asarray(z[n]) for n in names}
    except _Corrupt:
        raise
    except FileNotFoundError:
        raise
    except (PermissionError, NotADirectoryError, IsADirectoryError) as exc:
        # The location, not the file's content, is the problem: nothing to discard.
        raise _unusable(path, exc, "read") from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, ValueError, zlib.error, OSError ...
        raise _Corrupt(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None


def _discard(path: Path, reason: str) -> None:
    warnings.warn(
        f"lmrecsim.encoders: discarding corrupt cache file '{path}' ({reason}); it will be rebuilt",
        CacheCorruptionWarning,
        stacklevel=4,
    )
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@dataclass
class _Table:
    """In-memory copy of one identity's embedding file."""

    hashes: np.ndarray  # (m, 32) uint8
    vectors: np.ndarray  # (m, d) float32
    stamp: tuple[int, int, int] | None  # (inode, mtime_ns, size) of the file behind this copy
    index: dict[bytes, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {bytes(row): i for i, row in enumerate(self.hashes)}


def _stamp(path: Path) -> tuple[int, int, int] | None:
    # The inode changes on every os.replace, so our own atomic writes are always noticed even
    # when the coarse mtime and the size happen to match.
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unusable(path, exc, "read") from None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class EmbeddingCache:
    """Persistent text -> vector store, one file per encoder identity.

    Parameters
    ----------
    cache_dir : str | os.PathLike | None, default None
        Root folder; ``None`` means ``$LMRECSIM_CACHE_DIR`` or ``~/.cache/lmrecsim``. Created on
        the first write.

    Notes
    -----
    Every :meth:`store` rewrites the identity's whole file, so store in batches (a catalog, a
    set of personas), not one text per step; per-step texts belong in an :class:`LRUEncoder`.
    Files written by another process are noticed through their modification time and merged.
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.cache_dir: Path = (
            default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
        )
        if self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise EncoderError(
                f"{self.cache_dir}: the embedding cache folder is a file (expected a folder: set "
                "encoder.cache_dir or $LMRECSIM_CACHE_DIR)"
            )
        self._tables: dict[str, _Table] = {}
        self._writable = False

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.cache_dir)!r})"

    def check_writable(self) -> None:
        """Make sure the embeddings folder exists and takes a file, once per cache.

        :class:`CachedEncoder` calls it before it sends texts to the model, so a cache folder
        that cannot be written is reported before minutes of encoding, not after them.

        Raises
        ------
        EncoderError
            One line naming the folder and the system's reason.
        """
        if self._writable:
            return
        folder = self.cache_dir / "embeddings"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
                pass
        except OSError as exc:
            raise _unusable(folder, exc, "write") from None
        self._writable = True

    # -- embeddings ---------------------------------------------------------------------------

    def path_for(self, identity: str) -> Path:
        """Path of the embedding file for ``identity``."""
        return self.cache_dir / "embeddings" / f"{_sha_name(identity)}.npz"

    def lookup(self, identity: str, texts: Sequence[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """Look up cached vectors.

        Parameters
        ----------
        identity : str
            Encoder identity (see :attr:`Encoder.identity`).
        texts : Sequence[str]
            ``n`` texts.

        Returns
        -------
        vectors : np.ndarray | None
            float32 ``(n, d)``, zero rows where not cached; ``None`` when nothing is cached for
            ``identity`` (no file, or the file was corrupt and discarded).
        found : np.ndarray
            bool ``(n,)``, True where the row of ``vectors`` came from the cache.
        """
        items = check_texts(texts)
        n = len(items)
        table = self._table(identity)
        found = np.zeros(n, dtype=bool)
        if table is None:
            return None, found
        d = table.vectors.shape[1]
        vectors = np.zeros((n, d), dtype=np.float32)
        rows = np.full(n, -1, dtype=np.int64)
        for i, t in enumerate(items):
            rows[i] = table.index.get(text_hash(t), -1)
        found = rows >= 0
        vectors[found] = table.vectors[rows[found]]
        return vectors, found

    def store(self, identity: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Add ``texts`` with their ``vectors`` (shape ``(n, d)``) to the file for ``identity``.

        Merges with what is already stored (new vectors win for repeated texts); written
        atomically.

        Raises
        ------
        ValueError
            If ``vectors`` is not ``(len(texts), d)``.
        EncoderError
            If ``d`` differs from the dimension already stored under ``identity``.
        """
        items = check_texts(texts)
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(items):
            raise ValueError(
                f"store(): vectors must have shape ({len(items)}, d), got {tuple(vecs.shape)}"
            )
        if not items:
            return
        path = self.path_for(identity)
        table = self._table(identity)
        if table is not None and table.vectors.shape[1] != vecs.shape[1]:
            raise EncoderError(
                f"cache '{path}': identity {identity!r} holds d={table.vectors.shape[1]} vectors, "
                f"got d={vecs.shape[1]} (expected one dimension per identity)"
            )
        if table is None:
            hashes = np.zeros((0, _HASH_BYTES), dtype=np.uint8)
            old = np.zeros((0, vecs.shape[1]), dtype=np.float32)
            index: dict[bytes, int] = {}
        else:
            hashes, old, index = table.hashes, table.vectors, dict(table.index)
        new_hashes: list[bytes] = []
        new_rows: list[int] = []
        old = old.copy()
        for i, t in enumerate(items):
            h = text_hash(t)
            j = index.get(h)
            if j is not None:
                old[j] = vecs[i]
            else:
                index[h] = len(hashes) + len(new_hashes)
                new_hashes.append(h)
                new_rows.append(i)
        if new_hashes:
            added = np.frombuffer(b"".join(new_hashes), dtype=np.uint8).reshape(-1, _HASH_BYTES)
            hashes = np.concatenate([hashes, added])
            old = np.concatenate([old, vecs[new_rows]])
        _atomic_savez(
            path,
            version=np.array(_FORMAT_VERSION, dtype=np.int64),
            identity=np.array(identity),
            hashes=hashes,
            vectors=old,
            checksum=_checksum(identity, hashes, old),
        )
        self._tables[identity] = _Table(hashes, old, _stamp(path), index)

    def _table(self, identity: str) -> _Table | None:
        """Current table for ``identity``: memory if the file is unchanged, else re-read."""
        path = self.path_for(identity)
        stamp = _stamp(path)
        cached = self._tables.get(identity)
        if stamp is None:
            # Someone deleted the file: the memory copy is still valid data, but the contract
            # is "what is on disk", so forget it.
            self._tables.pop(identity, None)
            return None
        if cached is not None and cached.stamp == stamp:
            return cached
        table = self._read_table(path, identity, stamp)
        if table is None:
            self._tables.pop(identity, None)
        else:
            self._tables[identity] = table
        return table

    @staticmethod
    def _read_table(path: Path, identity: str, stamp: tuple[int, int, int]) -> _Table | None:
        try:
            z = _load_npz(path, ("version", "identity", "hashes", "vectors", "checksum"))
            if int(z["version"]) != _FORMAT_VERSION:
                raise _Corrupt(f"format version {int(z['version'])}, expected {_FORMAT_VERSION}")
            if str(z["identity"]) != identity:
                raise _Corrupt("stored identity does not match its file name")
            hashes, vectors = z["hashes"], z["vectors"]
            if hashes.dtype != np.uint8 or hashes.ndim != 2 or hashes.shape[1] != _HASH_BYTES:
                raise _Corrupt(f"bad hashes array {hashes.dtype}{hashes.shape}")
            if vectors.dtype != np.float32 or vectors.ndim != 2:
                raise _Corrupt(f"bad vectors array {vectors.dtype}{vectors.shape}")
            if vectors.shape[0] != hashes.shape[0]:
                raise _Corrupt("hashes and vectors differ in length")
            if not np.array_equal(z["checksum"], _checksum(identity, hashes, vectors)):
                raise _Corrupt("checksum mismatch")
        except FileNotFoundError:
            return None
        except _Corrupt as exc:
            _discard(path, str(exc))
            return None
        return _Table(hashes, vectors, stamp)

    # -- generic named arrays -----------------------------------------------------------------

    def array_path(self, key: str) -> Path:
        """Path of the file holding the named array ``key``."""
        return self.cache_dir / "arrays" / f"{_sha_name(key)}.npz"

    def get_array(self, key: str) -> np.ndarray | None:
        """Return the array stored under ``key``, or ``None`` if absent (or corrupt: warned,
        deleted)."""
        path = self.array_path(key)
        try:
            z = _load_npz(path, ("version", "key", "array", "checksum"))
            if int(z["version"]) != _FORMAT_VERSION:
                raise _Corrupt(f"format version {int(z['version'])}, expected {_FORMAT_VERSION}")
            if str(z["key"]) != key:
                raise _Corrupt("stored key does not match its file name")
            arr = z["array"]
            if not np.array_equal(z["checksum"], _checksum(key, arr)):
                raise _Corrupt("checksum mismatch")
        except FileNotFoundError:
            return None
        except _Corrupt as exc:
            _discard(path, str(exc))
            return None
        return arr

    def put_array(self, key: str, array: np.ndarray) -> None:
        """Store ``array`` (any shape, numeric or bool dtype) under ``key``, atomically."""
        arr = np.asarray(array)
        if arr.dtype.hasobject:
            raise ValueError(f"put_array({key!r}): object arrays cannot be cached")
        _atomic_savez(
            self.array_path(key),
            version=np.array(_FORMAT_VERSION, dtype=np.int64),
            key=np.array(key),
            array=arr,
            checksum=_checksum(key, arr),
        )


class CachedEncoder(TokenBudgetOfWrapped):
    """An :class:`Encoder` that answers from an :class:`EmbeddingCache` and only sends texts not
    cached yet to the wrapped encoder (in one call), then stores their vectors.

    Parameters
    ----------
    encoder : Encoder
        The model; its ``identity`` is the cache key.
    cache : EmbeddingCache

    Attributes
    ----------
    calls : int
        Number of texts sent to the wrapped encoder so far (distinct texts per call).
    """

    def __init__(self, encoder: Encoder, cache: EmbeddingCache) -> None:
        self.encoder = encoder
        self.cache = cache
        self.name: str = encoder.name
        self.dim: int = encoder.dim
        self.identity: str = encoder.identity
        self.calls: int = 0

    def __repr__(self) -> str:
        return f"CachedEncoder({self.encoder!r}, {self.cache!r})"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` (n) into float32 ``(n, dim)``, unit-norm rows, in input order."""
        items = check_texts(texts)
        if not items:
            return empty_vectors(self.dim)
        unique = list(dict.fromkeys(items))
        vectors, found = self.cache.lookup(self.identity, unique)
        if vectors is None:
            vectors = np.zeros((len(unique), self.dim), dtype=np.float32)
        missing = [t for t, f in zip(unique, found, strict=True) if not f]
        if missing:
            self.cache.check_writable()
            # Canonical shapes where the encoder offers them: a vector stored here must not
            # depend on which other texts happened to be missing with it (see
            # TransformerEncoder.encode_canonical), or a run would depend on what ran before.
            encode = getattr(self.encoder, "encode_canonical", self.encoder.encode)
            new = np.asarray(encode(missing), dtype=np.float32)
            self.calls += len(missing)
            self.cache.store(self.identity, missing, new)
            vectors[~found] = new
        pos = {t: i for i, t in enumerate(unique)}
        return vectors[[pos[t] for t in items]]
