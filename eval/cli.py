"""`synthkg eval ...`: retrieval, QA and KG-coverage evaluations on multi-hop QA datasets, and the report.

Each evaluation loads a dataset (a folder with dev.json + corpus.json, or a question file plus --corpus),
ingests its passages into a store of their own under the work dir (resumable: rerun the same command
after a crash), runs, and writes one JSON result file into --out (default eval/results)."""

from __future__ import annotations

import json
from contextlib import nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from eval.datasets import Dataset, DatasetError, load_dataset
from retrieval.modes import MODES, READER_MODES, steps_for
from synthkg.cli_options import (
    BackendOpt,
    BaseUrlOpt,
    MaxIterationsOpt,
    ModelOpt,
    StepKOpt,
    fail,
    root_settings,
    with_llm,
)
from synthkg.config import Settings
from synthkg.extract.replay import ReplayExtractor
from synthkg.runtime import ExtractorName

if TYPE_CHECKING:
    from eval.result_files import Cost, EvalConfig, Kind, ModeSummary

# The evaluations (retrieval, ingest, torch via the embedder) are imported inside the commands, so that every
# other `synthkg` command starts as fast as before.

eval_app = typer.Typer(
    help="Evaluate on multi-hop QA data: passage recall of the retrievers, answer EM/F1 of the reader, "
    "knowledge-graph coverage of the extractor; each run writes a JSON result file, `report` tabulates "
    "and plots them all.",
    no_args_is_help=True,
)

RETRIEVAL_MODES = MODES


ReaderChoice = StrEnum("ReaderChoice", {mode: mode for mode in READER_MODES})


DatasetOpt = Annotated[
    Path,
    typer.Option(
        "--dataset", "-d",
        help="A dataset folder holding dev.json (or .jsonl) and corpus.json (or .jsonl), e.g. "
        "../shared/data/multihop/musique; or your own question file (JSON list or JSONL of {id, question, "
        "answer, answer_aliases, supporting_passage_ids, ...}) together with --corpus.",
    ),
]
CorpusOpt = Annotated[
    Path | None,
    typer.Option(help="Passage file (JSON list or JSONL of {id, title, text}): required with a question "
                 "file, replaces a dataset folder's own corpus."),
]
LimitOpt = Annotated[
    int | None,
    typer.Option(min=1, help="Evaluate only the first N questions, over exactly the passages they need "
                 "(their context passages and supporting ones). Without it: every question over the whole "
                 "corpus, the harder setting."),
]
DistractorsOpt = Annotated[
    int,
    typer.Option(min=0, help="With --limit: distractor passages sampled (deterministically) for each "
                 "question that lists no context passages of its own (e.g. 2WikiMultihopQA)."),
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Folder for the JSON result file (default: eval/results).")
]
WorkDirOpt = Annotated[
    Path | None,
    typer.Option(help="Where each dataset subset gets its own store and run records (default: "
                 "<data_dir>/eval, i.e. .synthkg/eval). Reused by reruns, which then only ingest what is "
                 "missing."),
]
ProgressOpt = Annotated[bool, typer.Option(help="Show progress bars.")]
SupportingOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--supporting-only",
        help="With --limit: only the questions' supporting passages, no distractors (coverage reads nothing "
        "else; for retrieval and QA it is the easier, closed setting where the other questions' passages "
        "are the only distractors).",
    ),
]
ExtractorOpt = Annotated[
    ExtractorName | None,
    typer.Option(help="How the store is built: none (chunks only, no LLM: enough for bm25/dense), "
                 "multistep (the SynthKG teacher, 3 LLM calls per chunk), distilled (the one-call student). "
                 "Default: none when every mode is bm25/dense, else multistep."),
]
RecordsOpt = Annotated[
    list[Path] | None,
    typer.Option(help="Build the graph by replaying extraction records (JSONL from `python -m "
                 "training.synthesize`, e.g. made on a GPU machine) instead of calling the extractor's LLM; "
                 "passages without a record are ingested as failed chunks. Repeatable."),
]

RecordedOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--recorded-only",
        help="With --records: only the passages the records cover, and the questions whose supporting "
        "passages are all among them (for a corpus extracted in parts: every recorded passage is a "
        "distractor to every question).",
    ),
]


