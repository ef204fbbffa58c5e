"""Mode `ppr`: stages 1-4 of the graph retriever (retrieval/retrievers/graph.py), then personalized
PageRank over the subgraph of entities, candidate propositions and chunks, seeded by the question's
entities and the top propositions; a chunk scores the PPR mass of its propositions and itself (a failed
chunk among the top chunks joins the walk, linked to the reached entities its text names)."""

from __future__ import annotations

from typing import ClassVar

import networkx as nx
import numpy as np

from retrieval.retrievers.graph import ChunkScoring, Expansion, GraphRetriever
from retrieval.retrievers.linking import Seed
from synthkg.config import RetrievalParams
from synthkg.model import Proposition


class PPRRetriever(GraphRetriever):
    """Stages 1-4 of the graph retriever, then personalized PageRank over the subgraph."""

    mode = "ppr"
    reached_first: ClassVar[bool] = False  # the walk's mass already favours what the seeds reach

    def score_chunks(self, scoring: ChunkScoring) -> tuple[dict[str, float], dict[str, float]]:
        """Stage 5a by PageRank: chunk and proposition scores are their PPR mass."""
        return ppr_chunk_scores(scoring.expansion, scoring.anchors, scoring.top_props, scoring.chunk_dense,
                                scoring.chunk_position, self.params, scoring.failed_named)


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
