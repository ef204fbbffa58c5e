"""A deterministic stand-in embedder for the tests of retrieval/ that need no real model."""

from __future__ import annotations

import hashlib

import numpy as np

from synthkg.indexes import tokenize


class HashingEmbedder:
    """Bag of hashed words, L2-normalized: texts sharing words are similar. Records what it embedded."""

    def __init__(self, name: str = "hashing-test", dim: int = 64) -> None:
        self.name = name
        self._dim = dim
        self.calls: list[list[str]] = []

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        vectors = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in tokenize(text) or [text]:
                slot = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little") % self._dim
                vectors[row, slot] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]
