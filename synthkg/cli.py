"""The `synthkg` command line: a thin layer over the library. Every command reads one Settings object
(TOML file, environment, then the options given here)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from eval.cli import eval_app
from synthkg.cli_options import (
    BackendOpt,
    BaseUrlOpt,
    EngineOpt,
    ModelOpt,
    SlotsOpt,
    echo,
    fail,
    with_llm,
)
from synthkg.config import Settings, load_settings
from synthkg.store import StoreError, open_store
from training.cli import app as train_app

app = typer.Typer(
    name="synthkg",
    help="Build knowledge graphs from text with LLMs (SynthKG), query them with iterative graph "
    "retrieval, and distill the extractor into a small model.\n\n"
    "Settings come from ./synthkg.toml (or --config / $SYNTHKG_CONFIG), then SYNTHKG_* and NEO4J_* "
    "environment variables, then the options below. `synthkg config show` prints the result.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
merges_app = typer.Typer(
    help="See and undo the entity merges that cross-document resolution made during ingestion.",
    no_args_is_help=True,
)
app.add_typer(merges_app, name="merges")
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")


class StoreBackend(StrEnum):
    embedded = "embedded"
    neo4j = "neo4j"


class ExportFormatOption(StrEnum):
    graphml = "graphml"
    json = "json"


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML settings file (default: ./synthkg.toml).")
    ] = None,
    store: Annotated[
        StoreBackend | None, typer.Option(help="Graph store: embedded (default, no server) or neo4j.")
    ] = None,
    store_path: Annotated[
        Path | None, typer.Option(help="Directory of the embedded store (default: .synthkg/store).")
    ] = None,
    neo4j_uri: Annotated[str | None, typer.Option(help="Bolt URI; or set NEO4J_URI.")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="-v info, -vv debug.")] = 0,
) -> None:
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    store_overrides: dict[str, Any] = {}
    if store is not None:
        store_overrides["backend"] = store.value
    if store_path is not None:
        store_overrides["path"] = store_path
    if neo4j_uri is not None:
        store_overrides["neo4j_uri"] = neo4j_uri
    try:
        settings = load_settings(config)
    except (FileNotFoundError, ValueError) as exc:
        fail(f"bad settings: {exc}")
    if store_overrides:
        settings = settings.model_copy(
            update={"store": settings.store.model_copy(update=store_overrides)}
        )
    ctx.obj = settings


def settings_of(ctx: typer.Context) -> Settings:
    return ctx.find_root().obj


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON, secrets masked."""
    echo(json.dumps(settings_of(ctx).masked(), indent=2))


@app.command()
def models(ctx: typer.Context) -> None:
    """The local models synthkg can run without a server (from PyPI packages) and the shipped student:
    whether each is installed and ready, and how to install it."""
    from synthkg.llm.factory import DEFAULT_STUDENT, shipped_student_path
    from synthkg.llm.local_models import list_local_models

    for model in list_local_models(settings_of(ctx).cache_dir):
        state = "ready" if model.assembled else "installed" if model.installed else "not installed"
        hint = "" if model.installed else f"  ({model.install_hint})"
        echo(f"{model.name:<20} {model.size_mb:>6} MB  {state}{hint}")
    shipped = shipped_student_path()
    state = "ready" if (shipped / "adapter_config.json").is_file() else "missing"
    echo(f"{DEFAULT_STUDENT:<20} {'':>6}     {state}: distilled extractor's LoRA adapter ({shipped})")


@merges_app.command("list")
def merges_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per merge.")] = False,
) -> None:
    """Every merge, numbered (the numbers `undo` takes): which name went into which entity, how (alias
    or embedding similarity, with its score) and in which document; undone ones are marked."""
    from synthkg.model import normalize_name
    from synthkg.resolve import MergeLog

    log = MergeLog(settings_of(ctx).data_dir)
    blocked = log.blocked()
    merges = log.read()
    if not merges:
        echo(f"no merges recorded in {log.path}")
        return
    for number, merge in enumerate(merges, start=1):
        undone = (normalize_name(merge.name), merge.into_id) in blocked
        if as_json:
            echo(json.dumps({"number": number, **merge.__dict__, "undone": undone}, ensure_ascii=False))
        else:
            mark = "  [undone]" if undone else ""
            how = f"{merge.method} {merge.score:.2f}"
            echo(f"{number:>4}. {merge.name!r} -> {merge.into_name!r} ({how}, document "
                       f"{merge.document_id}){mark}")


