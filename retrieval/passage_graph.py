"""Whole-corpus personalized PageRank over entities AND passages, the HippoRAG 2 way (mode "hippo").

The local PPR of `retrievers.ppr_chunk_scores` walks only the subgraph around the question's entities.
This one walks the whole store, as HippoRAG 2 does, in numbered stages:

    1. facts: the top propositions by the hybrid (BM25 + dense) score; with `fact_filter` on, only those
       an LLM recognizes as bearing on the question (HippoRAG 2's recognition memory);
    2. reset: each top fact's entities get its score, divided by the number of passages the entity is
       in (a name in three passages says more than one in three hundred); entities named in the question
       get the best fact's weight the same way; every passage gets its dense similarity to the question,
       the passage group scaled to `passage_reset` of the total (or, with `passage_node_weight`, as
       HippoRAG 2 does: each passage that weight times its dense score, the mix normalized as a whole);
    3. walk: PPR (damping `damping`) over one sparse graph of entity nodes and passage nodes: entity-
       entity edges from relations, entity-passage edges from the propositions that mention the entity in
       the passage, and synonym edges between entities whose names embed alike (cosine >= `synonym_min`);
    4. passages ranked by their PPR mass; each keeps its best propositions as evidence.

The graph is built once per (store, index) state and kept in memory: on MuSiQue's 1,839 passages this
takes seconds, a query then milliseconds (sparse power iteration, no networkx).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from synthkg.config import PassageGraphParams
from synthkg.indexes import SearchIndex, top_k
from synthkg.store.base import GraphStore


@dataclass
class PassageGraph:
    """Entity and passage nodes in one sparse, column-stochastic transition matrix."""

    entity_ids: list[str]
    chunk_ids: list[str]
    node: dict[str, int]
    transition: sparse.csr_matrix
    passages_of_entity: np.ndarray  # per entity node: in how many passages it is mentioned
    chunk_propositions: dict[str, list[str]]
    synonym_edges: int

    @property
    def size(self) -> int:
        return len(self.entity_ids) + len(self.chunk_ids)

    @classmethod
    def build(cls, store: GraphStore, index: SearchIndex, params: PassageGraphParams) -> PassageGraph:
        entity_ids = index.ids("entities")
        chunk_ids = index.ids("chunks")
        node = {eid: i for i, eid in enumerate(entity_ids)}
        node.update({cid: len(entity_ids) + i for i, cid in enumerate(chunk_ids)})
        rows: list[int] = []
        cols: list[int] = []
        weights: list[float] = []

        def edge(a: int, b: int, w: float) -> None:
            rows.extend((a, b))
            cols.extend((b, a))
            weights.extend((w, w))

        chunk_props: dict[str, list[str]] = {}
        passages: dict[int, set[int]] = {}
        for prop in store.iter_propositions():
            c = node.get(prop.chunk_id)
            if c is None:
                continue  # the index lags behind the store
            chunk_props.setdefault(prop.chunk_id, []).append(prop.id)
            for eid in prop.entity_ids:
                e = node.get(eid)
                if e is not None:
                    edge(e, c, 1.0)
                    passages.setdefault(e, set()).add(c)
        for rel in store.iter_relations():
            a, b = node.get(rel.subject_id), node.get(rel.object_id)
            if a is not None and b is not None and a != b:
                edge(a, b, 1.0)
        synonyms = 0
        if params.synonyms_per_entity and entity_ids:
            for a, b, sim in synonym_pairs(index, params.synonym_min, params.synonyms_per_entity):
                edge(a, b, sim)
                synonyms += 1
        size = len(node)
        adjacency = sparse.coo_matrix((weights, (rows, cols)), shape=(size, size)).tocsr()
        adjacency.sum_duplicates()
        out = np.asarray(adjacency.sum(axis=0)).ravel()
        scale = np.divide(1.0, out, out=np.zeros_like(out), where=out > 0)
        transition = (adjacency @ sparse.diags(scale)).tocsr()  # columns sum to 1 (or 0: dangling)
        counts = np.array([len(passages.get(i, ())) for i in range(len(entity_ids))], dtype=np.float64)
        return cls(entity_ids, chunk_ids, node, transition, counts, chunk_props, synonyms)

    def pagerank(self, reset: np.ndarray, damping: float, iterations: int, tolerance: float) -> np.ndarray:
        """PPR mass per node: x = (1 - d) r + d (T x + dangling mass spread as r)."""
        total = reset.sum()
        if total <= 0:
            return np.zeros(self.size)
        r = reset / total
        x = r.copy()
        dangling = np.asarray(self.transition.sum(axis=0)).ravel() == 0
        for _ in range(iterations):
            lost = x[dangling].sum()
            nxt = (1.0 - damping) * r + damping * (self.transition @ x + lost * r)
            if np.abs(nxt - x).sum() < tolerance:
                return nxt
            x = nxt
        return x


def synonym_pairs(index: SearchIndex, floor: float, per_entity: int) -> list[tuple[int, int, float]]:
    """Entity pairs (index rows = node numbers, a < b) whose name vectors have cosine >= floor, among each
    entity's `per_entity` nearest; computed in blocks so memory stays bounded."""
    vectors = index.vectors("entities")
    n = vectors.shape[0]
    pairs: dict[tuple[int, int], float] = {}
    k = min(per_entity + 1, n)
    for start in range(0, n, 2048):
        sims = vectors[start : start + 2048] @ vectors.T
        if k < n:
            best = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            best = np.tile(np.arange(n), (len(sims), 1))
        for row, candidates in enumerate(best):
            a = start + row
            for b in candidates:
                sim = float(sims[row, b])
                if b != a and sim >= floor:
                    pairs[(min(a, b), max(a, b))] = sim
    return [(a, b, sim) for (a, b), sim in sorted(pairs.items())]


