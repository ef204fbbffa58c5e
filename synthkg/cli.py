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
from retrieval.modes import MODES, READER_MODES
from synthkg.cli_options import (
    BackendOpt,
    BaseUrlOpt,
    DeviceOpt,
    EngineOpt,
    MaxIterationsOpt,
    ModelOpt,
    SlotsOpt,
    StepKOpt,
    echo,
    fail,
    with_llm,
)
from synthkg.config import Settings, load_settings
from synthkg.runtime import ExtractorName
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
    html = "html"


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
    from synthkg.llm.adapters import shipped_student_path
    from synthkg.llm.factory import DEFAULT_STUDENT
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
    format: Annotated[ExportFormatOption, typer.Option(
        "--format", "-f", help="graphml or json (everything), or html: one self-contained page (works "
        "offline) drawing the entities and relations, propositions and sources on click.")] = (
        ExportFormatOption.json
    ),
    around: Annotated[str | None, typer.Option(
        help="html: only the entity with this name (or alias) and its neighbourhood.")] = None,
    hops: Annotated[int, typer.Option(min=0, help="html with --around: relations away from it.")] = 2,
    limit: Annotated[int, typer.Option(
        min=1, help="html: entities drawn at most (the best-connected, or the nearest with --around).")
    ] = 300,
) -> None:
    """Export the whole graph (documents, chunks, propositions, entities, relations), or draw it as HTML."""
    settings = settings_of(ctx)
    if format != ExportFormatOption.html and around is not None:
        fail("--around applies to --format html only")
    try:
        with open_store(settings.store, read_only=True) as store:
            if format == ExportFormatOption.html:
                path = _export_html(store, output, around, hops, limit, _location(settings))
            else:
                path = store.export(output, format.value)
    except StoreError as exc:
        fail(str(exc))
    echo(f"wrote {path}")


def _location(settings: Settings) -> str:
    return str(settings.store.path) if settings.store.backend == "embedded" else settings.store.neo4j_uri


def _export_html(store: Any, output: Path, around: str | None, hops: int, limit: int, location: str) -> Path:
    from synthkg.viz.graph import VizError, neighbourhood_view, store_view
    from synthkg.viz.html import write_html

    try:
        view = (neighbourhood_view(store, around, hops=hops, limit=limit, location=location)
                if around is not None else store_view(store, limit=limit, location=location))
    except VizError as exc:
        fail(str(exc))
    return write_html(output, view)


