"""Stage 2 of the graph modes: the question's entities. Name-like spans of the question matched to entity
names (exactly, then by embedding), the entities of the documents whose title the question names, and the
extra names an iterative reader passes (its intermediate answers), each a weighted `Seed` of the walk."""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from synthkg.config import RetrievalParams
from synthkg.indexes import STOPWORDS, SearchIndex, matched_runs
from synthkg.model import normalize_name
from synthkg.store.base import GraphStore


@dataclass(frozen=True)
class Seed:
    """A start entity of the graph walk and how much we trust it."""

    entity_id: str
    weight: float


_NAME_TOKEN = re.compile(r"[\w][\w'’.&-]*", re.UNICODE)
_CONNECTORS = frozenset({"of", "the", "de", "and", "for", "in", "von", "van", "da", "du", "la", "le", "del"})
_QUOTED = re.compile(r"[\"“”«»]([^\"“”«»]{2,80})[\"“”«»]")


def name_spans(question: str) -> list[str]:
    """Spans of `question` that look like names: runs of capitalized words or numbers (allowing "of",
    "the"... inside) and quoted text; a leading question word or stopword is not part of a name."""
    spans: list[str] = [m.group(1).strip() for m in _QUOTED.finditer(question)]
    run: list[str] = []

    def close() -> None:
        while run and run[-1].casefold() in _CONNECTORS:
            run.pop()
        while run and run[0].casefold() in STOPWORDS:
            run.pop(0)
        if run:
            spans.append(" ".join(run))
        run.clear()

    for token in _NAME_TOKEN.findall(question):
        word = token.rstrip(".'’")
        if word[:1].isdigit() and run and run[-1] in _CONNECTORS:
            close()  # "Rings in 1954": a year after a connector is its own span, not part of the name
            run.append(word)
        elif word[:1].isupper() or word[:1].isdigit() or (run and word in _CONNECTORS):
            run.append(word)
        else:
            close()
    close()
    return list(dict.fromkeys(s for s in spans if s))


def link_question_entities(
    question: str, vectors: np.ndarray, spans: list[str], index: SearchIndex, params: RetrievalParams
) -> dict[str, Seed]:
    """Stage 2: exact name matches (weight 1), then the entities most similar to the whole question and to
    each name span without an exact match, above their similarity floors (weight = similarity)."""
    exact = index.entities_named_in(question)
    if params.named_seeds_only:
        exact = {eid: words for eid, words in exact.items() if is_name(words)}
    seeds = {eid: Seed(eid, 1.0) for eid in exact}
    matched = {normalize_name(words) for words in exact.values()}
    queries = [(params.question_entity_min_similarity, vectors[0])]
    queries += [
        (params.span_entity_min_similarity, vector)
        for span, vector in zip(spans, vectors[1:], strict=True)
        if normalize_name(span) not in matched
    ]
    for floor, vector in queries:
        for eid, sim in index.dense_search("entities", vector, params.entities_per_query):
            if params.named_seeds_only and not is_name(index.text("entities", eid) or ""):
                continue
            if sim >= floor and (eid not in seeds or seeds[eid].weight < sim):
                seeds[eid] = Seed(eid, sim)
    return seeds


def link_question_and_names(
    question: str, spans: list[str], names: Sequence[str], vectors: np.ndarray, index: SearchIndex,
    params: RetrievalParams,
) -> dict[str, Seed]:
    """Stage 2 for a retriever: the question's entities (`link_question_entities`) merged with those of the
    extra `names` (`link_names`); `vectors` embed the question, then its `spans`, then the `names`."""
    linked = link_question_entities(question, vectors[: 1 + len(spans)], spans, index, params)
    return merge_seeds(linked, link_names(names, vectors[1 + len(spans) :], index, params))


