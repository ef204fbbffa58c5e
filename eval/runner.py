"""The evaluation runner: build a dataset's store, then measure retrieval, question answering and KG
coverage on it, and write one JSON result file per run.

    dataset = load_dataset("data/sample")
    prepared = prepare_corpus(dataset, settings, extractor="none", embedder=embedder)
    with prepared.open_store() as store:
        index = SearchIndex.open(prepared.settings.index_path(), embedder)
        run = eval_retrieval(dataset, store, index, modes=("bm25", "dense"))
    stages, build_seconds = prepared.build_cost()
    write_result("retrieval", dataset, config, run.rows, run.aggregates,
                 Cost.of(stages, build_seconds, run.wall_seconds))

Every dataset subset and extractor gets its own store directory under the eval work dir, so a chunks-only
baseline store and an LLM-extracted graph never mix, and a rerun of the same command resumes: ingest skips
unchanged documents and the LLM call cache holds every finished call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from eval.datasets import Dataset, Question
from eval.gold_triples import gold_triples
from eval.metrics import (
    CoverageResult,
    TripleScore,
    exact_match,
    f1_score,
    hits_at_k,
    recall_at_k,
    triple_coverage,
)
from retrieval.modes import GRAPH_MODES  # noqa: F401  (re-exported: eval.cli reads it from here)
from retrieval.reader import ReaderMode, answer
from retrieval.retrievers import Mode, RetrievalParams, make_retriever, retrieve
from synthkg.config import Settings
from synthkg.embeddings import Embedder
from synthkg.extract.base import Extractor
from synthkg.indexes import SearchIndex
from synthkg.ingest import IngestOptions, IngestSummary, ingest
from synthkg.llm.base import ChatBackend, ChatResult, Message
from synthkg.model import stable_id
from synthkg.runtime import ExtractorName, Runtime
from synthkg.store import GraphStore, open_store

Kind = Literal["retrieval", "qa", "kg"]
DEFAULT_RESULTS_DIR = Path("eval/results")
DEFAULT_KS = (2, 5)
# Packages whose versions decide the numbers; the ones not installed are left out.
KEY_PACKAGES = (
    "numpy", "rank-bm25", "sentence-transformers", "torch", "networkx", "pydantic", "llama-cpp-python",
    "openai",
)


class EvalError(RuntimeError):
    """The evaluation cannot run (empty store, empty index, nothing to score); the message says why."""


# --- result records --------------------------------------------------------------------------------
class DatasetInfo(BaseModel):
    name: str
    questions: int
    passages: int


class StageCost(BaseModel):
    """LLM spending of one stage. Tokens include what cached calls originally cost, so the numbers do
    not depend on what an earlier run left in the cache."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def add(self, other: StageCost) -> StageCost:
        return StageCost(
            calls=self.calls + other.calls,
            cached_calls=self.cached_calls + other.cached_calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            seconds=round(self.seconds + other.seconds, 3),
        )


