"""Replaying recorded extractions: build a store from teacher records (`training.synthesize` output, e.g.
made on a GPU machine or by a stronger model elsewhere) instead of calling an LLM again.

A record is one JSON line per chunk with at least `text` (what the extractor read) and `graph` (a
ChunkGraph); `source_text` (the chunk as chunked, before decontextualization), `decontextualized`,
`rouge1_f1` and `failure` are used when present. Chunks are matched by their text, so the corpus must be
chunked the same way as when the records were made (the same chunker settings)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from synthkg.extract.base import ExtractionResult
from synthkg.extract.schema import ChunkGraph
from synthkg.jsonl import read_jsonl


class RecordedExtraction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1)
    source_text: str | None = None
    document_id: str | None = None
    graph: ChunkGraph
    decontextualized: bool = False
    rouge1_f1: float | None = None
    failure: str | None = None


class ReplayError(ValueError):
    """Unreadable or invalid record files."""


class ReplayExtractor:
    """An Extractor that answers from records. A chunk with no record fails with "replay:missing", so
    ingestion reports it like any failed chunk (and `--retry-failed` with a real extractor can fill it)."""

    name = "replay"

    def __init__(self, records: Iterable[RecordedExtraction]) -> None:
        self._by_text: dict[str, RecordedExtraction] = {}
        self.document_ids: set[str] = set()  # the documents the records name (older records name none)
        for record in records:
            self._by_text.setdefault(record.source_text or record.text, record)
            if record.document_id is not None:
                self.document_ids.add(record.document_id)

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> ReplayExtractor:
        return cls(read_jsonl(paths, RecordedExtraction, "extraction record", ReplayError))

    def __len__(self) -> int:
        return len(self._by_text)

    def extract(self, chunk_text: str, previous_chunk: str | None = None) -> ExtractionResult:
        record = self._by_text.get(chunk_text)
        if record is None:
            return ExtractionResult(original_text=chunk_text, text=chunk_text, failure="replay:missing")
        return ExtractionResult(
            original_text=chunk_text,
            text=record.text,
            decontextualized=record.decontextualized,
            rouge1_f1=record.rouge1_f1,
            graph=record.graph,
            failure=record.failure,
        )
