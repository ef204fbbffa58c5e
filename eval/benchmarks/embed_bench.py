"""How long the embedding stage takes: chunks embedded per second with the configured embedding model, so
the README can say how long N chunks take to index (the stage that ran for minutes on a 20 MB file).

    python -m eval.benchmarks.embed_bench --corpus ../shared/data/multihop/musique/corpus.json --chunks 1000

The chunks are the corpus's first passages cut as ingest cuts them (~256 tokens at most); each thread
setting embeds the same chunks once after a warm-up batch. Nothing else may run meanwhile."""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from synthkg.chunking import chunk_text
from synthkg.config import Settings
from synthkg.embeddings import SentenceTransformerEmbedder
from synthkg.loaders import load_documents

RESULTS = Path(__file__).resolve().parents[1] / "results"
app = typer.Typer(add_completion=False)


def corpus_chunks(corpus: Path, count: int, *, full: bool = False) -> list[str]:
    """The first `count` chunks of the corpus's documents, in order. `full`: the documents joined into
    one long text first, so that every chunk is full-size (~256 tokens), as in a long document."""
    texts: list[str] = []
    documents = load_documents([corpus]).documents
    if full:
        joined: list[str] = []
        for document in documents:
            joined.append(document.text)
            if len(joined) % 50 == 0 and len(chunk_text(" ".join(joined))) > count:
                break
        return chunk_text(" ".join(joined))[:count]
    for document in documents:
        texts += chunk_text(document.text)
        if len(texts) >= count:
            break
    return texts[:count]


@app.command()
def main(
    corpus: Annotated[Path, typer.Option(help="A corpus file (JSON records with id/title/text).")],
    chunks: Annotated[int, typer.Option(help="Chunks to embed.")] = 1000,
    threads: Annotated[list[int], typer.Option(help="torch threads to try; repeat.")] = [1, 2],  # noqa: B006
    full: Annotated[bool, typer.Option(help="Full-size chunks (the passages joined into one text).")] = False,
    out: Annotated[Path | None, typer.Option(help="Result file.")] = None,
) -> None:
    texts = corpus_chunks(corpus, chunks, full=full)
    model = Settings().embedding.model
    rows = []
    for count in threads:
        embedder = SentenceTransformerEmbedder(model, threads=count)
        embedder.embed(texts[:64])  # load the model and warm up
        started = time.perf_counter()
        embedder.embed(texts)
        seconds = time.perf_counter() - started
        rows.append({"threads": count, "seconds": round(seconds, 2),
                     "chunks_per_second": round(len(texts) / seconds, 1)})
        typer.echo(json.dumps(rows[-1]))
    result = {
        "benchmark": "embed",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": str(corpus),
        "model": model,
        "chunks": len(texts),
        "full_size_chunks": full,
        "mean_words": round(sum(len(t.split()) for t in texts) / max(1, len(texts)), 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1m_at_end": os.getloadavg()[0]},
        "settings": rows,
    }
    path = out or RESULTS / f"embed_bench-{'full' if full else 'passages'}-{len(texts)}.json"
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