class Cost(BaseModel):
    """What a result cost: LLM calls and tokens per stage ("build/<ingest stage>" for building the
    store, "qa" for the reader), with totals, and wall seconds of the build and of the evaluation."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    build_wall_seconds: float = 0.0
    eval_wall_seconds: float = 0.0
    stages: dict[str, StageCost] = Field(default_factory=dict)

    @classmethod
    def of(cls, stages: dict[str, StageCost], build_wall_seconds: float, eval_wall_seconds: float) -> Cost:
        total = StageCost()
        for stage in stages.values():
            total = total.add(stage)
        return cls(
            llm_calls=total.calls,
            prompt_tokens=total.prompt_tokens,
            completion_tokens=total.completion_tokens,
            build_wall_seconds=round(build_wall_seconds, 3),
            eval_wall_seconds=round(eval_wall_seconds, 3),
            stages=stages,
        )

    @property
    def build_tokens(self) -> int:
        build = [s for name, s in self.stages.items() if name.startswith("build/")]
        return sum(s.prompt_tokens + s.completion_tokens for s in build)


class ModeSummary(BaseModel):
    """Aggregates of one mode (retrieval mode, retriever/reader pair, or KG scope) over the questions."""

    n: int = Field(description="questions scored")
    skipped: int = Field(0, description="questions with nothing to score (no gold passages / triples)")
    metrics: dict[str, float | None] = Field(default_factory=dict)
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    latency_ms_mean: float | None = None
    notes: list[str] = Field(default_factory=list)


class EvalConfig(BaseModel):
    modes: list[str]
    ks: list[int] = Field(default_factory=list, description="retrieval: the k of recall@k and hits@k")
    k: int | None = Field(None, description="qa: passages retrieved per query")
    chunk_depth: int | None = Field(None, description="retrieval: chunks fetched before dedup to passages")
    reader: str | None = None
    max_iterations: int | None = None
    extractor: str
    embedding_model: str
    llm: dict[str, str] | None = Field(None, description="backend and model of the extractor / reader")
    thresholds: dict[str, float] = Field(default_factory=dict)
    limit: int | None = Field(None, description="only the first N questions and the passages they need")
    distractors: int | None = Field(None, description="with limit: sampled distractors per question "
                                    "that lists no context passages")
    supporting_only: bool = Field(False, description="with limit: supporting passages only")
    retrieval_params: dict[str, Any] | None = None
    store: str | None = Field(None, description="the store the run read")
    records: list[str] | None = Field(None, description="extraction records replayed to build the graph")


class EvalResult(BaseModel):
    """One result file."""

    kind: Kind
    dataset: DatasetInfo
    config: EvalConfig
    versions: dict[str, str]
    rows: list[dict[str, Any]]
    aggregates: dict[str, ModeSummary]
    cost: Cost
    date: str
    notes: list[str] = Field(default_factory=list, description="e.g. chunks whose extraction failed")


class RetrievalRow(BaseModel):
    question_id: str
    mode: str
    gold: list[str]
    retrieved: list[str] = Field(description="passage ids, best first, deduplicated, at most max(ks)")
    metrics: dict[str, float] = Field(default_factory=dict, description="recall@k, hits@k (if gold)")
    latency_ms: float


class QARow(BaseModel):
    question_id: str
    mode: str = Field(description="retrieval mode / reader mode")
    question: str
    prediction: str
    golds: list[str]
    em: float
    f1: float
    calls: int
    cached_calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cited_passages: list[str]
    forced_final: bool
    warnings: list[str] = Field(default_factory=list)
    sub_queries: int = Field(0, description="sub-queries retrieved for (the model's and templated ones)")
    bridged: int = Field(0, description="of them, the graph's templated bridge queries")
    rejected_sub_queries: int = Field(0, description="sub-queries not retrieved for (copies, repeats...)")


class ScopeCoverage(BaseModel):
    coverage: float | None
    covered: int
    mean_similarity: float | None
    mean_token_f1: float | None
    n_extracted: int
    triples: list[TripleScore]


class KGRow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    question_id: str
    n_gold: int
    missing_passages: list[str] = Field(default_factory=list, description="supporting passages not in store")
    supporting: ScopeCoverage | None = None
    global_: ScopeCoverage | None = Field(None, alias="global")


class RetrievalEval(BaseModel):
    rows: list[RetrievalRow]
    aggregates: dict[str, ModeSummary]
    chunk_depth: int
    wall_seconds: float


class QAEval(BaseModel):
    rows: list[QARow]
    aggregates: dict[str, ModeSummary]
    cost: StageCost
    wall_seconds: float


class KGEval(BaseModel):
    rows: list[KGRow]
    aggregates: dict[str, ModeSummary]
    wall_seconds: float


# --- building the store ----------------------------------------------------------------------------
class PreparedCorpus(BaseModel):
    """A dataset's passages, ingested into their own store."""

    key: str
    settings: Settings
    summary: IngestSummary

    def open_store(self) -> GraphStore:
        return open_store(self.settings.store, read_only=True)

    def build_cost(self) -> tuple[dict[str, StageCost], float]:
        return build_cost(self.settings.data_dir)

    def notes(self) -> list[str]:
        """What a reader of the numbers must know about the store: chunks whose extraction failed (in
        any build run: documents record them) and passages that could not be ingested."""
        with self.open_store() as store:
            failed = sum(len(d.metadata.get("failed_chunks") or {}) for d in store.iter_documents())
        notes = [f"{failed} chunk(s) failed extraction: their passages lack graph facts"] if failed else []
        return notes + [f"not ingested: {error}" for error in self.summary.load_errors]


def corpus_key(dataset: Dataset, extractor: str) -> str:
    """Directory name of a dataset subset's store: name, extractor, size and a hash of the passage ids,
    so two subsets of one dataset never share a store (their distractors would differ)."""
    digest = hashlib.sha256("\x1f".join(sorted(p.id for p in dataset.passages)).encode()).hexdigest()[:10]
    return f"{_slug(dataset.name)}-{extractor}-{len(dataset.passages)}p-{digest}"


def eval_settings(settings: Settings, key: str, work_dir: Path) -> Settings:
    """`settings` with the data dir (run records, merge log, a Neo4j store's index) and, for the
    embedded store, the store itself moved to `work_dir/key`. A Neo4j store is used as configured: give
    each dataset and extractor a database of its own, or their documents mix."""
    base = work_dir / key
    update: dict[str, Any] = {"data_dir": base}
    if settings.store.backend == "embedded":
        update["store"] = settings.store.model_copy(update={"path": base / "store"})
    return settings.model_copy(update=update)


