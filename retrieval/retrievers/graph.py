"""Mode `graph`: the proposition-entity graph retriever of Distill-SynthKG, as numbered stages:

    1. top-M propositions by a hybrid score (normalized BM25 + dense; retrieval/retrievers/hybrid.py);
    2. the question's entities (exact name matches, dense similarity over entity names, the entities of
       the documents the question names by title; retrieval/retrievers/linking.py);
    3. the subgraph around the question's entities and the top propositions' entities (N hops), and how
       close each of its entities is to the question's entities;
    4. candidate propositions: those of the entities closest to the question's entities (plus the top
       propositions), scored by their hybrid score plus that closeness;
    5. proposition scores aggregated to chunks (max + a small sum bonus); chunks within reach of the
       question's entities rank first. A chunk whose extraction failed has no propositions for the graph
       to find: when it is among the top chunks by its own hybrid score, that score (plus the closeness
       of the reached entities its text names) stands in for its propositions, so it stays retrievable.
  A question without linked entities is anchored on the top propositions' entities instead.

Mode `ppr` (retrieval/retrievers/ppr.py) shares stages 1-4 and replaces stage 5's scores. Every returned
chunk carries the evidence that led to it: its best propositions and the entity paths (relations) from the
question's entities to them.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from retrieval.retrievers.base import RetrievedChunk, Retriever, StageTimer
from retrieval.retrievers.hybrid import hybrid_proposition_scores, hybrid_scores, minmax
from retrieval.retrievers.linking import (
    Seed,
    link_question_and_names,
    merge_seeds,
    name_spans,
    title_seeds,
)
from synthkg.config import RetrievalParams
from synthkg.indexes import SearchIndex, top_k
from synthkg.model import Chunk, Document, Entity, Proposition, Relation
from synthkg.store.base import GraphStore


@dataclass(frozen=True)
class Reach:
    """How close an entity is to the seeds: the best `weight * decay**hops`, and the last step of that
    path (None at a seed)."""

    closeness: float
    parent: str | None = None
    relation: Relation | None = None


@dataclass
class Expansion:
    """Stages 3-4: the subgraph around the seeds and the candidate propositions in it."""

    entities: dict[str, Entity]
    relations: list[Relation]
    reach: dict[str, Reach]
    propositions: dict[str, Proposition] = field(default_factory=dict)


@dataclass
class ChunkScoring:
    """What stage 5 scores chunks from: the expansion and its anchors, the top propositions, the
    candidate propositions' scores, and per chunk (index row order) its dense and hybrid scores; the
    failed chunks among the top chunks, with the reached entities their text names."""

    expansion: Expansion
    anchors: dict[str, Seed]
    top_props: list[tuple[Proposition, float]]
    prop_scores: dict[str, float]
    chunk_dense: np.ndarray
    chunk_hybrid: np.ndarray
    chunk_position: dict[str, int]
    failed_named: dict[str, list[str]]


class GraphRetriever(Retriever):
    """The proposition-entity graph retriever (stages 1-5 in the module docstring)."""

    mode = "graph"
    # Stage 5b: chunks within reach of the question's entities first (the graph retriever's "keep").
    reached_first: ClassVar[bool] = True

    def _candidates(
        self, question: str, depth: int, timer: StageTimer, seeds: Sequence[str]
    ) -> tuple[list[RetrievedChunk], list[str]]:
        store, index, params = self.store, self.index, self.params
        spans = name_spans(question)
        with timer("embed"):
            vectors = index.embed_query([question, *spans, *seeds])
        qvec = vectors[0]
        with timer("1_propositions"):
            hybrid = hybrid_proposition_scores(question, qvec, index, params.dense_weight)
            top_props = top_propositions(store, index, hybrid, params.top_propositions)
        with timer("2_question_entities"):
            question_seeds = link_question_and_names(question, spans, seeds, vectors, index, params)
            titled = title_seeds(question, store, index, params, question_seeds)
            question_seeds = merge_seeds(question_seeds, titled)
        with timer("3_subgraph"):
            anchors = question_seeds or proposition_seeds(top_props, params.proposition_seed_weight)
            expansion = expand(store, anchors, top_props, params)
        with timer("4_propositions_in_graph"):
            collect_propositions(store, expansion, top_props, params.max_entities)
            prop_scores = score_propositions(expansion, hybrid, index.position("propositions"), params)
        with timer("5_chunks"):
            chunk_dense = minmax(index.dense_scores("chunks", qvec))
            chunk_bm25 = index.bm25_scores("chunks", question)
            chunk_hybrid = hybrid_scores(chunk_dense, chunk_bm25, params.dense_weight)
            with_props = {p.chunk_id for p in expansion.propositions.values()}
            chunk_ids = index.ids("chunks")
            top_chunk_ids = [chunk_ids[i] for i in top_k(chunk_hybrid, depth)]
            failed = failed_chunks(store, (c for c in top_chunk_ids if c not in with_props))
            scoring = ChunkScoring(
                expansion, anchors, top_props, prop_scores, chunk_dense, chunk_hybrid,
                index.position("chunks"), {c.id: named_entities(expansion, c.text) for c in failed},
            )
            chunk_scores, prop_scores = self.score_chunks(scoring)
            reached_failed = [cid for cid, named in scoring.failed_named.items() if named]
            ranked = rank_chunks(chunk_scores, expansion if self.reached_first else None, reached_failed)
            chunks = evidence_chunks(store, ranked[:depth], expansion, prop_scores, params.evidence_per_chunk)
        names = [expansion.entities[s].name if s in expansion.entities else s for s in question_seeds]
        return chunks, names

    def score_chunks(self, scoring: ChunkScoring) -> tuple[dict[str, float], dict[str, float]]:
        """Stage 5a: per chunk, its propositions' scores aggregated (a failed chunk: its own hybrid score
        plus the closeness of the reached entities it names), plus `chunk_weight` times its dense score;
        and the propositions' scores (as stage 4 gave them)."""
        params, expansion = self.params, scoring.expansion
        chunk_scores = aggregate_to_chunks(expansion.propositions, scoring.prop_scores, params.sum_bonus)
        for cid, named in scoring.failed_named.items():
            near = max((expansion.reach[e].closeness for e in named), default=0.0)
            own = float(scoring.chunk_hybrid[scoring.chunk_position[cid]])
            chunk_scores[cid] = own + params.graph_weight * near
        for cid in chunk_scores:
            i = scoring.chunk_position.get(cid)
            if i is not None:
                chunk_scores[cid] += params.chunk_weight * float(scoring.chunk_dense[i])
        return chunk_scores, scoring.prop_scores