def _split(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        fail(f"--{what} is empty")
    return list(dict.fromkeys(items))


def _modes(value: str) -> list[Any]:
    modes = _split(value, "modes")
    unknown = [m for m in modes if m not in RETRIEVAL_MODES]
    if unknown:
        fail(f"unknown retrieval mode(s) {', '.join(unknown)}; choose from {', '.join(RETRIEVAL_MODES)}")
    return modes


def _extractor(choice: ExtractorName | None, modes: list[str]) -> str:
    """The extractor to build the store with: chunks only when every mode is a baseline."""
    from retrieval.modes import GRAPH_MODES

    graph_modes = [m for m in modes if m in GRAPH_MODES]
    if choice is None:
        return "multistep" if graph_modes else "none"
    if choice is ExtractorName.none and graph_modes:
        fail(f"mode(s) {', '.join(graph_modes)} need an extracted graph, but --extractor none stores chunks "
             "only; use --extractor multistep (or distilled)")
    return choice.value


def _subset(limit: int | None, distractors: int, supporting_only: bool, recorded_only: bool = False
            ) -> dict[str, Any]:
    """The config fields that say which part of the dataset a run read."""
    fields: dict[str, Any] = {"recorded_only": recorded_only}
    if limit is None:
        return fields | {"limit": None}
    return fields | {"limit": limit, "supporting_only": supporting_only,
                     "distractors": None if supporting_only else distractors}


def _replay(records: list[Path] | None, recorded_only: bool) -> ReplayExtractor | None:
    """The extractor that replays `records`, read once for both the dataset's selection and the store."""
    if recorded_only and not records:
        fail("--recorded-only needs --records")
    return ReplayExtractor.from_files(records) if records else None


def _load(dataset: Path, corpus: Path | None, limit: int | None, distractors: int,
          supporting_only: bool = False, within: ReplayExtractor | None = None) -> Dataset:
    """The dataset, cut to the first `limit` questions and what they need, then (`within`) to what the
    records cover."""
    data = load_dataset(dataset, corpus=corpus)
    if limit is not None:
        data = data.subset(limit, distractors=distractors, supporting_only=supporting_only)
    if within is not None:
        if not within.document_ids:
            raise DatasetError("--recorded-only: the records name no documents (made by an older version)")
        data = data.within(within.document_ids)
    if not data.questions:
        where = " among the recorded passages" if within is not None else ""
        raise DatasetError(f"{dataset}: the dataset has no questions{where}")
    return data


class _Run:
    """What every evaluation command does first: load the dataset and ingest it into its own store."""

    def __init__(self, settings: Settings, dataset: Dataset, extractor: str, work_dir: Path | None,
                 progress: bool, records: list[Path] | None = None,
                 replay: ReplayExtractor | None = None) -> None:
        from eval.corpus import prepare_corpus, replay_label
        from synthkg.runtime import Runtime

        if replay is not None:
            extractor = replay_label(extractor)
        self.settings, self.dataset, self.extractor = settings, dataset, extractor
        self.records = [str(p) for p in records or []]
        runtime = Runtime(settings)
        self.embedder = runtime.embedder
        typer.echo(f"dataset {dataset.name}: {len(dataset.questions)} questions, {len(dataset.passages)} "
                   f"passages; building the '{extractor}' store")
        self.prepared = prepare_corpus(
            dataset, settings, extractor, work_dir=work_dir, embedder=self.embedder, progress=progress,
            replay=replay,
        )
        self.runtime = runtime.moved(self.prepared.settings)
        totals = ", ".join(f"{v} {k}" for k, v in self.prepared.summary.store_totals.items())
        typer.echo(f"store ready ({totals}): {self.store_location}")

    @property
    def store_location(self) -> str:
        store = self.prepared.settings.store
        return str(store.path) if store.backend == "embedded" else store.neo4j_uri

    def index(self) -> Any:
        return self.runtime.open_index()

    def config(self, modes: list[str], **fields: Any) -> EvalConfig:
        """The run's configuration; the graph retrievers' parameters when a mode uses them."""
        from eval.result_files import EvalConfig
        from retrieval.modes import GRAPH_MODES
        if any(m.split("/")[0] in GRAPH_MODES for m in modes):
            fields["retrieval_params"] = self.settings.retrieval.params().model_dump()
        llm = self.settings.llm
        uses_llm = ((self.extractor != "none" and not self.records) or fields.get("reader") is not None
                    or bool(fields.get("fact_filter")))
        if self.records:
            fields["records"] = self.records
        return EvalConfig(
            modes=modes,
            extractor=self.extractor,
            embedding_model=self.settings.embedding.model,
            llm={"backend": llm.backend, "model": llm.model} if uses_llm else None,
            store=self.store_location,
            **fields,
        )

    def cost(self, eval_wall_seconds: float, **extra_stages: Any) -> Cost:
        from eval.result_files import Cost

        stages, build_seconds = self.prepared.build_cost()
        return Cost.of({**stages, **extra_stages}, build_seconds, eval_wall_seconds)

    def write(self, kind: Kind, config: EvalConfig, rows: Any, aggregates: dict[str, ModeSummary],
              cost: Cost, out: Path | None) -> None:
        """Write the result file (into `out` or the default folder) and print its aggregates."""
        from eval.result_files import DEFAULT_RESULTS_DIR, write_result

        notes = self.prepared.notes()
        path = write_result(kind, self.dataset, config, rows, aggregates, cost, out or DEFAULT_RESULTS_DIR,
                            notes=notes)
        for note in notes:
            typer.secho(f"note: {note}", fg=typer.colors.YELLOW)
        _print_summary(aggregates, path)


def _guarded(action: Any) -> Any:
    """Run `action`, turning the errors a user can cause or fix into one message without a traceback."""
    from eval.result_files import EvalError
    from synthkg.embeddings import EmbeddingError
    from synthkg.extract.replay import ReplayError
    from synthkg.indexes import SearchIndexError
    from synthkg.ingest import IngestError
    from synthkg.llm.base import LLMError, as_sentence
    from synthkg.store import StoreError

    try:
        return action()
    except (DatasetError, EvalError, IngestError, StoreError, SearchIndexError, EmbeddingError,
            ReplayError) as exc:
        fail(str(exc))
    except LLMError as exc:
        fail(f"LLM backend failed: {as_sentence(exc)} "
             "Finished calls are cached: rerun the same command to resume.")


def _print_summary(aggregates: dict[str, ModeSummary], path: Path) -> None:
    for mode, summary in aggregates.items():
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in summary.metrics.items() if v is not None)
        latency = (f", latency p50 {summary.latency_ms_p50:.1f} ms / p95 {summary.latency_ms_p95:.1f} ms"
                   if summary.latency_ms_p50 is not None and summary.latency_ms_p95 is not None else "")
        typer.echo(f"{mode:>18}: n={summary.n} {metrics}{latency}")
        for note in summary.notes:
            typer.echo(f"{'':>20}{note}")
    typer.echo(f"wrote {path}")