def prepare_corpus(
    dataset: Dataset,
    settings: Settings,
    extractor: ExtractorName | str = "none",
    *,
    work_dir: Path | None = None,
    backend: Any = None,
    embedder: Embedder | None = None,
    progress: bool = True,
    replay: Extractor | None = None,
) -> PreparedCorpus:
    """Ingest the dataset's passages with `extractor` into the store of `eval_settings` (default work
    dir: `<data_dir>/eval`), with the parts a `Runtime` of those settings builds (`backend` and
    `embedder` replace the settings' own). Idempotent: a rerun ingests only what is missing or changed,
    and cached LLM calls cost nothing.
    `replay` (an Extractor, e.g. a ReplayExtractor of recorded teacher outputs) replaces the one that
    `extractor` names; `extractor` is then only the store's label.

    Raises IngestError (from synthkg.ingest) when the LLM backend or the store fails, EvalError when
    nothing could be ingested."""
    if not dataset.passages:
        raise EvalError(f"dataset '{dataset.name}' has no passages to ingest")
    key = corpus_key(dataset, extractor)
    run_settings = eval_settings(settings, key, work_dir or settings.data_dir / "eval")
    documents, skipped = dataset.documents()
    started = time.perf_counter()
    summary = ingest(
        documents,
        runtime=Runtime(run_settings, backend=backend, embedder=embedder),
        extractor=replay,
        options=IngestOptions(extractor="multistep" if replay else extractor),  # type: ignore[arg-type]
        progress=progress,
    )
    summary.load_errors = skipped + summary.load_errors
    record_build(run_settings.data_dir, summary, time.perf_counter() - started)
    if summary.store_totals.get("chunks", 0) == 0:
        problems = "; ".join(summary.load_errors[:3]) or "no document was loaded"
        raise EvalError(f"ingesting dataset '{dataset.name}' left the store empty: {problems}")
    return PreparedCorpus(key=key, settings=run_settings, summary=summary)


BUILD_LEDGER = "builds.jsonl"


