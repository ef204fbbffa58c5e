"""Which stage of graph retrieval buys how much recall: the graph retrievers run with their stages added one
at a time, over one store, in one run, against the BM25 and dense baselines.

    python -m eval.benchmarks.retrieval_ablation --dataset ../shared/data/multihop/musique \\
        --records data/records/musique-dev/student_json.jsonl

The store is the one `synthkg eval retrieval --records ... --recorded-only --extractor distilled` builds
(the same work dir and key, so an earlier eval's store is reused, not rebuilt): the recorded passages, and
the dev questions whose supporting passages are all among them. Each stage is a retrieval mode and the
`RetrievalParams` it runs with (the configured `[retrieval]` knobs, changed by the stage's overrides);
stages of one mode are cumulative, the last one of each is that mode as shipped. Retrieval uses no LLM, so
this runs in minutes once the store is built; latencies are only comparable on a quiet machine.

The LLM fact filter (HippoRAG 2's recognition memory) runs only with --fact-filter, on the settings'
[llm] (one call per question; its calls are part of that row's latency)."""

from __future__ import annotations

import json
import os
import platform
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from eval.corpus import PreparedCorpus, prepare_corpus, replay_label
from eval.datasets import Dataset, load_dataset
from eval.retrieval_eval import eval_retrieval
from retrieval.fact_filter import llm_fact_filter
from retrieval.modes import Mode
from retrieval.retrievers import FactFilter
from synthkg.config import RetrievalParams, Settings
from synthkg.extract.replay import ReplayExtractor
from synthkg.llm.cache import Usage
from synthkg.runtime import Runtime

RESULTS = Path(__file__).resolve().parents[1] / "results"
KS = (2, 5)
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@dataclass(frozen=True)
class Stage:
    """One row: `mode` run with the configured knobs changed by `overrides` (dotted keys reach
    `hippo.*`), and what the row adds to the one before it."""

    name: str
    mode: Mode
    adds: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def params(self, base: RetrievalParams) -> RetrievalParams:
        data = base.model_dump()
        for key, value in self.overrides.items():
            section, _, knob = key.rpartition(".")
            (data[section] if section else data)[knob] = value
        return RetrievalParams(**data)


# The switches that turn our additions off: common nouns linked as question entities, no title seeds,
# no synonym edges, no dense seeding of passage nodes.
_BARE = {"named_seeds_only": False, "title_seed_weight": 0.0}
_NO_SYNONYMS = {"hippo.synonyms_per_entity": 0}

STAGES: tuple[Stage, ...] = (
    Stage("bm25", "bm25", "baseline: BM25 over chunks"),
    Stage("dense", "dense", "baseline: MiniLM cosine over chunks"),
    Stage("hippo: facts only", "hippo", "PageRank over entities and passages seeded by the top facts' "
          "entities alone (no dense passage seeds, no synonym edges; common nouns linked)",
          {**_BARE, **_NO_SYNONYMS, "hippo.passage_reset": 0.0}),
    Stage("hippo: + dense passage seeds", "hippo", "passage nodes also seeded by their dense score (5% of "
          "the reset mass), HippoRAG 2's dense-sparse integration", {**_BARE, **_NO_SYNONYMS}),
    Stage("hippo: + synonym edges", "hippo", "edges between entity names that embed alike (cosine >= 0.8)",
          _BARE),
    Stage("hippo: + names only", "hippo", "only names (a capital or a digit) linked as question entities, "
          "not common nouns ('director')", {"title_seed_weight": 0.0}),
    Stage("hippo (shipped)", "hippo", "a passage whose title the question names seeds the walk"),
    Stage("hippo: + LLM fact filter", "hippo", "the LLM keeps the top facts that bear on the question "
          "before they seed the walk (HippoRAG 2's recognition memory; one call per query)",
          {"hippo.fact_filter": True}),
    Stage("graph: facts + 1-hop subgraph", "graph", "top propositions and the propositions of entities "
          "within a hop of the question's (common nouns linked, no titles)", _BARE),
    Stage("graph: + names only", "graph", "only names linked as question entities",
          {"title_seed_weight": 0.0}),
    Stage("graph (shipped)", "graph", "title seeds where no entity of the titled passage is linked"),
    Stage("ppr: facts + 1-hop subgraph", "ppr", "PageRank over the subgraph instead of closeness", _BARE),
    Stage("ppr: + names only", "ppr", "only names linked as question entities", {"title_seed_weight": 0.0}),
    Stage("ppr (shipped)", "ppr", "title seeds where no entity of the titled passage is linked"),
)


