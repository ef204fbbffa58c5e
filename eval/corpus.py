"""Building an evaluation store: a dataset's passages ingested into a store of their own (per dataset subset
and extractor), with a ledger of what each build cost."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from eval.datasets import Dataset
from eval.result_files import EvalError, StageCost, slug
from synthkg.config import Settings
from synthkg.embeddings import Embedder
from synthkg.extract.base import Extractor
from synthkg.ingest import IngestOptions, IngestSummary, ingest
from synthkg.runtime import ExtractorName, Runtime
from synthkg.store import GraphStore, open_store


# --- building the store ----------------------------------------------------------------------------
class PreparedCorpus(BaseModel):
    """A dataset's passages, ingested into their own store."""

    key: str
    settings: Settings
    summary: IngestSummary

    def open_store(self) -> GraphStore:
        return open_store(self.settings.store, read_only=True)

    def build_cost(self) -> tuple[dict[str, StageCost], float]:
        return build_cost(self.settings.data_dir)

    def notes(self) -> list[str]:
        """What a reader of the numbers must know about the store: chunks whose extraction failed (in
        any build run: documents record them) and passages that could not be ingested."""
        with self.open_store() as store:
            failed = sum(len(d.metadata.get("failed_chunks") or {}) for d in store.iter_documents())
        notes = [f"{failed} chunk(s) failed extraction: their passages lack graph facts"] if failed else []
        return notes + [f"not ingested: {error}" for error in self.summary.load_errors]


def corpus_key(dataset: Dataset, extractor: str) -> str:
    """Directory name of a dataset subset's store: name, extractor, size and a hash of the passage ids,
    so two subsets of one dataset never share a store (their distractors would differ)."""
    digest = hashlib.sha256("\x1f".join(sorted(p.id for p in dataset.passages)).encode()).hexdigest()[:10]
    return f"{slug(dataset.name)}-{extractor}-{len(dataset.passages)}p-{digest}"


def replay_label(extractor: str) -> str:
    """The store label of a corpus replayed from `extractor`'s records: a store of its own (never mixed
    with one that extractor built live), named so in results; every replaying command uses it, so they
    share the store."""
    return f"{extractor}-records"


def eval_settings(settings: Settings, key: str, work_dir: Path) -> Settings:
    """`settings` with the data dir (run records, merge log, a Neo4j store's index) and, for the
    embedded store, the store itself moved to `work_dir/key`. A Neo4j store is used as configured: give
    each dataset and extractor a database of its own, or their documents mix."""
    base = work_dir / key
    update: dict[str, Any] = {"data_dir": base}
    if settings.store.backend == "embedded":
        update["store"] = settings.store.model_copy(update={"path": base / "store"})
    return settings.model_copy(update=update)


def prepare_corpus(
    dataset: Dataset,
    settings: Settings,
    extractor: ExtractorName | str = "none",
    *,
    work_dir: Path | None = None,
    backend: Any = None,
    embedder: Embedder | None = None,
    progress: bool = True,
    replay: Extractor | None = None,
) -> PreparedCorpus:
    """Ingest the dataset's passages with `extractor` into the store of `eval_settings` (default work
    dir: `<data_dir>/eval`), with the parts a `Runtime` of those settings builds (`backend` and
    `embedder` replace the settings' own). Idempotent: a rerun ingests only what is missing or changed,
    and cached LLM calls cost nothing.
    `replay` (an Extractor, e.g. a ReplayExtractor of recorded teacher outputs) replaces the one that
    `extractor` names; `extractor` is then only the store's label.

    Raises IngestError (from synthkg.ingest) when the LLM backend or the store fails, EvalError when
    nothing could be ingested."""
    if not dataset.passages:
        raise EvalError(f"dataset '{dataset.name}' has no passages to ingest")
    key = corpus_key(dataset, extractor)
    run_settings = eval_settings(settings, key, work_dir or settings.data_dir / "eval")
    documents, skipped = dataset.documents()
    started = time.perf_counter()
    summary = ingest(
        documents,
        runtime=Runtime(run_settings, backend=backend, embedder=embedder),
        extractor=replay,
        options=IngestOptions(extractor="multistep" if replay else extractor),  # type: ignore[arg-type]
        progress=progress,
    )
    summary.load_errors = skipped + summary.load_errors
    record_build(run_settings.data_dir, summary, time.perf_counter() - started)
    if summary.store_totals.get("chunks", 0) == 0:
        problems = "; ".join(summary.load_errors[:3]) or "no document was loaded"
        raise EvalError(f"ingesting dataset '{dataset.name}' left the store empty: {problems}")
    return PreparedCorpus(key=key, settings=run_settings, summary=summary)


BUILD_LEDGER = "builds.jsonl"


def record_build(data_dir: Path, summary: IngestSummary, seconds: float) -> None:
    """Append one build run to the ledger `build_cost` sums: the wall seconds of the whole ingest call
    (extraction, store writes, embedding the index) and its LLM usage."""
    line = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "seconds": round(seconds, 3),
            "documents_ingested": summary.documents_ingested, "usage": summary.usage}
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / BUILD_LEDGER).open("a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(line) + "\n")


def build_cost(data_dir: Path) -> tuple[dict[str, StageCost], float]:
    """LLM cost per ingest stage ("build/<stage>") and wall seconds of building the store, summed over
    the build runs in the ledger that ingested something (a rerun that skipped every document built
    nothing). A run that crashed recorded nothing; the calls it finished come back as cache hits in the
    next run, whose usage counts what they originally cost."""
    stages: dict[str, StageCost] = {}
    wall = 0.0
    path = data_dir / BUILD_LEDGER
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for text in lines:
        try:
            run = json.loads(text)
        except ValueError:
            continue  # a line torn by a crash: its cost is unknown, not fatal
        if not run.get("documents_ingested"):
            continue
        wall += float(run.get("seconds", 0.0))
        for stage, usage in run.get("usage", {}).items():
            if stage == "total":
                continue
            cost = StageCost(
                calls=usage.get("calls", 0),
                cached_calls=usage.get("cached_calls", 0),
                prompt_tokens=usage.get("prompt_tokens", 0) + usage.get("cached_prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0)
                + usage.get("cached_completion_tokens", 0),
                seconds=usage.get("seconds", 0.0) + usage.get("cached_seconds", 0.0),
            )
            name = f"build/{stage}"
            stages[name] = stages.get(name, StageCost()).add(cost)
    return stages, round(wall, 3)
