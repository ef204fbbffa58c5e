"""The one place that assembles a run from `Settings`: the store, the embedder, the search index, the LLM
backend behind its call cache, and the extractor with its retry variants.

The CLI, the `KnowledgeGraph` facade, `ingest` and the evaluation all get their parts from a `Runtime`,
so a setting means the same thing everywhere and nothing rewrites the settings to steer another builder.
Parts are built on first use: retrieval loads no LLM, a dry run loads no embedder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from synthkg import embeddings
from synthkg.config import Settings
from synthkg.embeddings import EmbeddingError
from synthkg.extract.base import Extractor
from synthkg.extract.distilled import DistilledExtractor, StudentPrompt, load_student_prompt
from synthkg.indexes import SearchIndex, SearchIndexError
from synthkg.llm import factory
from synthkg.llm.base import ChatBackend, ChatResult, LLMError, Message, accepts
from synthkg.llm.cache import CachedBackend, Usage
from synthkg.resolve import EntityResolver, KnownVectors
from synthkg.store import GraphStore, open_store


def _indexed_entities(open_index: Callable[[], SearchIndex]) -> KnownVectors:
    """The entity rows of the search index `open_index` gives; none when it cannot be read."""
    try:
        index = open_index()
    except (SearchIndexError, EmbeddingError):  # another model's index, or unreadable: embed anew
        return [], [], np.zeros((0, 0), dtype=np.float32)
    ids = index.ids("entities")
    texts = [index.text("entities", i) or "" for i in ids]
    return ids, texts, index.vectors("entities")


class ExtractorName(StrEnum):
    """The extractors by name (CLI choices too): the SynthKG teacher workflow, the one-call distilled
    student, or none (chunks only, for BM25 and dense retrieval)."""

    multistep = "multistep"
    distilled = "distilled"
    none = "none"


# A retried failed chunk is re-asked with some sampling: at temperature 0 the cache (and the model)
# would hand back the very answer that failed.
RETRY_TEMPERATURE = 0.4


class SetupError(RuntimeError):
    """Settings that cannot run: a missing model or server binary, a malformed adapter."""


def as_backend(backend: Any) -> ChatBackend:
    """A ChatBackend, wrapping a langchain-core chat model when given one."""
    if isinstance(backend, ChatBackend):  # ours: no need to import langchain (a GPU box may lack it)
        return backend
    from langchain_core.language_models import BaseChatModel  # optional until a langchain model is given

    if isinstance(backend, BaseChatModel):
        from synthkg.llm.langchain_backend import LangChainBackend

        return LangChainBackend(backend)
    return backend


class _SamplingBackend:
    """Passes calls through with a temperature set. With `refresh` the cache is bypassed, so retries of
    failed chunks get fresh answers: never the stored answer that failed (nor one a failed retry
    stored). Without it, a chunk that a retry fixed gets that retry's stored answer again."""

    def __init__(self, backend: ChatBackend, temperature: float, *, refresh: bool) -> None:
        self.backend, self.temperature, self.refresh = backend, temperature, refresh
        self.name, self.model = backend.name, backend.model

    def chat(self, messages: list[Message], **kwargs: Any) -> ChatResult:
        kwargs["temperature"] = self.temperature
        if self.refresh and accepts(self.backend, "refresh"):
            kwargs["refresh"] = True
        return self.backend.chat(messages, **kwargs)


def make_extractor(
    name: ExtractorName, backend: ChatBackend, student_prompt: StudentPrompt | None = None
) -> Extractor:
    if name == "none":
        from synthkg.extract.chunks_only import ChunksOnlyExtractor

        return ChunksOnlyExtractor()
    if name == "multistep":
        from synthkg.extract.multistep import MultiStepExtractor

        return MultiStepExtractor(backend)
    return DistilledExtractor(backend, prompt=student_prompt)


@dataclass
class ExtractionSetup:
    """An extractor assembled from settings, with what runs it."""

    extractor: Extractor
    retry_extractor: Extractor  # the same, asked afresh with some sampling (--retry-failed)
    resample_extractor: Extractor  # the same sampling, answered from the cache (chunks a retry fixed)
    backend: ChatBackend | None  # the raw backend; its `parallel` says how many calls to keep in flight
    cached: CachedBackend | None  # the call cache in front of it (close it when done)
    model: str  # "<backend>:<model>" for records
    prompt_versions: dict[str, str]


