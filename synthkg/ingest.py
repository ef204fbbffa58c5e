"""Ingestion: files -> documents -> chunks -> extraction -> entity resolution -> store.

Each document is written as ONE batch (document, chunks, propositions, entities, relations) once all
its chunks are extracted, so a crash leaves every document either fully written or absent. Every LLM
call goes through the on-disk call cache, so rerunning after a crash or Ctrl-C repeats no finished
call; unchanged documents are skipped, and a changed one replaces its old chunks and whatever only
they supported.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer
from tqdm.auto import tqdm

from synthkg.chunking import DEFAULT_MAX_TOKENS, approx_token_count, chunk_text
from synthkg.config import Settings, redact_url
from synthkg.extract.base import ExtractionResult, Extractor
from synthkg.extract.to_records import document_records
from synthkg.indexes import SearchIndex
from synthkg.llm.base import ChatBackend, LLMError, as_sentence
from synthkg.llm.cache import CachedBackend, Usage
from synthkg.loaders import load_documents
from synthkg.model import Document, GraphBatch
from synthkg.resolve import EntityResolver, MergeLog
from synthkg.runtime import ExtractorName, Runtime, SetupError
from synthkg.store import GraphStore, StoreError, open_store

if TYPE_CHECKING:
    from synthkg.embeddings import Embedder

log = logging.getLogger(__name__)



_RESUME_HINT = "Finished documents are saved; rerun the same command to resume."


class IngestError(RuntimeError):
    """Ingestion stopped: the LLM backend or the store failed. What was written stays; rerun to resume."""


class IngestOptions(BaseModel):
    # Serialized as its plain name, whether given as the enum or as a string (model_copy does not validate).
    extractor: Annotated[ExtractorName, PlainSerializer(str)] = ExtractorName.multistep
    limit: int | None = Field(None, ge=1, description="ingest at most this many documents")
    retry_failed: bool = Field(False, description="re-extract chunks that failed in an earlier run")
    force: bool = Field(False, description="re-extract unchanged documents too (cached calls are free)")
    dry_run: bool = Field(False, description="estimate calls and tokens, call no LLM, write nothing")
    concurrency: int | None = Field(
        None, ge=1,
        description="documents extracted in parallel (None: as many as the backend decodes at once, its "
        "`parallel` (the server engine's slots), else the settings' llm.concurrency)",
    )
    max_chunk_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=16)
    resolve_with_embeddings: bool = True
    update_index: bool = Field(True, description="update the retrieval indexes after writing")


class ChunkFailure(BaseModel):
    document_id: str
    title: str
    chunk_index: int
    reason: str


class IngestSummary(BaseModel):
    documents_loaded: int = 0
    documents_ingested: int = 0
    documents_skipped: int = 0
    documents_replaced: int = 0
    chunks: int = 0
    entities: int = 0
    propositions: int = 0
    relations: int = 0
    decontextualized_kept: int = 0
    decontextualized_tried: int = 0
    merges: int = 0
    failures: list[ChunkFailure] = Field(default_factory=list)
    load_errors: list[str] = Field(default_factory=list)
    usage: dict[str, dict[str, Any]] = Field(default_factory=dict)
    estimated: dict[str, int] | None = Field(None, description="--dry-run: estimated calls and tokens")
    llm: str | None = Field(None, description="the backend and model that extracted (and its endpoint)")
    wall_seconds: float = 0.0
    run_record: str | None = None
    store_totals: dict[str, int] = Field(default_factory=dict)

    def render(self) -> str:
        """A human summary for the CLI."""
        lines = [
            f"documents: {self.documents_ingested} ingested, {self.documents_skipped} unchanged (skipped), "
            f"{self.documents_replaced} replaced, {self.documents_loaded} loaded",
            f"this run:  {self.chunks} chunks, {self.entities} entities, {self.propositions} propositions, "
            f"{self.relations} relations, {self.merges} entity merges",
        ]
        if self.decontextualized_tried:
            kept, tried = self.decontextualized_kept, self.decontextualized_tried
            lines.append(f"decontextualization kept for {kept}/{tried} chunks")
        if self.store_totals:
            lines.append("store now: " + ", ".join(f"{v} {k}" for k, v in self.store_totals.items()))
        if self.estimated is not None:
            estimate = ", ".join(f"{k}={v}" for k, v in self.estimated.items())
            lines.append(f"dry run (estimate): {estimate}")
        if self.llm:
            lines.append(f"llm: {self.llm} (cached answers are reused only for this backend, model and "
                         "endpoint)")
        for stage, u in self.usage.items():
            lines.append(
                f"  {stage:>16}: {u['calls']} calls ({u['cached_calls']} cached), "
                f"{u['prompt_tokens']} prompt + {u['completion_tokens']} completion tokens, "
                f"{u['seconds']:.1f}s"
            )
        if self.failures:
            lines.append(f"{len(self.failures)} chunk(s) failed (rerun with --retry-failed):")
            lines += [f"  {f.title or f.document_id} #{f.chunk_index}: {f.reason}"
                      for f in self.failures[:20]]
        if self.load_errors:
            lines.append(f"{len(self.load_errors)} file/record problem(s):")
            lines += [f"  {e}" for e in self.load_errors[:20]]
        lines.append(f"wall time: {self.wall_seconds:.1f}s")
        if self.run_record:
            lines.append(f"run record: {self.run_record}")
        return "\n".join(lines)


class _Plan(BaseModel):
    """One document to extract, with its chunks and the chunk indexes to (re)do."""

    document: Document
    chunks: list[str]
    replaces: bool = False
    retry_indexes: list[int] = Field(default_factory=list)  # failed before: asked afresh
    retried_indexes: list[int] = Field(default_factory=list)  # fixed by an earlier retry: its answer


def _plan(
    docs: Iterable[Document], store: GraphStore, options: IngestOptions, summary: IngestSummary
) -> Iterator[_Plan]:
    for doc in docs:
        existing = store.get_document(doc.id)
        unchanged = existing is not None and existing.content_hash == doc.content_hash
        failed = sorted(int(i) for i in (existing.metadata.get("failed_chunks", {}) if existing else {}))
        if unchanged and not options.force and not (options.retry_failed and failed):
            summary.documents_skipped += 1
            continue
        chunks = chunk_text(doc.text, options.max_chunk_tokens)
        retried = existing.metadata.get("retried_chunks", []) if existing is not None and unchanged else []
        yield _Plan(
            document=doc,
            chunks=chunks,
            replaces=existing is not None and not unchanged,
            retry_indexes=failed if unchanged and (options.retry_failed or options.force) else [],
            retried_indexes=[int(i) for i in retried],
        )


def _estimate(plans: list[_Plan]) -> dict[str, int]:
    """Calls and tokens the multi-step workflow would spend, from prompt sizes and chunk lengths:
    completions are guessed at the chunk's length for a rewrite and twice that for quadruples."""
    from synthkg.prompts import load_prompt

    prompts = [load_prompt(name) for name in ("decontextualize", "entities", "quadruples")]
    overhead = {
        p.name: sum(approx_token_count(m["content"]) for m in p.render(**dict.fromkeys(p.variables, "")))
        for p in prompts
    }
    calls = prompt = completion = chunks = 0
    for plan in plans:
        for i, text in enumerate(plan.chunks):
            size = approx_token_count(text)
            chunks += 1
            if i > 0:
                calls += 1
                prompt += overhead["decontextualize"] + size + approx_token_count(plan.chunks[i - 1])
                completion += size
            calls += 2
            prompt += overhead["entities"] + size + overhead["quadruples"] + 2 * size
            completion += size // 2 + 2 * size
    return {"documents": len(plans), "chunks": chunks, "llm_calls": calls,
            "prompt_tokens": prompt, "completion_tokens": completion}


