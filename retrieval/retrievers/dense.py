"""Mode `dense`, a baseline: cosine similarity of the chunk embeddings to the question's."""

from __future__ import annotations

from collections.abc import Sequence

from retrieval.retrievers.base import RetrievedChunk, Retriever, StageTimer, plain_chunks


class DenseRetriever(Retriever):
    """Baseline: cosine similarity of chunk embeddings to the question's."""

    mode = "dense"

    def _candidates(
        self, question: str, depth: int, timer: StageTimer, seeds: Sequence[str]
    ) -> tuple[list[RetrievedChunk], list[str]]:
        with timer("embed"):
            qvec = self.index.embed_query([question])[0]
        with timer("search"):
            hits = self.index.dense_search("chunks", qvec, depth)
        return plain_chunks(self.store, hits), []
