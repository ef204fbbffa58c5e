"""Teacher synthesis: run the multi-step SynthKG extractor over corpora and write one teacher record per
chunk (the input of `training.dataset`). Resumable: documents already in the output file are skipped,
and with the call cache (the default) a restarted run repeats no finished LLM call. Ctrl-C or SIGTERM
stops it after the call in flight, with its stats written.

    python -m training.synthesize CORPUS.json [...] --out data/teacher/records.jsonl \
        [--model qwen2.5-coder-1.5b] [--backend llamacpp|hf] [--workers N] [--limit N]

On a GPU, `--backend hf --device cuda --workers 256` runs hundreds of chunks in threads and a
`BatchingBackend` turns their calls into batched generations (same prompts, parser and checks as
`synthkg ingest`: the extractor is the same object)."""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm.auto import tqdm

from synthkg.chunking import chunk_text
from synthkg.config import default_cache_dir
from synthkg.extract.multistep import STAGES, MultiStepExtractor
from synthkg.llm.base import ChatBackend, LLMError
from synthkg.llm.cache import CachedBackend, Usage
from synthkg.loaders import load_documents
from synthkg.model import Chunk, Document
from synthkg.prompts import load_prompt

log = logging.getLogger(__name__)


def _done_documents(out: Path) -> set[str]:
    if not out.exists():
        return set()
    done = set()
    with out.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                done.add(json.loads(line)["document_id"])
            except (json.JSONDecodeError, KeyError):
                continue  # a torn last line from a killed run: that document is redone
    return done


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
    """Extract every document (skipping those already in `out`) and append their chunk records.
    Documents not finished by `deadline` (a time.monotonic() value) or when `stop` is set, or whose LLM
    calls failed, are left for the next run (counted in "backend_errors" when not just out of time)."""
    done = _done_documents(out)
    todo = [d for d in documents if d.id not in done]
    prompt_versions = {stage: load_prompt(stage).version_tag for stage in STAGES}
    lock = threading.Lock()
    started = time.monotonic()
    stats = {
        "documents": 0,
        "chunks": 0,
        "failed_chunks": 0,
        "skipped_documents": len(documents) - len(todo),
        "decontextualized_tried": 0,
        "decontextualized_kept": 0,
        "timed_out": False,
        "stopped": False,
        "backend_errors": 0,
    }
    out.parent.mkdir(parents=True, exist_ok=True)

    def halted() -> bool:
        return (deadline is not None and time.monotonic() > deadline) or (stop is not None and stop.is_set())

    def run(doc: Document) -> list[dict[str, Any]] | None:
        records, previous = [], None
        for index, text in enumerate(chunk_text(doc.text)):
            if halted():
                return None  # out of time or stopped: leave the document for the next run
            try:
                result = extractor.extract(text, previous)
            except LLMError as exc:
                # A failed batch (out of GPU memory, say) loses its documents for this run only: they
                # are not written, so the next run does them again.
                if not halted():
                    log.warning("%s: backend failed, left for the next run: %s", doc.title or doc.id, exc)
                    with lock:
                        stats["backend_errors"] += 1
                return None
            previous = result.text
            records.append(
                {
                    "chunk_id": Chunk.create(doc.id, index, text).id,
                    "document_id": doc.id,
                    "text": result.text,
                    "source_text": result.original_text,
                    "graph": result.graph.model_dump(),
                    "teacher": {"model": teacher_model, "prompt_versions": prompt_versions},
                    "source": doc.source,
                    "title": doc.title,
                    "decontextualized": result.decontextualized,
                    "rouge1_f1": result.rouge1_f1,
                    "failure": result.failure,
                }
            )
        return records

    bar = tqdm(total=len(todo), unit="doc", desc="teacher", disable=not progress)
    with (
        ThreadPoolExecutor(max(1, workers), thread_name_prefix="teacher") as pool,
        out.open("a", encoding="utf-8") as fh,
    ):
        futures = [pool.submit(run, d) for d in todo]
        for future in as_completed(futures):
            records = future.result()
            bar.update(1)
            if records is None:
                if deadline is not None and time.monotonic() > deadline:
                    stats["timed_out"] = True
                if stop is not None and stop.is_set():
                    stats["stopped"] = True
                continue
            with lock:
                fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
                fh.flush()
            stats["documents"] += 1
            stats["chunks"] += len(records)
            stats["failed_chunks"] += sum(r["failure"] is not None for r in records)
            stats["decontextualized_tried"] += sum(r["rouge1_f1"] is not None for r in records)
            stats["decontextualized_kept"] += sum(bool(r["decontextualized"]) for r in records)
    bar.close()
    stats["seconds"] = round(time.monotonic() - started, 1)
    return stats


def make_teacher_backend(
    backend: str,
    model: str,
    cache_dir: Path,
    device: str,
    max_batch: int,
    workers: int,
    deadline: float | None,
    batch_wait: float = 0.05,
) -> ChatBackend:
    """The teacher's backend; with transformers and several workers, their calls are batched."""
    if backend == "llamacpp":
        from synthkg.llm.llamacpp import LlamaCppBackend

        return LlamaCppBackend(model=model, cache_dir=cache_dir)
    from synthkg.llm.batching import BatchingBackend
    from synthkg.llm.hf import HFBackend

    hf = HFBackend(model, cache_dir=cache_dir, device=device)
    if workers <= 1:
        return hf
    return BatchingBackend(
        hf.generate_batch,
        name=hf.name,
        model=hf.model,
        max_batch=max_batch,
        wait_s=batch_wait,
        deadline=deadline,
    )


def _stage_budgets(pairs: list[str]) -> dict[str, int]:
    budgets = {}
    for pair in pairs:
        stage, _, value = pair.partition("=")
        if stage not in STAGES or not value.isdigit():
            raise typer.BadParameter(f"{pair!r}: expected STAGE=N with STAGE one of {', '.join(STAGES)}")
        budgets[stage] = int(value)
    return budgets


def _stop_on_signals() -> threading.Event:
    """An event set by the first Ctrl-C or SIGTERM: the run finishes its LLM call in flight, writes its
    stats and exits; the next run resumes (the calls made are cached). A second signal stops at once."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        log.warning("stopping after the LLM call in flight (signal again to stop now)")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handle)
    return stop


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
    workers: Annotated[int, typer.Option(help="Documents in flight (use hundreds on a GPU).")] = 1,
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
    raw = make_teacher_backend(backend, model, cache, device, max_batch, workers, deadline, batch_wait)
    usage = Usage()
    stop = _stop_on_signals()
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
    stats_path = out.with_suffix(".stats.json")
    history = json.loads(stats_path.read_text()) if stats_path.exists() else []
    stats_path.write_text(json.dumps([*history, stats], indent=1))
    typer.echo(json.dumps(stats, indent=1))


if __name__ == "__main__":
    app()
