"""What deleting documents would remove, computed from a store's reads without writing anything.

`plan_deletion(store, [d1, d2])` follows `GraphStore.delete_document` step by step, as if d1 then d2 were
deleted: the document, its chunks, their propositions, the relations those propositions state, then every
entity that no proposition mentions any more (and, like DETACH DELETE, any relation of another document
still attached to such an entity). An entity another document still mentions stays; when both of its
documents are deleted, it goes with the later one. The conformance suite checks that each plan equals what
`delete_document` then removes, on every store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from synthkg.model import Entity, StoreCounts

if TYPE_CHECKING:
    from synthkg.store.base import GraphStore


class DeletionPlan(BaseModel):
    """One document's share of a deletion: the ids of every record its delete removes."""

    document_id: str
    exists: bool = Field(description="the document record is in the store")
    title: str = ""
    source: str = ""
    chunk_ids: list[str] = Field(default_factory=list)
    proposition_ids: list[str] = Field(default_factory=list)
    relation_ids: list[str] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list, description="entities left with no mention")

    @property
    def entity_ids(self) -> list[str]:
        return [e.id for e in self.entities]

    @property
    def counts(self) -> StoreCounts:
        return StoreCounts(
            documents=int(self.exists),
            chunks=len(self.chunk_ids),
            entities=len(self.entities),
            propositions=len(self.proposition_ids),
            relations=len(self.relation_ids),
        )


def plan_deletion(store: GraphStore, document_ids: Iterable[str]) -> list[DeletionPlan]:
    """One plan per distinct document id, in order (see the module docstring)."""
    gone_propositions: set[str] = set()
    gone_relations: set[str] = set()
    gone_entities: set[str] = set()
    plans = []
    for document_id in dict.fromkeys(document_ids):
        document = store.get_document(document_id)
        chunk_ids = [c.id for c in store.chunks_of_document(document_id)]
        propositions = store.propositions_of_chunks(chunk_ids)
        pids = [p.id for p in propositions]
        relations = [r for r in store.relations_of_propositions(pids) if r.id not in gone_relations]
        candidates = {eid for p in propositions for eid in p.entity_ids}
        candidates.update(eid for r in relations for eid in (r.subject_id, r.object_id))
        gone_propositions.update(pids)
        relation_ids = [r.id for r in relations]
        gone_relations.update(relation_ids)
        orphans: list[Entity] = []
        for eid in sorted(candidates - gone_entities):
            entity = store.get_entity(eid)
            if entity is None:
                continue
            if all(p.id in gone_propositions for p in store.propositions_of_entity(eid)):
                orphans.append(entity)
        for entity in orphans:
            # Relations of other documents still attached to the entity go with it.
            attached = [
                r.id
                for r in store.subgraph([entity.id], hops=1).relations
                if entity.id in (r.subject_id, r.object_id) and r.id not in gone_relations
            ]
            relation_ids += attached
            gone_relations.update(attached)
        gone_entities.update(e.id for e in orphans)
        plans.append(
            DeletionPlan(
                document_id=document_id,
                exists=document is not None,
                title=document.title if document is not None else "",
                source=document.source if document is not None else "",
                chunk_ids=chunk_ids,
                proposition_ids=pids,
                relation_ids=relation_ids,
                entities=orphans,
            )
        )
    return plans
