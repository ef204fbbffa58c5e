"""`SynthKGRetriever` in small langchain-core chains, over the hand-written 2-hop corpus indexed with a
hashing embedder (the chat model in the chain is a fake: the test checks wiring, not answers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from pydantic import ValidationError

from retrieval.langchain_retriever import SynthKGRetriever
from synthkg.api import KnowledgeGraph
from synthkg.config import Settings
from synthkg.indexes import SearchIndex
from synthkg.model import GraphBatch
from synthkg.store.embedded import EmbeddedStore
from tests.retrieval.corpus import QUESTION, SUPPORT_A, SUPPORT_B, build_batch, chunk_id_of
from tests.retrieval.helpers import HashingEmbedder

Indexed = tuple[EmbeddedStore, SearchIndex, GraphBatch]


@pytest.fixture
def indexed(tmp_path: Path) -> Iterator[Indexed]:
    batch = build_batch()
    store = EmbeddedStore(tmp_path / "store")
    store.write(batch)
    index = SearchIndex.open(tmp_path / "store" / "index", HashingEmbedder())
    index.update(store)
    yield store, index, batch
    store.close()


def test_documents_carry_the_chunk_and_its_evidence(indexed: Indexed) -> None:
    store, index, batch = indexed
    docs = SynthKGRetriever(store=store, index=index, k=3).invoke(QUESTION)
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    texts = {c.id: c.text for c in batch.chunks}
    for doc in docs:
        assert set(doc.metadata) == {"chunk_id", "document_id", "score", "propositions", "paths"}
        assert doc.id == doc.metadata["chunk_id"] and doc.page_content == texts[doc.id]
    ids = [d.id for d in docs]
    assert {chunk_id_of(batch, SUPPORT_A), chunk_id_of(batch, SUPPORT_B)} <= set(ids)
    bridge = docs[ids.index(chunk_id_of(batch, SUPPORT_B))]
    assert "Xanadu Nights -[directed by]-> Yorick Bellamy" in bridge.metadata["paths"]
    scores = [d.metadata["score"] for d in docs]
    assert all(isinstance(s, float) for s in scores)

    plain = SynthKGRetriever(store=store, index=index, k=2, mode="bm25").invoke("lighthouse keeper Maine")
    assert [d.metadata["paths"] for d in plain] == [[], []]


def test_in_a_prompt_llm_chain(indexed: Indexed) -> None:
    store, index, _ = indexed
    retriever = SynthKGRetriever(store=store, index=index, k=2)
    prompts: list[str] = []

    def format_docs(docs: list[Document]) -> str:
        return "\n".join(f"[{d.metadata['chunk_id']}] {d.page_content}" for d in docs)

    def record(value: object) -> object:
        prompts.append(value.to_string())  # type: ignore[attr-defined]
        return value

    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the passages."), ("user", "Passages:\n{context}\n\nQuestion: {question}")]
    )
    chain = (
        {"context": retriever | RunnableLambda(format_docs), "question": RunnablePassthrough()}
        | prompt
        | RunnableLambda(record)
        | FakeListChatModel(responses=["Portugal"])
        | StrOutputParser()
    )
    assert chain.invoke(QUESTION) == "Portugal"
    (sent,) = prompts
    assert f"Question: {QUESTION}" in sent
    # The two top chunks went into the prompt, each with its id.
    top = [d.id for d in retriever.invoke(QUESTION)]
    assert all(f"[{cid}]" in sent for cid in top)


def test_wraps_a_knowledge_graph(tmp_path: Path, indexed: Indexed) -> None:
    store, index, _ = indexed
    direct = SynthKGRetriever(store=store, index=index, k=4, mode="ppr").invoke(QUESTION)
    store.close()  # release the write lock; the graph opens the store itself
    settings = Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data")
    with KnowledgeGraph.open(tmp_path / "store", settings=settings, embedder=HashingEmbedder()) as kg:
        via_graph = SynthKGRetriever(graph=kg, k=4, mode="ppr").invoke(QUESTION)
    assert [d.id for d in via_graph] == [d.id for d in direct]

    # Without k and mode the retriever takes the graph's [retrieval] settings.
    settings = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"mode": "ppr",
                                                                                           "k": 4})})
    with KnowledgeGraph.open(tmp_path / "store", settings=settings, embedder=HashingEmbedder()) as kg:
        configured = SynthKGRetriever(graph=kg).invoke(QUESTION)
    assert [d.id for d in configured] == [d.id for d in direct]


def test_needs_exactly_one_source(indexed: Indexed) -> None:
    store, index, _ = indexed
    with pytest.raises(ValidationError, match="either graph="):
        SynthKGRetriever(store=store)
    with pytest.raises(ValidationError, match="either graph="):
        SynthKGRetriever(graph=object(), store=store, index=index)
