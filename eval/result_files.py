"""The records of an evaluation run (config, per-question rows, per-mode summaries, cost) and the JSON result
file each run writes to eval/results/."""

from __future__ import annotations

import os
import platform
import re
import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from eval.datasets import Dataset
from eval.metrics import (
    TripleScore,
)

Kind = Literal["retrieval", "qa", "kg"]
DEFAULT_RESULTS_DIR = Path("eval/results")
DEFAULT_KS = (2, 5)
# Packages whose versions decide the numbers; the ones not installed are left out.
KEY_PACKAGES = (
    "numpy", "rank-bm25", "sentence-transformers", "torch", "networkx", "pydantic", "llama-cpp-python",
    "openai",
)


class EvalError(RuntimeError):
    """The evaluation cannot run (empty store, empty index, nothing to score); the message says why."""


# --- result records --------------------------------------------------------------------------------
class DatasetInfo(BaseModel):
    name: str
    questions: int
    passages: int


class StageCost(BaseModel):
    """LLM spending of one stage. Tokens include what cached calls originally cost, so the numbers do
    not depend on what an earlier run left in the cache."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def add(self, other: StageCost) -> StageCost:
        return StageCost(
            calls=self.calls + other.calls,
            cached_calls=self.cached_calls + other.cached_calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            seconds=round(self.seconds + other.seconds, 3),
        )


class Cost(BaseModel):
    """What a result cost: LLM calls and tokens per stage ("build/<ingest stage>" for building the
    store, "qa" for the reader), with totals, and wall seconds of the build and of the evaluation."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    build_wall_seconds: float = 0.0
    eval_wall_seconds: float = 0.0
    stages: dict[str, StageCost] = Field(default_factory=dict)

    @classmethod
    def of(cls, stages: dict[str, StageCost], build_wall_seconds: float, eval_wall_seconds: float) -> Cost:
        total = StageCost()
        for stage in stages.values():
            total = total.add(stage)
        return cls(
            llm_calls=total.calls,
            prompt_tokens=total.prompt_tokens,
            completion_tokens=total.completion_tokens,
            build_wall_seconds=round(build_wall_seconds, 3),
            eval_wall_seconds=round(eval_wall_seconds, 3),
            stages=stages,
        )

    @property
    def build_tokens(self) -> int:
        build = [s for name, s in self.stages.items() if name.startswith("build/")]
        return sum(s.prompt_tokens + s.completion_tokens for s in build)


class ModeSummary(BaseModel):
    """Aggregates of one mode (retrieval mode, retriever/reader pair, or KG scope) over the questions."""

    n: int = Field(description="questions scored")
    skipped: int = Field(0, description="questions with nothing to score (no gold passages / triples)")
    metrics: dict[str, float | None] = Field(default_factory=dict)
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    latency_ms_mean: float | None = None
    notes: list[str] = Field(default_factory=list)


class EvalConfig(BaseModel):
    modes: list[str]
    ks: list[int] = Field(default_factory=list, description="retrieval: the k of recall@k and hits@k")
    k: int | None = Field(None, description="qa: passages retrieved per query")
    chunk_depth: int | None = Field(None, description="retrieval: chunks fetched before dedup to passages")
    reader: str | None = None
    max_iterations: int | None = Field(None, description="qa, iterative or decompose reader: its step budget")
    step_k: int | None = Field(None, description="qa, iterative or decompose reader: passages per sub-query")
    extractor: str
    embedding_model: str
    llm: dict[str, str] | None = Field(None, description="backend and model of the extractor / reader")
    thresholds: dict[str, float] = Field(default_factory=dict)
    limit: int | None = Field(None, description="only the first N questions and the passages they need")
    distractors: int | None = Field(None, description="with limit: sampled distractors per question "
                                    "that lists no context passages")
    supporting_only: bool = Field(False, description="with limit: supporting passages only")
    recorded_only: bool = Field(False, description="only the passages the records cover and the questions "
                                "whose supporting passages are all among them")
    retrieval_params: dict[str, Any] | None = None
    fact_filter: bool = Field(False, description="retrieval: mode hippo's LLM fact filter was on")
    store: str | None = Field(None, description="the store the run read")
    records: list[str] | None = Field(None, description="extraction records replayed to build the graph")


