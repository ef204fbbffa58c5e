"""Extraction results -> graph records (Chunk, Entity, Proposition, Relation) with content-hash ids.

Per chunk: one Chunk; one Proposition per distinct proposition sentence, mentioning the subjects and
objects of its quadruples plus every other entity of the chunk named in it; one Relation per quadruple.
Only entities some proposition mentions become records: the graph reaches entities through
propositions, so an unmentioned one would be an orphan (and a failed stage's leftovers are dropped)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from synthkg.extract.base import ExtractionResult, with_quadruple_entities
from synthkg.model import Chunk, Document, Entity, GraphBatch, Proposition, Relation, normalize_name

_VAGUE_TYPES = ("", "OTHER")
_MIN_MATCHED_NAME = 3  # shorter names ("US", "A") match inside too many sentences by accident


def to_records(doc: Document, index: int, result: ExtractionResult) -> GraphBatch:
    """The records of chunk `index` of `doc` (the Document itself is not included)."""
    chunk = Chunk.create(doc.id, index, result.original_text, result.text)
    graph = with_quadruple_entities(result.graph)
    entities: dict[str, Entity] = {}
    for extracted in graph.entities:
        entity = Entity.create(extracted.name, extracted.type)
        entities.setdefault(entity.normalized_name, entity)

    by_sentence: dict[str, list[tuple[Entity, str, Entity]]] = {}
    for quad in graph.quadruples:
        sentence = " ".join(quad.proposition.split())
        subject, obj = entities[normalize_name(quad.subject)], entities[normalize_name(quad.object)]
        by_sentence.setdefault(sentence, []).append((subject, quad.relation, obj))

    propositions: list[Proposition] = []
    relations: list[Relation] = []
    mentioned: dict[str, Entity] = {}
    for sentence, facts in by_sentence.items():
        named = [e for e in entities.values() if _names(e.name, sentence)]
        mentions = [entity for s, _, o in facts for entity in (s, o)] + named
        proposition = Proposition.create(chunk.id, sentence, [e.id for e in mentions])
        propositions.append(proposition)
        relations.extend(Relation.create(s.id, predicate, o.id, proposition.id) for s, predicate, o in facts)
        for entity in mentions:
            mentioned.setdefault(entity.id, entity)
    return GraphBatch(
        chunks=[chunk],
        entities=list(mentioned.values()),
        propositions=propositions,
        relations=list({r.id: r for r in relations}.values()),
    )


def document_records(doc: Document, results: Iterable[ExtractionResult]) -> GraphBatch:
    """The Document and the records of all its chunks (results in chunk order), merged into one batch."""
    batches = [GraphBatch(documents=[doc])]
    batches += [to_records(doc, index, result) for index, result in enumerate(results)]
    return merge_batches(batches)


def merge_batches(batches: Iterable[GraphBatch]) -> GraphBatch:
    """One batch without duplicate ids; an entity seen twice keeps the first specific type."""
    merged: dict[str, dict[str, object]] = {kind: {} for kind in GraphBatch.model_fields}
    for batch in batches:
        for kind in merged:
            for record in getattr(batch, kind):
                first = merged[kind].get(record.id)
                if first is None:
                    merged[kind][record.id] = record
                elif isinstance(first, Entity) and _more_specific(record.type, first.type):
                    merged[kind][record.id] = first.model_copy(update={"type": record.type})
    return GraphBatch(**{kind: list(records.values()) for kind, records in merged.items()})


def _more_specific(new: str, old: str) -> bool:
    return old in _VAGUE_TYPES and new not in _VAGUE_TYPES


def _names(name: str, sentence: str) -> bool:
    """Whether `sentence` names `name` as whole words, ignoring case."""
    if len(name) < _MIN_MATCHED_NAME:
        return False
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", sentence, re.IGNORECASE) is not None
