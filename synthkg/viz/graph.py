"""The pieces of a graph a person looks at, read from a store: an entity with its aliases, merges and
relations (`synthkg show`), and graph views (`synthkg export --format html`, `synthkg query --html`):
the whole graph cut to its best-connected entities, the neighbourhood of named entities, or the evidence
subgraph of retrieved chunks. Every edge carries the proposition that states it and its document.

Plain data only (the HTML renderer in synthkg.viz.html turns a GraphView into a page).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from synthkg.model import Entity, Relation, normalize_name

if TYPE_CHECKING:
    from synthkg.resolve import Merge
    from synthkg.store.base import GraphStore

DEFAULT_LIMIT = 300  # entities drawn by default: a big store stays usable in a browser
NODE_PROPOSITIONS = 5  # propositions listed per entity besides its relations
NO_TYPE = "(no type)"
# Colour-blind-friendly categorical colours (Okabe-Ito, then Tableau), given to types by frequency.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
    "#4E79A7", "#F28E2B", "#59A14F", "#B07AA1", "#9C755F", "#EDC948", "#76B7B2",
)
OTHER_COLOR = "#9AA0A6"


class VizError(ValueError):
    """Nothing to show: an empty store, or no entity by that name. Nothing was written."""


@dataclass(frozen=True)
class Evidence:
    """A proposition as a reader sees it: its text and the document it came from."""

    proposition_id: str
    text: str
    document_id: str = ""
    title: str = ""
    source: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"proposition": self.text, "document_id": self.document_id, "title": self.title,
                "source": self.source}


class EvidenceReader:
    """Propositions with their documents, each read once."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self._documents: dict[str, tuple[str, str, str]] = {}
        self._chunks: dict[str, str] = {}

    def of(self, proposition_id: str) -> Evidence:
        proposition = self.store.get_proposition(proposition_id)
        if proposition is None:
            return Evidence(proposition_id, "")
        return self.of_proposition(proposition.id, proposition.text, proposition.chunk_id)

    def of_proposition(self, proposition_id: str, text: str, chunk_id: str) -> Evidence:
        document_id, title, source = self.document_of_chunk(chunk_id)
        return Evidence(proposition_id, text, document_id, title, source)

    def document_of_chunk(self, chunk_id: str) -> tuple[str, str, str]:
        if chunk_id not in self._chunks:
            chunk = self.store.get_chunk(chunk_id)
            self._chunks[chunk_id] = chunk.document_id if chunk is not None else ""
        document_id = self._chunks[chunk_id]
        if document_id and document_id not in self._documents:
            document = self.store.get_document(document_id)
            self._documents[document_id] = (
                (document_id, document.title or document_id, document.source)
                if document is not None else (document_id, document_id, "")
            )
        return self._documents.get(document_id, ("", "", ""))


# --- synthkg show ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RelationLine:
    relation: Relation
    subject: str
    object: str
    evidence: Evidence


@dataclass
class EntityCard:
    """One entity as `synthkg show` prints it."""

    entity: Entity
    merges: list[tuple[Merge, bool]] = field(default_factory=list)  # (merge, undone)
    relations: list[RelationLine] = field(default_factory=list)
    relations_total: int = 0
    mentions: int = 0


def describe_entities(
    store: GraphStore,
    name: str,
    *,
    merges: Sequence[Merge] = (),
    blocked: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
    limit: int = 20,
) -> list[EntityCard]:
    """Every entity named `name` (or with that alias), with the merges into it, its relations (at most
    `limit`, each with its proposition and document) and how many propositions mention it."""
    cards = []
    reader = EvidenceReader(store)
    for entity in store.find_entities(name):
        sub = store.subgraph([entity.id], hops=1)
        names = {e.id: e.name for e in sub.entities}
        touching = sorted(
            (r for r in sub.relations if entity.id in (r.subject_id, r.object_id)),
            key=lambda r: (r.subject_id != entity.id, r.predicate.casefold(), names.get(r.object_id, ""),
                           r.id),
        )
        lines = [
            RelationLine(r, names.get(r.subject_id, r.subject_id), names.get(r.object_id, r.object_id),
                         reader.of(r.proposition_id))
            for r in touching[:limit]
        ]
        into = [(m, (normalize_name(m.name), m.into_id) in blocked) for m in merges if m.into_id == entity.id]
        mentions = len(store.propositions_of_entity(entity.id))
        cards.append(EntityCard(entity, into, lines, len(touching), mentions))
    return cards


# --- graph views ----------------------------------------------------------------------------------
@dataclass
class GraphView:
    """Nodes and edges ready to draw, with what they rest on."""

    title: str
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""  # e.g. "showing 300 of 5,120 entities"
    types: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "note": self.note, "types": self.types, "nodes": self.nodes,
                "edges": self.edges}


def store_view(store: GraphStore, *, limit: int = DEFAULT_LIMIT, location: str = "") -> GraphView:
    """The whole graph, cut to the `limit` entities with the most relations."""
    _check_limit(limit)
    entities = list(store.iter_entities())
    if not entities:
        where = f" at {location}" if location else ""
        hint = (" (ingested with --extractor none?)" if store.counts().documents
                else ": run `synthkg ingest` first")
        raise VizError(f"the store{where} holds no entities{hint}; nothing written")
    degree: Counter[str] = Counter()
    relations = list(store.iter_relations())
    for r in relations:
        degree[r.subject_id] += 1
        degree[r.object_id] += 1
    chosen = sorted(entities, key=lambda e: (-degree[e.id], e.name.casefold(), e.id))[:limit]
    kept = {e.id for e in chosen}
    inside = [r for r in relations if r.subject_id in kept and r.object_id in kept]
    note = "" if len(entities) <= limit else (
        f"showing the {len(chosen):,} best-connected of {len(entities):,} entities (--limit)"
    )
    return _view(store, "Knowledge graph", chosen, inside, note=note)