@merges_app.command("undo")
def merges_undo(
    ctx: typer.Context,
    numbers: Annotated[list[int], typer.Argument(help="Merge numbers from `synthkg merges list`.")],
) -> None:
    """Never make these merges again. The store changes when the merging documents are ingested again
    (the command to run is printed): their names then become entities of their own."""
    from synthkg.resolve import MergeLog

    settings = settings_of(ctx)
    log = MergeLog(settings.data_dir)
    merges = log.read()
    bad = [n for n in numbers if not 1 <= n <= len(merges)]
    if bad:
        fail(f"no merge numbered {', '.join(map(str, bad))}: `synthkg merges list` shows 1 to {len(merges)}")
    documents = set()
    for number in numbers:
        merge = merges[number - 1]
        log.block(merge)
        documents.add(merge.document_id)
        echo(f"undone: {merge.name!r} will not be merged into {merge.into_name!r} again")
    sources = set()
    try:
        with open_store(settings.store, read_only=True) as store:
            for document_id in documents:
                document = store.get_document(document_id)
                sources.add(document.source if document is not None and document.source else document_id)
    except StoreError as exc:
        fail(str(exc))
    echo("to apply it, re-ingest: synthkg ingest --force " + " ".join(sorted(sources)))


@app.command()
def stats(ctx: typer.Context) -> None:
    """Count documents, chunks, entities, propositions and relations in the store."""
    settings = settings_of(ctx)
    try:
        with open_store(settings.store, read_only=True) as store:
            counts = store.counts()
    except StoreError as exc:
        fail(str(exc))
    for name, value in counts.model_dump().items():
        echo(f"{name:>13}: {value}")


@app.command()
def check(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option(
        "--repair", help="Keep every intact record: move the damaged files into <store>/damaged-<time>/ "
                         "(never deleting them), write a fresh snapshot, and print what was lost.")] = False,
) -> None:
    """Check the embedded store's files (checksums, operation sequence, references between records) and
    print each file's state, the intact records, and what is lost. Exit code: 0 healthy, 1 damaged, 2 not
    checked (a writer holds the store, no store there, or a Neo4j store)."""
    settings = settings_of(ctx)
    if settings.store.backend != "embedded":
        echo("check applies to the embedded store only; use Neo4j's own tools for a Neo4j store")
        raise typer.Exit(2)
    from synthkg.store.check import check_store, repair_store

    try:
        report = repair_store(settings.store.path) if repair else check_store(settings.store.path)
    except StoreError as exc:
        fail(str(exc), code=2)
    for line in report.lines():
        echo(line)
    raise typer.Exit(0 if report.healthy else 1)


@app.command()
def export(
    ctx: typer.Context,
    output: Annotated[Path, typer.Argument(help="File to write.")],
    format: Annotated[ExportFormatOption, typer.Option("--format", "-f", help="graphml or json.")] = (
        ExportFormatOption.json
    ),
) -> None:
    """Export the whole graph (documents, chunks, propositions, entities, relations)."""
    settings = settings_of(ctx)
    try:
        with open_store(settings.store, read_only=True) as store:
            path = store.export(output, format.value)
    except StoreError as exc:
        fail(str(exc))
    echo(f"wrote {path}")


