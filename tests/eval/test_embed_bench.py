"""The embedding benchmark's chunks: as ingest cuts them, or full-size from the passages joined."""

from __future__ import annotations

import json
from pathlib import Path

from eval.bench_tables import embed_table
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


def _result(folder: Path, name: str, full: bool, date: str, rate: float) -> None:
    data = {"benchmark": "embed", "date": date, "corpus": "/x/musique/corpus.json", "model": "m",
            "chunks": 100, "full_size_chunks": full, "mean_words": 140.0 if full else 75.0,
            "settings": [{"threads": 2, "seconds": 100 / rate, "chunks_per_second": rate}]}
    (folder / name).write_text(json.dumps(data), encoding="utf-8")


def test_the_readme_table_has_the_newest_run_of_each_chunk_size(tmp_path: Path) -> None:
    assert embed_table(tmp_path) is None
    _result(tmp_path, "a.json", False, "2026-12-01", 10.0)
    _result(tmp_path, "b.json", False, "2026-12-02", 40.0)
    _result(tmp_path, "c.json", True, "2026-12-01", 20.0)
    table = embed_table(tmp_path)
    assert table is not None
    rows = table.splitlines()[2:]
    assert len(rows) == 2  # the older passage-size run is left out
    assert rows[0].startswith("| passage-size, 100 of musique | 75 ") and rows[0].endswith("| 40.0 | 4.2 |")
    assert rows[1].startswith("| full-size") and rows[1].endswith("| 20.0 | 8.3 |")  # 10,000 / 20 / 60