class Ingestor:
    """Runs ingestion into one store with one extractor. `ingest()` below is the convenient entry."""

    def __init__(
        self,
        store: GraphStore,
        extractor: Extractor,
        *,
        usage: Usage,
        options: IngestOptions,
        retry_extractor: Extractor | None = None,
        resample_extractor: Extractor | None = None,
        resolver: EntityResolver | None = None,
        merge_log: MergeLog | None = None,
        progress: bool = True,
    ) -> None:
        self.store, self.extractor, self.usage, self.options = store, extractor, usage, options
        self.retry_extractor = retry_extractor or extractor
        self.resample_extractor = resample_extractor or self.retry_extractor
        self.resolver, self.merge_log, self.progress = resolver, merge_log, progress
        self.concurrency = options.concurrency or 1

    def _extract_document(self, plan: _Plan, tick: Callable[[], None]) -> list[ExtractionResult]:
        results: list[ExtractionResult] = []
        for i, text in enumerate(plan.chunks):
            if i in plan.retry_indexes:
                extractor = self.retry_extractor
            elif i in plan.retried_indexes:
                extractor = self.resample_extractor
            else:
                extractor = self.extractor
            # The previous chunk as extraction read it: its references are already resolved.
            previous = results[i - 1].text if i else None
            results.append(extractor.extract(text, previous))
            tick()
        return results

    def run(self, documents: list[Document], summary: IngestSummary) -> IngestSummary:
        plans = list(_plan(documents, self.store, self.options, summary))
        if self.options.dry_run:
            summary.estimated = _estimate(plans)
            return summary
        total = sum(len(p.chunks) for p in plans)
        bar = tqdm(total=total, unit="chunk", desc="extracting", disable=not self.progress, smoothing=0.1)
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="extract") as pool:
                futures: list[tuple[_Plan, Future[list[ExtractionResult]]]] = [
                    (plan, pool.submit(self._extract_document, plan, lambda: bar.update(1)))
                    for plan in plans
                ]
                try:
                    for plan, future in futures:
                        self._write(plan, future.result(), summary)
                        bar.set_postfix(docs=summary.documents_ingested, failed=len(summary.failures))
                except BaseException:  # LLMError, StoreError or Ctrl-C: start no more documents
                    for _, f in futures:
                        f.cancel()
                    raise
        finally:
            bar.close()
        return summary

    def _write(self, plan: _Plan, results: list[ExtractionResult], summary: IngestSummary) -> None:
        doc = plan.document
        failed = {str(i): r.failure for i, r in enumerate(results) if r.failure}
        # Chunks whose graph came from a retry's sampled answer: a later rerun must ask the same way,
        # or it would be served the greedy answer that failed before.
        retried = sorted(i for i in {*plan.retry_indexes, *plan.retried_indexes} if str(i) not in failed)
        doc = doc.model_copy(update={"metadata": {**doc.metadata, "failed_chunks": failed,
                                                  "retried_chunks": retried, "chunks": len(results)}})
        batch = document_records(doc, results)
        merges = []
        if self.resolver is not None:
            batch, merges = self.resolver.resolve(batch, doc.id)
        if plan.replaces:
            # Removes the old chunks and whatever only they supported; the new batch follows at once.
            self.store.delete_document(doc.id)
            summary.documents_replaced += 1
        self.store.write(batch)
        if self.resolver is not None:
            self.resolver.add_to_index(batch.entities)
        if self.merge_log is not None:
            self.merge_log.append(merges)
        self._count(batch, results, summary)
        summary.merges += len(merges)
        summary.failures += [
            ChunkFailure(document_id=doc.id, title=doc.title, chunk_index=int(i), reason=reason)
            for i, reason in failed.items()
        ]

    @staticmethod
    def _count(batch: GraphBatch, results: list[ExtractionResult], summary: IngestSummary) -> None:
        summary.documents_ingested += 1
        summary.chunks += len(batch.chunks)
        summary.entities += len(batch.entities)
        summary.propositions += len(batch.propositions)
        summary.relations += len(batch.relations)
        summary.decontextualized_tried += sum(r.rouge1_f1 is not None for r in results)
        summary.decontextualized_kept += sum(r.decontextualized for r in results)


