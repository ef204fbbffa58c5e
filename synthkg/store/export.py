"""Whole-graph export to GraphML or JSON, written through the store interface so every store
exports the same shape."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import networkx as nx

if TYPE_CHECKING:
    from synthkg.store.base import GraphStore

ExportFormat = Literal["graphml", "json"]


# XML 1.0 cannot hold most control characters, not even escaped: GraphML gets U+FFFD in their place
# (JSON export is lossless).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_safe(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    attributes = [d for _, d in graph.nodes(data=True)] + [d for *_, d in graph.edges(keys=True, data=True)]
    for data in attributes:
        for key, value in data.items():
            if isinstance(value, str):
                data[key] = _XML_INVALID.sub("\ufffd", value)
    return graph


def store_to_networkx(store: GraphStore) -> nx.MultiDiGraph:
    """The store's graph as a MultiDiGraph with `kind` on every node and edge."""
    g = nx.MultiDiGraph()
    for d in store.iter_documents():
        g.add_node(d.id, kind="Document", title=d.title, source=d.source, content_hash=d.content_hash)
    for c in store.iter_chunks():
        g.add_node(c.id, kind="Chunk", index=c.index, text=c.text, original_text=c.original_text,
                   decontextualized=c.decontextualized)
        g.add_edge(c.document_id, c.id, key="HAS_CHUNK", kind="HAS_CHUNK")
    for e in store.iter_entities():
        g.add_node(e.id, kind="Entity", name=e.name, type=e.type, aliases=json.dumps(list(e.aliases)),
                   description=e.description)
    for p in store.iter_propositions():
        g.add_node(p.id, kind="Proposition", text=p.text)
        g.add_edge(p.chunk_id, p.id, key="HAS_PROPOSITION", kind="HAS_PROPOSITION")
        for eid in p.entity_ids:
            g.add_edge(p.id, eid, key="MENTIONS", kind="MENTIONS")
    for r in store.iter_relations():
        g.add_edge(r.subject_id, r.object_id, key=r.id, kind="RELATED", predicate=r.predicate,
                   proposition_id=r.proposition_id)
    return g


def export_store(store: GraphStore, path: Path, format: ExportFormat) -> Path:
    if format not in ("graphml", "json"):
        raise ValueError(f"unknown export format {format!r}; use 'graphml' or 'json'")
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "graphml":
        nx.write_graphml(_xml_safe(store_to_networkx(store)), path)
    else:
        data = {
            "documents": [d.model_dump(mode="json") for d in store.iter_documents()],
            "chunks": [c.model_dump(mode="json") for c in store.iter_chunks()],
            "entities": [e.model_dump(mode="json") for e in store.iter_entities()],
            "propositions": [p.model_dump(mode="json") for p in store.iter_propositions()],
            "relations": [r.model_dump(mode="json") for r in store.iter_relations()],
        }
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path