def top_propositions(
    store: GraphStore, index: SearchIndex, hybrid: np.ndarray, m: int
) -> list[tuple[Proposition, float]]:
    """Stage 1: the `m` best propositions by hybrid score, with their scores (those the store holds)."""
    ids = index.ids("propositions")
    found = []
    for i in top_k(hybrid, m):
        # The index may lag behind the store: skip what the store no longer has.
        prop = store.get_proposition(ids[i])
        if prop is not None:
            found.append((prop, float(hybrid[i])))
    return found


def proposition_seeds(top_props: list[tuple[Proposition, float]], factor: float) -> dict[str, Seed]:
    """Anchors for a question without linked entities: the entities of the top propositions, weighted by
    the proposition's score relative to the best one, times `factor`."""
    seeds: dict[str, Seed] = {}
    best = max((s for _, s in top_props), default=0.0)
    if best <= 0:
        return seeds
    for prop, score in top_props:
        weight = factor * score / best
        for eid in prop.entity_ids:
            if eid not in seeds or seeds[eid].weight < weight:
                seeds[eid] = Seed(eid, weight)
    return seeds


def expand(
    store: GraphStore,
    anchors: dict[str, Seed],
    top_props: list[tuple[Proposition, float]],
    params: RetrievalParams,
) -> Expansion:
    """Stage 3: the subgraph within `hops` of the anchors and of the top propositions' entities (PPR walks
    all of it), and how close each entity within `hops` of the anchors is to them."""
    starts = list(dict.fromkeys([*anchors, *(e for p, _ in top_props for e in p.entity_ids)]))
    if not starts:
        return Expansion({}, [], {})
    sub = store.subgraph(starts, hops=params.hops)
    entities = {e.id: e for e in sub.entities}
    reach = closeness(anchors, sub.relations, params.hops, params.hop_decay)
    return Expansion(entities, sub.relations, {eid: r for eid, r in reach.items() if eid in entities})


