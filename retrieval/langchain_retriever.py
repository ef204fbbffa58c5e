"""The graph retrievers as a LangChain retriever, for use in any langchain-core chain:

    from retrieval.langchain_retriever import SynthKGRetriever
    from synthkg.api import KnowledgeGraph

    retriever = SynthKGRetriever(graph=KnowledgeGraph.open(".synthkg/store"), k=5, mode="graph")
    chain = retriever | format_docs | prompt | llm

Each Document is one chunk: `page_content` is its text, `metadata` holds chunk_id, document_id, score and
the evidence the graph retrievers found (propositions, entity paths).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, model_validator

from retrieval.retrievers import Mode, RetrievalParams, RetrievalResult, retrieve
from synthkg.config import RetrievalSettings
from synthkg.indexes import SearchIndex
from synthkg.store.base import GraphStore


class SynthKGRetriever(BaseRetriever):
    """Retrieves chunks from a `KnowledgeGraph` (`graph=`), or from a store and its search index
    (`store=` and `index=`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    graph: Any = Field(None, description="a synthkg.api.KnowledgeGraph")
    store: GraphStore | None = None
    index: SearchIndex | None = None
    k: int | None = Field(None, ge=1, description="default: the graph's [retrieval] k, else 5")
    mode: Mode | None = Field(None, description="default: the graph's [retrieval] mode, else graph")
    params: RetrievalParams | None = Field(None, description="default: the graph's [retrieval] knobs")

    @model_validator(mode="after")
    def _one_source(self) -> SynthKGRetriever:
        if (self.graph is None) == (self.store is None or self.index is None):
            raise ValueError("give either graph= (a KnowledgeGraph) or both store= and index=, not both")
        return self

    def _retrieve(self, query: str) -> RetrievalResult:
        if self.graph is not None:
            return self.graph.retrieve(query, k=self.k, mode=self.mode, params=self.params)
        assert self.store is not None and self.index is not None
        defaults = RetrievalSettings()
        return retrieve(query, self.k or defaults.k, self.mode or defaults.mode, store=self.store,
                        index=self.index, params=self.params)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [
            Document(
                id=chunk.chunk_id,
                page_content=chunk.text,
                metadata={
                    "chunk_id": chunk.chunk_id,
                    "document_id": chunk.document_id,
                    "score": chunk.score,
                    "propositions": chunk.propositions,
                    "paths": chunk.paths,
                },
            )
            for chunk in self._retrieve(query).chunks
        ]
