"""Chunk retrieval over a graph store and its search index: one `Retriever` class per mode on a common base
(`make_retriever(store, index, mode)`, or `retrieve(...)` for one question).

- `bm25`, `dense`: the baselines, BM25 / cosine over chunks.
- `graph`: the proposition-entity graph retriever of Distill-SynthKG, as numbered stages:
    1. top-M propositions by a hybrid score (normalized BM25 + dense);
    2. the question's entities (exact name matches, dense similarity over entity names);
    3. the subgraph around the question's entities and the top propositions' entities (N hops), and how
       close each of its entities is to the question's entities;
    4. candidate propositions: those of the entities closest to the question's entities (plus the top
       propositions), scored by their hybrid score plus that closeness;
    5. proposition scores aggregated to chunks (max + a small sum bonus); chunks within reach of the
       question's entities rank first. A chunk whose extraction failed has no propositions for the graph
       to find: when it is among the top chunks by its own hybrid score, that score (plus the closeness
       of the reached entities its text names) stands in for its propositions, so it stays retrievable.
  A question without linked entities is anchored on the top propositions' entities instead.
- `ppr`: stages 1-4, then personalized PageRank over entities, propositions and chunks, seeded by the
  question's entities and the top propositions; a chunk scores the PPR mass of its propositions and itself
  (a failed chunk among the top chunks joins the walk, linked to the reached entities its text names).
- `hippo`: personalized PageRank over the WHOLE corpus graph of entities and passages, HippoRAG 2's way
  (retrieval/passage_graph.py): seeded by the top facts' entities (weighted by how specific they are)
  and every passage's dense score, with synonym edges between entities that embed alike.

Every returned chunk carries the evidence that led to it: its best propositions and the entity paths
(relations) from the question's entities to them.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import networkx as nx
import numpy as np
from pydantic import BaseModel, Field

from retrieval.modes import MODES, Mode, require_question
from retrieval.passage_graph import passage_graph, score_passages
from synthkg.config import RetrievalParams
from synthkg.indexes import STOPWORDS, SearchIndex, matched_runs, top_k
from synthkg.model import Chunk, Document, Entity, Proposition, Relation, normalize_name
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
        timer = _Timer()
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
        self, question: str, depth: int, timer: _Timer, seeds: Sequence[str]
    ) -> tuple[list[RetrievedChunk], list[str]]:
        """The best `depth` chunks, best first, and the names of the question's linked entities."""


class BM25Retriever(Retriever):
    """Baseline: BM25 over chunk texts."""

    mode = "bm25"

    def _candidates(
        self, question: str, depth: int, timer: _Timer, seeds: Sequence[str]
    ) -> tuple[list[RetrievedChunk], list[str]]:
        with timer("search"):
            hits = [(cid, s) for cid, s in self.index.bm25_search("chunks", question, depth) if s > 0]
        return _plain_chunks(self.store, hits), []


class DenseRetriever(Retriever):
    """Baseline: cosine similarity of chunk embeddings to the question's."""

    mode = "dense"

    def _candidates(
        self, question: str, depth: int, timer: _Timer, seeds: Sequence[str]
    ) -> tuple[list[RetrievedChunk], list[str]]:
        with timer("embed"):
            qvec = self.index.embed_query([question])[0]
        with timer("search"):
            hits = self.index.dense_search("chunks", qvec, depth)
        return _plain_chunks(self.store, hits), []


class GraphRetriever(Retriever):
    """The proposition-entity graph retriever (stages 1-5 in the module docstring)."""

    mode = "graph"

    def _candidates(
        self, question: str, depth: int, timer: _Timer, seeds: Sequence[str]
    ) -> tuple[list[RetrievedChunk], list[str]]:
        return _graph_retrieve(question, depth, self.mode, self.store, self.index, self.params, timer, seeds)


class PPRRetriever(GraphRetriever):
    """Stages 1-4 of the graph retriever, then personalized PageRank over the subgraph."""

    mode = "ppr"