def _graph_knobs(params: PassageGraphParams) -> tuple[float, int]:
    """The parameters the graph itself depends on (the others only change queries)."""
    return params.synonym_min, params.synonyms_per_entity


_GRAPHS: dict[tuple[int, int, str, tuple[float, int]], PassageGraph] = {}
_GRAPHS_LOCK = threading.Lock()


def passage_graph(store: GraphStore, index: SearchIndex, params: PassageGraphParams) -> PassageGraph:
    """The graph of this store and index, built on first use and kept while both stay unchanged."""
    key = (id(store), id(index), index.state_token(), _graph_knobs(params))
    with _GRAPHS_LOCK:
        graph = _GRAPHS.get(key)
        if graph is None:
            _GRAPHS.clear()  # one store's graph at a time: they are large
            graph = _GRAPHS[key] = PassageGraph.build(store, index, params)
    return graph


@dataclass
class PassageScores:
    """Stage 4's input: PPR mass per passage, the facts that seeded it, and each fact's hybrid score."""

    chunk_scores: list[tuple[str, float]]
    fact_scores: dict[str, float]
    seeded_entities: list[str]


def score_passages(
    store: GraphStore,
    graph: PassageGraph,
    top: list[tuple[str, float]],
    chunk_dense: np.ndarray,
    linked: dict[str, float],
    depth: int,
    params: PassageGraphParams,
) -> PassageScores:
    """Stages 2-3 on precomputed scores: `top` the facts (proposition id, hybrid score) that seed the
    walk, `chunk_dense` (min-max) per chunk row, `linked` the question's entities with their weights."""
    best = max((s for _, s in top), default=0.0)
    reset_entities = np.zeros(len(graph.entity_ids))
    counts = graph.passages_of_entity
    specificity = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    entities_of = _entities_of_propositions(store, graph, [pid for pid, _ in top])
    for pid, score in top:
        if best <= 0:
            break
        for e in entities_of.get(pid, ()):
            reset_entities[e] += (score / best) * specificity[e]
    for eid, weight in linked.items():
        e = graph.node.get(eid)
        if e is not None and e < len(graph.entity_ids):
            reset_entities[e] += weight * specificity[e]
    seeded = [graph.entity_ids[e] for e in np.flatnonzero(reset_entities)]
    reset = np.zeros(graph.size)
    if params.passage_node_weight is not None:  # HippoRAG 2: one unnormalized mix, every passage a seed
        reset[: len(graph.entity_ids)] = reset_entities
        reset[len(graph.entity_ids) :] = params.passage_node_weight * np.clip(chunk_dense, 0.0, None)
    elif reset_entities.sum() > 0:
        reset[: len(graph.entity_ids)] = (1.0 - params.passage_reset) * reset_entities / reset_entities.sum()
        passages = np.clip(chunk_dense, 0.0, None)
        if passages.sum() > 0:
            reset[len(graph.entity_ids) :] = params.passage_reset * passages / passages.sum()
    else:  # no fact and no linked entity reaches the graph: dense passage scores alone
        reset[len(graph.entity_ids) :] = np.clip(chunk_dense, 0.0, None)
    mass = graph.pagerank(reset, params.damping, params.iterations, params.tolerance)
    chunk_mass = mass[len(graph.entity_ids) :]
    ranked = [
        (graph.chunk_ids[i], float(chunk_mass[i])) for i in top_k(chunk_mass, depth) if chunk_mass[i] > 0
    ]
    return PassageScores(ranked, dict(top), seeded)


def _entities_of_propositions(
    store: GraphStore, graph: PassageGraph, proposition_ids: list[str]
) -> dict[str, list[int]]:
    """Entity nodes of the given propositions."""
    found: dict[str, list[int]] = {}
    for pid in proposition_ids:
        prop = store.get_proposition(pid)
        if prop is not None:
            found[pid] = [graph.node[e] for e in prop.entity_ids if e in graph.node]
    return found
