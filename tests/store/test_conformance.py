"""Behaviour every GraphStore must share, run against each store by the `graph_store` fixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from synthkg.model import Chunk, Document, Entity, GraphBatch, Proposition, Relation, StoreCounts
from synthkg.store.base import GraphStore
from synthkg.store.deletion import DeletionPlan
from tests.store.corpus import CORPUS_COUNTS, Corpus, by_id, ids, make_corpus, snapshot


@pytest.fixture
def corpus(graph_store: GraphStore) -> Corpus:
    """The corpus, written to the store under test."""
    k = make_corpus()
    graph_store.write(k.batch())
    return k


# --- writes and point reads -------------------------------------------------------------------------
def test_new_store_is_empty(graph_store: GraphStore) -> None:
    assert graph_store.counts() == StoreCounts()
    assert list(graph_store.iter_entities()) == []
    assert graph_store.find_entities("anything") == []


def test_write_then_read_every_record_back(graph_store: GraphStore, corpus: Corpus) -> None:
    assert graph_store.counts() == CORPUS_COUNTS
    for doc in (corpus.doc1, corpus.doc2):
        assert graph_store.get_document(doc.id) == doc
    for chunk in (corpus.c1a, corpus.c1b, corpus.c2):
        assert graph_store.get_chunk(chunk.id) == chunk
    for entity in (corpus.a, corpus.b, corpus.c, corpus.d):
        assert graph_store.get_entity(entity.id) == entity
    for prop in (corpus.p1, corpus.p2, corpus.p3):
        assert graph_store.get_proposition(prop.id) == prop
    for rel in (corpus.r1, corpus.r2, corpus.r3):
        assert graph_store.get_relation(rel.id) == rel
    assert graph_store.get_document(corpus.doc1.id).metadata == {"year": 1939}  # type: ignore[union-attr]


def test_missing_ids_read_as_none(graph_store: GraphStore, corpus: Corpus) -> None:
    assert graph_store.get_document("doc:missing") is None
    assert graph_store.get_chunk("chunk:missing") is None
    assert graph_store.get_entity("ent:missing") is None
    assert graph_store.get_proposition("prop:missing") is None
    assert graph_store.get_relation("rel:missing") is None
    assert graph_store.chunk_text("chunk:missing") is None
    # an id of another kind is not found either
    assert graph_store.get_entity(corpus.doc1.id) is None


def test_writing_the_same_batch_twice_changes_nothing(graph_store: GraphStore, corpus: Corpus) -> None:
    before = snapshot(graph_store)
    graph_store.write(corpus.batch())
    assert graph_store.counts() == CORPUS_COUNTS
    assert snapshot(graph_store) == before


def test_per_kind_upserts_are_idempotent(graph_store: GraphStore) -> None:
    k = make_corpus()
    for _ in range(2):
        graph_store.upsert_documents([k.doc1, k.doc2])
        graph_store.upsert_chunks([k.c1a, k.c1b, k.c2])
        graph_store.upsert_entities([k.a, k.b, k.c, k.d])
        graph_store.upsert_propositions([k.p1, k.p2, k.p3])
        graph_store.upsert_relations([k.r1, k.r2, k.r3])
        assert graph_store.counts() == CORPUS_COUNTS
    assert set(graph_store.iter_relations()) == {k.r1, k.r2, k.r3}


def test_empty_batch_is_a_no_op(graph_store: GraphStore, corpus: Corpus) -> None:
    graph_store.write(GraphBatch())
    assert graph_store.counts() == CORPUS_COUNTS


def test_entity_upsert_merges_aliases_and_keeps_type_and_description(graph_store: GraphStore) -> None:
    first = Entity.create("Ada Lovelace", "person", aliases=["Ada"], description="mathematician")
    again = Entity.create("Ada Lovelace", "", aliases=["Countess of Lovelace"])
    assert again.id == first.id
    graph_store.upsert_entities([first])
    graph_store.upsert_entities([again])
    merged = graph_store.get_entity(first.id)
    assert merged is not None
    assert set(merged.aliases) == {"Ada", "Countess of Lovelace"}
    assert merged.type == "person"
    assert merged.description == "mathematician"
    assert graph_store.counts().entities == 1
    # a non-empty type replaces the old one; the aliases stay united
    writer = Entity.create("Ada Lovelace", "writer")
    graph_store.upsert_entities([writer])
    updated = graph_store.get_entity(first.id)
    assert updated is not None
    assert updated.type == "writer"
    assert set(updated.aliases) == {"Ada", "Countess of Lovelace"}
    assert updated == first.merged_with(again).merged_with(writer)  # the model's one rule
    # a merged alias is searchable
    assert ids(graph_store.find_entities("countess of lovelace")) == {first.id}


def test_same_entity_twice_in_one_batch_merges(graph_store: GraphStore) -> None:
    one = Entity.create("Grace Hopper", "person", aliases=["Amazing Grace"])
    two = Entity.create("grace hopper", "", aliases=["Grandma COBOL"])
    graph_store.write(GraphBatch(entities=[one, two]))
    assert graph_store.counts().entities == 1
    assert {"Amazing Grace", "Grandma COBOL"} <= set(graph_store.get_entity(one.id).aliases)  # type: ignore[union-attr]
    assert graph_store.get_entity(one.id) == one.merged_with(two)  # the same rule within a batch


# --- lookups ----------------------------------------------------------------------------------------
def test_find_entities_by_normalized_name(graph_store: GraphStore, corpus: Corpus) -> None:
    for query in ("Alan Turing", "alan turing", "  ALAN   Turing. ", "The Alan Turing"):
        assert ids(graph_store.find_entities(query)) == {corpus.a.id}, query
    assert ids(graph_store.find_entities("Enigma")) == {corpus.c.id}
    assert graph_store.find_entities("Alan") == []  # no prefix matches
    assert graph_store.find_entities("nobody at all") == []


def test_find_entities_by_alias(graph_store: GraphStore, corpus: Corpus) -> None:
    assert ids(graph_store.find_entities("Turing")) == {corpus.a.id}
    assert ids(graph_store.find_entities("a. m. turing")) == {corpus.a.id}
    assert ids(graph_store.find_entities("WEHRMACHT")) == {corpus.d.id}
    assert ids(graph_store.find_entities("the enigma machine")) == {corpus.c.id}


def test_find_entities_returns_every_entity_sharing_an_alias(graph_store: GraphStore) -> None:
    x = Entity.create("Doctor Who", "character", aliases=["The Doctor"])
    y = Entity.create("Doctor Watson", "character", aliases=["the doctor"])
    graph_store.upsert_entities([x, y])
    assert ids(graph_store.find_entities("Doctor")) == {x.id, y.id}
    assert ids(graph_store.find_entities("doctor who")) == {x.id}


def test_chunk_text(graph_store: GraphStore, corpus: Corpus) -> None:
    assert graph_store.chunk_text(corpus.c1a.id) == "Alan Turing worked at Bletchley Park."
    # the decontextualized text, not the original span
    assert graph_store.chunk_text(corpus.c1b.id) == "Bletchley Park broke the Enigma cipher."


def test_chunks_of_document_in_index_order(graph_store: GraphStore) -> None:
    doc = Document.create("ten chunks", key="ordered")
    chunks = [Chunk.create(doc.id, i, f"chunk number {i}") for i in (10, 2, 0, 1, 11, 3)]
    graph_store.write(GraphBatch(documents=[doc], chunks=chunks))
    other = Document.create("other", key="other")
    graph_store.write(GraphBatch(documents=[other], chunks=[Chunk.create(other.id, 0, "elsewhere")]))
    got = graph_store.chunks_of_document(doc.id)
    assert [c.index for c in got] == [0, 1, 2, 3, 10, 11]
    assert [c.text for c in got] == [f"chunk number {i}" for i in (0, 1, 2, 3, 10, 11)]
    assert graph_store.chunks_of_document("doc:missing") == []


def test_propositions_of_entity(graph_store: GraphStore, corpus: Corpus) -> None:
    assert ids(graph_store.propositions_of_entity(corpus.a.id)) == {corpus.p1.id}
    assert ids(graph_store.propositions_of_entity(corpus.b.id)) == {corpus.p1.id, corpus.p2.id}
    assert ids(graph_store.propositions_of_entity(corpus.c.id)) == {corpus.p2.id, corpus.p3.id}
    assert set(graph_store.propositions_of_entity(corpus.d.id)) == {corpus.p3}
    assert graph_store.propositions_of_entity("ent:missing") == []


# --- graph reads ------------------------------------------------------------------------------------
def test_neighbors_one_hop_either_direction(graph_store: GraphStore, corpus: Corpus) -> None:
    k = corpus
    assert ids(graph_store.neighbors([k.a.id])) == {k.b.id}
    assert ids(graph_store.neighbors([k.b.id], hops=1)) == {k.a.id, k.c.id}
    assert ids(graph_store.neighbors([k.c.id], hops=1)) == {k.b.id, k.d.id}  # incoming edges count
    assert ids(graph_store.neighbors([k.d.id], hops=1)) == {k.c.id}


def test_neighbors_two_hops_and_more(graph_store: GraphStore, corpus: Corpus) -> None:
    k = corpus
    assert ids(graph_store.neighbors([k.a.id], hops=2)) == {k.b.id, k.c.id}
    assert ids(graph_store.neighbors([k.d.id], hops=2)) == {k.c.id, k.b.id}
    assert ids(graph_store.neighbors([k.a.id], hops=3)) == {k.b.id, k.c.id, k.d.id}
    assert ids(graph_store.neighbors([k.a.id], hops=10)) == {k.b.id, k.c.id, k.d.id}


def test_neighbors_of_several_starts_exclude_the_starts(graph_store: GraphStore, corpus: Corpus) -> None:
    k = corpus
    got = graph_store.neighbors([k.a.id, k.d.id], hops=1)
    assert ids(got) == {k.b.id, k.c.id}
    assert len(got) == 2  # no duplicates
    assert ids(graph_store.neighbors([k.a.id, k.b.id], hops=1)) == {k.c.id}
    two_hops = graph_store.neighbors([k.a.id, k.d.id], hops=2)
    assert ids(two_hops) == {k.b.id, k.c.id} and len(two_hops) == 2


def test_neighbors_of_unknown_or_isolated_entities(graph_store: GraphStore, corpus: Corpus) -> None:
    lonely = Entity.create("Lonely entity")
    graph_store.upsert_entities([lonely])
    assert graph_store.neighbors([lonely.id], hops=2) == []
    assert graph_store.neighbors(["ent:missing"], hops=2) == []
    assert graph_store.neighbors([], hops=2) == []
    assert ids(graph_store.neighbors(["ent:missing", corpus.a.id])) == {corpus.b.id}


def test_neighbors_returns_full_entities(graph_store: GraphStore, corpus: Corpus) -> None:
    assert set(graph_store.neighbors([corpus.b.id])) == {corpus.a, corpus.c}


def test_subgraph(graph_store: GraphStore, corpus: Corpus) -> None:
    k = corpus
    one = graph_store.subgraph([k.a.id], hops=1)
    assert ids(one.entities) == {k.a.id, k.b.id}
    assert set(one.relations) == {k.r1}
    around_b = graph_store.subgraph([k.b.id], hops=1)
    assert ids(around_b.entities) == {k.a.id, k.b.id, k.c.id}
    assert set(around_b.relations) == {k.r1, k.r2}
    two = graph_store.subgraph([k.a.id], hops=2)
    assert ids(two.entities) == {k.a.id, k.b.id, k.c.id}
    assert ids(two.relations) == {k.r1.id, k.r2.id}  # r3 leaves the subgraph (D is 3 hops away)
    everything = graph_store.subgraph([k.a.id, k.d.id], hops=1)
    assert ids(everything.entities) == {k.a.id, k.b.id, k.c.id, k.d.id}
    assert ids(everything.relations) == {k.r1.id, k.r2.id, k.r3.id}  # relations among the entities
    assert graph_store.subgraph(["ent:missing"], hops=2).entities == []


def test_subgraph_keeps_parallel_relations_and_direction(graph_store: GraphStore, corpus: Corpus) -> None:
    k = corpus
    also = Relation.create(k.b.id, "hired", k.a.id, k.p1.id)  # a second edge between A and B, reversed
    graph_store.upsert_relations([also])
    sub = graph_store.subgraph([k.a.id], hops=1)
    assert set(sub.relations) == {k.r1, also}
    assert graph_store.neighbors([k.a.id]) == [k.b]


# --- deletion ---------------------------------------------------------------------------------------
def test_delete_document_removes_only_what_it_alone_supported(
    graph_store: GraphStore, corpus: Corpus
) -> None:
    k = corpus
    removed = graph_store.delete_document(k.doc1.id)
    assert removed == StoreCounts(documents=1, chunks=2, entities=2, propositions=2, relations=2)
    assert graph_store.counts() == StoreCounts(documents=1, chunks=1, entities=2, propositions=1, relations=1)
    assert graph_store.get_document(k.doc1.id) is None
    assert graph_store.chunks_of_document(k.doc1.id) == []
    assert graph_store.get_chunk(k.c1a.id) is None
    assert graph_store.get_proposition(k.p1.id) is None and graph_store.get_proposition(k.p2.id) is None
    assert graph_store.get_relation(k.r1.id) is None
    assert graph_store.get_relation(k.r2.id) is None  # ends at the surviving C, but came from doc1
    assert graph_store.get_entity(k.a.id) is None and graph_store.get_entity(k.b.id) is None
    assert graph_store.find_entities("Turing") == []
    # C is shared with doc2: it survives with everything doc2 says about it
    assert graph_store.get_entity(k.c.id) == k.c
    assert set(graph_store.propositions_of_entity(k.c.id)) == {k.p3}
    assert graph_store.neighbors([k.c.id], hops=2) == [k.d]
    assert set(graph_store.iter_relations()) == {k.r3}
    assert graph_store.get_document(k.doc2.id) == k.doc2
    assert graph_store.chunks_of_document(k.doc2.id) == [k.c2]


def test_delete_unknown_document_changes_nothing(graph_store: GraphStore, corpus: Corpus) -> None:
    before = snapshot(graph_store)
    assert graph_store.delete_document("doc:missing") == StoreCounts()
    assert snapshot(graph_store) == before


def test_delete_then_rewrite_document(graph_store: GraphStore, corpus: Corpus) -> None:
    graph_store.delete_document(corpus.doc1.id)
    graph_store.delete_document(corpus.doc2.id)
    assert graph_store.counts() == StoreCounts()
    graph_store.write(corpus.batch())
    assert graph_store.counts() == CORPUS_COUNTS
    assert ids(graph_store.neighbors([corpus.a.id], hops=2)) == {corpus.b.id, corpus.c.id}


def test_clear(graph_store: GraphStore, corpus: Corpus) -> None:
    graph_store.clear()  # type: ignore[attr-defined]
    assert graph_store.counts() == StoreCounts()
    assert graph_store.find_entities("Alan Turing") == []
    assert graph_store.neighbors([corpus.a.id]) == []
    graph_store.write(corpus.batch())
    assert graph_store.counts() == CORPUS_COUNTS


# --- bulk reads and export --------------------------------------------------------------------------
def test_iterators_yield_every_record_once(graph_store: GraphStore, corpus: Corpus) -> None:
    k = corpus
    documents = list(graph_store.iter_documents())
    assert sorted(documents, key=by_id) == sorted([k.doc1, k.doc2], key=by_id)
    assert sorted(graph_store.iter_chunks(), key=by_id) == sorted([k.c1a, k.c1b, k.c2], key=by_id)
    entities = list(graph_store.iter_entities())
    assert len(entities) == 4 and set(entities) == {k.a, k.b, k.c, k.d}
    propositions = list(graph_store.iter_propositions())
    assert len(propositions) == 3 and set(propositions) == {k.p1, k.p2, k.p3}
    relations = list(graph_store.iter_relations())
    assert len(relations) == 3 and set(relations) == {k.r1, k.r2, k.r3}


def test_export_json_round_trips(graph_store: GraphStore, corpus: Corpus, tmp_path: Path) -> None:
    out = graph_store.export(tmp_path / "out" / "graph.json", "json")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert {kind: len(records) for kind, records in data.items()} == CORPUS_COUNTS.model_dump()
    assert {Relation.model_validate(r) for r in data["relations"]} == {corpus.r1, corpus.r2, corpus.r3}
    assert {Entity.model_validate(e) for e in data["entities"]} == {corpus.a, corpus.b, corpus.c, corpus.d}


def test_export_graphml_round_trips(graph_store: GraphStore, corpus: Corpus, tmp_path: Path) -> None:
    out = graph_store.export(tmp_path / "graph.graphml", "graphml")
    g = nx.read_graphml(out, force_multigraph=True)
    kinds = [data["kind"] for _, data in g.nodes(data=True)]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "Document": 2, "Chunk": 3, "Entity": 4, "Proposition": 3,
    }
    related = [(u, v, data) for u, v, data in g.edges(data=True) if data["kind"] == "RELATED"]
    assert {(u, data["predicate"], v) for u, v, data in related} == {
        (corpus.a.id, "worked at", corpus.b.id),
        (corpus.b.id, "broke", corpus.c.id),
        (corpus.d.id, "built", corpus.c.id),
    }
    assert g.nodes[corpus.a.id]["name"] == "Alan Turing"
    assert json.loads(g.nodes[corpus.a.id]["aliases"]) == list(corpus.a.aliases)


def test_export_rejects_unknown_format(graph_store: GraphStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        graph_store.export(tmp_path / "x", "csv")  # type: ignore[arg-type]


# --- hostile text -----------------------------------------------------------------------------------
HOSTILE = [
    "it's a \"quoted\" name",
    "back`tick` and {braces} and [brackets]",
    "'}) DETACH DELETE n //",
    "\"}) MATCH (n) DETACH DELETE n RETURN 1 //",
    "$param and $name and {name: $x}",
    "back\\slash \\n not a newline \\",
    "line one\nline two\r\nline three",
    "emoji 🧪🔥 and naïve café, 日本語, \u2028sep",
    "control \x01\x02\x07\x1b\x7f chars",
    "tab\tseparated\tvalues",
    "; DROP TABLE entities; --",
    ("ten kilobytes ⚡ '\"`{}$\\\n" * 512)[:10240],
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_round_trips_and_harms_nothing(
    graph_store: GraphStore, corpus: Corpus, text: str
) -> None:
    before = snapshot(graph_store)
    doc = Document.create(text, title=text, source=text, key=text, metadata={"note": text})
    chunk = Chunk.create(doc.id, 0, text, text=text + " (rewritten)")
    entity = Entity.create(text, type=text, aliases=[text + " alias"], description=text)
    prop = Proposition.create(chunk.id, text, [entity.id, corpus.a.id])
    rel = Relation.create(entity.id, text, corpus.a.id, prop.id)
    graph_store.write(
        GraphBatch(documents=[doc], chunks=[chunk], entities=[entity], propositions=[prop], relations=[rel])
    )

    assert graph_store.get_document(doc.id) == doc
    assert graph_store.get_chunk(chunk.id) == chunk
    assert graph_store.chunk_text(chunk.id) == text + " (rewritten)"
    assert graph_store.get_entity(entity.id) == entity
    assert graph_store.get_proposition(prop.id) == prop
    assert graph_store.get_relation(rel.id) == rel
    assert graph_store.get_relation(rel.id).predicate == rel.predicate  # type: ignore[union-attr]
    assert entity.id in ids(graph_store.find_entities(text))
    assert entity.id in ids(graph_store.find_entities(text + " alias"))
    assert ids(graph_store.neighbors([entity.id])) == {corpus.a.id}
    assert graph_store.subgraph([entity.id]).relations == [rel]
    expected = CORPUS_COUNTS.model_copy(
        update={k: v + 1 for k, v in CORPUS_COUNTS.model_dump().items()}
    )
    assert graph_store.counts() == expected
    after = snapshot(graph_store)
    # the corpus is untouched apart from the new records
    for kind in before:
        assert before[kind].items() <= after[kind].items()
        assert len(after[kind]) == len(before[kind]) + 1

    assert graph_store.delete_document(doc.id) == StoreCounts(
        documents=1, chunks=1, entities=1, propositions=1, relations=1
    )
    assert snapshot(graph_store) == before


# --- deletion plans (what `synthkg delete --dry-run` shows) -----------------------------------------
def _removed(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    return {kind: set(before[kind]) - set(after[kind]) for kind in before}


def _planned(plan: DeletionPlan) -> dict[str, set[str]]:
    return {
        "documents": {plan.document_id} if plan.exists else set(),
        "chunks": set(plan.chunk_ids),
        "propositions": set(plan.proposition_ids),
        "relations": set(plan.relation_ids),
        "entities": set(plan.entity_ids),
    }


def test_propositions_of_chunks_and_relations_of_propositions(
    graph_store: GraphStore, corpus: Corpus
) -> None:
    k = corpus
    assert graph_store.propositions_of_chunks([k.c1a.id, k.c1b.id]) == sorted([k.p1, k.p2], key=by_id)
    assert graph_store.propositions_of_chunks([k.c2.id, "chunk:missing"]) == [k.p3]
    assert graph_store.propositions_of_chunks([]) == []
    assert graph_store.relations_of_propositions([k.p2.id, k.p3.id]) == sorted([k.r2, k.r3], key=by_id)
    assert graph_store.relations_of_propositions(["prop:missing"]) == []
    # the store's indexed reads agree with the interface's scanning defaults
    assert graph_store.propositions_of_chunks([k.c1a.id, k.c2.id]) == GraphStore.propositions_of_chunks(
        graph_store, [k.c1a.id, k.c2.id]
    )
    assert graph_store.relations_of_propositions([k.p1.id, k.p3.id]) == GraphStore.relations_of_propositions(
        graph_store, [k.p1.id, k.p3.id]
    )


def test_deletion_plan_writes_nothing_and_equals_what_delete_removes(
    graph_store: GraphStore, corpus: Corpus
) -> None:
    k = corpus
    before = snapshot(graph_store)
    [plan] = graph_store.deletion_plan([k.doc1.id])
    assert snapshot(graph_store) == before
    assert plan.counts == StoreCounts(documents=1, chunks=2, entities=2, propositions=2, relations=2)
    assert (plan.title, plan.source) == ("Turing", "doc1.txt")
    assert {e.name for e in plan.entities} == {"Alan Turing", "Bletchley Park"}  # Enigma: doc2 keeps it
    assert graph_store.delete_document(k.doc1.id) == plan.counts
    assert _removed(before, snapshot(graph_store)) == _planned(plan)


def test_deletion_plan_of_several_documents_follows_the_deletes_in_order(
    graph_store: GraphStore, corpus: Corpus
) -> None:
    k = corpus
    plans = graph_store.deletion_plan([k.doc2.id, k.doc1.id, k.doc2.id])  # a repeated id counts once
    assert [p.document_id for p in plans] == [k.doc2.id, k.doc1.id]
    # Enigma is mentioned by both: it goes with the second document, not the first
    assert {e.name for e in plans[0].entities} == {"German military"}
    assert {e.name for e in plans[1].entities} == {"Alan Turing", "Bletchley Park", "Enigma"}
    for plan in plans:
        before = snapshot(graph_store)
        assert graph_store.delete_document(plan.document_id) == plan.counts
        assert _removed(before, snapshot(graph_store)) == _planned(plan)
    assert graph_store.counts() == StoreCounts()


def test_deletion_plan_counts_relations_of_other_documents_left_dangling(graph_store: GraphStore) -> None:
    """doc3 states a relation to an entity only doc1 mentions: deleting doc1 orphans that entity, and the
    relation goes with it (DETACH), in the plan as in the store."""
    k = make_corpus()
    doc3 = Document.create("Ada admired Turing.", title="Ada", key="doc3")
    c3 = Chunk.create(doc3.id, 0, "Ada admired Turing.")
    ada = Entity.create("Ada Lovelace", "person")
    p4 = Proposition.create(c3.id, "Ada Lovelace admired someone.", [ada.id])  # does not mention Turing
    r4 = Relation.create(ada.id, "admired", k.a.id, p4.id)
    batch = k.batch()
    graph_store.write(batch.model_copy(update={
        "documents": [*batch.documents, doc3], "chunks": [*batch.chunks, c3],
        "entities": [*batch.entities, ada], "propositions": [*batch.propositions, p4],
        "relations": [*batch.relations, r4],
    }))
    before = snapshot(graph_store)
    [plan] = graph_store.deletion_plan([k.doc1.id])
    assert r4.id in plan.relation_ids and plan.counts.relations == 3
    assert graph_store.delete_document(k.doc1.id) == plan.counts
    assert _removed(before, snapshot(graph_store)) == _planned(plan)
    assert graph_store.get_entity(ada.id) == ada  # doc3 still mentions Ada


def test_deletion_plan_of_an_unknown_document_is_empty(graph_store: GraphStore, corpus: Corpus) -> None:
    [plan] = graph_store.deletion_plan(["doc:missing"])
    assert not plan.exists and plan.counts == StoreCounts()
    assert graph_store.deletion_plan([]) == []
