"""The common base of the retrievers: what a retrieval returns (`RetrievalResult` of `RetrievedChunk`s),
the `Retriever` protocol every mode implements (`search(question, k, seeds)`, callable), and the small
helpers the modes share (per-stage timer, chunks without graph evidence)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import ClassVar

from pydantic import BaseModel, Field

from retrieval.modes import Mode, require_question
from synthkg.config import RetrievalParams
from synthkg.indexes import SearchIndex
from synthkg.store.base import GraphStore


class RetrievedChunk(BaseModel):
    chunk_id: str
    document_id: str
    score: float
    text: str
    propositions: list[str] = Field(default_factory=list, description="best propositions of the chunk")
    paths: list[str] = Field(default_factory=list, description="entity paths from the question to them")
    reached: list[str] = Field(
        default_factory=list,
        description="names of the entities the graph reached in this chunk that the question's own links "
        "are not (path ends; the bridge of a 2-hop question)",
    )


class RetrievalResult(BaseModel):
    question: str
    mode: Mode
    chunks: list[RetrievedChunk] = Field(default_factory=list)
    question_entities: list[str] = Field(default_factory=list, description="names linked in the question")
    timings_ms: dict[str, float] = Field(default_factory=dict, description="milliseconds per stage")

    @property
    def chunk_ids(self) -> list[str]:
        return [c.chunk_id for c in self.chunks]


Reranker = Callable[[str, list[RetrievedChunk]], list[RetrievedChunk]]
# Recognition memory: (question, the top facts' texts) -> the positions of the facts to keep.
FactFilter = Callable[[str, list[str]], list[int]]


class Retriever(ABC):
    """One retrieval mode bound to a store and its search index; call it (or `search`) with a question.
    `rerank`, when given, reorders the top `params.rerank_depth` candidates (e.g. `llm_reranker(backend)`)
    before the cut to `k`; `fact_filter` (mode hippo, e.g. `llm_fact_filter(backend)`) keeps only the top
    facts it recognizes as bearing on the question before they seed the walk. Every mode returns the same
    `RetrievalResult`, with per-stage timings."""

    mode: ClassVar[Mode]

    def __init__(
        self,
        store: GraphStore,
        index: SearchIndex,
        params: RetrievalParams | None = None,
        rerank: Reranker | None = None,
        fact_filter: FactFilter | None = None,
    ) -> None:
        self.store, self.index = store, index
        self.params = params or RetrievalParams()
        self.rerank = rerank
        self.fact_filter = fact_filter

    def search(self, question: str, k: int = 5, seeds: Sequence[str] = ()) -> RetrievalResult:
        """The top-`k` chunks for `question`. `seeds`: names the graph modes start from besides the
        question's own entities (an iterative reader's intermediate answers); the baselines ignore them."""
        require_question(question)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        timer = StageTimer()
        depth = max(k, self.params.rerank_depth) if self.rerank is not None else k
        with timer("total"):
            chunks, linked = self._candidates(question, depth, timer, seeds)
            if self.rerank is not None and chunks:
                with timer("rerank"):
                    chunks = self.rerank(question, chunks)
        return RetrievalResult(
            question=question, mode=self.mode, chunks=chunks[:k], question_entities=linked,
            timings_ms=timer.ms,
        )

    __call__ = search

    @abstractmethod
    def _candidates(
        self, question: str, depth: int, timer: StageTimer, seeds: Sequence[str]
    ) -> tuple[list[RetrievedChunk], list[str]]:
        """The best `depth` chunks, best first, and the names of the question's linked entities."""


def plain_chunks(store: GraphStore, hits: list[tuple[str, float]]) -> list[RetrievedChunk]:
    """The chunks of `hits` (id, score) in their order, without graph evidence; an id the store no longer
    holds (the index lags behind it) is skipped."""
    chunks = []
    for cid, score in hits:
        chunk = store.get_chunk(cid)
        if chunk is not None:
            chunks.append(
                RetrievedChunk(chunk_id=cid, document_id=chunk.document_id, score=score, text=chunk.text)
            )
    return chunks


class StageTimer:
    """Milliseconds per named stage (`with timer("1_facts"): ...`), summed over repeats."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage] = round(self.ms.get(stage, 0.0) + (time.perf_counter() - start) * 1000, 3)
