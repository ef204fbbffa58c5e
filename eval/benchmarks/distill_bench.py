"""Distilled student vs multi-step teacher on the same dev passages, in one run.

    python -m eval.benchmarks.distill_bench --dataset ../shared/data/multihop/musique --passages 50 \
        --student training/adapters/qwen2.5-coder-0.5b-synthkg --teacher-cache .synthkg/bench/teacher-cache

The passages are the supporting passages of the dataset's first questions (whole questions, at most
--passages), which no training record comes from (training reads the train-split corpora). Each
extractor builds its own store of them; then, per extractor: LLM calls, tokens and LLM seconds per 1,000
words, KG coverage of those questions' gold triples (eval.kg_eval.eval_kg), and the student's triples
against the teacher's, chunk by chunk (semantic match: "subject relation object" cosine >= --threshold):
precision, recall, F1.

The teacher's calls usually come from the cache of an earlier `ingest_bench` run over the same passages
(its hours of CPU time are not repeated): their token counts and seconds are what they cost when made,
recorded in the cache. The student's calls are made fresh, in this run."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from eval.corpus import prepare_corpus
from eval.datasets import Dataset, load_dataset
from eval.kg_eval import GraphTriples, MemoEmbedder, eval_kg
from eval.triple_agreement import agreement
from synthkg.config import LLMSettings, Settings
from synthkg.embeddings import Embedder, make_embedder

RESULTS = Path(__file__).resolve().parent.parent / "results"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _settings(work: Path, model: str, backend: str, cache_dir: Path) -> Settings:
    settings = Settings(llm=LLMSettings(backend=backend, model=model), cache_dir=cache_dir, data_dir=work)
    models = cache_dir / "models"
    if not models.exists():  # a fresh cache still needs the assembled local models: share them
        cache_dir.mkdir(parents=True, exist_ok=True)
        models.symlink_to(Settings().cache_dir / "models")
    return settings


def _build(name: str, dataset: Dataset, settings: Settings, extractor: str, embedder: Embedder,
           threshold: float, work: Path, words: int) -> tuple[dict[str, Any], Any]:
    prepared = prepare_corpus(dataset, settings, extractor, work_dir=work / name, embedder=embedder)
    stages, wall = prepared.build_cost()
    calls = sum(s.calls for s in stages.values())  # cache hits included (cached_calls is a subset)
    prompt = sum(s.prompt_tokens for s in stages.values())
    completion = sum(s.completion_tokens for s in stages.values())
    seconds = sum(s.seconds for s in stages.values())
    with prepared.open_store() as store:
        kg = eval_kg(dataset, store, embedder, threshold, progress=False)
        triples = GraphTriples(store)
        reasons = Counter(
            reason
            for document in store.iter_documents()
            for reason in (document.metadata.get("failed_chunks") or {}).values()
        )
        chunks = store.counts().chunks
    per_k = 1000 / words
    row = {
        "extractor": extractor,
        "backend": settings.llm.backend,
        "model": settings.llm.model,
        "llm_calls_per_1000_words": round(calls * per_k, 2),
        "prompt_tokens_per_1000_words": round(prompt * per_k, 1),
        "completion_tokens_per_1000_words": round(completion * per_k, 1),
        "llm_seconds_per_1000_words": round(seconds * per_k, 1),
        "build_wall_seconds_this_run": wall,
        "failed_chunks": sum(reasons.values()),
        "failure_reasons": dict(reasons.most_common()),  # "stage:reason" of each failed chunk's last call
        "chunks": chunks,
        "kg_coverage": kg.aggregates["supporting"].metrics,
        "triples": len(triples.all),
        "stages": {k: v.model_dump() for k, v in stages.items()},
    }
    return row, triples


@app.command()
def main(
    dataset: Annotated[Path, typer.Option(help="A dataset folder (dev.json + corpus.json).")],
    student: Annotated[str, typer.Option(help="The student: a LoRA adapter folder or a merged model dir.")],
    passages: Annotated[int, typer.Option(help="At most this many supporting passages.")] = 50,
    teacher_model: Annotated[str, typer.Option(help="The teacher (local name or .gguf).")] = (
        "qwen2.5-coder-1.5b"
    ),
    teacher_cache: Annotated[Path | None, typer.Option(help="The teacher's LLM call cache.")] = None,
    student_backend: Annotated[str, typer.Option(
        help="llamacpp (an adapter over a GGUF base, exported for llama.cpp) or hf (transformers)."
    )] = "llamacpp",
    threshold: Annotated[float, typer.Option(help="Cosine similarity for a triple match.")] = 0.88,
    out: Annotated[Path | None, typer.Option(help="Result file.")] = None,
) -> None:
    data = load_dataset(dataset).first_questions_within(passages)
    words = sum(len(p.text.split()) for p in data.passages)
    embedder = MemoEmbedder(make_embedder(Settings().embedding))
    with tempfile.TemporaryDirectory(prefix="distill-bench-") as tmp:
        work = Path(tmp)
        teacher_settings = _settings(work / "t", teacher_model, "llamacpp", teacher_cache or work / "t-cache")
        student_settings = _settings(work / "s", student, student_backend, work / "s-cache")
        teacher, teacher_triples = _build("teacher", data, teacher_settings, "multistep", embedder, threshold,
                                          work, words)
        student_row, student_triples = _build("student", data, student_settings, "distilled", embedder,
                                               threshold, work, words)
        student_row["agreement_with_teacher"] = agreement(student_triples, teacher_triples, embedder,
                                                          threshold)

    def ratio(key: str) -> float | None:
        return round(student_row[key] / teacher[key], 3) if teacher[key] else None

    t_cov = teacher["kg_coverage"].get("coverage")
    s_cov = student_row["kg_coverage"].get("coverage")
    result = {
        "benchmark": "distill",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": str(dataset),
        "questions": len(data.questions),
        "passages": len(data.passages),
        "words": words,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1m_at_end": os.getloadavg()[0]},
        "teacher": teacher,
        "student": student_row,
        "ratios_student_over_teacher": {
            "llm_calls": ratio("llm_calls_per_1000_words"),
            "llm_seconds": ratio("llm_seconds_per_1000_words"),
            "completion_tokens": ratio("completion_tokens_per_1000_words"),
            "kg_coverage": round(s_cov / t_cov, 3) if t_cov and s_cov is not None else None,
        },
    }
    path = out or RESULTS / f"distill_bench-{Path(student).name}-{student_backend}-{len(data.passages)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    typer.echo(json.dumps({k: result[k] for k in ("questions", "passages", "words",
                                                   "ratios_student_over_teacher")}, indent=1))
    for name, row in (("teacher", teacher), ("student", student_row)):
        summary = {k: v for k, v in row.items() if k not in ("stages",)}
        typer.echo(f"{name}: {json.dumps(summary)}")
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
