"""Extracting a corpus to records: every chunk's extraction as one JSON line, without a store.

Records are what `synthkg ingest --records` and `synthkg eval ... --records` replay (ReplayExtractor) and
what `synthkg train build-set` learns from, so a long extraction (a whole corpus on a CPU, a teacher run
on a borrowed GPU) is done once and kept. A run is resumable: documents already in the output file are
skipped, each document's records are appended (and flushed) as soon as all its chunks are done, and a
torn last line from a killed run is cut off before appending (that document is redone). With the call
cache in front of the backend, a restarted run repeats no finished LLM call either.

One record (the teacher-record format of `training.dataset`, read by `synthkg.extract.replay` too):

    {"chunk_id", "document_id", "text" (what the extractor read), "source_text" (the chunk as chunked),
     "graph" (ChunkGraph), "teacher": {"model", "prompt_versions"}, "source", "title",
     "decontextualized", "rouge1_f1", "failure" (None, or "<stage>:<reason>")}
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from synthkg.chunking import chunk_text
from synthkg.extract.base import Extractor
from synthkg.llm.base import LLMError
from synthkg.model import Chunk, Document

log = logging.getLogger(__name__)


def done_documents(out: Path) -> set[str]:
    """Ids of the documents whose records `out` already holds (complete lines only)."""
    if not out.exists():
        return set()
    done = set()
    with out.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                done.add(json.loads(line)["document_id"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a torn last line from a killed run: that document is redone
    return done


def drop_torn_tail(out: Path) -> int:
    """Cut an incomplete last line (what a killed writer leaves) off `out`, so that the next record
    starts on a line of its own; returns the bytes dropped. Complete lines are never touched."""
    if not out.exists():
        return 0
    with out.open("rb+") as fh:
        size = fh.seek(0, 2)
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # Walk back to the last newline in blocks; a file of one torn line is emptied.
        position, keep = size, 0
        while position > 0:
            start = max(0, position - 65536)
            fh.seek(start)
            block = fh.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            position = start
        fh.truncate(keep)
        return size - keep


def extract_corpus(
    documents: Sequence[Document],
    extractor: Extractor,
    out: Path,
    *,
    model: str,
    prompt_versions: dict[str, str],
    workers: int = 1,
    deadline: float | None = None,
    stop: threading.Event | None = None,
    progress: bool = True,
    on_document: Callable[[int], None] | None = None,
    done_elsewhere: Sequence[Path] = (),
) -> dict[str, Any]:
    """Extract every document not yet in `out` (nor in the records files `done_elsewhere`: e.g. another
    extractor's records of the corpus' first part) and append its chunk records; returns the run's counts.

    Documents not finished by `deadline` (a time.monotonic() value) or when `stop` is set, or whose LLM
    calls failed, are left for the next run (counted in "backend_errors" when not just out of time).
    `workers` documents are extracted at once (a server engine decodes their calls together).
    `on_document` is called with the number of chunks of each document written."""
    torn = drop_torn_tail(out)
    if torn:
        log.warning("%s: dropped an incomplete last line (%d bytes) left by a stopped run", out, torn)
    done = done_documents(out).union(*(done_documents(path) for path in done_elsewhere))
    todo = [d for d in documents if d.id not in done]
    lock = threading.Lock()
    started = time.monotonic()
    stats: dict[str, Any] = {
        "documents": 0,
        "chunks": 0,
        "failed_chunks": 0,
        "words": 0,
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
                # A failed call (a server that went away, say) loses its document for this run only: it
                # is not written, so the next run does it again.
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
                    "teacher": {"model": model, "prompt_versions": prompt_versions},
                    "source": doc.source,
                    "title": doc.title,
                    "decontextualized": result.decontextualized,
                    "rouge1_f1": result.rouge1_f1,
                    "failure": result.failure,
                }
            )
        return records

    bar = tqdm(total=len(todo), unit="doc", desc="extracting", disable=not progress, smoothing=0.05)
    with (
        ThreadPoolExecutor(max(1, workers), thread_name_prefix="extract") as pool,
        out.open("a", encoding="utf-8") as fh,
    ):
        futures = {pool.submit(run, d): d for d in todo}
        try:
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
                stats["words"] += len(futures[future].text.split())
                stats["failed_chunks"] += sum(r["failure"] is not None for r in records)
                stats["decontextualized_tried"] += sum(r["rouge1_f1"] is not None for r in records)
                stats["decontextualized_kept"] += sum(bool(r["decontextualized"]) for r in records)
                bar.set_postfix(failed=stats["failed_chunks"])
                if on_document is not None:
                    on_document(len(records))
        except BaseException:  # Ctrl-C: start no more documents; written ones stay
            for f in futures:
                f.cancel()
            raise
        finally:
            bar.close()
    stats["seconds"] = round(time.monotonic() - started, 1)
    return stats


def stop_on_signals() -> threading.Event:
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


def append_stats(out: Path, stats: dict[str, Any]) -> Path:
    """Add one run's stats to `<out>.stats.json` (a list, one entry per run) and return its path."""
    path = out.with_suffix(".stats.json")
    history = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    path.write_text(json.dumps([*history, stats], indent=1), encoding="utf-8")
    return path
