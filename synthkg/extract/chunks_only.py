"""The extractor that extracts nothing: chunks are stored and indexed without a graph. This is what the
plain BM25 and dense baselines need, at no LLM cost."""

from __future__ import annotations

from synthkg.extract.base import ExtractionResult


class ChunksOnlyExtractor:
    name = "none"

    def extract(self, chunk_text: str, previous_chunk: str | None = None) -> ExtractionResult:
        return ExtractionResult(original_text=chunk_text, text=chunk_text)
