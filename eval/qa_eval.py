"""Question-answering evaluation: EM / F1 of the reader over each retrieval mode, with LLM calls, tokens and
seconds per question."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from tqdm.auto import tqdm

from eval.datasets import Dataset
from eval.metrics import (
    exact_match,
    f1_score,
)
from eval.result_files import ModeSummary, QAEval, QARow, StageCost, latency_stats, mean_or_none
from eval.retrieval_eval import check_ready, passage_ids_by_document, to_passages
from retrieval.modes import ReaderMode
from retrieval.reader import answer
from retrieval.retrievers import Mode, RetrievalParams, make_retriever
from synthkg.indexes import SearchIndex
from synthkg.llm.base import ChatBackend, ChatResult, Message
from synthkg.store import GraphStore


# --- question answering ----------------------------------------------------------------------------
class FullCostBackend:
    """Passes calls through, reporting a cache hit with the tokens it originally cost (CachedBackend
    reports 0), so the reader's usage, and tokens per question, are the same on a rerun."""

    def __init__(self, backend: ChatBackend) -> None:
        self.backend = backend
        self.name, self.model = backend.name, backend.model
        self.cached_calls = 0

    def chat(self, messages: list[Message], **kwargs: Any) -> ChatResult:
        result = self.backend.chat(messages, **kwargs)
        if not result.cached:
            return result
        self.cached_calls += 1
        return dataclasses.replace(
            result,
            prompt_tokens=int(result.extra.get("cached_prompt_tokens", result.prompt_tokens)),
            completion_tokens=int(result.extra.get("cached_completion_tokens", result.completion_tokens)),
        )


def qa_mode(retrieval_mode: str, reader_mode: str) -> str:
    return f"{retrieval_mode}/{reader_mode}"


def eval_qa(
    dataset: Dataset,
    store: GraphStore,
    index: SearchIndex,
    backend: ChatBackend,
    retrieval_mode: Mode = "graph",
    reader_mode: ReaderMode = "iterative",
    k: int = 5,
    *,
    max_iterations: int | None = None,
    step_k: int | None = None,
    context_tokens: int = 4096,
    max_tokens: int = 256,
    params: RetrievalParams | None = None,
    progress: bool = True,
) -> QAEval:
    """Answer every question with the reader over `retrieval_mode` retrieval: EM and F1 against the
    answer and its aliases, and per question the LLM calls, tokens (from the Answer's usage) and
    seconds. An LLMError from the backend propagates: with a cached backend a rerun resumes."""
    check_ready(store, index)
    passage_of = passage_ids_by_document(dataset)
    retriever = make_retriever(store, index, retrieval_mode, params)
    metered = FullCostBackend(backend)
    started = time.perf_counter()
    rows: list[QARow] = []
    for question in tqdm(dataset.questions, desc=f"qa {retrieval_mode}/{reader_mode}", unit="question",
                         disable=not progress):
        cached_before = metered.cached_calls
        result = answer(
            question.question,
            retriever,
            metered,
            mode=reader_mode,
            max_iterations=max_iterations,
            k=k,
            step_k=step_k,
            context_tokens=context_tokens,
            max_tokens=max_tokens,
        )
        rows.append(
            QARow(
                question_id=question.id,
                mode=qa_mode(retrieval_mode, reader_mode),
                question=question.question,
                prediction=result.answer,
                golds=question.golds,
                em=exact_match(result.answer, question.golds),
                f1=f1_score(result.answer, question.golds),
                calls=result.usage.calls,
                cached_calls=metered.cached_calls - cached_before,
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
                seconds=result.seconds,
                cited_passages=to_passages(
                    (c.document_id for c in result.citations), passage_of, len(result.citations)
                ),
                forced_final=result.forced_final,
                warnings=result.warnings,
                sub_queries=result.sub_queries,
                bridged=sum(1 for s in result.trace if s.kind == "bridge"),
                rejected_sub_queries=sum(1 for s in result.trace if s.kind == "rejected"),
            )
        )
    cost = StageCost(
        calls=sum(r.calls for r in rows),
        cached_calls=sum(r.cached_calls for r in rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        seconds=round(sum(r.seconds for r in rows), 3),
    )
    summary = ModeSummary(
        n=len(rows),
        metrics={
            "em": mean_or_none(r.em for r in rows),
            "f1": mean_or_none(r.f1 for r in rows),
            "tokens_per_question": mean_or_none(r.prompt_tokens + r.completion_tokens for r in rows),
            "calls_per_question": mean_or_none(r.calls for r in rows),
            "forced_final": mean_or_none(float(r.forced_final) for r in rows),
            "sub_query_share": mean_or_none(float(r.sub_queries > 0) for r in rows),
            "sub_queries_per_question": mean_or_none(r.sub_queries for r in rows),
            "bridged_per_question": mean_or_none(r.bridged for r in rows),
        },
        **latency_stats([r.seconds * 1000 for r in rows]),
    )
    return QAEval(
        rows=rows,
        aggregates={qa_mode(retrieval_mode, reader_mode): summary},
        cost=cost,
        wall_seconds=round(time.perf_counter() - started, 3),
    )