class EvalResult(BaseModel):
    """One result file."""

    kind: Kind
    dataset: DatasetInfo
    config: EvalConfig
    versions: dict[str, str]
    rows: list[dict[str, Any]]
    aggregates: dict[str, ModeSummary]
    cost: Cost
    date: str
    notes: list[str] = Field(default_factory=list, description="e.g. chunks whose extraction failed")


class RetrievalRow(BaseModel):
    question_id: str
    mode: str
    gold: list[str]
    retrieved: list[str] = Field(description="passage ids, best first, deduplicated, at most max(ks)")
    metrics: dict[str, float] = Field(default_factory=dict, description="recall@k, hits@k (if gold)")
    latency_ms: float
    question_type: str | None = Field(None, description="the dataset's type of the question (MuSiQue's "
                                      "'3hop1', 2Wiki's 'comparison'), for recall by type")


class QARow(BaseModel):
    question_id: str
    mode: str = Field(description="retrieval mode / reader mode")
    question: str
    prediction: str
    golds: list[str]
    em: float
    f1: float
    calls: int
    cached_calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cited_passages: list[str]
    forced_final: bool
    warnings: list[str] = Field(default_factory=list)
    sub_queries: int = Field(0, description="sub-queries retrieved for (the model's and templated ones)")
    bridged: int = Field(0, description="of them, the graph's templated bridge queries")
    rejected_sub_queries: int = Field(0, description="sub-queries not retrieved for (copies, repeats...)")


class ScopeCoverage(BaseModel):
    coverage: float | None
    covered: int
    mean_similarity: float | None
    mean_token_f1: float | None
    n_extracted: int
    triples: list[TripleScore]


class KGRow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    question_id: str
    n_gold: int
    missing_passages: list[str] = Field(default_factory=list, description="supporting passages not in store")
    supporting: ScopeCoverage | None = None
    global_: ScopeCoverage | None = Field(None, alias="global")


class RetrievalEval(BaseModel):
    rows: list[RetrievalRow]
    aggregates: dict[str, ModeSummary]
    chunk_depth: int
    wall_seconds: float


class QAEval(BaseModel):
    rows: list[QARow]
    aggregates: dict[str, ModeSummary]
    cost: StageCost
    wall_seconds: float


class KGEval(BaseModel):
    rows: list[KGRow]
    aggregates: dict[str, ModeSummary]
    wall_seconds: float


def latency_stats(values_ms: Sequence[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"latency_ms_p50": None, "latency_ms_p95": None, "latency_ms_mean": None}
    p50, p95 = np.percentile(np.asarray(values_ms, dtype=np.float64), [50, 95])
    return {
        "latency_ms_p50": round(float(p50), 3),
        "latency_ms_p95": round(float(p95), 3),
        "latency_ms_mean": round(statistics.fmean(values_ms), 3),
    }


def mean_or_none(values: Iterable[float]) -> float | None:
    items = list(values)
    return round(statistics.fmean(items), 6) if items else None


# --- result files ----------------------------------------------------------------------------------
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("synthkg", *KEY_PACKAGES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_result(
    kind: Kind,
    dataset: Dataset,
    config: EvalConfig,
    rows: Sequence[BaseModel],
    aggregates: dict[str, ModeSummary],
    cost: Cost,
    out_dir: Path = DEFAULT_RESULTS_DIR,
    notes: Sequence[str] = (),
) -> Path:
    """Write `<out_dir>/<kind>-<dataset>-<modes>-<UTC timestamp>.json` (atomically) and return it."""
    now = datetime.now(UTC)
    result = EvalResult(
        kind=kind,
        dataset=DatasetInfo(
            name=dataset.name, questions=len(dataset.questions), passages=len(dataset.passages)
        ),
        config=config,
        versions=package_versions(),
        rows=[r.model_dump(mode="json", by_alias=True) for r in rows],
        aggregates=aggregates,
        cost=cost,
        date=now.isoformat(timespec="seconds"),
        notes=list(notes),
    )
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    name = "-".join([kind, slug(dataset.name), slug("+".join(config.modes)), stamp])
    path = Path(out_dir) / f"{name}.json"
    write_if_changed(path, result.model_dump_json(indent=1))
    return path


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+]+", "_", text).strip("_") or "unnamed"


def write_if_changed(path: Path, text: str) -> None:
    """Atomic write (temp file + rename); an identical file is left alone."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