@eval_app.command("retrieval")
def retrieval_command(
    ctx: typer.Context,
    dataset: DatasetOpt,
    corpus: CorpusOpt = None,
    limit: LimitOpt = None,
    distractors: DistractorsOpt = 8,
    supporting_only: SupportingOnlyOpt = False,
    modes: Annotated[
        str, typer.Option(help=f"Comma-separated retrieval modes: {', '.join(MODES)} (bm25 and dense are "
                          "chunk baselines; the others need an extracted graph).")
    ] = "bm25,dense",
    k: Annotated[str, typer.Option("--k", help="Comma-separated k values of recall@k and hits@k.")] = "2,5",
    extractor: ExtractorOpt = None,
    out: OutOpt = None,
    work_dir: WorkDirOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    records: RecordsOpt = None,
    recorded_only: RecordedOnlyOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Passage recall@k / hits@k and query latency of each retrieval mode.

    A passage counts once however many of its chunks are retrieved; latency is per query, after one
    untimed warm-up query per mode."""
    chosen = _modes(modes)
    try:
        ks = sorted({int(v) for v in _split(k, "k")})
    except ValueError:
        fail(f"--k must be comma-separated integers, got {k!r}")
    if ks[0] < 1:
        fail(f"every k must be >= 1, got {k!r}")
    settings = with_llm(root_settings(ctx), backend, model, base_url)

    def run() -> None:
        from eval.retrieval_eval import eval_retrieval
        from retrieval.fact_filter import llm_fact_filter, wants_fact_filter

        replay = _replay(records, recorded_only)
        data = _load(dataset, corpus, limit, distractors, supporting_only, replay if recorded_only else None)
        job = _Run(settings, data, _extractor(extractor, chosen), work_dir, progress, records, replay)
        params = settings.retrieval.params()
        filtering = wants_fact_filter(params, chosen)
        # The LLM is started only for the fact filter: plain retrieval makes no call.
        with job.prepared.open_store() as store, (
            job.runtime.cached_backend() if filtering else nullcontext()
        ) as backend:
            result = eval_retrieval(data, store, job.index(), chosen, ks, params=params,
                                    fact_filter=llm_fact_filter(backend) if backend else None,
                                    progress=progress)
        config = job.config(chosen, ks=ks, chunk_depth=result.chunk_depth, fact_filter=filtering,
                            **_subset(limit, distractors, supporting_only, recorded_only))
        job.write("retrieval", config, result.rows, result.aggregates, job.cost(result.wall_seconds), out)

    _guarded(run)


@eval_app.command("qa")
def qa_command(
    ctx: typer.Context,
    dataset: DatasetOpt,
    corpus: CorpusOpt = None,
    limit: LimitOpt = None,
    distractors: DistractorsOpt = 8,
    supporting_only: SupportingOnlyOpt = False,
    modes: Annotated[
        str, typer.Option(help=f"Comma-separated retrieval modes the reader reads from ({', '.join(MODES)}); "
                          "each is evaluated in turn.")
    ] = "graph",
    reader: Annotated[
        ReaderChoice, typer.Option(help="single: one retrieval and one LLM call per question; iterative: "
                                   "the reader asks sub-queries (IterDRAG) until it can answer; decompose: "
                                   "one call plans single-fact sub-questions, each answered from its own "
                                   "passages, then one call composes the answer (fewer tokens).")
    ] = ReaderChoice["iterative"],
    k: Annotated[int, typer.Option("--k", min=1, help="Passages retrieved per query.")] = 5,
    max_iterations: MaxIterationsOpt = None,
    step_k: StepKOpt = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Completion tokens per reader call.")] = 256,
    extractor: ExtractorOpt = None,
    out: OutOpt = None,
    work_dir: WorkDirOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    records: RecordsOpt = None,
    recorded_only: RecordedOnlyOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Answer EM / F1 of the reader, with LLM calls, tokens and seconds per question.

    EM and F1 are the best over the answer and its aliases. LLM calls are cached: a rerun resumes and
    reports the same token counts."""
    chosen = _modes(modes)
    settings = with_llm(root_settings(ctx), backend, model, base_url)

    def run() -> None:
        from eval.qa_eval import eval_qa

        replay = _replay(records, recorded_only)
        data = _load(dataset, corpus, limit, distractors, supporting_only, replay if recorded_only else None)
        job = _Run(settings, data, _extractor(extractor, chosen), work_dir, progress, records, replay)
        rows: list[Any] = []
        aggregates: dict[str, ModeSummary] = {}
        stages: dict[str, Any] = {}
        wall = 0.0
        with job.prepared.open_store() as store, job.runtime.cached_backend() as backend:
            index = job.index()
            for mode in chosen:
                result = eval_qa(data, store, index, backend, mode, reader.value, k,
                                 max_iterations=max_iterations, step_k=step_k,
                                 params=settings.retrieval.params(),
                                 context_tokens=settings.llm.context_size,
                                 max_tokens=max_tokens, progress=progress)
                rows += result.rows
                aggregates.update(result.aggregates)
                stages.update({f"qa/{name}": result.cost for name in result.aggregates})
                wall += result.wall_seconds
        config = job.config(list(aggregates), k=k, reader=reader.value,
                            **_subset(limit, distractors, supporting_only, recorded_only),
                            max_iterations=(None if reader.value == "single"
                                            else steps_for(reader.value, max_iterations)),
                            step_k=None if reader.value == "single" else step_k or k)
        job.write("qa", config, rows, aggregates, job.cost(wall, **stages), out)

    _guarded(run)


@eval_app.command("kg")
def kg_command(
    ctx: typer.Context,
    dataset: DatasetOpt,
    corpus: CorpusOpt = None,
    limit: LimitOpt = None,
    distractors: DistractorsOpt = 8,
    extractor: Annotated[
        ExtractorName, typer.Option(help="The extractor whose graph is measured: multistep or distilled "
                                      "(none extracts nothing and scores 0).")
    ] = ExtractorName.multistep,
    threshold: Annotated[
        float, typer.Option(min=-1.0, max=1.0, help="Cosine similarity at which a gold triple counts as "
                            "covered by its best extracted triple (Distill-SynthKG uses 0.88).")
    ] = 0.88,
    supporting_only: SupportingOnlyOpt = False,
    out: OutOpt = None,
    work_dir: WorkDirOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    records: RecordsOpt = None,
    recorded_only: RecordedOnlyOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Knowledge-graph coverage of the gold triples by the extracted graph.

    Per question: the share of its gold triples (2Wiki evidence, MuSiQue decompositions) stated by the
    triples extracted from its supporting passages, and by the whole graph. Questions without gold
    triples are counted, not scored."""
    settings = with_llm(root_settings(ctx), backend, model, base_url)

    def run() -> None:
        from eval.kg_eval import eval_kg

        replay = _replay(records, recorded_only)
        data = _load(dataset, corpus, limit, distractors, supporting_only, replay if recorded_only else None)
        job = _Run(settings, data, extractor.value, work_dir, progress, records, replay)
        with job.prepared.open_store() as store:
            result = eval_kg(data, store, job.embedder, threshold, progress=progress)
        config = job.config([extractor.value], thresholds={"coverage_similarity": threshold},
                            **_subset(limit, distractors, supporting_only, recorded_only))
        job.write("kg", config, result.rows, result.aggregates, job.cost(result.wall_seconds), out)

    _guarded(run)


@eval_app.command("passages")
def passages_command(
    dataset: DatasetOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="The corpus file to write (JSON list of "
                                      "{id, title, text}); overwritten.")],
    corpus: CorpusOpt = None,
    limit: LimitOpt = None,
    distractors: DistractorsOpt = 8,
    supporting_only: SupportingOnlyOpt = False,
) -> None:
    """Write the passages an evaluation reads as a corpus file, to extract exactly those.

    With --limit: the first N questions' context and supporting passages (plus sampled distractors where
    a question lists no context), in corpus order; without it, every question's. Extract the file with
    `synthkg extract FILE --out RECORDS` (resumable), then evaluate with `--records RECORDS
    --recorded-only`: the passages keep their dataset ids, so the records replay into the dataset's store.
    HotpotQA dev lists each question's 10 context passages but only 56% of its corpus is any question's
    context: this leaves the other 44% out."""

    def run() -> None:
        data = load_dataset(dataset, corpus=corpus)
        data = data.subset(limit or len(data.questions), distractors=distractors,
                           supporting_only=supporting_only)
        out.parent.mkdir(parents=True, exist_ok=True)
        records = [{"id": p.id, "title": p.title, "text": p.text} for p in data.passages]
        lines = ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)  # one passage per line
        out.write_text(f"[\n{lines}\n]\n", encoding="utf-8")
        typer.echo(f"wrote {len(records)} passages, those of {len(data.questions)} question(s), to {out}")

    _guarded(run)


@eval_app.command("report")
def report_command(
    results: Annotated[
        Path | None,
        typer.Option(help="Folder of result files; the table (report.md) and plots go there too "
                     "(default: eval/results)."),
    ] = None,
    readme: Annotated[
        Path | None,
        typer.Option(help="A README whose text between <!-- eval-report:start --> and <!-- eval-report:end "
                     "--> is replaced by the table and plots (nothing else is touched)."),
    ] = None,
) -> None:
    """Tabulate and plot every result file, optionally into a README.

    The table keeps the latest run per dataset, kind, mode and extractor; the plots show accuracy
    against reader tokens per question and recall@5 per mode."""
    from eval.report import ReportError, build_report
    from eval.result_files import DEFAULT_RESULTS_DIR

    try:
        report = build_report(results or DEFAULT_RESULTS_DIR, readme=readme)
    except ReportError as exc:
        fail(str(exc))
    typer.echo(report.table)
    for path in report.plots:
        typer.echo(f"wrote {path}")
    for note in report.notes:
        typer.echo(note)