class Runtime:
    """The parts of a run, each built from `settings` on first use and kept. `backend` (any ChatBackend
    or langchain-core chat model) replaces the settings' LLM, `embedder` the settings' embedding model.
    A Runtime holds no open resources of its own: stores and call caches it hands out are the caller's to
    close."""

    def __init__(
        self, settings: Settings, *, backend: Any = None, embedder: embeddings.Embedder | None = None
    ) -> None:
        self.settings = settings
        self.user_backend = backend
        self._embedder = embedder
        self._llm: ChatBackend | None = None

    def moved(self, settings: Settings) -> Runtime:
        """The same parts over other settings (a store of its own, say), sharing what is already built."""
        runtime = Runtime(settings, backend=self.user_backend, embedder=self._embedder)
        runtime._llm = self._llm
        return runtime

    # --- retrieval ---------------------------------------------------------------------------------------
    @property
    def embedder(self) -> embeddings.Embedder:
        if self._embedder is None:
            self._embedder = embeddings.make_embedder(self.settings.embedding)
        return self._embedder

    def open_store(self, *, read_only: bool = False) -> GraphStore:
        return open_store(self.settings.store, read_only=read_only)

    def open_index(self) -> SearchIndex:
        """The store's search index (raises IndexMismatchError when it was built with another embedding
        model)."""
        return SearchIndex.open(self.settings.index_path(), self.embedder)

    def resolver(
        self,
        store: GraphStore,
        *,
        blocked: set[tuple[str, str]],
        use_embeddings: bool,
        index: Callable[[], SearchIndex] | None = None,
    ) -> EntityResolver:
        """Entity resolution into `store`, by name and (with `use_embeddings`) by embedding similarity,
        reusing the search index's entity vectors (one embedding per entity name, not one per run).
        `index` gives the index to read them from (default: `open_index`); ingest passes the handle it
        updates at the end, so the index is read once per run."""
        if not use_embeddings:
            return EntityResolver(store, None, blocked=blocked)
        open_index = index or self.open_index
        return EntityResolver(
            store, self.embedder, blocked=blocked, known=lambda: _indexed_entities(open_index)
        )

    # --- LLM -------------------------------------------------------------------------------------------
    def chat_backend(self) -> ChatBackend:
        """The uncached LLM: the one given, else the settings' (a local model loads on its first call)."""
        if self._llm is None:
            if self.user_backend is not None:
                self._llm = as_backend(self.user_backend)
            else:
                self._llm = factory.make_backend(self.settings.llm, self.settings.cache_dir)
        return self._llm

    def cached_backend(self, usage: Usage | None = None) -> CachedBackend:
        """The LLM behind the on-disk call cache (close it when done)."""
        return CachedBackend(self.chat_backend(), self.settings.cache_dir, usage=usage)

    def extraction(
        self, name: ExtractorName | str, *, usage: Usage | None = None, student: str | Path | None = None
    ) -> ExtractionSetup:
        """The extractor `name` behind the on-disk call cache. "distilled" runs the student: the backend
        given (an endpoint serving one), else the adapter folder `student` names, else the settings' model
        where that names one, else the shipped student. "multistep" runs the teacher on `chat_backend()`.
        Raises SetupError for settings that cannot run, ValueError for a `student` that cannot apply."""
        name = ExtractorName(name)
        if student is not None and (name != ExtractorName.distilled or self.user_backend is not None):
            raise ValueError("`student` needs extractor='distilled' and no backend given")
        if name == ExtractorName.none:
            none = make_extractor(name, self.user_backend)
            return ExtractionSetup(none, none, none, None, None, "none", {})
        student_prompt = None
        try:
            if name == ExtractorName.multistep or self.user_backend is not None:
                backend = self.chat_backend()
            else:
                llm = self.settings.llm
                if student is not None:
                    llm = llm.model_copy(update={"model": str(student)})
                backend = factory.make_student_backend(llm, self.settings.cache_dir)
                student_prompt = load_student_prompt(factory.student_path(llm))
        except (LLMError, ValueError) as exc:
            raise SetupError(str(exc)) from exc
        cached = CachedBackend(backend, self.settings.cache_dir, usage=usage)
        extractor = make_extractor(name, cached, student_prompt)
        retry, resample = (
            make_extractor(name, _SamplingBackend(cached, RETRY_TEMPERATURE, refresh=fresh), student_prompt)
            for fresh in (True, False)
        )
        versions = dict(getattr(extractor, "prompt_versions", {}))
        return ExtractionSetup(
            extractor, retry, resample, backend, cached, f"{backend.name}:{backend.model}", versions
        )