def closeness(seeds: dict[str, Seed], relations: list[Relation], hops: int, decay: float) -> dict[str, Reach]:
    """Best-first walk from all seeds at once: each entity's best `seed weight * decay**steps` within
    `hops` steps, and the step that achieved it (so the path can be read back)."""
    adjacency: dict[str, list[tuple[str, Relation]]] = {}
    for rel in sorted(relations, key=lambda r: r.id):
        adjacency.setdefault(rel.subject_id, []).append((rel.object_id, rel))
        adjacency.setdefault(rel.object_id, []).append((rel.subject_id, rel))
    reach: dict[str, Reach] = {}
    # Entries: (-closeness, steps, entity, push order, parent, relation): ties pop by fewer steps, then
    # by id, then first pushed, so parallel relations never get compared.
    order = itertools.count()
    heap: list[tuple[float, int, str, int, str | None, Relation | None]] = [
        (-s.weight, 0, s.entity_id, next(order), None, None) for s in seeds.values() if s.weight > 0
    ]
    heapq.heapify(heap)
    while heap:
        neg, steps, eid, _, parent, rel = heapq.heappop(heap)
        if eid in reach:
            continue
        reach[eid] = Reach(-neg, parent, rel)
        if steps == hops:
            continue
        for other, edge in adjacency.get(eid, ()):
            if other not in reach:
                heapq.heappush(heap, (neg * decay, steps + 1, other, next(order), eid, edge))
    return reach


def collect_propositions(
    store: GraphStore, expansion: Expansion, top_props: list[tuple[Proposition, float]], max_entities: int
) -> None:
    """Stage 4a: the propositions of the `max_entities` entities closest to the anchors, plus the top
    propositions (which keep the retriever useful when the graph around the question is thin)."""
    closest = sorted(expansion.reach.items(), key=lambda kv: (-kv[1].closeness, kv[0]))[:max_entities]
    props = expansion.propositions
    for eid, _ in closest:
        for prop in store.propositions_of_entity(eid):
            props.setdefault(prop.id, prop)
    for prop, _ in top_props:
        props.setdefault(prop.id, prop)


def _nearness(expansion: Expansion, prop: Proposition) -> float:
    """The closeness to the anchors of the proposition's closest entity (0 when none is reached)."""
    return max((expansion.reach[e].closeness for e in prop.entity_ids if e in expansion.reach), default=0.0)


def score_propositions(
    expansion: Expansion, hybrid: np.ndarray, position: dict[str, int], params: RetrievalParams
) -> dict[str, float]:
    """Stage 4b: hybrid score + graph_weight * closeness to the anchors."""
    scores = {}
    for pid, prop in expansion.propositions.items():
        i = position.get(pid)
        lexical = float(hybrid[i]) if i is not None else 0.0
        scores[pid] = lexical + params.graph_weight * _nearness(expansion, prop)
    return scores


def aggregate_to_chunks(
    propositions: dict[str, Proposition], scores: dict[str, float], sum_bonus: float
) -> dict[str, float]:
    """Stage 5a: a chunk scores its best proposition plus `sum_bonus` times the sum of its others."""
    per_chunk: dict[str, list[float]] = {}
    for pid, score in scores.items():
        per_chunk.setdefault(propositions[pid].chunk_id, []).append(score)
    return {cid: max(s) + sum_bonus * (sum(s) - max(s)) for cid, s in per_chunk.items()}


