"""Typed records of the knowledge graph and their stable, content-derived ids.

Graph shape (identical in every store):

    Document -HAS_CHUNK-> Chunk -HAS_PROPOSITION-> Proposition -MENTIONS-> Entity
    Entity -RELATED {predicate, proposition_id}-> Entity

Ids are hashes of content, so writing the same text twice is a no-op and every
store can MERGE on them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ID_LENGTH = 24  # hex chars of sha256: 96 bits, collision-free at any corpus size we target


def stable_id(kind: str, *parts: str) -> str:
    """Content hash id, prefixed with the record kind so ids never collide across kinds."""
    digest = hashlib.sha256("\x1f".join((kind, *parts)).encode("utf-8")).hexdigest()
    return f"{kind}:{digest[:ID_LENGTH]}"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_WS = re.compile(r"\s+")
_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


def normalize_name(name: str) -> str:
    """Lookup key for entity names: NFKC, casefolded, whitespace collapsed, edge punctuation and a
    leading English article removed. "The  Beatles." and "the beatles" share one key."""
    key = unicodedata.normalize("NFKC", name).casefold()
    key = _WS.sub(" ", key).strip()
    key = _PUNCT_EDGES.sub("", key)
    if key.startswith("the "):
        key = key[4:]
    return key or _WS.sub(" ", name).strip().casefold()


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Document(Record):
    """A source text. `id` is stable per source (given id or path), `content_hash` changes with text:
    a changed document keeps its id and replaces its chunks."""

    id: str
    title: str = ""
    text: str
    source: str = ""
    content_hash: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def create(
        cls,
        text: str,
        *,
        title: str = "",
        source: str = "",
        key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Document:
        """`key` identifies the document across versions (e.g. the corpus record id); without one the
        content itself is the identity."""
        identity = key if key is not None else content_hash(title + "\n" + text)
        return cls(
            id=stable_id("doc", identity),
            title=title,
            text=text,
            source=source,
            content_hash=content_hash(title + "\n" + text),
            metadata=metadata or {},
        )


class Chunk(Record):
    """A ~256-token, sentence-aligned piece of a document. `text` is what extraction read (the
    decontextualized rewrite when it was kept), `original_text` the span of the document."""

    id: str
    document_id: str
    index: int
    text: str
    original_text: str
    decontextualized: bool = False

    @classmethod
    def create(
        cls, document_id: str, index: int, original_text: str, text: str | None = None
    ) -> Chunk:
        final = original_text if text is None else text
        return cls(
            id=stable_id("chunk", document_id, str(index), original_text),
            document_id=document_id,
            index=index,
            text=final,
            original_text=original_text,
            decontextualized=final != original_text,
        )


class Entity(Record):
    id: str
    name: str
    normalized_name: str
    type: str = ""
    aliases: tuple[str, ...] = ()
    description: str = ""

    @classmethod
    def create(
        cls,
        name: str,
        type: str = "",
        aliases: tuple[str, ...] | list[str] = (),
        description: str = "",
    ) -> Entity:
        key = normalize_name(name)
        return cls(
            id=stable_id("ent", key),
            name=name.strip(),
            normalized_name=key,
            type=type.strip(),
            aliases=tuple(sorted({a.strip() for a in aliases if a.strip() and a.strip() != name.strip()})),
            description=description,
        )

    def merged_with(self, newer: Entity) -> Entity:
        """This entity updated by a newer record of the same id: the newer name, type and description
        win, except that an empty type or description keeps this one's; aliases are united (sorted, the
        name left out). Both stores fold repeated entity records with this one rule."""
        return Entity(
            id=newer.id,
            name=newer.name,
            normalized_name=newer.normalized_name,
            type=newer.type or self.type,
            aliases=tuple(sorted((set(self.aliases) | set(newer.aliases)) - {newer.name})),
            description=newer.description or self.description,
        )


class Proposition(Record):
    """A self-contained sentence stating one fact, found in one chunk."""

    id: str
    chunk_id: str
    text: str
    entity_ids: tuple[str, ...] = ()

    @classmethod
    def create(cls, chunk_id: str, text: str, entity_ids: tuple[str, ...] | list[str] = ()) -> Proposition:
        return cls(
            id=stable_id("prop", chunk_id, _WS.sub(" ", text).strip()),
            chunk_id=chunk_id,
            text=text.strip(),
            entity_ids=tuple(dict.fromkeys(entity_ids)),
        )


class Relation(Record):
    """(subject, predicate, object) stated by a proposition. The predicate is data, never a label."""

    id: str
    subject_id: str
    predicate: str
    object_id: str
    proposition_id: str

    @classmethod
    def create(cls, subject_id: str, predicate: str, object_id: str, proposition_id: str) -> Relation:
        predicate = _WS.sub(" ", predicate).strip()
        return cls(
            id=stable_id("rel", subject_id, predicate.casefold(), object_id, proposition_id),
            subject_id=subject_id,
            predicate=predicate,
            object_id=object_id,
            proposition_id=proposition_id,
        )


class GraphBatch(BaseModel):
    """Everything one ingest step writes; stores apply a batch atomically where they can."""

    documents: list[Document] = Field(default_factory=list)
    chunks: list[Chunk] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    propositions: list[Proposition] = Field(default_factory=list)
    relations: list[Relation] = Field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.documents)
            + len(self.chunks)
            + len(self.entities)
            + len(self.propositions)
            + len(self.relations)
        )


class Subgraph(BaseModel):
    entities: list[Entity] = Field(default_factory=list)
    relations: list[Relation] = Field(default_factory=list)


class StoreCounts(BaseModel):
    documents: int = 0
    chunks: int = 0
    entities: int = 0
    propositions: int = 0
    relations: int = 0
