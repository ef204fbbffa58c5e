"""The small corpus the store tests share, and helpers to compare store contents."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from synthkg.model import (
    Chunk,
    Document,
    Entity,
    GraphBatch,
    Proposition,
    Relation,
    StoreCounts,
)
from synthkg.store.base import GraphStore

AnyRecord = Document | Chunk | Entity | Proposition | Relation


@dataclass(frozen=True)
class Corpus:
    """Two documents over the chain A -> B -> C <- D (D points back at C, so walks must go both ways).

    doc1 (chunks c1a, c1b): p1 "A works at B" (mentions A, B; relation r1 A->B)
                            p2 "B broke C"     (mentions B, C; relation r2 B->C)
    doc2 (chunk c2):        p3 "D built C"     (mentions C, D; relation r3 D->C)
    C is shared by both documents; A and B only appear in doc1.
    """

    doc1: Document
    doc2: Document
    c1a: Chunk
    c1b: Chunk
    c2: Chunk
    a: Entity
    b: Entity
    c: Entity
    d: Entity
    p1: Proposition
    p2: Proposition
    p3: Proposition
    r1: Relation
    r2: Relation
    r3: Relation

    def batch(self) -> GraphBatch:
        return GraphBatch(
            documents=[self.doc1, self.doc2],
            chunks=[self.c1a, self.c1b, self.c2],
            entities=[self.a, self.b, self.c, self.d],
            propositions=[self.p1, self.p2, self.p3],
            relations=[self.r1, self.r2, self.r3],
        )


def make_corpus() -> Corpus:
    doc1 = Document.create("Alan Turing worked at Bletchley Park. Bletchley Park broke Enigma.",
                           title="Turing", source="doc1.txt", key="doc1", metadata={"year": 1939})
    doc2 = Document.create("The German military built Enigma.", title="Enigma", key="doc2")
    c1a = Chunk.create(doc1.id, 0, "Alan Turing worked at Bletchley Park.")
    c1b = Chunk.create(doc1.id, 1, "Bletchley Park broke Enigma.",
                       text="Bletchley Park broke the Enigma cipher.")
    c2 = Chunk.create(doc2.id, 0, "The German military built Enigma.")
    a = Entity.create("Alan Turing", "person", aliases=["Turing", "A. M. Turing"],
                      description="mathematician")
    b = Entity.create("Bletchley Park", "place")
    c = Entity.create("Enigma", "machine", aliases=["Enigma machine"])
    d = Entity.create("German military", "organization", aliases=["Wehrmacht"])
    p1 = Proposition.create(c1a.id, "Alan Turing worked at Bletchley Park.", [a.id, b.id])
    p2 = Proposition.create(c1b.id, "Bletchley Park broke the Enigma cipher.", [b.id, c.id])
    p3 = Proposition.create(c2.id, "The German military built Enigma.", [d.id, c.id])
    return Corpus(
        doc1=doc1, doc2=doc2, c1a=c1a, c1b=c1b, c2=c2, a=a, b=b, c=c, d=d, p1=p1, p2=p2, p3=p3,
        r1=Relation.create(a.id, "worked at", b.id, p1.id),
        r2=Relation.create(b.id, "broke", c.id, p2.id),
        r3=Relation.create(d.id, "built", c.id, p3.id),
    )


CORPUS_COUNTS = StoreCounts(documents=2, chunks=3, entities=4, propositions=3, relations=3)


def ids(records: Iterable[AnyRecord]) -> set[str]:
    return {r.id for r in records}


def by_id(record: AnyRecord) -> str:
    return record.id


def snapshot(store: GraphStore) -> dict[str, dict[str, AnyRecord]]:
    """Every record in the store, by kind and id, for before/after comparisons."""
    return {
        "documents": {r.id: r for r in store.iter_documents()},
        "chunks": {r.id: r for r in store.iter_chunks()},
        "entities": {r.id: r for r in store.iter_entities()},
        "propositions": {r.id: r for r in store.iter_propositions()},
        "relations": {r.id: r for r in store.iter_relations()},
    }
