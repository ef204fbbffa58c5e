"""How the gold passages of each question hang together in the extracted graph: the "why" behind a graph
retriever's recall.

A graph walk can only reach a supporting passage the graph connects to the question. Per question:

- `with_facts`: its gold passages with at least one proposition (a failed or empty extraction leaves a
  passage that only its own text can retrieve);
- `named`: its gold passages the question reaches directly, by their title or by an entity the question
  names (the exact, name-like matches mode hippo seeds from);
- `reachable`: its gold passages reachable from the named ones through the gold passages themselves, two
  passages being linked when they share an entity or hold two entities joined by a synonym edge (the
  walk's passage -> entity (-> synonym) -> passage steps; `synonyms` as mode hippo draws them). A question
  whose gold passages are all reachable is one where the graph holds the whole chain.

`link_gold_passages` reads the store once per dataset; `summarize` splits the retrievers' recall@5 by
whether the chain is whole.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from eval.datasets import Dataset
from eval.result_files import mean_or_none
from retrieval.passage_graph import synonym_pairs
from retrieval.retrievers.linking import is_name, title_index, titled_chunks
from synthkg.indexes import SearchIndex
from synthkg.store.base import GraphStore


@dataclass(frozen=True)
class GoldLinks:
    """One question's gold passages, as the graph holds them."""

    question_id: str
    question_type: str | None
    gold: int
    with_facts: int
    named: int
    reachable: int

    @property
    def whole_chain(self) -> bool:
        return self.gold > 0 and self.reachable == self.gold


def link_gold_passages(dataset: Dataset, store: GraphStore, index: SearchIndex,
                       synonyms: Mapping[str, Collection[str]] | None = None) -> list[GoldLinks]:
    """`GoldLinks` of every question of `dataset` with supporting passages, over the store built from it;
    `synonyms`: entity id -> the ids it has a synonym edge to (none when not given)."""
    synonyms = synonyms or {}
    chunks_of: dict[str, list[str]] = {}
    for chunk in store.iter_chunks():
        chunks_of.setdefault(chunk.document_id, []).append(chunk.id)
    titles = title_index(store, index)
    entity_cache: dict[str, frozenset[str]] = {}

    def chunks(passage_id: str) -> list[str]:
        return chunks_of.get(dataset.document_id(dataset.passage(passage_id)), [])

    def entities(passage_id: str) -> frozenset[str]:
        if passage_id not in entity_cache:
            found = store.propositions_of_chunks(chunks(passage_id))
            own = {eid for prop in found for eid in prop.entity_ids}
            entity_cache[passage_id] = frozenset(own.union(*(synonyms.get(eid, ()) for eid in own)))
        return entity_cache[passage_id]

    links = []
    for question in dataset.questions:
        gold = list(dict.fromkeys(question.supporting_passage_ids))
        if not gold:
            continue
        held = {pid: entities(pid) for pid in gold}
        in_question = {eid for eid, words in index.entities_named_in(question.question).items()
                       if is_name(words)}  # a synonym of one is in the passages' expanded sets
        titled = set(titled_chunks(question.question, titles))
        named = {pid for pid in gold if held[pid] & in_question or titled.intersection(chunks(pid))}
        links.append(GoldLinks(
            question_id=question.id, question_type=question.type, gold=len(gold),
            with_facts=sum(1 for pid in gold if held[pid]), named=len(named),
            reachable=len(_reach(named, held)),
        ))
    return links


def synonym_map(index: SearchIndex, floor: float, per_entity: int) -> dict[str, set[str]]:
    """Entity id -> the ids of the entities whose names embed alike (mode hippo's synonym edges)."""
    found: dict[str, set[str]] = {}
    if per_entity <= 0:  # mode hippo draws no synonym edges then (PassageGraph.build)
        return found
    ids = index.ids("entities")
    for a, b, _ in synonym_pairs(index, floor, per_entity):
        found.setdefault(ids[a], set()).add(ids[b])
        found.setdefault(ids[b], set()).add(ids[a])
    return found


def _reach(starts: Iterable[str], held: dict[str, frozenset[str]]) -> set[str]:
    """The passages of `held` reachable from `starts` through shared entities."""
    reached = set(starts)
    frontier = list(reached)
    while frontier:
        here = held[frontier.pop()]
        for pid, found in held.items():
            if pid not in reached and here & found:
                reached.add(pid)
                frontier.append(pid)
    return reached


def summarize(links: Sequence[GoldLinks], recall: dict[str, dict[str, float]]) -> dict[str, object]:
    """Shares over the questions (gold passages with facts, questions with a named gold passage, questions
    whose whole chain is reachable) and, per retrieval mode of `recall` (mode -> question id ->
    recall@5), the mean recall@5 of the questions with a whole chain and of the others."""
    n = len(links)
    passages = sum(link.gold for link in links)
    whole = {link.question_id for link in links if link.whole_chain}
    by_mode: dict[str, dict[str, float | None]] = {}
    for mode, per_question in recall.items():
        inside = [r for q, r in per_question.items() if q in whole]
        outside = [r for q, r in per_question.items() if q not in whole]
        by_mode[mode] = {"whole_chain": mean_or_none(inside), "broken_chain": mean_or_none(outside)}
    return {
        "questions": n,
        "gold_passages": passages,
        "gold_with_facts": round(sum(link.with_facts for link in links) / passages, 3) if passages else None,
        "questions_with_a_named_gold_passage": _share(sum(1 for link in links if link.named), n),
        "questions_with_the_whole_chain": _share(len(whole), n),
        "recall@5": by_mode,
        "rows": [asdict(link) for link in links],
    }


def _share(count: int, total: int) -> float | None:
    return round(count / total, 3) if total else None
