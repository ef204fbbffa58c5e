from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from synthkg.embeddings import SentenceTransformerEmbedder
from synthkg.indexes import SearchIndex
from synthkg.model import GraphBatch
from synthkg.store.embedded import EmbeddedStore
from tests.retrieval.corpus import build_batch


@dataclass
class Corpus:
    store: EmbeddedStore
    index: SearchIndex
    batch: GraphBatch


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture
def two_hop(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> Iterator[Corpus]:
    """The 2-hop corpus in a fresh embedded store, indexed with the real MiniLM."""
    batch = build_batch()
    store = EmbeddedStore(tmp_path / "store")
    try:
        store.write(batch)
        index = SearchIndex.open(tmp_path / "index", minilm)
        index.update(store)
        yield Corpus(store, index, batch)
    finally:
        store.close()
