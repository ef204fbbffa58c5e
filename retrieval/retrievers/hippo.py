"""Mode `hippo`: personalized PageRank over the WHOLE corpus graph of entities and passages, HippoRAG 2's
way, in the numbered stages of retrieval/passage_graph.py: seeded by the top facts' entities (weighted by
how specific they are; with `fact_filter`, only the facts an LLM recognizes as bearing on the question),
the entities of the question and of the passages it names by title, and every passage's dense score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval.passage_graph import passage_graph, score_passages
from retrieval.retrievers.base import FactFilter, RetrievedChunk, Retriever, StageTimer
from retrieval.retrievers.hybrid import hybrid_proposition_scores, minmax
from retrieval.retrievers.linking import (
    link_question_and_names,
    merge_seeds,
    name_spans,
    title_seeds,
)
from synthkg.config import RetrievalParams
from synthkg.indexes import SearchIndex, top_k
from synthkg.store.base import GraphStore


class HippoRetriever(Retriever):
    """HippoRAG 2's personalized PageRank over the whole corpus graph (retrieval/passage_graph.py)."""

    mode = "hippo"

    def _candidates(
        self, question: str, depth: int, timer: StageTimer, seeds: Sequence[str]
    ) -> tuple[list[RetrievedChunk], list[str]]:
        return _hippo_retrieve(question, depth, self.store, self.index, self.params, timer, seeds,
                               self.fact_filter)


def _hippo_retrieve(
    question: str,
    depth: int,
    store: GraphStore,
    index: SearchIndex,
    params: RetrievalParams,
    timer: StageTimer,
    seeds: Sequence[str] = (),
    fact_filter: FactFilter | None = None,
) -> tuple[list[RetrievedChunk], list[str]]:
    """Mode hippo, in the stages of retrieval/passage_graph.py."""
    hippo = params.hippo
    spans = name_spans(question)
    with timer("embed"):
        vectors = index.embed_query([question, *spans, *seeds])
    qvec = vectors[0]
    with timer("1_facts"):
        hybrid = hybrid_proposition_scores(question, qvec, index, hippo.dense_weight)
        facts = top_facts(index, hybrid, hippo.top_facts)
    if fact_filter is not None:
        with timer("1b_fact_filter"):
            facts = filter_facts(question, facts, index, fact_filter)
    with timer("2_question_entities"):
        linked = link_question_and_names(question, spans, seeds, vectors, index, params)
        # A passage the question names by its title seeds the walk with all its entities, linked or not
        # (as HippoRAG seeds passages): on 2Wiki (37 questions, 605 passages) recall@5 0.899, against
        # 0.851 when titles only stand in for unlinked entities as in the graph and ppr modes.
        titled = title_seeds(question, store, index, params, linked=())
    with timer("3_graph"):
        graph = passage_graph(store, index, hippo)
    with timer("4_walk"):
        chunk_dense = minmax(index.dense_scores("chunks", qvec))
        weights = {s.entity_id: s.weight for s in merge_seeds(linked, titled).values()}
        scored = score_passages(store, graph, facts, chunk_dense, weights, depth, hippo)
    with timer("5_evidence"):
        position = index.position("propositions")
        chunks = []
        for cid, score in scored.chunk_scores:
            chunk = store.get_chunk(cid)
            if chunk is None:
                continue
            props = [store.get_proposition(pid) for pid in graph.chunk_propositions.get(cid, [])]
            best = sorted(
                (p for p in props if p is not None),
                key=lambda p: (-float(hybrid[position[p.id]]) if p.id in position else 0.0, p.id),
            )[: hippo.evidence_per_chunk]
            reached = [index.text("entities", e) or e for p in best for e in p.entity_ids if e not in linked]
            chunks.append(RetrievedChunk(chunk_id=cid, document_id=chunk.document_id, score=score,
                                         text=chunk.text, propositions=[p.text for p in best],
                                         reached=list(dict.fromkeys(reached))))
    names = [index.text("entities", eid) or eid for eid in linked]
    return chunks, names


def top_facts(index: SearchIndex, hybrid: np.ndarray, n: int) -> list[tuple[str, float]]:
    """Stage 1 of mode hippo: the `n` best propositions by hybrid score, as (id, score)."""
    prop_ids = index.ids("propositions")
    return [(prop_ids[i], float(hybrid[i])) for i in top_k(hybrid, n)]


def filter_facts(question: str, facts: list[tuple[str, float]], index: SearchIndex,
                 fact_filter: FactFilter) -> list[tuple[str, float]]:
    """The facts `fact_filter` keeps, in their order. None kept: the walk is seeded by the question's
    linked entities and the passages' dense scores alone (HippoRAG 2 falls back to dense retrieval)."""
    if not facts:
        return facts
    keep = set(fact_filter(question, [index.text("propositions", pid) or "" for pid, _ in facts]))
    return [fact for i, fact in enumerate(facts) if i in keep]