def neighbourhood_view(
    store: GraphStore, around: str, *, hops: int = 2, limit: int = DEFAULT_LIMIT, location: str = ""
) -> GraphView:
    """The entities named `around` and those within `hops` relations of them (nearest first, at most
    `limit`), with every relation among them."""
    _check_limit(limit)
    if hops < 0:
        raise VizError(f"--hops must be 0 or more, got {hops}")
    starts = store.find_entities(around)
    if not starts:
        where = f" in the store at {location}" if location else ""
        raise VizError(
            f"no entity named {around!r}{where} (`synthkg show NAME` looks names up); nothing written"
        )
    sub = store.subgraph([e.id for e in starts], hops=hops)
    chosen = sub.entities[: max(limit, len(starts))]
    kept = {e.id for e in chosen}
    inside = [r for r in sub.relations if r.subject_id in kept and r.object_id in kept]
    note = "" if len(sub.entities) <= len(chosen) else (
        f"showing the {len(chosen):,} nearest of {len(sub.entities):,} entities (--limit)"
    )
    focus = {e.id for e in starts}
    title = f"Around {starts[0].name} ({hops} hop{'' if hops == 1 else 's'})"
    return _view(store, title, chosen, inside, focus=focus, note=note)


def evidence_view(
    store: GraphStore, chunk_ids: Iterable[str], *, cited: Iterable[str] = (), title: str = "Evidence"
) -> GraphView:
    """The entities and relations of the propositions of these chunks (what a retriever walked); those
    of the `cited` chunks are highlighted."""
    chunk_ids = list(dict.fromkeys(chunk_ids))
    cited_chunks = set(cited)
    propositions = store.propositions_of_chunks(chunk_ids)
    relations = store.relations_of_propositions([p.id for p in propositions])
    entity_ids = dict.fromkeys(
        [eid for p in propositions for eid in p.entity_ids]
        + [eid for r in relations for eid in (r.subject_id, r.object_id)]
    )
    entities = [e for eid in entity_ids if (e := store.get_entity(eid)) is not None]
    reader = EvidenceReader(store)
    mentions: dict[str, list[dict[str, str]]] = {}
    focus: set[str] = set()
    for p in propositions:
        evidence = reader.of_proposition(p.id, p.text, p.chunk_id).as_dict()
        for eid in p.entity_ids:
            mentions.setdefault(eid, []).append(evidence)
            if p.chunk_id in cited_chunks:
                focus.add(eid)
    cited_props = {p.id for p in propositions if p.chunk_id in cited_chunks}
    return _view(store, title, entities, relations, focus=focus, mentions=mentions,
                 cited_propositions=cited_props, reader=reader)


def answer_view(store: GraphStore, answer: Any) -> tuple[GraphView, dict[str, Any]]:
    """The evidence subgraph of a reader's answer (`retrieval.reader.Answer`: the chunks every step
    retrieved, the cited ones highlighted) and the answer with its citations, for `render_html`."""
    cited = [c.chunk_id for c in answer.citations]
    walked = [cid for step in answer.trace for cid in step.retrieved_chunk_ids] + cited
    view = evidence_view(store, walked, cited=cited, title="Evidence the retriever walked")
    reader = EvidenceReader(store)
    citations = []
    for c in answer.citations:
        _, title, source = reader.document_of_chunk(c.chunk_id)
        citations.append({"number": c.number, "chunk_id": c.chunk_id, "document_id": c.document_id,
                          "title": title or c.document_id, "source": source, "text": c.text})
    return view, {"question": answer.question, "answer": answer.answer, "citations": citations}


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise VizError(f"--limit must be 1 or more, got {limit}")


def _view(
    store: GraphStore,
    title: str,
    entities: list[Entity],
    relations: list[Relation],
    *,
    focus: set[str] | None = None,
    note: str = "",
    mentions: dict[str, list[dict[str, str]]] | None = None,
    cited_propositions: set[str] | None = None,
    reader: EvidenceReader | None = None,
) -> GraphView:
    reader = reader or EvidenceReader(store)
    focus = focus or set()
    kept = {e.id for e in entities}
    relations = [r for r in relations if r.subject_id in kept and r.object_id in kept]
    counts = Counter(e.type.strip() or NO_TYPE for e in entities)
    ordered = sorted(counts, key=lambda t: (t == NO_TYPE, -counts[t], t.casefold()))
    colors = {
        t: OTHER_COLOR if t == NO_TYPE or i >= len(PALETTE) else PALETTE[i] for i, t in enumerate(ordered)
    }
    view = GraphView(title=title, note=note)
    view.types = [{"name": t, "color": colors[t], "count": counts[t]} for t in ordered]
    for e in entities:
        if mentions is not None:
            said = mentions.get(e.id, [])[:NODE_PROPOSITIONS]
        else:
            said = [reader.of_proposition(p.id, p.text, p.chunk_id).as_dict()
                    for p in store.propositions_of_entity(e.id)[:NODE_PROPOSITIONS]]
        kind = e.type.strip() or NO_TYPE
        view.nodes.append({
            "id": e.id, "name": e.name, "type": kind, "color": colors[kind], "aliases": list(e.aliases),
            "description": e.description, "focus": e.id in focus, "propositions": said,
        })
    for r in relations:
        evidence = reader.of(r.proposition_id).as_dict()
        view.edges.append({
            "id": r.id, "from": r.subject_id, "to": r.object_id, "predicate": r.predicate,
            "cited": bool(cited_propositions) and r.proposition_id in (cited_propositions or set()),
            **evidence,
        })
    return view
