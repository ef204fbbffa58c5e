"""Mode `bm25`, a baseline: BM25 over the chunk texts."""

from __future__ import annotations

from collections.abc import Sequence

from retrieval.retrievers.base import RetrievedChunk, Retriever, StageTimer, plain_chunks


class BM25Retriever(Retriever):
    """Baseline: BM25 over chunk texts."""

    mode = "bm25"

    def _candidates(
        self, question: str, depth: int, timer: StageTimer, seeds: Sequence[str]
    ) -> tuple[list[RetrievedChunk], list[str]]:
        with timer("search"):
            hits = [(cid, s) for cid, s in self.index.bm25_search("chunks", question, depth) if s > 0]
        return plain_chunks(self.store, hits), []