def record_build(data_dir: Path, summary: IngestSummary, seconds: float) -> None:
    """Append one build run to the ledger `build_cost` sums: the wall seconds of the whole ingest call
    (extraction, store writes, embedding the index) and its LLM usage."""
    line = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "seconds": round(seconds, 3),
            "documents_ingested": summary.documents_ingested, "usage": summary.usage}
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / BUILD_LEDGER).open("a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(line) + "\n")


def build_cost(data_dir: Path) -> tuple[dict[str, StageCost], float]:
    """LLM cost per ingest stage ("build/<stage>") and wall seconds of building the store, summed over
    the build runs in the ledger that ingested something (a rerun that skipped every document built
    nothing). A run that crashed recorded nothing; the calls it finished come back as cache hits in the
    next run, whose usage counts what they originally cost."""
    stages: dict[str, StageCost] = {}
    wall = 0.0
    path = data_dir / BUILD_LEDGER
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for text in lines:
        try:
            run = json.loads(text)
        except ValueError:
            continue  # a line torn by a crash: its cost is unknown, not fatal
        if not run.get("documents_ingested"):
            continue
        wall += float(run.get("seconds", 0.0))
        for stage, usage in run.get("usage", {}).items():
            if stage == "total":
                continue
            cost = StageCost(
                calls=usage.get("calls", 0),
                cached_calls=usage.get("cached_calls", 0),
                prompt_tokens=usage.get("prompt_tokens", 0) + usage.get("cached_prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0)
                + usage.get("cached_completion_tokens", 0),
                seconds=usage.get("seconds", 0.0) + usage.get("cached_seconds", 0.0),
            )
            name = f"build/{stage}"
            stages[name] = stages.get(name, StageCost()).add(cost)
    return stages, round(wall, 3)


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
    progress: bool = True,
) -> RetrievalEval:
    """Per question and mode: the top passages, recall@k and hits@k of the gold supporting passages,
    and the latency. `chunk_depth` chunks (default 2 * max(ks)) are fetched so that a passage split into
    several chunks still leaves max(ks) distinct passages. One untimed warm-up query per mode first:
    lazy loading (the embedding model, the BM25 tables) is not part of a query's latency."""
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
            retrieve(dataset.questions[0].question, depth, mode, store=store, index=index, params=params)
    rows: list[RetrievalRow] = []
    for question in tqdm(dataset.questions, desc="retrieval", unit="question", disable=not progress):
        for mode in modes:
            t0 = time.perf_counter()
            result = retrieve(question.question, depth, mode, store=store, index=index, params=params)
            latency = (time.perf_counter() - t0) * 1000
            ranked = to_passages((c.document_id for c in result.chunks), passage_of, top)
            rows.append(
                RetrievalRow(
                    question_id=question.id,
                    mode=mode,
                    gold=question.supporting_passage_ids,
                    retrieved=ranked,
                    metrics=_retrieval_metrics(ranked, question.supporting_passage_ids, ks),
                    latency_ms=round(latency, 3),
                )
            )
    aggregates = {
        mode: _summarize([r for r in rows if r.mode == mode], len(dataset.questions)) for mode in modes
    }
    wall = round(time.perf_counter() - started, 3)
    return RetrievalEval(rows=rows, aggregates=aggregates, chunk_depth=depth, wall_seconds=wall)


def _retrieval_metrics(ranked: list[str], gold: list[str], ks: Sequence[int]) -> dict[str, float]:
    if not gold:
        return {}
    metrics = {f"recall@{k}": recall_at_k(ranked, gold, k) for k in ks}
    metrics.update({f"hits@{k}": hits_at_k(ranked, gold, k) for k in ks})
    return metrics


def _summarize(rows: Sequence[RetrievalRow], questions: int) -> ModeSummary:
    scored = [r for r in rows if r.metrics]
    names = list(dict.fromkeys(name for r in scored for name in r.metrics))
    skipped = questions - len(scored)
    return ModeSummary(
        n=len(scored),
        skipped=skipped,
        metrics={name: _mean(r.metrics[name] for r in scored) for name in names},
        **latency_stats([r.latency_ms for r in rows]),
        notes=[f"{skipped} question(s) without supporting passages: latency only"] if skipped else [],
    )


def latency_stats(values_ms: Sequence[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"latency_ms_p50": None, "latency_ms_p95": None, "latency_ms_mean": None}
    p50, p95 = np.percentile(np.asarray(values_ms, dtype=np.float64), [50, 95])
    return {
        "latency_ms_p50": round(float(p50), 3),
        "latency_ms_p95": round(float(p95), 3),
        "latency_ms_mean": round(statistics.fmean(values_ms), 3),
    }


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return round(statistics.fmean(items), 6) if items else None


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
    max_iterations: int = 5,
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
            "em": _mean(r.em for r in rows),
            "f1": _mean(r.f1 for r in rows),
            "tokens_per_question": _mean(r.prompt_tokens + r.completion_tokens for r in rows),
            "calls_per_question": _mean(r.calls for r in rows),
            "forced_final": _mean(float(r.forced_final) for r in rows),
            "sub_query_share": _mean(float(r.sub_queries > 0) for r in rows),
            "sub_queries_per_question": _mean(r.sub_queries for r in rows),
            "bridged_per_question": _mean(r.bridged for r in rows),
        },
        **latency_stats([r.seconds * 1000 for r in rows]),
    )
    return QAEval(
        rows=rows,
        aggregates={qa_mode(retrieval_mode, reader_mode): summary},
        cost=cost,
        wall_seconds=round(time.perf_counter() - started, 3),
    )


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
            "coverage": _mean(s.coverage for s in scopes if s.coverage is not None),
            "coverage_micro": round(sum(s.covered for s in scopes) / gold, 6) if gold else None,
            "token_f1": _mean(s.mean_token_f1 for s in scopes if s.mean_token_f1 is not None),
            "similarity": _mean(s.mean_similarity for s in scopes if s.mean_similarity is not None),
            "gold_triples": float(gold),
            "extracted_per_question": _mean(s.n_extracted for s in scopes),
        },
        notes=list(notes),
    )


# --- result files ----------------------------------------------------------------------------------
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("synthkg", *KEY_PACKAGES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_result(
    kind: Kind,
    dataset: Dataset,
    config: EvalConfig,
    rows: Sequence[BaseModel],
    aggregates: dict[str, ModeSummary],
    cost: Cost,
    out_dir: Path = DEFAULT_RESULTS_DIR,
    notes: Sequence[str] = (),
) -> Path:
    """Write `<out_dir>/<kind>-<dataset>-<modes>-<UTC timestamp>.json` (atomically) and return it."""
    now = datetime.now(UTC)
    result = EvalResult(
        kind=kind,
        dataset=DatasetInfo(
            name=dataset.name, questions=len(dataset.questions), passages=len(dataset.passages)
        ),
        config=config,
        versions=package_versions(),
        rows=[r.model_dump(mode="json", by_alias=True) for r in rows],
        aggregates=aggregates,
        cost=cost,
        date=now.isoformat(timespec="seconds"),
        notes=list(notes),
    )
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    name = "-".join([kind, _slug(dataset.name), _slug("+".join(config.modes)), stamp])
    path = Path(out_dir) / f"{name}.json"
    _write_if_changed(path, result.model_dump_json(indent=1))
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+]+", "_", text).strip("_") or "unnamed"


def _write_if_changed(path: Path, text: str) -> None:
    """Atomic write (temp file + rename); an identical file is left alone."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