def failed_chunks(store: GraphStore, chunk_ids: Iterable[str]) -> list[Chunk]:
    """The chunks among `chunk_ids` whose extraction failed (their document records it at ingest): the
    graph holds nothing of them, so stage 5 scores them by their own text."""
    failed: list[Chunk] = []
    documents: dict[str, Document | None] = {}
    for cid in chunk_ids:
        chunk = store.get_chunk(cid)
        if chunk is None:
            continue
        if chunk.document_id not in documents:
            documents[chunk.document_id] = store.get_document(chunk.document_id)
        document = documents[chunk.document_id]
        if document is not None and str(chunk.index) in (document.metadata.get("failed_chunks") or {}):
            failed.append(chunk)
    return failed


def named_entities(expansion: Expansion, text: str) -> list[str]:
    """For a chunk the graph cannot see: the reached entities (closeness > 0) its text names, whole
    words, case-insensitive; they stand in for its propositions' entities."""
    folded = text.casefold()
    return [
        eid for eid, r in expansion.reach.items()
        if r.closeness > 0 and eid in expansion.entities
        and re.search(rf"\b{re.escape(expansion.entities[eid].name.casefold())}\b", folded)
    ]


def rank_chunks(
    chunk_scores: dict[str, float], expansion: Expansion | None, also_reached: Iterable[str] = ()
) -> list[tuple[str, float]]:
    """Stage 5b: by score; given the expansion, chunks with a proposition within reach of the anchors
    come first (the graph retriever's "keep"), with `also_reached` (failed chunks that name an entity
    within reach), then the chunks only the top propositions brought."""
    reached = (
        {p.chunk_id for p in expansion.propositions.values() if _nearness(expansion, p) > 0}
        | set(also_reached)
        if expansion is not None
        else set(chunk_scores)
    )
    return sorted(chunk_scores.items(), key=lambda kv: (kv[0] not in reached, -kv[1], kv[0]))


def render_path(expansion: Expansion, entity_id: str) -> str | None:
    """The relations from a seed to `entity_id`, e.g. "Xanadu Nights -[directed by]-> Yorick Bellamy";
    None when the entity is a seed itself."""
    steps: list[Relation] = []
    node = entity_id
    while (r := expansion.reach.get(node)) is not None and r.parent is not None and r.relation is not None:
        steps.append(r.relation)
        node = r.parent
    if not steps:
        return None
    parts = [_name(expansion, node)]
    for rel in reversed(steps):
        forward = rel.subject_id == node
        node = rel.object_id if forward else rel.subject_id
        arrow = f" -[{rel.predicate}]-> " if forward else f" <-[{rel.predicate}]- "
        parts.append(arrow + _name(expansion, node))
    return "".join(parts)


def _name(expansion: Expansion, entity_id: str) -> str:
    entity = expansion.entities.get(entity_id)
    return entity.name if entity is not None else entity_id


def evidence_chunks(
    store: GraphStore,
    ranked: list[tuple[str, float]],
    expansion: Expansion,
    prop_scores: dict[str, float],
    per_chunk: int,
) -> list[RetrievedChunk]:
    """The `ranked` chunks with their evidence: their `per_chunk` best propositions and the entity path
    from a seed to each proposition's closest reached entity."""
    by_chunk: dict[str, list[Proposition]] = {}
    for pid in sorted(prop_scores, key=lambda p: (-prop_scores[p], p)):
        prop = expansion.propositions[pid]
        by_chunk.setdefault(prop.chunk_id, []).append(prop)
    chunks = []
    for cid, score in ranked:
        chunk = store.get_chunk(cid)
        if chunk is None:
            continue
        props = by_chunk.get(cid, [])[:per_chunk]
        paths: list[str] = []
        reached: list[str] = []
        for prop in props:
            near = [e for e in prop.entity_ids if e in expansion.reach]
            for eid in sorted(near, key=lambda e: (-expansion.reach[e].closeness, e))[:1]:
                path = render_path(expansion, eid)
                if path is not None and path not in paths:
                    paths.append(path)
                    reached.append(_name(expansion, eid))
        chunks.append(
            RetrievedChunk(
                chunk_id=cid,
                document_id=chunk.document_id,
                score=score,
                text=chunk.text,
                propositions=[p.text for p in props],
                paths=paths,
                reached=list(dict.fromkeys(reached)),
            )
        )
    return chunks
