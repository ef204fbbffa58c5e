"""The same graph in the embedded store and on a real Bolt server (ArcadeDB) answers every retrieval mode
with the same chunks in the same order: the retrievers read the graph only through the store interface,
so the store a user picks must not change what they get back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.retrievers import MODES, retrieve
from synthkg.embeddings import SentenceTransformerEmbedder
from synthkg.indexes import SearchIndex
from synthkg.store.neo4j import Neo4jStore
from tests.retrieval.conftest import Corpus
from tests.retrieval.corpus import QUESTION, build_batch

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

QUESTIONS = (
    QUESTION,
    "Where did Yorick Bellamy study painting?",
    "Which city hosted the first paid film screening?",
    "Who directed the 1980 musical Xanadu?",
)


@pytest.fixture
def on_bolt(bolt_server: object, tmp_path: Path, minilm: SentenceTransformerEmbedder) -> Iterator[Corpus]:
    """The 2-hop corpus written to the Bolt server, with its own index built from what the server holds."""
    store = Neo4jStore(
        uri=bolt_server.uri,  # type: ignore[attr-defined]
        username=bolt_server.username,  # type: ignore[attr-defined]
        password=bolt_server.password,  # type: ignore[attr-defined]
        database=bolt_server.database,  # type: ignore[attr-defined]
    )
    try:
        store.clear()
        batch = build_batch()
        store.write(batch)
        index = SearchIndex.open(tmp_path / "bolt-index", minilm)
        index.update(store)
        yield Corpus(store, index, batch)  # type: ignore[arg-type]
    finally:
        store.close()


@pytest.mark.parametrize("mode", MODES)
def test_bolt_store_retrieves_what_the_embedded_store_retrieves(
    mode: str, two_hop: Corpus, on_bolt: Corpus
) -> None:
    assert on_bolt.store.counts() == two_hop.store.counts()
    for question in QUESTIONS:
        embedded = retrieve(question, 5, mode, store=two_hop.store, index=two_hop.index)  # type: ignore[arg-type]
        bolt = retrieve(question, 5, mode, store=on_bolt.store, index=on_bolt.index)  # type: ignore[arg-type]
        assert embedded.chunks, (mode, question)
        assert [c.chunk_id for c in bolt.chunks] == [c.chunk_id for c in embedded.chunks], (mode, question)
        assert [c.score for c in bolt.chunks] == pytest.approx([c.score for c in embedded.chunks]), question
        assert [c.paths for c in bolt.chunks] == [c.paths for c in embedded.chunks], (mode, question)
