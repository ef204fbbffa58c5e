"""Retrieval evaluation: recall@k and hits@k of each mode's ranked passages against the gold supporting
passages, with latency."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from tqdm.auto import tqdm

from eval.datasets import Dataset, Question
from eval.metrics import (
    answer_at_k,
    hits_at_k,
    recall_at_k,
)
from eval.result_files import (
    DEFAULT_KS,
    EvalError,
    ModeSummary,
    RetrievalEval,
    RetrievalRow,
    latency_stats,
    mean_or_none,
)
from retrieval.retrievers import FactFilter, Mode, RetrievalParams, retrieve
from synthkg.indexes import SearchIndex
from synthkg.model import stable_id
from synthkg.store import GraphStore


# --- retrieval -------------------------------------------------------------------------------------
def passage_ids_by_document(dataset: Dataset) -> dict[str, str]:
    """Document id (as `Document.create(..., key=passage id)` makes it) -> passage id."""
    return {stable_id("doc", p.id): p.id for p in dataset.passages}


def to_passages(document_ids: Iterable[str], passage_of: dict[str, str], limit: int) -> list[str]:
    """Passage ids of ranked chunks' documents, deduplicated in rank order, at most `limit`. A document
    the dataset does not know (another corpus in a shared store) keeps its own id: it takes a rank."""
    ranked: list[str] = []
    for document_id in document_ids:
        pid = passage_of.get(document_id, document_id)
        if pid not in ranked:
            ranked.append(pid)
            if len(ranked) == limit:
                break
    return ranked


def check_ready(store: GraphStore, index: SearchIndex) -> None:
    if store.counts().chunks == 0:
        raise EvalError("the store holds no chunks: ingest the corpus first (`synthkg eval ...` does it)")
    if index.size("chunks") == 0:
        raise EvalError(f"the search index at {index.path} holds no chunks; run `synthkg reindex`")


def eval_retrieval(
    dataset: Dataset,
    store: GraphStore,
    index: SearchIndex,
    modes: Sequence[Mode],
    ks: Sequence[int] = DEFAULT_KS,
    *,
    chunk_depth: int | None = None,
    params: RetrievalParams | None = None,
    fact_filter: FactFilter | None = None,
    progress: bool = True,
) -> RetrievalEval:
    """Per question and mode: the top passages, recall@k and hits@k of the gold supporting passages,
    and the latency. `chunk_depth` chunks (default 2 * max(ks)) are fetched so that a passage split into
    several chunks still leaves max(ks) distinct passages. One untimed warm-up query per mode first:
    lazy loading (the embedding model, the BM25 tables) is not part of a query's latency. `fact_filter`:
    mode hippo's LLM recognition memory (its calls are part of the latency)."""
    if not modes:
        raise ValueError("no retrieval mode given")
    if not ks or min(ks) < 1:
        raise ValueError(f"every k must be >= 1, got {list(ks)}")
    check_ready(store, index)
    top = max(ks)
    depth = chunk_depth or 2 * top
    if depth < top:
        raise ValueError(f"chunk_depth {depth} is below max(ks) = {top}")
    passage_of = passage_ids_by_document(dataset)
    started = time.perf_counter()
    if dataset.questions:
        for mode in modes:
            retrieve(dataset.questions[0].question, depth, mode, store=store, index=index, params=params,
                     fact_filter=fact_filter)
    rows: list[RetrievalRow] = []
    for question in tqdm(dataset.questions, desc="retrieval", unit="question", disable=not progress):
        for mode in modes:
            t0 = time.perf_counter()
            result = retrieve(question.question, depth, mode, store=store, index=index, params=params,
                              fact_filter=fact_filter)
            latency = (time.perf_counter() - t0) * 1000
            ranked = to_passages((c.document_id for c in result.chunks), passage_of, top)
            rows.append(
                RetrievalRow(
                    question_id=question.id,
                    mode=mode,
                    gold=question.supporting_passage_ids,
                    retrieved=ranked,
                    metrics=_retrieval_metrics(ranked, question, ks, dataset),
                    latency_ms=round(latency, 3),
                    question_type=question.type,
                )
            )
    aggregates = {
        mode: _summarize([r for r in rows if r.mode == mode], len(dataset.questions)) for mode in modes
    }
    wall = round(time.perf_counter() - started, 3)
    return RetrievalEval(rows=rows, aggregates=aggregates, chunk_depth=depth, wall_seconds=wall)


def _retrieval_metrics(ranked: list[str], question: Question, ks: Sequence[int], dataset: Dataset
                       ) -> dict[str, float]:
    """recall@k and hits@k of the gold passages, and answer@k (the answer in the top k passages' titles or
    texts; left out for yes/no answers)."""
    gold = question.supporting_passage_ids
    metrics: dict[str, float] = {}
    if gold:
        metrics.update({f"recall@{k}": recall_at_k(ranked, gold, k) for k in ks})
        metrics.update({f"hits@{k}": hits_at_k(ranked, gold, k) for k in ks})
    texts = [f"{p.title or ''}. {p.text}" for pid in ranked if (p := dataset.passage_index.get(pid))]
    for k in ks:
        found = answer_at_k(texts, question.golds, k)
        if found is not None:
            metrics[f"answer@{k}"] = found
    return metrics


def _summarize(rows: Sequence[RetrievalRow], questions: int) -> ModeSummary:
    """Each metric averaged over the questions that have it: recall@k over those with supporting passages,
    answer@k over those whose answer is a span."""
    scored = [r for r in rows if any(name.startswith("recall@") for name in r.metrics)]
    names = list(dict.fromkeys(name for r in rows for name in r.metrics))
    skipped = questions - len(scored)
    answered = sum(1 for r in rows if any(name.startswith("answer@") for name in r.metrics))
    notes = []
    if skipped:
        notes.append(f"{skipped} question(s) without supporting passages: answer@k only "
                     f"({answered} of {questions} have a span answer)")
    return ModeSummary(
        n=len(scored) or answered,
        skipped=skipped,
        metrics={name: mean_or_none(r.metrics[name] for r in rows if name in r.metrics) for name in names},
        **latency_stats([r.latency_ms for r in rows]),
        notes=notes,
    )