class HippoRetriever(Retriever):
    """HippoRAG 2's personalized PageRank over the whole corpus graph (retrieval/passage_graph.py)."""

    mode = "hippo"

    def _candidates(
        self, question: str, depth: int, timer: _Timer, seeds: Sequence[str]
    ) -> tuple[list[RetrievedChunk], list[str]]:
        return _hippo_retrieve(question, depth, self.store, self.index, self.params, timer, seeds,
                               self.fact_filter)


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


# --- graph and PPR retrieval -------------------------------------------------------------------------
@dataclass(frozen=True)
class Seed:
    """A start entity of the graph walk and how much we trust it."""

    entity_id: str
    weight: float


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


def _graph_retrieve(
    question: str,
    depth: int,
    mode: Mode,
    store: GraphStore,
    index: SearchIndex,
    params: RetrievalParams,
    timer: _Timer,
    seeds: Sequence[str] = (),
) -> tuple[list[RetrievedChunk], list[str]]:
    spans = name_spans(question)
    with timer("embed"):
        vectors = index.embed_query([question, *spans, *seeds])
    qvec = vectors[0]
    with timer("1_propositions"):
        hybrid = hybrid_proposition_scores(question, qvec, index, params.dense_weight)
        top_props = _top_propositions(store, index, hybrid, params.top_propositions)
    with timer("2_question_entities"):
        question_seeds = link_question_entities(question, vectors[: 1 + len(spans)], spans, index, params)
        extra = link_names(seeds, vectors[1 + len(spans) :], index, params)
        question_seeds = merge_seeds(question_seeds, extra)
        titled = title_seeds(question, store, index, params, question_seeds)
        question_seeds = merge_seeds(question_seeds, titled)
    with timer("3_subgraph"):
        anchors = question_seeds or proposition_seeds(top_props, params.proposition_seed_weight)
        expansion = expand(store, anchors, top_props, params)
    with timer("4_propositions_in_graph"):
        collect_propositions(store, expansion, top_props, params.max_entities)
        prop_scores = score_propositions(expansion, hybrid, index.position("propositions"), params)
    with timer("5_chunks"):
        chunk_dense = _minmax(index.dense_scores("chunks", qvec))
        chunk_position = index.position("chunks")
        chunk_hybrid = hybrid_scores(chunk_dense, index.bm25_scores("chunks", question), params.dense_weight)
        with_props = {p.chunk_id for p in expansion.propositions.values()}
        chunk_ids = index.ids("chunks")
        top_chunk_ids = [chunk_ids[i] for i in top_k(chunk_hybrid, depth)]
        failed = failed_chunks(store, (c for c in top_chunk_ids if c not in with_props))
        failed_named = {c.id: named_entities(expansion, c.text) for c in failed}
        if mode == "graph":
            chunk_scores = aggregate_to_chunks(expansion.propositions, prop_scores, params.sum_bonus)
            for cid, named in failed_named.items():
                near = max((expansion.reach[e].closeness for e in named), default=0.0)
                chunk_scores[cid] = float(chunk_hybrid[chunk_position[cid]]) + params.graph_weight * near
            for cid in chunk_scores:
                i = chunk_position.get(cid)
                if i is not None:
                    chunk_scores[cid] += params.chunk_weight * float(chunk_dense[i])
        else:
            chunk_scores, prop_scores = ppr_chunk_scores(
                expansion, anchors, top_props, chunk_dense, chunk_position, params, failed_named
            )
        reached_failed = [cid for cid, named in failed_named.items() if named]
        ranked = rank_chunks(chunk_scores, expansion if mode == "graph" else None, reached_failed)
        ranked = ranked[:depth]
        chunks = _evidence_chunks(store, ranked, expansion, prop_scores, params.evidence_per_chunk)
    names = [expansion.entities[s].name if s in expansion.entities else s for s in question_seeds]
    return chunks, names


