"""Knowledge-graph coverage: how many of a question's gold triples the extracted graph states, over the
question's supporting passages and over the whole graph."""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from eval.datasets import Dataset, Question
from eval.gold_triples import gold_triples
from eval.metrics import (
    CoverageResult,
    triple_coverage,
)
from eval.result_files import EvalError, KGEval, KGRow, ModeSummary, ScopeCoverage, mean_or_none
from synthkg.embeddings import Embedder
from synthkg.model import stable_id
from synthkg.store import GraphStore


# --- knowledge-graph coverage ----------------------------------------------------------------------
class MemoEmbedder:
    """Embeds each distinct text once: the global scope compares every question's gold triples with
    the same (possibly thousands of) store triples."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.name = embedder.name
        self._vectors: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            for text, vector in zip(missing, self.embedder.embed(missing), strict=True):
                self._vectors[text] = vector
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])


class GraphTriples:
    """The store's relations as (subject name, predicate, object name), by chunk and in all."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        chunk_of_prop = {p.id: p.chunk_id for p in store.iter_propositions()}
        self.names: dict[str, str] = {}
        self.by_chunk: dict[str, list[tuple[str, str, str]]] = {}
        self.all: list[tuple[str, str, str]] = []
        for relation in store.iter_relations():
            triple = (self._name(relation.subject_id), relation.predicate, self._name(relation.object_id))
            self.all.append(triple)
            chunk = chunk_of_prop.get(relation.proposition_id)
            if chunk is not None:
                self.by_chunk.setdefault(chunk, []).append(triple)
        self.all = list(dict.fromkeys(self.all))

    def _name(self, entity_id: str) -> str:
        if entity_id not in self.names:
            entity = self.store.get_entity(entity_id)
            self.names[entity_id] = entity.name if entity is not None else entity_id
        return self.names[entity_id]

    def of_document(self, document_id: str) -> list[tuple[str, str, str]]:
        triples = [t for c in self.store.chunks_of_document(document_id) for t in self.by_chunk.get(c.id, [])]
        return list(dict.fromkeys(triples))


def eval_kg(
    dataset: Dataset,
    store: GraphStore,
    embedder: Embedder,
    threshold: float = 0.88,
    *,
    progress: bool = True,
) -> KGEval:
    """Coverage of each question's gold triples (eval.gold_triples) by the extracted triples of its
    supporting passages ("supporting") and by every triple in the store ("global"). Questions without
    gold triples are counted in `skipped` with a note, not scored."""
    if store.counts().chunks == 0:
        raise EvalError("the store holds no chunks: ingest the corpus first (`synthkg eval kg` does it)")
    started = time.perf_counter()
    graph = GraphTriples(store)
    memo = MemoEmbedder(embedder)
    rows: list[KGRow] = []
    for question in tqdm(dataset.questions, desc="kg coverage", unit="question", disable=not progress):
        rows.append(_kg_row(question, store, graph, memo, threshold))
    scored = [r for r in rows if r.n_gold]
    skipped = len(rows) - len(scored)
    notes = [f"{skipped} question(s) have no gold triples (no 2Wiki evidence or MuSiQue '>>' steps)"]
    aggregates = {
        scope: _coverage_summary(scored, scope, skipped, notes if skipped else [])
        for scope in ("supporting", "global")
    }
    if not graph.all:
        aggregates["global"].notes.append("the store holds no relations (extractor 'none'?)")
    return KGEval(rows=rows, aggregates=aggregates, wall_seconds=round(time.perf_counter() - started, 3))


def _kg_row(
    question: Question, store: GraphStore, graph: GraphTriples, embedder: Embedder, threshold: float
) -> KGRow:
    golds = [t.as_tuple() for t in gold_triples(question)]
    row = KGRow(question_id=question.id, n_gold=len(golds))
    if not golds:
        return row
    extracted: list[tuple[str, str, str]] = []
    for pid in question.supporting_passage_ids:
        document_id = stable_id("doc", pid)
        if store.get_document(document_id) is None:
            row.missing_passages.append(pid)
        extracted += graph.of_document(document_id)
    row.supporting = _scope(triple_coverage(golds, list(dict.fromkeys(extracted)), embedder, threshold))
    row.global_ = _scope(triple_coverage(golds, graph.all, embedder, threshold))
    return row


def _scope(result: CoverageResult) -> ScopeCoverage:
    return ScopeCoverage(
        coverage=result.coverage,
        covered=sum(t.covered for t in result.triples),
        mean_similarity=result.mean_similarity,
        mean_token_f1=result.mean_token_f1,
        n_extracted=result.n_extracted,
        triples=result.triples,
    )


def _coverage_summary(rows: list[KGRow], scope: str, skipped: int, notes: list[str]) -> ModeSummary:
    scopes = [s for r in rows if (s := r.supporting if scope == "supporting" else r.global_) is not None]
    gold = sum(r.n_gold for r in rows)
    return ModeSummary(
        n=len(scopes),
        skipped=skipped,
        metrics={
            "coverage": mean_or_none(s.coverage for s in scopes if s.coverage is not None),
            "coverage_micro": round(sum(s.covered for s in scopes) / gold, 6) if gold else None,
            "token_f1": mean_or_none(s.mean_token_f1 for s in scopes if s.mean_token_f1 is not None),
            "similarity": mean_or_none(s.mean_similarity for s in scopes if s.mean_similarity is not None),
            "gold_triples": float(gold),
            "extracted_per_question": mean_or_none(s.n_extracted for s in scopes),
        },
        notes=list(notes),
    )
