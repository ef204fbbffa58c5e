"""`KnowledgeGraph`: one object for building a knowledge graph and asking it questions.

    from synthkg.api import KnowledgeGraph

    with KnowledgeGraph.open(".synthkg/store") as kg:          # or "bolt://host:7687", or None: the settings'
        kg.ingest(["data/sample/demo_corpus.json"])
        hits = kg.retrieve("Who is Konrad V Kantner's paternal grandfather?")       # no LLM involved
        answer = kg.query("Who is Konrad V Kantner's paternal grandfather?")        # iterative reader
        print(answer.answer, [c.chunk_id for c in answer.citations])

The store, the search index, the embedder and the LLM backend are opened on first use, so retrieval
needs no LLM and nothing is loaded that a call does not need. Every LLM call goes through the on-disk
call cache (`CachedBackend`): asking the same question again costs no model call.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from retrieval.modes import require_question
from synthkg.config import Settings
from synthkg.ingest import IngestOptions, ingest
from synthkg.llm.cache import CachedBackend, Usage
from synthkg.runtime import Runtime
from synthkg.store import GraphStore, StoreError

if TYPE_CHECKING:
    from retrieval.modes import ReaderMode
    from retrieval.reader import Answer
    from retrieval.retrievers import Mode, RetrievalParams, RetrievalResult
    from synthkg.delete import DeleteResult
    from synthkg.embeddings import Embedder
    from synthkg.indexes import SearchIndex
    from synthkg.ingest import IngestSummary
    from synthkg.model import Document, StoreCounts

_NEO4J_URI = re.compile(r"^(bolt|neo4j)(\+s|\+ssc)?://", re.IGNORECASE)


class EmptyStoreError(StoreError):
    """There is nothing to search: the store does not exist yet or holds no documents."""


class KnowledgeGraph:
    """A graph store with its search index, an embedder and an LLM backend, opened lazily (each built by
    the object's `Runtime`). Open with `KnowledgeGraph.open(...)`; use as a context manager or call
    `close()`."""

    def __init__(self, settings: Settings, *, backend: Any = None, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.runtime = Runtime(settings, backend=backend, embedder=embedder)
        self._store: GraphStore | None = None
        self._writable = False
        self._index: SearchIndex | None = None
        self._cached: CachedBackend | None = None
        self.usage = Usage()  # the LLM calls of retrieve/query through this object (ingest reports its own)

    @classmethod
    def open(
        cls,
        path_or_uri: str | Path | None = None,
        *,
        settings: Settings | None = None,
        backend: Any = None,
        embedder: Embedder | None = None,
    ) -> KnowledgeGraph:
        """The graph at `path_or_uri`: a directory for the embedded store, or a `bolt://` / `neo4j://` URI
        for Neo4j (credentials from the settings or NEO4J_USERNAME / NEO4J_PASSWORD); None takes the
        store the settings name. `backend` is any ChatBackend or langchain-core chat model (default: the
        settings' [llm]); `embedder` any `Embedder` (default: the settings' [embedding] model)."""
        settings = settings or Settings()
        if path_or_uri is not None:
            target = str(path_or_uri)
            update: dict[str, Any] = (
                {"backend": "neo4j", "neo4j_uri": target}
                if _NEO4J_URI.match(target)
                else {"backend": "embedded", "path": Path(path_or_uri)}
            )
            settings = settings.model_copy(update={"store": settings.store.model_copy(update=update)})
        return cls(settings, backend=backend, embedder=embedder)

    # --- what is opened on first use -----------------------------------------------------------------
    @property
    def location(self) -> str:
        """The store's directory or URI, for messages."""
        store = self.settings.store
        return str(store.path) if store.backend == "embedded" else store.neo4j_uri

    @property
    def embedder(self) -> Embedder:
        return self.runtime.embedder

    @property
    def store(self) -> GraphStore:
        """The store, opened read-only (no write lock) unless this object has written to it."""
        if self._store is None:
            if self.settings.store.backend == "embedded" and not self.settings.store.path.exists():
                raise self._empty()
            self._store = self.runtime.open_store(read_only=True)
        return self._store

    def _writable_store(self) -> GraphStore:
        if not self._writable:
            self._close_store()
            self._store = self.runtime.open_store()
            self._writable = True
        assert self._store is not None
        return self._store

    @property
    def index(self) -> SearchIndex:
        """The search index of the store (raises IndexMismatchError when it was built with another
        embedding model: `synthkg reindex` / `reindex()` rebuilds it)."""
        if self._index is None:
            self._index = self.runtime.open_index()
        return self._index

    def _cached_backend(self) -> CachedBackend:
        if self._cached is None:
            self._cached = self.runtime.cached_backend(self.usage)
        return self._cached

    def _empty(self) -> EmptyStoreError:
        return EmptyStoreError(f"no documents in the store at {self.location}: run `synthkg ingest` first")

    def _searchable(self) -> tuple[GraphStore, SearchIndex]:
        """The store and index, checked to hold something to search."""
        store = self.store
        if store.counts().chunks == 0:
            raise self._empty()
        index = self.index
        if index.size("chunks") == 0:
            from synthkg.indexes import SearchIndexError

            if self._being_written():
                raise SearchIndexError(
                    f"an ingest into {self.location} is still running: the search index is built when it "
                    "finishes; ask again then"
                )
            raise SearchIndexError(
                f"the search index at {index.path} is empty but the store at {self.location} holds "
                "documents; run `synthkg reindex` to build it"
            )
        return store, index

    def _being_written(self) -> bool:
        """Whether another process holds the embedded store's write lock (an ingest in progress)."""
        if self.settings.store.backend != "embedded":
            return False
        from filelock import FileLock, Timeout

        from synthkg.store.embedded import LOCK_FILE

        lock_path = self.settings.store.path / LOCK_FILE
        if not lock_path.exists() or getattr(self.store, "read_only", True) is False:
            return False  # no writer yet, or this process is the writer
        probe = FileLock(str(lock_path))
        try:
            probe.acquire(blocking=False)
        except Timeout:
            return True
        except OSError:
            return False
        probe.release()
        return False

    # --- building ------------------------------------------------------------------------------------
    def ingest(
        self,
        paths: list[str | Path | Document] | str | Path,
        *,
        progress: bool = False,
        student: str | Path | None = None,
        records: list[str | Path] | None = None,
        **options: Any,
    ) -> IngestSummary:
        """Ingest files, directories or `Document`s (see `synthkg.ingest.ingest`); `options` are
        `IngestOptions` fields (extractor, limit, retry_failed, force, dry_run, concurrency, ...). Updates
        the index.

        With `extractor="distilled"` the one-call student does the extraction: the adapter folder
        `student` names (written by `synthkg train`), else the settings' model where that names one,
        else the shipped student. A backend given to `open` is used as the student instead (e.g. an
        endpoint serving one), so `student` cannot be given with it. `records` replays recorded
        extractions (JSONL from `synthkg extract`) instead of calling an LLM; chunks without a record
        fail. Raises ReplayError for unreadable records."""
        replay = None
        if records:
            from synthkg.extract.replay import ReplayExtractor

            replay = ReplayExtractor.from_files([Path(r) for r in records])
        summary = ingest(
            [paths] if isinstance(paths, str | Path) else paths,
            runtime=self.runtime,
            # A dry run opens no store for writing (ingest reads one, or plans against a throwaway one).
            store=None if options.get("dry_run") else self._writable_store(),
            extractor=replay,
            options=IngestOptions(**options),
            student=student,
            progress=progress,
        )
        self._index = None  # ingest updated the index on disk: reread it on next use
        return summary

    def delete(self, ids_or_sources: list[str] | str, *, dry_run: bool = False) -> DeleteResult:
        """Delete documents, each named by its id, its source path (every document loaded from that file,
        or from files in that directory) or its corpus record id: their chunks, the propositions and
        relations only they support, and the entities no remaining proposition mentions; what other
        documents still support stays. Then drops the deleted ids from the search index. Each document's
        delete is atomic. `dry_run`: the same result, computed from reads, and nothing is written.

        Raises `synthkg.delete.UnknownDocumentError` (nothing deleted) when an argument names no document."""
        from synthkg.delete import delete_documents, resolve_documents

        targets = [ids_or_sources] if isinstance(ids_or_sources, str) else list(ids_or_sources)
        if not targets:
            raise ValueError("name at least one document id, source path or record id to delete")
        if self.settings.store.backend == "embedded":
            from synthkg.store.embedded import META_FILE

            if not (self.settings.store.path / META_FILE).is_file():
                raise self._empty()  # and do not create a store just to find nothing in it
        store = self.store if dry_run else self._writable_store()
        result = delete_documents(store, resolve_documents(store, targets, location=self.location),
                                  dry_run=dry_run)
        if not dry_run:
            self._drop_deleted_from_index(store, result)
        return result

    def _drop_deleted_from_index(self, store: GraphStore, result: DeleteResult) -> None:
        from synthkg.embeddings import EmbeddingError
        from synthkg.indexes import MANIFEST_FILE, SearchIndexError

        if not (self.settings.index_path() / MANIFEST_FILE).is_file():
            return  # no index yet: nothing to drop
        try:
            result.index_removed = dict(self.index.update(store).removed)
        except (SearchIndexError, EmbeddingError) as exc:
            result.warnings.append(f"the search index was not updated ({exc}); run `synthkg reindex`")

    def reindex(self) -> SearchIndex:
        """Rebuild the search index from the whole store with the configured embedding model."""
        from synthkg.indexes import SearchIndex

        self._index = SearchIndex.rebuild(self.settings.index_path(), self.embedder, self.store)
        return self._index

    # --- asking --------------------------------------------------------------------------------------
    def retrieve(
        self,
        question: str,
        k: int | None = None,
        mode: Mode | None = None,
        *,
        params: RetrievalParams | None = None,
    ) -> RetrievalResult:
        """The top-`k` chunks for `question`, with their propositions and entity paths. Uses no LLM
        (unless mode hippo's `fact_filter` is on). `k`, `mode` and `params` default to the settings'
        `[retrieval]` (k 5, mode graph)."""
        from retrieval.fact_filter import fact_filter_for
        from retrieval.retrievers import retrieve

        require_question(question)
        store, index = self._searchable()
        chosen = self.settings.retrieval
        mode, params = mode or chosen.mode, params or chosen.params()
        return retrieve(question, k or chosen.k, mode, store=store, index=index, params=params,
                        fact_filter=fact_filter_for(params, mode, self._cached_backend))

    def query(
        self,
        question: str,
        *,
        mode: Mode | None = None,
        reader: ReaderMode | None = None,
        k: int | None = None,
        max_iterations: int | None = None,
        params: RetrievalParams | None = None,
        max_tokens: int | None = None,
        step_k: int | None = None,
    ) -> Answer:
        """Answer `question` from retrieved chunks, with citations: `reader="iterative"` asks sub-queries
        (IterDRAG) for at most `max_iterations` steps (default 3); `"decompose"` plans single-fact
        sub-questions in one call (at most `max_iterations`, default 4), answers each from its own `step_k`
        chunks (default `k`) and composes the answer (fewer tokens); `"single"` answers in one call.
        What the call leaves out comes from the settings' `[retrieval]` and `[reader]` sections."""
        from retrieval.fact_filter import fact_filter_for
        from retrieval.reader import answer
        from retrieval.retrievers import make_retriever

        require_question(question)
        store, index = self._searchable()
        chosen, read = self.settings.retrieval, self.settings.reader
        mode, params = mode or chosen.mode, params or chosen.params()
        return answer(
            question,
            make_retriever(store, index, mode, params,
                           fact_filter=fact_filter_for(params, mode, self._cached_backend)),
            self._cached_backend(),
            mode=reader or read.mode,
            max_iterations=max_iterations or read.max_iterations,
            k=k or chosen.k,
            step_k=step_k or read.step_k,
            context_tokens=self.settings.llm.context_size,
            max_tokens=max_tokens or read.max_tokens,
        )

    def stats(self) -> StoreCounts:
        """How many documents, chunks, entities, propositions and relations the store holds."""
        from synthkg.model import StoreCounts

        try:
            return self.store.counts()
        except EmptyStoreError:
            return StoreCounts()

    # --- lifecycle -----------------------------------------------------------------------------------
    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store, self._writable = None, False

    def close(self) -> None:
        if self._cached is not None:
            self._cached.close()
            self._cached = None
        self._close_store()

    def __enter__(self) -> KnowledgeGraph:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