def recorded_dataset(dataset: Path, records: list[Path]) -> tuple[Dataset, ReplayExtractor]:
    """The dataset cut to what the records cover (as `--recorded-only`), and the replaying extractor."""
    replay = ReplayExtractor.from_files(records)
    data = load_dataset(dataset).within(replay.document_ids)
    if not data.questions:
        raise typer.BadParameter(f"no question of {dataset} has all its supporting passages in the records")
    return data, replay


def prepare_recorded(dataset: Path, records: list[Path], settings: Settings, work_dir: Path | None,
                     progress: bool) -> tuple[Dataset, Runtime, PreparedCorpus]:
    """The recorded part of `dataset` (as `recorded_dataset`) and its store, built or reused under the key
    `synthkg eval retrieval --records ... --recorded-only --extractor distilled` uses."""
    data, replay = recorded_dataset(dataset, records)
    typer.echo(f"{data.name}: {len(data.questions)} questions over {len(data.passages)} recorded passages")
    runtime = Runtime(settings)
    prepared = prepare_corpus(data, settings, replay_label("distilled"), work_dir=work_dir,
                              embedder=runtime.embedder, progress=progress, replay=replay)
    return data, runtime, prepared


def run_stages(data: Dataset, store: Any, index: Any, base: RetrievalParams,
               stages: tuple[Stage, ...] = STAGES, fact_filter: FactFilter | None = None,
               progress: bool = True) -> list[dict[str, Any]]:
    """Recall@2/@5 and latency of each stage, with its ratio to the dense stage's recall@5. A stage that
    turns the LLM fact filter on runs only when `fact_filter` is given (else it is left out)."""
    rows = []
    for stage in stages:
        params = stage.params(base)
        if params.hippo.fact_filter and fact_filter is None:
            continue
        result = eval_retrieval(data, store, index, [stage.mode], KS, params=params,
                                fact_filter=fact_filter if params.hippo.fact_filter else None,
                                progress=progress)
        summary = result.aggregates[stage.mode]
        rows.append({
            "stage": stage.name, "mode": stage.mode, "adds": stage.adds, "overrides": stage.overrides,
            "n": summary.n, **{k: summary.metrics.get(k) for k in ("recall@2", "recall@5", "answer@5")},
            "latency_ms_p50": summary.latency_ms_p50,
        })
    dense = next((r["recall@5"] for r in rows if r["stage"] == "dense"), None)
    for row in rows:
        row["x_dense_recall@5"] = round(row["recall@5"] / dense, 3) if dense and row["recall@5"] else None
    return rows


@app.command()
def main(
    dataset: Annotated[Path, typer.Option(help="A dataset folder (dev.json + corpus.json).")],
    records: Annotated[list[Path], typer.Option(help="Extraction records of the corpus (repeatable).")],
    work_dir: Annotated[Path | None, typer.Option(help="Stores of the eval runs (default: .synthkg/eval).")]
    = None,
    out: Annotated[Path | None, typer.Option(help="Result file (default: eval/results/...).")] = None,
    fact_filter: Annotated[bool, typer.Option(
        help="Also run the LLM fact-filter stage with the settings' [llm] (one call per question)")] = False,
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
) -> None:
    """Recall of every stage of the graph retrievers, added one at a time, over a recorded corpus."""
    settings = Settings()
    data, runtime, prepared = prepare_recorded(dataset, records, settings, work_dir, progress)
    usage = Usage()
    with prepared.open_store() as store, (
        runtime.cached_backend(usage) if fact_filter else nullcontext()
    ) as backend:
        index = runtime.moved(prepared.settings).open_index()
        rows = run_stages(data, store, index, settings.retrieval.params(),
                          fact_filter=llm_fact_filter(backend) if backend else None, progress=progress)
    result = {
        "benchmark": "retrieval_ablation",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": data.name,
        "questions": len(data.questions),
        "passages": len(data.passages),
        "records": [str(p) for p in records],
        "embedding_model": settings.embedding.model,
        "fact_filter_llm": ({"backend": settings.llm.backend, "model": settings.llm.model,
                             **asdict(usage.total())} if fact_filter else None),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "rows": rows,
    }
    path = out or RESULTS / f"retrieval_ablation-{data.name}-{len(data.passages)}p.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        typer.echo(f"{row['stage']:>32}: recall@2 {row['recall@2']}  recall@5 {row['recall@5']}  "
                   f"({row['x_dense_recall@5']}x dense)  answer@5 {row['answer@5']}  "
                   f"p50 {row['latency_ms_p50']:.1f} ms")
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
