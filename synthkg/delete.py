"""Deleting documents by id or by source: which documents an argument names, what deleting them removes
(`dry_run`: computed from reads, nothing written), and the deletes themselves.

An argument names, in this order:
1. the document with exactly that id ("doc:...");
2. every document whose `source` is that path (as written, or resolving to the same file), or lies
   inside that directory; the id a text file's path gives its document (see `synthkg.loaders`) too;
3. the document of a corpus record with that id (`Document.create(key=record id)`).
An argument that names nothing stops the whole deletion before anything is written.

Each document's delete is atomic in its store (one logged operation in the embedded store, one
transaction in Neo4j); the search index is updated by the caller (`KnowledgeGraph.delete`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from synthkg.model import Document, StoreCounts, stable_id
from synthkg.store.base import GraphStore
from synthkg.store.deletion import DeletionPlan


class UnknownDocumentError(ValueError):
    """Some arguments name no document in the store; nothing was deleted."""

    def __init__(self, unknown: Sequence[str], location: str = "") -> None:
        self.unknown = list(unknown)
        where = f" in the store at {location}" if location else ""
        names = ", ".join(repr(u) for u in self.unknown)
        super().__init__(
            f"no document matches {names}{where} (neither a document id, a source path nor a record id; "
            "`synthkg export FILE.json` lists every document's id and source); nothing was deleted"
        )


class DocumentDeletion(BaseModel):
    """One document, and what deleting it removed (or would remove, in a dry run)."""

    document_id: str
    title: str = ""
    source: str = ""
    removed: StoreCounts = Field(default_factory=StoreCounts)
    entities: list[str] = Field(
        default_factory=list, description="names of the entities left with no mention"
    )


class DeleteResult(BaseModel):
    dry_run: bool
    documents: list[DocumentDeletion] = Field(default_factory=list)
    index_removed: dict[str, int] = Field(
        default_factory=dict, description="search index rows dropped, per section (empty in a dry run)"
    )
    warnings: list[str] = Field(default_factory=list)

    @property
    def total(self) -> StoreCounts:
        fields = StoreCounts.model_fields
        return StoreCounts(**{f: sum(getattr(d.removed, f) for d in self.documents) for f in fields})


def resolve_documents(store: GraphStore, targets: Iterable[str], *, location: str = "") -> list[Document]:
    """The documents the arguments name (each once, in argument order). Raises UnknownDocumentError
    naming every argument that names none."""
    found: dict[str, Document] = {}
    unknown: list[str] = []
    every: list[Document] | None = None

    def all_documents() -> list[Document]:
        nonlocal every
        if every is None:
            every = list(store.iter_documents())
        return every

    for target in targets:
        documents = _resolve_one(store, target, all_documents)
        if not documents:
            unknown.append(target)
        for document in documents:
            found.setdefault(document.id, document)
    if unknown:
        raise UnknownDocumentError(unknown, location)
    return list(found.values())


def _resolve_one(
    store: GraphStore, target: str, all_documents: Callable[[], list[Document]]
) -> list[Document]:
    exact = store.get_document(target)
    if exact is not None:
        return [exact]
    path = _resolved(target)
    if target.strip() and path is not None:
        directory = path if os.path.isdir(path) else None
        matches = []
        for document in all_documents():
            if not document.source:
                continue
            if document.source == target:
                matches.append(document)
                continue
            source = _resolved(document.source)
            inside = directory is not None and source is not None and directory in source.parents
            if source is not None and (source == path or inside):
                matches.append(document)
        if matches:
            return sorted(matches, key=lambda d: (d.source, d.id))
        by_path = store.get_document(stable_id("doc", str(path)))  # a .txt/.md file's id is its path's
        if by_path is not None:
            return [by_path]
    record = store.get_document(stable_id("doc", target))
    return [record] if record is not None else []


def _resolved(path: str) -> Path | None:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return None


def delete_documents(
    store: GraphStore, documents: Sequence[Document], *, dry_run: bool = False
) -> DeleteResult:
    """Delete `documents` in order (each atomically), or with `dry_run` only say what would go."""
    plans = store.deletion_plan([d.id for d in documents])
    result = DeleteResult(dry_run=dry_run)
    for document, plan in zip(documents, plans, strict=True):
        removed = plan.counts if dry_run else store.delete_document(document.id)
        result.documents.append(_deletion(document, plan, removed))
    return result


def _deletion(document: Document, plan: DeletionPlan, removed: StoreCounts) -> DocumentDeletion:
    return DocumentDeletion(
        document_id=document.id,
        title=document.title,
        source=document.source,
        removed=removed,
        entities=[e.name for e in plan.entities],
    )