def _hippo_retrieve(
    question: str,
    depth: int,
    store: GraphStore,
    index: SearchIndex,
    params: RetrievalParams,
    timer: _Timer,
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
        linked = link_question_entities(question, vectors[: 1 + len(spans)], spans, index, params)
        linked = merge_seeds(linked, link_names(seeds, vectors[1 + len(spans) :], index, params))
        # A passage the question names by its title seeds the walk with all its entities, linked or not
        # (as HippoRAG seeds passages): on 2Wiki (37 questions, 605 passages) recall@5 0.899, against
        # 0.851 when titles only stand in for unlinked entities as in the graph and ppr modes.
        titled = title_seeds(question, store, index, params, linked=())
    with timer("3_graph"):
        graph = passage_graph(store, index, hippo)
    with timer("4_walk"):
        chunk_dense = _minmax(index.dense_scores("chunks", qvec))
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


def hybrid_proposition_scores(
    question: str, qvec: np.ndarray, index: SearchIndex, dense_weight: float
) -> np.ndarray:
    """Stage 1: per proposition (index row order), dense_weight * min-max(cosine) + the rest * BM25/max."""
    dense = _minmax(index.dense_scores("propositions", qvec))
    return hybrid_scores(dense, index.bm25_scores("propositions", question), dense_weight)


def hybrid_scores(dense: np.ndarray, bm25: np.ndarray, dense_weight: float) -> np.ndarray:
    """dense_weight * `dense` (already min-max scaled) + the rest * BM25/max, row by row."""
    top = float(bm25.max()) if bm25.size else 0.0
    lexical = np.clip(bm25 / top, 0.0, None) if top > 0 else np.zeros_like(dense)
    return dense_weight * dense + (1.0 - dense_weight) * lexical


def _top_propositions(
    store: GraphStore, index: SearchIndex, hybrid: np.ndarray, m: int
) -> list[tuple[Proposition, float]]:
    ids = index.ids("propositions")
    found = []
    for i in top_k(hybrid, m):
        # The index may lag behind the store: skip what the store no longer has.
        prop = store.get_proposition(ids[i])
        if prop is not None:
            found.append((prop, float(hybrid[i])))
    return found


_NAME_TOKEN = re.compile(r"[\w][\w'’.&-]*", re.UNICODE)
_CONNECTORS = frozenset({"of", "the", "de", "and", "for", "in", "von", "van", "da", "du", "la", "le", "del"})
_QUOTED = re.compile(r"[\"“”«»]([^\"“”«»]{2,80})[\"“”«»]")


def name_spans(question: str) -> list[str]:
    """Spans of `question` that look like names: runs of capitalized words or numbers (allowing "of",
    "the"... inside) and quoted text; a leading question word or stopword is not part of a name."""
    spans: list[str] = [m.group(1).strip() for m in _QUOTED.finditer(question)]
    run: list[str] = []

    def close() -> None:
        while run and run[-1].casefold() in _CONNECTORS:
            run.pop()
        while run and run[0].casefold() in STOPWORDS:
            run.pop(0)
        if run:
            spans.append(" ".join(run))
        run.clear()

    for token in _NAME_TOKEN.findall(question):
        word = token.rstrip(".'’")
        if word[:1].isdigit() and run and run[-1] in _CONNECTORS:
            close()  # "Rings in 1954": a year after a connector is its own span, not part of the name
            run.append(word)
        elif word[:1].isupper() or word[:1].isdigit() or (run and word in _CONNECTORS):
            run.append(word)
        else:
            close()
    close()
    return list(dict.fromkeys(s for s in spans if s))


def link_question_entities(
    question: str, vectors: np.ndarray, spans: list[str], index: SearchIndex, params: RetrievalParams
) -> dict[str, Seed]:
    """Stage 2: exact name matches (weight 1), then the entities most similar to the whole question and to
    each name span without an exact match, above their similarity floors (weight = similarity)."""
    exact = index.entities_named_in(question)
    if params.named_seeds_only:
        exact = {eid: words for eid, words in exact.items() if is_name(words)}
    seeds = {eid: Seed(eid, 1.0) for eid in exact}
    matched = {normalize_name(words) for words in exact.values()}
    queries = [(params.question_entity_min_similarity, vectors[0])]
    queries += [
        (params.span_entity_min_similarity, vector)
        for span, vector in zip(spans, vectors[1:], strict=True)
        if normalize_name(span) not in matched
    ]
    for floor, vector in queries:
        for eid, sim in index.dense_search("entities", vector, params.entities_per_query):
            if params.named_seeds_only and not is_name(index.text("entities", eid) or ""):
                continue
            if sim >= floor and (eid not in seeds or seeds[eid].weight < sim):
                seeds[eid] = Seed(eid, sim)
    return seeds


def title_seeds(
    question: str, store: GraphStore, index: SearchIndex, params: RetrievalParams, linked: Collection[str]
) -> dict[str, Seed]:
    """Stage 2, titles: when the question names a document's title (as a run of words that reads as a
    name) but none of the entities of a chunk of that document is among the `linked` ones (its extraction
    named the subject otherwise), that chunk's entities, each with weight `params.title_seed_weight`."""
    if params.title_seed_weight <= 0:
        return {}
    chunk_ids = titled_chunks(question, title_index(store, index))
    entities: dict[str, set[str]] = {}
    for proposition in store.propositions_of_chunks(chunk_ids):
        entities.setdefault(proposition.chunk_id, set()).update(proposition.entity_ids)
    return {
        eid: Seed(eid, params.title_seed_weight)
        for found in entities.values()
        if found.isdisjoint(linked)
        for eid in found
    }


_TITLES: dict[tuple[int, str], dict[str, list[str]]] = {}
_TITLES_LOCK = threading.Lock()
_QUALIFIER = re.compile(r"\s*\([^)]*\)\s*$")


def title_index(store: GraphStore, index: SearchIndex) -> dict[str, list[str]]:
    """Normalized document title (also without a trailing "(film)"-like qualifier) -> the document's chunk
    ids; read from the store once per store and index state."""
    key = (id(store), index.state_token())
    with _TITLES_LOCK:
        titles = _TITLES.get(key)
        if titles is None:
            _TITLES.clear()  # one store's titles at a time
            chunks: dict[str, list[str]] = {}
            for chunk in store.iter_chunks():
                chunks.setdefault(chunk.document_id, []).append(chunk.id)
            titles = {}
            for document in store.iter_documents():
                title = document.title.strip()
                if title and document.id in chunks:
                    for name in {normalize_name(title), normalize_name(_QUALIFIER.sub("", title))}:
                        titles.setdefault(name, []).extend(chunks[document.id])
            _TITLES[key] = titles
    return titles


def titled_chunks(question: str, titles: dict[str, list[str]], max_words: int = 8) -> list[str]:
    """The chunks of the documents whose title the question names: runs of up to `max_words` words that
    read as a name, longest first, each word in at most one match."""

    def chunks(span: str) -> list[str] | None:
        return titles.get(normalize_name(span)) if is_name(span) else None

    found = [cid for _, ids in matched_runs(question, chunks, max_words) for cid in ids]
    return list(dict.fromkeys(found))


def is_name(text: str) -> bool:
    """Whether `text` reads as a name: a word that is capitalized or holds a digit, not a stopword
    ("Lothair II", "1984", "Good People" are; "place of birth", "What is?" are not)."""
    for word in text.split():
        core = word.strip(".,;:!?()[]\"'")
        if core and (core[0].isupper() or any(c.isdigit() for c in core)) and core.lower() not in STOPWORDS:
            return True
    return False


def link_names(
    names: Sequence[str], vectors: np.ndarray, index: SearchIndex, params: RetrievalParams
) -> dict[str, Seed]:
    """Seeds for extra names (an iterative reader's intermediate answers): the entities a name matches
    exactly (weight 1), else its most similar entity above the span floor (weight = similarity)."""
    seeds: dict[str, Seed] = {}
    for name, vector in zip(names, vectors, strict=True):
        exact = index.entities_named_in(name)
        for eid in exact:
            seeds[eid] = Seed(eid, 1.0)
        if not exact:
            for eid, sim in index.dense_search("entities", vector, 1):
                if sim >= params.span_entity_min_similarity:
                    seeds = merge_seeds(seeds, {eid: Seed(eid, sim)})
    return seeds


def merge_seeds(a: dict[str, Seed], b: dict[str, Seed]) -> dict[str, Seed]:
    """Both seed sets; an entity in both keeps its higher weight."""
    merged = dict(a)
    for eid, seed in b.items():
        if eid not in merged or merged[eid].weight < seed.weight:
            merged[eid] = seed
    return merged


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


def ppr_chunk_scores(
    expansion: Expansion,
    anchors: dict[str, Seed],
    top_props: list[tuple[Proposition, float]],
    chunk_dense: np.ndarray,
    chunk_position: dict[str, int],
    params: RetrievalParams,
    failed_named: dict[str, list[str]] | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Personalized PageRank over entities, candidate propositions and their chunks, plus the failed
    chunks of `failed_named` (no propositions), linked to the entities their text names. Reset mass, by
    group: the anchors 1 (shared by their weights), the top propositions `proposition_seed_weight` (shared
    by hybrid score), the chunks `chunk_weight` (shared by dense score). Returns chunk scores (own mass +
    its propositions') and the propositions' mass."""
    graph = nx.Graph()
    for rel in expansion.relations:
        old = graph.get_edge_data(rel.subject_id, rel.object_id, default={"weight": 0.0})["weight"]
        graph.add_edge(rel.subject_id, rel.object_id, weight=old + 1.0)
    for pid, prop in expansion.propositions.items():
        graph.add_edge(pid, prop.chunk_id, weight=1.0)
        for eid in prop.entity_ids:
            graph.add_edge(pid, eid, weight=1.0)
    for cid, named in (failed_named or {}).items():
        graph.add_node(cid)
        graph.add_edges_from((cid, eid) for eid in named)
    chunk_ids = {p.chunk_id for p in expansion.propositions.values()} | set(failed_named or {})
    groups = (
        (1.0, {s.entity_id: s.weight for s in anchors.values() if s.entity_id in graph}),
        (params.proposition_seed_weight, {p.id: score for p, score in top_props}),
        (
            params.chunk_weight,
            {c: float(chunk_dense[chunk_position[c]]) for c in chunk_ids if c in chunk_position},
        ),
    )
    reset: dict[str, float] = {}
    for share, weights in groups:
        total = sum(w for w in weights.values() if w > 0)
        for node, w in weights.items():
            if w > 0 and share > 0:
                reset[node] = reset.get(node, 0.0) + share * w / total
    if not reset:
        return {}, {}
    mass = nx.pagerank(graph, alpha=params.damping, personalization=reset, weight="weight")
    prop_mass = {pid: mass.get(pid, 0.0) for pid in expansion.propositions}
    chunk_scores = {cid: mass.get(cid, 0.0) for cid in chunk_ids}
    for pid, prop in expansion.propositions.items():
        chunk_scores[prop.chunk_id] += prop_mass[pid]
    return chunk_scores, prop_mass


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


def _evidence_chunks(
    store: GraphStore,
    ranked: list[tuple[str, float]],
    expansion: Expansion,
    prop_scores: dict[str, float],
    per_chunk: int,
) -> list[RetrievedChunk]:
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


def _plain_chunks(store: GraphStore, hits: list[tuple[str, float]]) -> list[RetrievedChunk]:
    chunks = []
    for cid, score in hits:
        chunk = store.get_chunk(cid)
        if chunk is not None:
            chunks.append(
                RetrievedChunk(chunk_id=cid, document_id=chunk.document_id, score=score, text=chunk.text)
            )
    return chunks


def _minmax(scores: np.ndarray) -> np.ndarray:
    """Scores rescaled to [0, 1]; all-equal scores become 0 (they rank nothing)."""
    if scores.size == 0:
        return np.zeros(0, dtype=np.float64)
    low, high = float(scores.min()), float(scores.max())
    if not math.isfinite(high - low) or high - low <= 0:
        return np.zeros(scores.shape, dtype=np.float64)
    return (scores.astype(np.float64) - low) / (high - low)


class _Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage] = round(self.ms.get(stage, 0.0) + (time.perf_counter() - start) * 1000, 3)