def _write_run_record(settings: Settings, summary: IngestSummary, paths: list[str], options: IngestOptions,
                      backend: ChatBackend | None) -> Path:
    runs = settings.data_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = runs / f"ingest-{stamp}.json"
    record = {
        "kind": "ingest",
        "at": stamp,
        "paths": paths,
        "options": options.model_dump(mode="json"),
        "backend": None if backend is None else {"name": backend.name, "model": backend.model},
        "settings": settings.masked(),
        "summary": summary.model_dump(mode="json", exclude={"run_record"}),
    }
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def ingest(
    sources: Iterable[str | Path | Document],
    *,
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    store: GraphStore | None = None,
    backend: Any = None,
    extractor: Extractor | None = None,
    embedder: Embedder | None = None,
    options: IngestOptions | None = None,
    student: str | Path | None = None,
    progress: bool = True,
) -> IngestSummary:
    """Ingest documents into a store: files or directories (.txt, .md, .json/.jsonl records with
    id/title/text) and `Document`s given as they are.

    The parts come from `runtime` (see `synthkg.runtime.Runtime`), else from one built of `settings`,
    `backend` (any ChatBackend or langchain-core chat model) and `embedder`. `extractor` replaces the
    one `options.extractor` names (e.g. a ReplayExtractor of recorded outputs); `student` names the
    distilled extractor's adapter folder. Raises IngestError when the LLM backend or the store fails;
    per-file and per-chunk problems are reported in the summary instead."""
    if runtime is None:
        runtime = Runtime(settings or Settings(), backend=backend, embedder=embedder)
    elif settings is not None or backend is not None or embedder is not None:
        raise ValueError("give either a runtime or settings/backend/embedder, not both")
    settings = runtime.settings
    options = options or IngestOptions()
    started = time.perf_counter()
    given = list(sources)
    path_list = [str(s) for s in given if not isinstance(s, Document)]
    summary = IngestSummary()
    loaded = load_documents([Path(p) for p in path_list], limit=options.limit)
    documents = loaded.documents + [s for s in given if isinstance(s, Document)]
    documents = documents[: options.limit] if options.limit is not None else documents
    summary.documents_loaded = len(documents)
    summary.load_errors = [str(e) for e in loaded.errors]
    for error in loaded.errors:  # the summary lists them; the CLI prints the summary, not these
        log.debug("%s", error)

    own_store = store is None
    scratch: tempfile.TemporaryDirectory[str] | None = None
    usage = Usage()
    cached: CachedBackend | None = None
    llm: ChatBackend | None = None
    index: SearchIndex | None = None

    def search_index() -> SearchIndex:
        # One handle for the resolver's entity vectors and the update at the end: read from disk once.
        nonlocal index
        if index is None:
            index = runtime.open_index()
        return index

    try:
        if own_store and options.dry_run and settings.store.backend == "embedded":
            # A dry run writes nothing: it reads an existing store without its lock, and plans against
            # an empty throwaway one where none exists yet (opening a store creates its files).
            if settings.store.path.exists():
                store = runtime.open_store(read_only=True)
            else:
                scratch = tempfile.TemporaryDirectory(prefix="synthkg-dry-run-")
                store = open_store(settings.store.model_copy(update={"path": Path(scratch.name) / "store"}))
        elif own_store:
            store = runtime.open_store()
        assert store is not None
        if extractor is None and (options.extractor == "none" or not options.dry_run):
            try:
                setup = runtime.extraction(options.extractor, usage=usage, student=student)
            except SetupError as exc:
                raise IngestError(str(exc)) from exc
            extractor, retry_extractor = setup.extractor, setup.retry_extractor
            resample_extractor: Extractor | None = setup.resample_extractor
            llm, cached = setup.backend, setup.cached
            endpoint = getattr(llm, "endpoint", None)
            summary.llm = setup.model + (f" at {redact_url(endpoint)}" if endpoint else "")
        else:
            retry_extractor, resample_extractor = extractor, None
        resolver = merge_log = None
        if not options.dry_run:
            merge_log = MergeLog(settings.data_dir)
            resolver = runtime.resolver(
                store, blocked=merge_log.blocked(), use_embeddings=options.resolve_with_embeddings,
                index=search_index,
            )
        if options.concurrency is None:
            parallel = getattr(llm, "parallel", None) or settings.llm.concurrency
            options = options.model_copy(update={"concurrency": parallel})
        runner = Ingestor(store, extractor, usage=usage, options=options,  # type: ignore[arg-type]
                          retry_extractor=retry_extractor, resample_extractor=resample_extractor,
                          resolver=resolver, merge_log=merge_log, progress=progress)
        try:
            runner.run(documents, summary)
        except LLMError as exc:
            raise IngestError(f"LLM backend failed: {as_sentence(exc)} {_RESUME_HINT}") from exc
        except StoreError as exc:
            raise IngestError(f"store failed: {as_sentence(exc)} {_RESUME_HINT}") from exc
        finally:
            summary.usage = usage.to_dict()
            summary.wall_seconds = round(time.perf_counter() - started, 3)
        if not options.dry_run:
            summary.store_totals = store.counts().model_dump()
            if options.update_index:
                # Brings the retrieval indexes up to date with the store (embeds only what is new).
                search_index().update(store, progress=progress)
            summary.run_record = str(_write_run_record(settings, summary, path_list, options, cached))
    finally:
        if cached is not None:
            cached.close()
        if own_store and store is not None:
            store.close()
        if scratch is not None:
            scratch.cleanup()
    return summary