@app.command()
def delete(
    ctx: typer.Context,
    targets: Annotated[list[str], typer.Argument(
        help="Document ids (doc:...), source paths (every document loaded from that file, or from files in "
        "that directory) or corpus record ids.")],
    dry_run: Annotated[bool, typer.Option(help="Say what would be removed; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Delete documents: their chunks, the propositions and relations only they support, and the entities
    no remaining proposition mentions (what other documents support stays), then update the search index.
    Each document's delete is atomic. An argument that names no document: nothing is deleted, exit 1."""
    from synthkg.api import KnowledgeGraph
    from synthkg.delete import UnknownDocumentError

    with KnowledgeGraph(settings_of(ctx)) as kg:
        try:
            result = kg.delete(targets, dry_run=dry_run)
        except (UnknownDocumentError, StoreError) as exc:
            fail(str(exc))
    if as_json:
        echo(result.model_dump_json(indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    for d in result.documents:
        where = f", {d.source}" if d.source else ""
        echo(f"{verb} {d.document_id} ({d.title or 'untitled'}{where}): {_removed_counts(d.removed)}")
        if d.entities:
            shown = ", ".join(d.entities[:DELETE_NAMES_SHOWN])
            hidden = len(d.entities) - DELETE_NAMES_SHOWN
            more = f" and {hidden} more" if hidden > 0 else ""
            echo(f"  entities left with no mention: {shown}{more}")
    echo(f"total: {_count(result.total.documents, 'documents')}, {_removed_counts(result.total)}"
         + ("; nothing was changed (--dry-run)" if dry_run else ""))
    if result.index_removed:
        echo("search index: dropped " + ", ".join(_count(n, s) for s, n in result.index_removed.items()))
    for warning in result.warnings:
        echo(f"warning: {warning}", fg=typer.colors.YELLOW)


DELETE_NAMES_SHOWN = 20


def _removed_counts(counts: Any) -> str:
    return ", ".join(_count(getattr(counts, kind), kind) for kind in ("chunks", "propositions", "relations",
                                                                       "entities"))


def _count(n: int, plural: str) -> str:
    singular = {"entities": "entity", "documents": "document"}.get(plural, plural.removesuffix("s"))
    return f"{n} {singular if n == 1 else plural}"


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="An entity's name or alias (case and articles do not matter).")],
    limit: Annotated[int, typer.Option(min=1, help="Relations shown per entity.")] = 20,
) -> None:
    """An entity: its type, aliases and description, the names merged into it, and its relations, each
    with the proposition that states it and the document it came from. Several matches: each is shown."""
    from synthkg.resolve import MergeLog
    from synthkg.viz.graph import describe_entities

    settings = settings_of(ctx)
    log = MergeLog(settings.data_dir)
    try:
        with open_store(settings.store, read_only=True) as store:
            cards = describe_entities(store, name, merges=log.read(), blocked=log.blocked(), limit=limit)
    except StoreError as exc:
        fail(str(exc))
    if not cards:
        fail(f"no entity named {name!r} in the store at {_location(settings)}")
    if len(cards) > 1:
        echo(f"{len(cards)} entities match {name!r}:")
    for card in cards:
        e = card.entity
        echo(f"{e.name}  [{e.type or 'no type'}]  {e.id}", bold=True)
        if e.description:
            echo(f"  description: {e.description}")
        echo(f"  aliases: {', '.join(e.aliases) if e.aliases else '(none)'}")
        for merge, undone in card.merges:
            how = f"{merge.method} {merge.score:.2f}"
            echo(f"  merged: {merge.name!r} into it ({how}, document {merge.document_id})"
                 + ("  [undone]" if undone else ""))
        echo(f"  mentioned by {card.mentions} propositions; {card.relations_total} relations"
             + (f" (first {len(card.relations)} shown, --limit)" if card.relations_total > len(card.relations)
                else ""))
        for line in card.relations:
            echo(f"    {line.subject} -[{line.relation.predicate}]-> {line.object}")
            ev = line.evidence
            if ev.text:
                echo(f"        \"{_shorten(ev.text)}\"")
            source = f", {ev.source}" if ev.source and ev.source != ev.title else ""
            echo(f"        from: {ev.title or ev.document_id or 'unknown document'}{source}")


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(help="Files or directories: .txt, .md, .json/.jsonl records with id/title/text."),
    ],
    extractor: Annotated[
        ExtractorName,
        typer.Option(help="multistep: the SynthKG teacher workflow (3 calls per chunk); distilled: the "
                     "one-call student; none: store and index chunks only (BM25/dense baselines)."),
    ] = ExtractorName.multistep,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    engine: EngineOpt = None,
    slots: SlotsOpt = None,
    device: DeviceOpt = None,
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
    from synthkg.api import KnowledgeGraph
    from synthkg.extract.replay import ReplayError
    from synthkg.ingest import IngestError

    settings = with_llm(settings_of(ctx), backend, model, base_url, engine=engine, slots=slots,
                        device=device)
    try:
        with KnowledgeGraph(settings) as kg:
            summary = kg.ingest(
                list(paths), progress=progress, records=list(records) if records else None,
                extractor=extractor.value, limit=limit, retry_failed=retry_failed, force=force,
                dry_run=dry_run, concurrency=concurrency,
            )
    except (IngestError, StoreError, ReplayError) as exc:
        fail(str(exc))
    echo(summary.render())
    if summary.load_errors:
        raise typer.Exit(1 if summary.documents_loaded == 0 else PARTLY_LOADED)


# --- asking the graph: query, retrieve, reindex ------------------------------------------------------
# The choices are the retrievers' own modes: one list, in retrieval/modes.py.
RetrievalModeOption = StrEnum("RetrievalModeOption", {mode: mode for mode in MODES})
ReaderOption = StrEnum("ReaderOption", {mode: mode for mode in READER_MODES})


QuestionArg = Annotated[str, typer.Argument(help="The question, in quotes.")]
ModeOpt = Annotated[
    RetrievalModeOption | None,
    typer.Option("--mode", help="graph: propositions + entity graph; ppr: personalized PageRank over the "
                 "graph; hippo: PageRank over the whole corpus graph of entities and passages; bm25 / dense: "
                 "plain chunk search baselines. Default: the settings' [retrieval] mode (graph)."),
]
KOpt = Annotated[
    int | None,
    typer.Option("--k", min=1, help="Chunks retrieved per (sub-)query (default: [retrieval] k, 5)."),
]
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
        ExtractorName,
        typer.Option(help="distilled: the one-call student (default); multistep: the teacher workflow."),
    ] = ExtractorName.distilled,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    engine: EngineOpt = None,
    slots: SlotsOpt = None,
    device: DeviceOpt = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Documents in flight (default: the server engine's slots, a GPU's "
                     "max_batch, else the settings' [llm] concurrency)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="The first N documents only.")] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Start no document after this many seconds (resume later).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    done: Annotated[
        list[Path] | None,
        typer.Option(help="A records file whose documents count as extracted (skipped), e.g. another "
                     "student's records of the corpus' first part; repeat for several. Replay them "
                     "together with --records A --records B."),
    ] = None,
) -> None:
    """Extract a corpus to records without a store: one JSON line per chunk, replayable with
    `synthkg ingest --records` or `synthkg eval ... --records`, and a training set for `synthkg train
    build-set`. Resumable: documents already in --out are skipped, so rerun the same command after a
    stop, a crash or --max-seconds. Ctrl-C stops after the calls in flight; each run's counts, tokens
    and seconds are appended to <out>.stats.json."""
    from synthkg.extract.corpus import append_stats, extract_corpus, stop_on_signals
    from synthkg.llm.cache import Usage
    from synthkg.loaders import load_documents
    from synthkg.runtime import Runtime, SetupError

    if extractor == ExtractorName.none:
        fail("--extractor none extracts nothing: use `synthkg ingest --extractor none` for chunks only")
    settings = with_llm(settings_of(ctx), backend, model, base_url, engine=engine, slots=slots,
                        device=device)
    loaded = load_documents(paths, limit=limit)
    for error in loaded.errors:
        echo(f"warning: {error}", err=True, fg=typer.colors.YELLOW)
    if not loaded.documents:
        fail("no documents to extract")
    for path in done or []:
        if not path.is_file():
            fail(f"--done {path}: no such records file")
    usage = Usage()
    try:
        setup = Runtime(settings).extraction(extractor, usage=usage)
    except SetupError as exc:
        fail(str(exc))
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    parallel = workers or getattr(setup.backend, "parallel", None) or settings.llm.concurrency
    stop = stop_on_signals()
    try:
        stats = extract_corpus(loaded.documents, setup.extractor, out, model=setup.model,
                               prompt_versions=setup.prompt_versions, workers=parallel, deadline=deadline,
                               stop=stop, progress=progress, done_elsewhere=done or [])
    finally:
        if setup.cached is not None:
            setup.cached.close()
    stats["usage"] = usage.to_dict()
    stats["extractor"] = {"name": extractor.value, "model": setup.model, "engine": settings.llm.engine,
                          "slots": settings.llm.slots, "device": settings.llm.device, "workers": parallel,
                          "prompt_versions": setup.prompt_versions}
    stats["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    stats_path = append_stats(out, stats)
    total = usage.total()
    where = f"{out} or --done" if done else str(out)
    echo(
        f"{stats['documents']} documents ({stats['chunks']} chunks, {stats['failed_chunks']} failed) in "
        f"{stats['seconds']:.0f} s; {stats['skipped_documents']} already in {where}; "
        f"{total.completion_tokens} completion tokens ({total.stopped_looping} loops stopped)"
    )
    if stats["timed_out"] or stats["stopped"] or stats["backend_errors"]:
        echo("not finished: rerun the same command to continue")
    echo(f"stats: {stats_path}")


def _guard(action: Any) -> Any:
    """Run `action`, turning the errors a user can cause or fix into one line without a traceback."""
    from synthkg.embeddings import EmbeddingError
    from synthkg.indexes import SearchIndexError
    from synthkg.llm.base import LLMError, as_sentence

    try:
        return action()
    except (StoreError, SearchIndexError, EmbeddingError, ValueError) as exc:
        fail(str(exc))
    except LLMError as exc:
        fail(f"LLM backend failed: {as_sentence(exc)} "
             "Finished calls are cached: rerun the same command to resume.")


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
    mode: ModeOpt = None,
    reader: Annotated[
        ReaderOption | None, typer.Option(
            "--reader", help="iterative: the reader asks sub-queries (IterDRAG) until it can answer; "
            "decompose: one call plans single-fact sub-questions, each answered from its own passages, then "
            "one call composes the answer (fewer tokens); single: one retrieval, one call. Default: the "
            "settings' [reader] mode (iterative).")
    ] = None,
    iterative: Annotated[
        bool | None,
        typer.Option("--iterative/--single", help="Shorthands: --reader iterative / --reader single."),
    ] = None,
    k: KOpt = None,
    max_iterations: MaxIterationsOpt = None,
    step_k: StepKOpt = None,
    as_json: JsonOpt = False,
    trace: Annotated[
        bool, typer.Option("--trace", help="Show the sub-queries, intermediate answers and retrieved chunks.")
    ] = False,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Also write one self-contained HTML page: the answer, its citations and the "
        "evidence subgraph (entities and relations of the retrieved chunks' propositions).")] = None,
) -> None:
    """Answer a question from the graph, with numbered citations (LLM calls are cached: asking again
    is free)."""
    from synthkg.api import KnowledgeGraph

    settings = with_llm(settings_of(ctx), backend, model, base_url)
    with KnowledgeGraph(settings) as kg:
        chosen = (reader.value if reader is not None
                  else None if iterative is None else "iterative" if iterative else "single")
        result = _guard(lambda: kg.query(question, mode=mode.value if mode else None, k=k,
                                         max_iterations=max_iterations, step_k=step_k, reader=chosen))
        if html is not None:
            _write_answer_html(kg.store, result, html, err=as_json)
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


def _write_answer_html(store: Any, result: Any, output: Path, *, err: bool) -> None:
    from synthkg.viz.graph import answer_view
    from synthkg.viz.html import write_html

    view, answer = answer_view(store, result)
    try:
        path = write_html(output, view, answer=answer)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    echo(f"wrote {path}", err=err)


@app.command("retrieve")
def retrieve_command(
    ctx: typer.Context,
    question: QuestionArg,
    mode: ModeOpt = None,
    k: KOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the chunks retrieved for a question, with the propositions and entity paths that led to
    them (no LLM)."""
    from synthkg.api import KnowledgeGraph

    with KnowledgeGraph(settings_of(ctx)) as kg:
        result = _guard(lambda: kg.retrieve(question, k=k, mode=mode.value if mode else None))
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
