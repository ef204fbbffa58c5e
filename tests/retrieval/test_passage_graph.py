"""The whole-corpus entity + passage graph of mode hippo: its shape, a proper PageRank, synonym edges,
and that it is rebuilt when the index changes (hashing embedder: structure, not retrieval quality)."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.passage_graph import PassageGraph, PassageGraphParams, passage_graph
from retrieval.retrievers import retrieve
from synthkg.config import RetrievalParams
from tests.retrieval.conftest import Corpus
from tests.retrieval.corpus import DOCS, QUESTION, build_batch
from tests.retrieval.test_retrievers import hashed  # noqa: F401  (fixture)


def test_the_graph_holds_every_entity_and_passage_with_stochastic_columns(hashed: Corpus) -> None:  # noqa: F811
    graph = PassageGraph.build(hashed.store, hashed.index, PassageGraphParams(synonyms_per_entity=0))
    assert graph.entity_ids == hashed.index.ids("entities") and graph.chunk_ids == hashed.index.ids("chunks")
    columns = np.asarray(graph.transition.sum(axis=0)).ravel()
    assert np.allclose(columns[columns > 0], 1.0)
    # Every passage with a proposition is linked to the entities it mentions.
    for prop in hashed.batch.propositions:
        c = graph.node[prop.chunk_id]
        for eid in prop.entity_ids:
            assert graph.transition[graph.node[eid], c] > 0 and graph.transition[c, graph.node[eid]] > 0
    counts = dict(zip(graph.entity_ids, graph.passages_of_entity, strict=True))
    assert all(counts[e.id] >= 1 for e in hashed.batch.entities if any(
        e.id in p.entity_ids for p in hashed.batch.propositions))


def test_pagerank_is_a_distribution_that_prefers_the_seeds_neighbourhood(hashed: Corpus) -> None:  # noqa: F811
    graph = PassageGraph.build(hashed.store, hashed.index, PassageGraphParams())
    reset = np.zeros(graph.size)
    seed = graph.node[hashed.batch.entities[0].id]
    reset[seed] = 1.0
    mass = graph.pagerank(reset, damping=0.5, iterations=100, tolerance=1e-12)
    assert mass.sum() == pytest.approx(1.0) and mass.min() >= 0
    assert int(np.argmax(mass)) == seed
    assert graph.pagerank(np.zeros(graph.size), 0.5, 10, 1e-9).sum() == 0


def test_names_that_embed_alike_get_synonym_edges(hashed: Corpus) -> None:  # noqa: F811
    none = PassageGraph.build(hashed.store, hashed.index, PassageGraphParams(synonyms_per_entity=0))
    some = PassageGraph.build(hashed.store, hashed.index, PassageGraphParams(synonym_min=0.3))
    assert none.synonym_edges == 0 < some.synonym_edges
    assert some.transition.nnz > none.transition.nnz


def test_the_graph_is_kept_until_the_index_changes(hashed: Corpus) -> None:  # noqa: F811
    params = PassageGraphParams()
    first = passage_graph(hashed.store, hashed.index, params)
    assert passage_graph(hashed.store, hashed.index, params.model_copy(update={"damping": 0.3})) is first
    hashed.store.write(build_batch(DOCS[:2]))  # nothing new: same ids
    extra = hashed.batch.model_copy()
    hashed.store.delete_document(hashed.batch.documents[0].id)
    hashed.index.update(hashed.store)
    rebuilt = passage_graph(hashed.store, hashed.index, params)
    assert rebuilt is not first and len(rebuilt.chunk_ids) == len(first.chunk_ids) - 1
    assert extra.documents  # the batch object is untouched
    result = retrieve(QUESTION, 3, "hippo", store=hashed.store, index=hashed.index)
    assert set(result.timings_ms) >= {"1_facts", "2_question_entities", "3_graph", "4_walk", "5_evidence"}
    assert all(c.chunk_id in rebuilt.chunk_ids for c in result.chunks)


def test_hipporag_passage_weights_make_every_passage_a_seed(hashed: Corpus) -> None:  # noqa: F811
    """With HippoRAG 2's reset (`passage_node_weight`), a heavy passage weight leaves the dense order."""
    heavy = RetrievalParams(hippo={"passage_node_weight": 1000.0, "synonyms_per_entity": 0})
    hippo = retrieve(QUESTION, 3, "hippo", store=hashed.store, index=hashed.index, params=heavy)
    dense = retrieve(QUESTION, 3, "dense", store=hashed.store, index=hashed.index)
    assert hippo.chunk_ids == dense.chunk_ids
    share = RetrievalParams(hippo={"synonyms_per_entity": 0})
    default = retrieve(QUESTION, 3, "hippo", store=hashed.store, index=hashed.index, params=share)
    assert default.chunk_ids != dense.chunk_ids  # the facts' entities lead the walk
