"""The one interface every graph store implements, and the errors stores raise.

Semantics shared by all stores (the conformance suite in tests/store checks them):
- upserts are batch-oriented and idempotent: writing a record whose id exists updates it in place;
  entities merge their aliases (union) and keep a non-empty type/description over an empty one;
- lookups by name use `normalize_name`, and also match aliases;
- `delete_document` removes the document, its chunks, their propositions and relations, and every
  entity no remaining proposition mentions;
- anything that came from a document or an LLM is data, never part of a query's text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

from synthkg.model import (
    Chunk,
    Document,
    Entity,
    GraphBatch,
    Proposition,
    Relation,
    StoreCounts,
    Subgraph,
)

# Both read a store only through this interface and name it for typing alone: no import cycle.
from synthkg.store.deletion import DeletionPlan, plan_deletion
from synthkg.store.export import ExportFormat, export_store


class StoreError(RuntimeError):
    """A store cannot be opened or written; the message says what and where, never a secret."""


class StoreLockedError(StoreError):
    """Another process holds the store's write lock."""


class StoreUnavailableError(StoreError):
    """The database server went away or refused us after bounded retries."""


class GraphStore(ABC):
    """Batch-oriented graph store. Use as a context manager, or call `close()`."""

    # --- writes -------------------------------------------------------------------------------
    @abstractmethod
    def write(self, batch: GraphBatch) -> None:
        """Upsert everything in `batch` (documents, chunks, entities, propositions, relations, in
        that order), as one atomic unit where the backend allows it."""

    def upsert_documents(self, documents: Iterable[Document]) -> None:
        self.write(GraphBatch(documents=list(documents)))

    def upsert_chunks(self, chunks: Iterable[Chunk]) -> None:
        self.write(GraphBatch(chunks=list(chunks)))

    def upsert_entities(self, entities: Iterable[Entity]) -> None:
        self.write(GraphBatch(entities=list(entities)))

    def upsert_propositions(self, propositions: Iterable[Proposition]) -> None:
        self.write(GraphBatch(propositions=list(propositions)))

    def upsert_relations(self, relations: Iterable[Relation]) -> None:
        self.write(GraphBatch(relations=list(relations)))

    @abstractmethod
    def delete_document(self, document_id: str) -> StoreCounts:
        """Delete a document and whatever only it supported; returns what was removed."""

    # --- point reads --------------------------------------------------------------------------
    @abstractmethod
    def get_document(self, document_id: str) -> Document | None: ...

    @abstractmethod
    def get_chunk(self, chunk_id: str) -> Chunk | None: ...

    @abstractmethod
    def get_entity(self, entity_id: str) -> Entity | None: ...

    @abstractmethod
    def get_proposition(self, proposition_id: str) -> Proposition | None: ...

    @abstractmethod
    def get_relation(self, relation_id: str) -> Relation | None: ...

    @abstractmethod
    def find_entities(self, name: str) -> list[Entity]:
        """Entities whose normalized name or one of whose aliases equals `normalize_name(name)`."""

    def chunk_text(self, chunk_id: str) -> str | None:
        chunk = self.get_chunk(chunk_id)
        return None if chunk is None else chunk.text

    # --- graph reads --------------------------------------------------------------------------
    @abstractmethod
    def neighbors(self, entity_ids: Iterable[str], hops: int = 1) -> list[Entity]:
        """Entities reachable from `entity_ids` over RELATED edges (either direction) in 1..hops
        steps, excluding the start entities themselves."""

    @abstractmethod
    def subgraph(self, entity_ids: Iterable[str], hops: int = 1) -> Subgraph:
        """The start entities, their neighbours within `hops`, and every relation among them."""

    @abstractmethod
    def propositions_of_entity(self, entity_id: str) -> list[Proposition]: ...

    @abstractmethod
    def chunks_of_document(self, document_id: str) -> list[Chunk]:
        """The document's chunks in index order."""

    def propositions_of_chunks(self, chunk_ids: Iterable[str]) -> list[Proposition]:
        """The propositions of these chunks, by id. This default scans every proposition; stores
        override it with an indexed read."""
        wanted = set(chunk_ids)
        if not wanted:
            return []
        return sorted((p for p in self.iter_propositions() if p.chunk_id in wanted), key=lambda p: p.id)

    def relations_of_propositions(self, proposition_ids: Iterable[str]) -> list[Relation]:
        """The relations these propositions state, by id. This default scans every relation; stores
        override it with an indexed read."""
        wanted = set(proposition_ids)
        if not wanted:
            return []
        return sorted((r for r in self.iter_relations() if r.proposition_id in wanted), key=lambda r: r.id)

    def deletion_plan(self, document_ids: Iterable[str]) -> list[DeletionPlan]:
        """What `delete_document` would remove for each document, deleted in this order, computed from
        reads only (nothing is written). See synthkg.store.deletion."""
        return plan_deletion(self, document_ids)

    # --- bulk reads (index building, export) --------------------------------------------------
    @abstractmethod
    def iter_documents(self) -> Iterator[Document]: ...

    @abstractmethod
    def iter_chunks(self) -> Iterator[Chunk]: ...

    @abstractmethod
    def iter_entities(self) -> Iterator[Entity]: ...

    @abstractmethod
    def iter_propositions(self) -> Iterator[Proposition]: ...

    @abstractmethod
    def iter_relations(self) -> Iterator[Relation]: ...

    @abstractmethod
    def counts(self) -> StoreCounts: ...

    def export(self, path: str | Path, format: ExportFormat = "json") -> Path:
        """Write the whole graph to `path` as GraphML or JSON (see synthkg.store.export)."""
        return export_store(self, Path(path), format)

    # --- lifecycle ----------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
