"""The embedding benchmark's chunks: as ingest cuts them, or full-size from the passages joined."""

from __future__ import annotations

from eval.benchmarks.embed_bench import corpus_chunks
from synthkg.chunking import approx_token_count
from tests.eval.conftest import SAMPLE_DIR


def test_chunks_come_as_ingest_cuts_them_or_full_size() -> None:
    corpus = SAMPLE_DIR / "corpus.json"
    passages = corpus_chunks(corpus, 20)
    full = corpus_chunks(corpus, 5, full=True)
    assert len(passages) == 20 and len(full) == 5
    mean = lambda texts: sum(approx_token_count(t) for t in texts) / len(texts)  # noqa: E731
    assert mean(full) > 1.5 * mean(passages)
    assert all(approx_token_count(t) <= 256 for t in full)
