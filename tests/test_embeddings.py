from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from synthkg.config import EmbeddingSettings
from synthkg.embeddings import (
    DEFAULT_MODEL,
    Embedder,
    EmbeddingError,
    LangChainEmbedder,
    SentenceTransformerEmbedder,
    l2_normalize,
    make_embedder,
    resolve_model_path,
)


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(batch_size=2)


@pytest.mark.slow
def test_real_model_embeds_normalized_and_similar_closer(minilm: SentenceTransformerEmbedder) -> None:
    texts = [
        "A cat is sitting on the mat.",
        "A kitten sits on a rug.",
        "The stock market fell sharply today.",
    ]
    vectors = minilm.embed(texts)
    assert isinstance(minilm, Embedder)
    assert (minilm.name, minilm.dim) == (DEFAULT_MODEL, 384)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > 0.5 > similarity[0, 2]
    assert similarity[0, 1] > similarity[1, 2]
    # Batching (2 per batch here) does not change the vectors.
    np.testing.assert_allclose(SentenceTransformerEmbedder(batch_size=64).embed(texts), vectors, atol=1e-5)
    assert minilm.embed([]).shape == (0, 384)


@pytest.mark.slow
def test_threads_are_set_for_the_call(minilm: SentenceTransformerEmbedder) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        minilm.embed(["one query"])
        assert torch.get_num_threads() == 1
        SentenceTransformerEmbedder(threads=None)._set_threads()
        assert torch.get_num_threads() == 1  # None leaves torch's setting alone
    finally:
        torch.set_num_threads(before)


def test_make_embedder_from_settings() -> None:
    embedder = make_embedder(EmbeddingSettings(batch_size=8, threads=None))
    assert (embedder.name, embedder.batch_size, embedder.threads) == (DEFAULT_MODEL, 8, None)
    assert (resolve_model_path(DEFAULT_MODEL) / "modules.json").is_file()


def test_missing_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    embedder = SentenceTransformerEmbedder(model=str(tmp_path / "no-model"))
    with pytest.raises(EmbeddingError, match=r"no-model' is not a sentence-transformers model directory"):
        embedder.embed(["text"])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        SentenceTransformerEmbedder(batch_size=0)
    with pytest.raises(ValueError, match="threads"):
        SentenceTransformerEmbedder(threads=0)


def test_langchain_embedder_normalizes() -> None:
    embedder = LangChainEmbedder(DeterministicFakeEmbedding(size=16), name="fake")
    assert isinstance(embedder, Embedder)
    assert embedder.dim == 16
    vectors = embedder.embed(["a", "b", "a"])
    assert vectors.shape == (3, 16)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert embedder.embed([]).shape == (0, 16)


def test_l2_normalize_keeps_zero_rows() -> None:
    result = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(result, [[0.6, 0.8], [0.0, 0.0]])
    assert result.dtype == np.float32
