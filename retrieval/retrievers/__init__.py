"""Chunk retrieval over a graph store and its search index: one `Retriever` class per mode on a common base
(`make_retriever(store, index, mode)`, or `retrieve(...)` for one question), one module each:

- `bm25`, `dense` (bm25.py, dense.py): the baselines, BM25 / cosine over chunks.
- `graph` (graph.py): the proposition-entity graph retriever of Distill-SynthKG, in numbered stages (top
  propositions, the question's entities, the subgraph around them, candidate propositions, chunks).
- `ppr` (ppr.py): the graph retriever's stages 1-4, then personalized PageRank over that subgraph.
- `hippo` (hippo.py): personalized PageRank over the WHOLE corpus graph of entities and passages, HippoRAG
  2's way (retrieval/passage_graph.py).

The stages the graph modes share live beside them: hybrid.py (BM25 + dense scores of propositions and
chunks) and linking.py (the question's entities as seeds). base.py holds the protocol and the result
types. Every returned chunk carries the evidence that led to it (graph modes): its best propositions and
the entity paths from the question's entities to them.
"""

from __future__ import annotations

from collections.abc import Sequence

from retrieval.modes import MODES, Mode
from retrieval.retrievers.base import (
    FactFilter,
    Reranker,
    RetrievalResult,
    RetrievedChunk,
    Retriever,
    StageTimer,
    plain_chunks,
)
from retrieval.retrievers.bm25 import BM25Retriever
from retrieval.retrievers.dense import DenseRetriever
from retrieval.retrievers.graph import (
    ChunkScoring,
    Expansion,
    GraphRetriever,
    Reach,
    closeness,
    expand,
    render_path,
)
from retrieval.retrievers.hippo import HippoRetriever, filter_facts, top_facts
from retrieval.retrievers.hybrid import hybrid_proposition_scores, hybrid_scores, minmax
from retrieval.retrievers.linking import Seed, is_name, link_question_entities, name_spans, titled_chunks
from retrieval.retrievers.ppr import PPRRetriever, ppr_chunk_scores
from synthkg.config import RetrievalParams
from synthkg.indexes import SearchIndex
from synthkg.store.base import GraphStore

RETRIEVERS: dict[Mode, type[Retriever]] = {
    r.mode: r for r in (BM25Retriever, DenseRetriever, GraphRetriever, PPRRetriever, HippoRetriever)
}
assert tuple(RETRIEVERS) == MODES  # one class per mode, in the modes' order


def make_retriever(
    store: GraphStore,
    index: SearchIndex,
    mode: Mode = "graph",
    params: RetrievalParams | None = None,
    rerank: Reranker | None = None,
    fact_filter: FactFilter | None = None,
) -> Retriever:
    """The retriever of `mode` bound to a store and index (callable: the `retriever_fn` the reader takes)."""
    if mode not in RETRIEVERS:
        raise ValueError(f"unknown retrieval mode {mode!r}; expected one of {', '.join(MODES)}")
    return RETRIEVERS[mode](store, index, params, rerank, fact_filter)


def retrieve(
    question: str,
    k: int = 5,
    mode: Mode = "graph",
    *,
    store: GraphStore,
    index: SearchIndex,
    params: RetrievalParams | None = None,
    rerank: Reranker | None = None,
    seeds: Sequence[str] = (),
    fact_filter: FactFilter | None = None,
) -> RetrievalResult:
    """The top-`k` chunks for `question` by `mode` (see `Retriever.search`)."""
    return make_retriever(store, index, mode, params, rerank, fact_filter).search(question, k, seeds)


__all__ = [
    "MODES", "RETRIEVERS", "BM25Retriever", "ChunkScoring", "DenseRetriever", "Expansion", "FactFilter",
    "GraphRetriever", "HippoRetriever", "Mode", "PPRRetriever", "Reach", "Reranker", "RetrievalParams",
    "RetrievalResult", "RetrievedChunk", "Retriever", "Seed", "StageTimer", "closeness", "expand",
    "filter_facts", "hybrid_proposition_scores", "hybrid_scores", "is_name", "link_question_entities",
    "make_retriever", "minmax", "name_spans", "plain_chunks", "ppr_chunk_scores", "render_path", "retrieve",
    "titled_chunks", "top_facts",
]