def title_seeds(
    question: str, store: GraphStore, index: SearchIndex, params: RetrievalParams, linked: Collection[str]
) -> dict[str, Seed]:
    """Stage 2, titles: when the question names a document's title (as a run of words that reads as a
    name) but none of the entities of a chunk of that document is among the `linked` ones (its extraction
    named the subject otherwise), that chunk's entities, each with weight `params.title_seed_weight`."""
    if params.title_seed_weight <= 0:
        return {}
    chunk_ids = titled_chunks(question, title_index(store, index))
    entities: dict[str, set[str]] = {}
    for proposition in store.propositions_of_chunks(chunk_ids):
        entities.setdefault(proposition.chunk_id, set()).update(proposition.entity_ids)
    return {
        eid: Seed(eid, params.title_seed_weight)
        for found in entities.values()
        if found.isdisjoint(linked)
        for eid in found
    }


_TITLES: dict[tuple[int, str], dict[str, list[str]]] = {}
_TITLES_LOCK = threading.Lock()
_QUALIFIER = re.compile(r"\s*\([^)]*\)\s*$")


def title_index(store: GraphStore, index: SearchIndex) -> dict[str, list[str]]:
    """Normalized document title (also without a trailing "(film)"-like qualifier) -> the document's chunk
    ids; read from the store once per store and index state."""
    key = (id(store), index.state_token())
    with _TITLES_LOCK:
        titles = _TITLES.get(key)
        if titles is None:
            _TITLES.clear()  # one store's titles at a time
            chunks: dict[str, list[str]] = {}
            for chunk in store.iter_chunks():
                chunks.setdefault(chunk.document_id, []).append(chunk.id)
            titles = {}
            for document in store.iter_documents():
                title = document.title.strip()
                if title and document.id in chunks:
                    for name in {normalize_name(title), normalize_name(_QUALIFIER.sub("", title))}:
                        titles.setdefault(name, []).extend(chunks[document.id])
            _TITLES[key] = titles
    return titles


def titled_chunks(question: str, titles: dict[str, list[str]], max_words: int = 8) -> list[str]:
    """The chunks of the documents whose title the question names: runs of up to `max_words` words that
    read as a name, longest first, each word in at most one match."""

    def chunks(span: str) -> list[str] | None:
        return titles.get(normalize_name(span)) if is_name(span) else None

    found = [cid for _, ids in matched_runs(question, chunks, max_words) for cid in ids]
    return list(dict.fromkeys(found))


def is_name(text: str) -> bool:
    """Whether `text` reads as a name: a word that is capitalized or holds a digit, not a stopword
    ("Lothair II", "1984", "Good People" are; "place of birth", "What is?" are not)."""
    for word in text.split():
        core = word.strip(".,;:!?()[]\"'")
        if core and (core[0].isupper() or any(c.isdigit() for c in core)) and core.lower() not in STOPWORDS:
            return True
    return False


def link_names(
    names: Sequence[str], vectors: np.ndarray, index: SearchIndex, params: RetrievalParams
) -> dict[str, Seed]:
    """Seeds for extra names (an iterative reader's intermediate answers): the entities a name matches
    exactly (weight 1), else its most similar entity above the span floor (weight = similarity)."""
    seeds: dict[str, Seed] = {}
    for name, vector in zip(names, vectors, strict=True):
        exact = index.entities_named_in(name)
        for eid in exact:
            seeds[eid] = Seed(eid, 1.0)
        if not exact:
            for eid, sim in index.dense_search("entities", vector, 1):
                if sim >= params.span_entity_min_similarity:
                    seeds = merge_seeds(seeds, {eid: Seed(eid, sim)})
    return seeds


def merge_seeds(a: dict[str, Seed], b: dict[str, Seed]) -> dict[str, Seed]:
    """Both seed sets; an entity in both keeps its higher weight."""
    merged = dict(a)
    for eid, seed in b.items():
        if eid not in merged or merged[eid].weight < seed.weight:
            merged[eid] = seed
    return merged
