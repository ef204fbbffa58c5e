"""Teacher synthesis: run the multi-step SynthKG extractor over corpora and write one teacher record per
chunk (the input of `training.dataset`). Resumable: documents already in the output file are skipped,
and with the call cache (the default) a restarted run repeats no finished LLM call. Ctrl-C or SIGTERM
stops it after the call in flight, with its stats written.

    python -m training.synthesize CORPUS.json [...] --out data/teacher/records.jsonl \
        [--model qwen2.5-coder-1.5b] [--backend llamacpp|hf] [--workers N] [--limit N]

On the CPU the teacher runs on llama-server with 4 slots (`--engine server --slots 4`, as `synthkg
extract` does: ~43 s per MuSiQue passage in a benchmark run cut short, against ~55 s one sequence at a
time in process). On a GPU, `--backend hf --device cuda --workers 256` runs hundreds of chunks in
threads and a `BatchingBackend` turns their calls into batched generations (same prompts, parser and checks as
`synthkg ingest`: the extractor is the same object)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from synthkg.config import LLMSettings, default_cache_dir
from synthkg.extract.corpus import append_stats, extract_corpus, stop_on_signals
from synthkg.extract.multistep import STAGES, MultiStepExtractor
from synthkg.llm.base import ChatBackend
from synthkg.llm.cache import CachedBackend, Usage
from synthkg.llm.factory import make_backend, make_hf_backend
from synthkg.loaders import load_documents
from synthkg.model import Document

log = logging.getLogger(__name__)


def synthesize(
    documents: list[Document],
    extractor: MultiStepExtractor,
    out: Path,
    *,
    teacher_model: str,
    workers: int = 1,
    deadline: float | None = None,
    stop: threading.Event | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Extract every document (skipping those already in `out`) and append their chunk records (see
    synthkg.extract.corpus.extract_corpus)."""
    return extract_corpus(documents, extractor, out, model=teacher_model,
                          prompt_versions=extractor.prompt_versions, workers=workers, deadline=deadline,
                          stop=stop, progress=progress)


def make_teacher_backend(
    backend: str,
    model: str,
    cache_dir: Path,
    device: str,
    max_batch: int,
    deadline: float | None,
    batch_wait: float = 0.05,
    engine: str = "server",
    slots: int = 4,
) -> ChatBackend:
    """The teacher's backend, built as synthkg builds any (synthkg.llm.factory): llama.cpp (llama-server
    decoding `slots` sequences together, or in process), or transformers, whose calls are batched on a GPU
    (no batch started after `deadline`)."""
    settings = LLMSettings(backend=backend, model=model, engine=engine, slots=slots,  # type: ignore[arg-type]
                           device=device, max_batch=max_batch)
    if settings.backend == "hf":
        return make_hf_backend(settings, cache_dir, model, wait_s=batch_wait, deadline=deadline)
    return make_backend(settings, cache_dir)


def _stage_budgets(pairs: list[str]) -> dict[str, int]:
    budgets = {}
    for pair in pairs:
        stage, _, value = pair.partition("=")
        if stage not in STAGES or not value.isdigit():
            raise typer.BadParameter(f"{pair!r}: expected STAGE=N with STAGE one of {', '.join(STAGES)}")
        budgets[stage] = int(value)
    return budgets


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    corpora: Annotated[list[Path], typer.Argument(help="Corpus files (.json/.jsonl records, .txt, dirs).")],
    out: Annotated[Path, typer.Option(help="Teacher records (JSONL), appended to.")],
    model: Annotated[str, typer.Option(help="Teacher model: local name, .gguf path or HF dir.")] = (
        "qwen2.5-coder-1.5b"
    ),
    backend: Annotated[str, typer.Option(help="llamacpp (CPU) or hf (transformers; batched on a GPU).")] = (
        "llamacpp"
    ),
    device: Annotated[str, typer.Option(help="hf backend device: cpu or cuda.")] = "cpu",
    engine: Annotated[
        str, typer.Option(help="llamacpp: server (llama-server, --slots sequences at once) or python.")
    ] = "server",
    slots: Annotated[int, typer.Option(min=1, help="llamacpp server: sequences decoded together.")] = 4,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Documents in flight (default: what the backend decodes at once: the "
                     "server's slots; use hundreds on a GPU)."),
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Largest generation batch (GPU).")] = 256,
    limit: Annotated[int | None, typer.Option(help="First N documents of the corpora.")] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Start no document after this many seconds.")
    ] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="LLM call cache (default: synthkg's cache).")] = None,
    max_attempts: Annotated[int, typer.Option(help="Calls per stage before a chunk is failed.")] = 2,
    max_tokens: Annotated[
        list[str] | None,
        typer.Option(help="STAGE=N answer budget overriding a prompt's (repeatable), e.g. entities=320."),
    ] = None,
    batch_wait: Annotated[
        float, typer.Option(help="GPU: gather a batch until no call arrives for this many seconds.")
    ] = 0.05,
) -> None:
    """Run the multi-step teacher over corpora and append per-chunk teacher records."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cache = cache_dir or default_cache_dir()
    loaded = load_documents(corpora, limit=limit)
    for error in loaded.errors:
        log.warning("%s", error)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    budgets = _stage_budgets(max_tokens or [])
    raw = make_teacher_backend(backend, model, cache, device, max_batch, deadline, batch_wait, engine, slots)
    workers = workers or getattr(raw, "parallel", None) or 1
    usage = Usage()
    stop = stop_on_signals()
    with CachedBackend(raw, cache, usage=usage) as cached:
        stats = synthesize(
            loaded.documents,
            MultiStepExtractor(cached, max_attempts=max_attempts, max_tokens=budgets),
            out,
            teacher_model=f"{backend}:{model}",
            workers=workers,
            deadline=deadline,
            stop=stop,
        )
    stats["usage"] = usage.to_dict()
    stats["teacher"] = {
        "backend": backend,
        "model": model,
        "engine": engine if backend == "llamacpp" else None,
        "slots": slots if backend == "llamacpp" and engine == "server" else None,
        "workers": workers,
        "device": device,
        "max_attempts": max_attempts,
        "max_tokens": budgets,
    }
    # Versions are bumped on release; the hashes pin the exact wording this run used.
    prompt_dir = Path(__file__).resolve().parent.parent / "synthkg" / "prompts"
    stats["prompt_sha256"] = {
        stage: hashlib.sha256((prompt_dir / f"{stage}.toml").read_bytes()).hexdigest() for stage in STAGES
    }
    if hasattr(raw, "batches"):
        stats["batch_sizes"] = {
            "count": len(raw.batches),
            "mean": sum(raw.batches) / max(1, len(raw.batches)),
        }
    append_stats(out, stats)
    typer.echo(json.dumps(stats, indent=1))


if __name__ == "__main__":
    app()
