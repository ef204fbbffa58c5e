"""Ingestion cost benchmark: the multi-step teacher over N passages of a corpus.

    python -m eval.benchmarks.ingest_bench --corpus ../shared/data/multihop/musique/corpus.json \
        --questions ../shared/data/multihop/musique/dev.json --passages 50 --model qwen2.5-coder-1.5b

With --questions the passages are the supporting passages of the first questions (whole questions only),
so the same run's graph can be scored for KG coverage; without it, the first N passages of the corpus.

Prints and records (eval/results/ingest_bench-<model>-<N>.json) LLM calls and tokens per passage and per
1,000 words, seconds per passage, entities / propositions / relations per passage, the share of chunks
whose decontextualization was kept, and failures. A fresh store and call cache are used, so every
call is really made (pass --cache-dir to reuse one)."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from eval.datasets import load_dataset
from synthkg.config import LLMSettings, Settings, StoreSettings
from synthkg.ingest import IngestOptions, ingest

RESULTS = Path(__file__).resolve().parent.parent / "results"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def select_passages(corpus: Path, limit: int, questions: Path | None) -> list[dict]:
    """The first `limit` passages, or the supporting passages of whole questions taken in order."""
    if questions is None:
        return json.loads(corpus.read_text(encoding="utf-8"))[:limit]
    chosen = load_dataset(questions, corpus=corpus).first_questions_within(limit)
    return [{"id": p.id, "title": p.title, "text": p.text} for p in chosen.passages]


@app.command()
def main(
    corpus: Annotated[Path, typer.Option(help="A corpus.json of {id, title, text} passages.")],
    passages: Annotated[int, typer.Option(help="How many passages (at most, with --questions).")] = 50,
    questions: Annotated[
        Path | None, typer.Option(help="A dev.json: take the supporting passages of its first questions.")
    ] = None,
    model: Annotated[str, typer.Option(help="Local model name or .gguf path.")] = "qwen2.5-coder-1.5b",
    cache_dir: Annotated[Path | None, typer.Option(help="LLM call cache (default: a fresh one).")] = None,
    out: Annotated[Path | None, typer.Option(help="Result file.")] = None,
) -> None:
    records = select_passages(corpus, passages, questions)
    words = sum(len(r["text"].split()) for r in records)
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(tmp)
        subset = work / "corpus.json"
        subset.write_text(json.dumps(records), encoding="utf-8")
        settings = Settings(
            store=StoreSettings(path=work / "store"),
            llm=LLMSettings(model=model),
            cache_dir=cache_dir or work / "cache",
            data_dir=work / "data",
        )
        models = settings.cache_dir / "models"
        if not models.exists():  # a fresh cache still needs the assembled model: reuse the shared one
            settings.cache_dir.mkdir(parents=True, exist_ok=True)
            models.symlink_to(Settings().cache_dir / "models")
        started = time.perf_counter()
        summary = ingest([subset], settings=settings, options=IngestOptions(update_index=False))
        wall = time.perf_counter() - started
    n = summary.documents_ingested
    total = summary.usage.get("total", {})
    per = {
        "llm_calls_per_passage": total.get("calls", 0) / n,
        "llm_calls_per_1000_words": 1000 * total.get("calls", 0) / words,
        "prompt_tokens_per_passage": total.get("prompt_tokens", 0) / n,
        "completion_tokens_per_passage": total.get("completion_tokens", 0) / n,
        "seconds_per_passage": wall / n,
        "entities_per_passage": summary.entities / n,
        "propositions_per_passage": summary.propositions / n,
        "relations_per_passage": summary.relations / n,
        "decontextualization_kept_share": (
            summary.decontextualized_kept / summary.decontextualized_tried
            if summary.decontextualized_tried
            else None
        ),
        "failed_chunks": len(summary.failures),
        "chunks": summary.chunks,
    }
    result = {
        "benchmark": "ingest",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": str(corpus),
        "questions": str(questions) if questions else None,
        "passage_ids": [r["id"] for r in records],
        "passages": n,
        "words": words,
        "model": model,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m_at_end": os.getloadavg()[0],
        },
        "wall_seconds": round(wall, 1),
        "per": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in per.items()},
        "usage": summary.usage,
        "failures": [f.model_dump() for f in summary.failures],
    }
    path = out or RESULTS / f"ingest_bench-{Path(model).name.removesuffix('.gguf')}-{n}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    for key, value in result["per"].items():
        typer.echo(f"{key:>32}: {value}")
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