class ExtractorOption(StrEnum):
    multistep = "multistep"
    distilled = "distilled"
    none = "none"


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(help="Files or directories: .txt, .md, .json/.jsonl records with id/title/text."),
    ],
    extractor: Annotated[
        ExtractorOption,
        typer.Option(help="multistep: the SynthKG teacher workflow (3 calls per chunk); distilled: the "
                     "one-call student; none: store and index chunks only (BM25/dense baselines)."),
    ] = ExtractorOption.multistep,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    engine: EngineOpt = None,
    slots: SlotsOpt = None,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Documents extracted in parallel (default: the server engine's slots, "
                     "else the settings' [llm] concurrency)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Ingest at most N documents.")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Re-extract chunks that failed before.")] = False,
    force: Annotated[
        bool, typer.Option(help="Re-extract unchanged documents (cached calls are free).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Estimate LLM calls and tokens; call nothing, write nothing.")
    ] = False,
    records: Annotated[
        list[Path] | None,
        typer.Option(help="Replay extraction records (JSONL from `python -m training.synthesize`, e.g. made "
                     "on a GPU machine) instead of calling an LLM; chunks without a record fail. "
                     "Repeatable."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Extract a knowledge graph from documents into the store (idempotent and resumable: rerun the
    same command after a crash or Ctrl-C; finished LLM calls come from the cache).

    Exit codes: 0 everything loaded and ingested; 1 nothing could be ingested (or an error stopped the
    run); 2 the readable documents were ingested but some files or records were skipped (listed)."""
    from synthkg.extract.replay import ReplayError, ReplayExtractor
    from synthkg.ingest import IngestError, IngestOptions
    from synthkg.ingest import ingest as run_ingest

    settings = with_llm(settings_of(ctx), backend, model, base_url, engine=engine, slots=slots)
    options = IngestOptions(extractor=extractor.value, limit=limit, retry_failed=retry_failed, force=force,
                            dry_run=dry_run, concurrency=concurrency)
    try:
        replay = ReplayExtractor.from_files(records) if records else None
        summary = run_ingest(paths, settings=settings, options=options, extractor=replay, progress=progress)
    except (IngestError, StoreError, ReplayError) as exc:
        fail(str(exc))
    echo(summary.render())
    if summary.load_errors:
        raise typer.Exit(1 if summary.documents_loaded == 0 else PARTLY_LOADED)


# --- asking the graph: query, retrieve, reindex ------------------------------------------------------
class RetrievalModeOption(StrEnum):
    graph = "graph"
    ppr = "ppr"
    hippo = "hippo"
    bm25 = "bm25"
    dense = "dense"


QuestionArg = Annotated[str, typer.Argument(help="The question, in quotes.")]
ModeOpt = Annotated[
    RetrievalModeOption,
    typer.Option("--mode", help="graph: propositions + entity graph (default); ppr: personalized PageRank "
                 "over the graph; bm25 / dense: plain chunk search baselines."),
]
KOpt = Annotated[int, typer.Option("--k", min=1, help="Chunks retrieved per (sub-)query.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
TEXT_PREVIEW_CHARS = 200


PARTLY_LOADED = 2  # exit code: what could be read was ingested, some input was skipped


@app.command()
def extract(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(help="Files or directories: .txt, .md, .json/.jsonl records with id/title/text."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Extraction records (JSONL), appended to.")],
    extractor: Annotated[
        ExtractorOption,
        typer.Option(help="distilled: the one-call student (default); multistep: the teacher workflow."),
    ] = ExtractorOption.distilled,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    engine: EngineOpt = None,
    slots: SlotsOpt = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Documents in flight (default: the server engine's slots, else the "
                     "settings' [llm] concurrency)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="The first N documents only.")] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Start no document after this many seconds (resume later).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Extract a corpus to records without a store: one JSON line per chunk, replayable with
    `synthkg ingest --records` or `synthkg eval ... --records`, and a training set for `synthkg train
    build-set`. Resumable: documents already in --out are skipped, so rerun the same command after a
    stop, a crash or --max-seconds. Ctrl-C stops after the calls in flight; each run's counts, tokens
    and seconds are appended to <out>.stats.json."""
    from synthkg.extract.corpus import append_stats, extract_corpus, stop_on_signals
    from synthkg.ingest import IngestError, make_extraction
    from synthkg.llm.cache import Usage
    from synthkg.loaders import load_documents

    if extractor == ExtractorOption.none:
        fail("--extractor none extracts nothing: use `synthkg ingest --extractor none` for chunks only")
    settings = with_llm(settings_of(ctx), backend, model, base_url, engine=engine, slots=slots)
    loaded = load_documents(paths, limit=limit)
    for error in loaded.errors:
        echo(f"warning: {error}", err=True, fg=typer.colors.YELLOW)
    if not loaded.documents:
        fail("no documents to extract")
    usage = Usage()
    try:
        setup = make_extraction(settings, extractor.value, usage=usage)
    except IngestError as exc:
        fail(str(exc))
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    parallel = workers or getattr(setup.backend, "parallel", None) or settings.llm.concurrency
    stop = stop_on_signals()
    try:
        stats = extract_corpus(loaded.documents, setup.extractor, out, model=setup.model,
                               prompt_versions=setup.prompt_versions, workers=parallel, deadline=deadline,
                               stop=stop, progress=progress)
    finally:
        if setup.cached is not None:
            setup.cached.close()
    stats["usage"] = usage.to_dict()
    stats["extractor"] = {"name": extractor.value, "model": setup.model, "engine": settings.llm.engine,
                          "slots": settings.llm.slots, "workers": parallel,
                          "prompt_versions": setup.prompt_versions}
    stats["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    stats_path = append_stats(out, stats)
    total = usage.total()
    echo(
        f"{stats['documents']} documents ({stats['chunks']} chunks, {stats['failed_chunks']} failed) in "
        f"{stats['seconds']:.0f} s; {stats['skipped_documents']} already in {out}; "
        f"{total.completion_tokens} completion tokens ({total.stopped_looping} loops stopped)"
    )
    if stats["timed_out"] or stats["stopped"] or stats["backend_errors"]:
        echo("not finished: rerun the same command to continue")
    echo(f"stats: {stats_path}")


def _guard(action: Any) -> Any:
    """Run `action`, turning the errors a user can cause or fix into one line without a traceback."""
    from retrieval.indexes import SearchIndexError
    from synthkg.embeddings import EmbeddingError
    from synthkg.llm.base import LLMError

    try:
        return action()
    except (StoreError, SearchIndexError, EmbeddingError, ValueError) as exc:
        fail(str(exc))
    except LLMError as exc:
        fail(f"LLM backend failed: {exc}. Finished calls are cached: rerun the same command to resume.")


def _shorten(text: str, limit: int = TEXT_PREVIEW_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def _title(store: Any, document_id: str) -> str:
    document = store.get_document(document_id)
    return document.title if document is not None and document.title else document_id


@app.command()
def query(
    ctx: typer.Context,
    question: QuestionArg,
    mode: ModeOpt = RetrievalModeOption.graph,
    iterative: Annotated[
        bool, typer.Option("--iterative/--single", help="Iterative reader that asks sub-queries (default), "
                           "or one answer from one retrieval.")
    ] = True,
    k: KOpt = 5,
    max_iterations: Annotated[
        int, typer.Option(min=1, help="Iterative reader: steps before the answer is forced.")
    ] = 5,
    as_json: JsonOpt = False,
    trace: Annotated[
        bool, typer.Option("--trace", help="Show the sub-queries, intermediate answers and retrieved chunks.")
    ] = False,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
) -> None:
    """Answer a question from the graph, with numbered citations (LLM calls are cached: asking again
    is free)."""
    from synthkg.api import KnowledgeGraph

    settings = with_llm(settings_of(ctx), backend, model, base_url)
    with KnowledgeGraph(settings) as kg:
        result = _guard(lambda: kg.query(question, mode=mode.value, k=k, max_iterations=max_iterations,
                                         reader="iterative" if iterative else "single"))
        if as_json:
            echo(result.model_dump_json(indent=2))
            return
        echo(f"question: {result.question}")
        echo(f"answer:   {result.answer or '(no answer)'}", bold=True)
        for warning in result.warnings:
            echo(f"warning: {warning}", fg=typer.colors.YELLOW)
        if result.citations:
            echo("citations:")
        else:
            echo("citations: none (the model cited no passage)")
        for c in result.citations:
            echo(f"  [{c.number}] {_title(kg.store, c.document_id)} (chunk {c.chunk_id})")
            echo(f"      {_shorten(c.text)}")
        if trace:
            echo("trace:")
            for i, step in enumerate(result.trace, 1):
                head = f"sub-query: {_shorten(step.sub_query)}" if step.sub_query else (step.note or "step")
                echo(f"  {i}. {head}")
                if step.sub_query and step.note:
                    echo(f"     note: {step.note}")
                if step.intermediate_answer is not None:
                    echo(f"     intermediate answer: {_shorten(step.intermediate_answer)}")
                if step.retrieved_chunk_ids:
                    echo(f"     retrieved: {', '.join(step.retrieved_chunk_ids)}")
        cached = kg.usage.total().cached_calls
        usage = result.usage
        echo(
            f"llm: {usage.calls} calls ({cached} from the cache), {usage.prompt_tokens} prompt + "
            f"{usage.completion_tokens} completion tokens spent; {result.seconds:.1f}s"
            + ("; answer forced after the last step" if result.forced_final else "")
        )


@app.command("retrieve")
def retrieve_command(
    ctx: typer.Context,
    question: QuestionArg,
    mode: ModeOpt = RetrievalModeOption.graph,
    k: KOpt = 5,
    as_json: JsonOpt = False,
) -> None:
    """Show the chunks retrieved for a question, with the propositions and entity paths that led to
    them (no LLM)."""
    from synthkg.api import KnowledgeGraph

    with KnowledgeGraph(settings_of(ctx)) as kg:
        result = _guard(lambda: kg.retrieve(question, k=k, mode=mode.value))
        if as_json:
            echo(result.model_dump_json(indent=2))
            return
        if result.question_entities:
            echo(f"question entities: {', '.join(result.question_entities)}")
        if not result.chunks:
            echo("no chunk matched")
        for rank, chunk in enumerate(result.chunks, 1):
            echo(f"{rank}. {_title(kg.store, chunk.document_id)} (chunk {chunk.chunk_id}, "
                        f"score {chunk.score:.3f})", bold=True)
            echo(f"   {_shorten(chunk.text)}")
            for prop in chunk.propositions:
                echo(f"   - {prop}")
            for path in chunk.paths:
                echo(f"   path: {path}")
        echo(f"({result.mode} retrieval, {len(result.chunks)} chunks, "
                   f"{result.timings_ms.get('total', 0.0):.1f} ms)")


@app.command()
def reindex(ctx: typer.Context) -> None:
    """Rebuild the search index from the whole store with the configured embedding model (needed after
    changing [embedding] model)."""
    from synthkg.api import KnowledgeGraph

    settings = settings_of(ctx)
    with KnowledgeGraph(settings) as kg:
        index = _guard(kg.reindex)
        sizes = ", ".join(f"{index.size(s)} {s}" for s in ("propositions", "entities", "chunks"))
    echo(f"rebuilt the search index at {index.path} with '{index.embedding_model}': {sizes}")


if __name__ == "__main__":
    app()
