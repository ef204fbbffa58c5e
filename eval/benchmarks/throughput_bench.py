"""Extraction throughput: passages per hour of each extractor setting against the current student, with
the quality each keeps, in one run on one machine.

    python -m eval.benchmarks.throughput_bench run --dataset ../shared/data/multihop/musique --passages 50 \\
        --setting current=distilled:training/adapters/qwen2.5-coder-0.5b-synthkg:python:1 \\
        --setting lines-4=distilled:training/adapters/qwen2.5-coder-0.5b-synthkg-lines:server:4 \\
        --setting teacher=multistep:qwen2.5-coder-1.5b:server:4 --keep-records data/records
    python -m eval.benchmarks.throughput_bench score --result eval/results/throughput_bench-musique-50.json \\
        --records data/records/throughput-musique-50 --teacher-records data/records/teacher.jsonl

A setting is NAME=EXTRACTOR:MODEL:ENGINE:SLOTS[:LOAD[:THREADS]]: the extractor (distilled or multistep),
the model (a student adapter folder, or a local model for multistep), the llama.cpp engine (python:
llama-cpp-python in process; server: llama-server), the sequences in flight, optionally LOAD busy
processes running beside it (what a shared machine does to it) and the threads llama.cpp uses (default:
one per core). The ratios are to --baseline (default: the first setting), measured in the same run.

Per setting, with a fresh call cache and after one warm-up call (model loaded, server started): every
chunk of the passages is extracted to records with SLOTS documents in flight; the wall time of that is
the throughput (passages per hour, completion tokens per passage and per second). The records are then
replayed into a store and scored like distill_bench: KG coverage of the questions' gold triples, triple
F1 against the teacher's graph (and its difference to the baseline's with a paired-bootstrap interval
over chunks), failed chunks, and loops (answers stopped looping or cut at the budget) per 1,000 chunks.
The teacher's graph is --teacher-records (records of an earlier run, e.g. kept with --keep-records) or,
without it, the records of this run's first multistep setting. `score` does that scoring later for a run
that had no teacher graph, from the records it kept (quality only: the speed columns stay the run's own).

Nothing else may run on the machine meanwhile (llama.cpp slows ~10x when another process takes a core),
except the busy processes a LOAD setting starts on purpose."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from eval.corpus import prepare_corpus
from eval.datasets import Dataset, load_dataset
from eval.kg_eval import GraphTriples, MemoEmbedder, eval_kg
from eval.triple_agreement import agreement_of, chunk_counts, f1_difference
from synthkg.chunking import chunk_text
from synthkg.config import LLMSettings, Settings
from synthkg.embeddings import Embedder, make_embedder
from synthkg.extract.corpus import extract_corpus
from synthkg.extract.replay import ReplayExtractor
from synthkg.llm.cache import Usage
from synthkg.llm.llama_server import stop_servers
from synthkg.runtime import Runtime

RESULTS = Path(__file__).resolve().parent.parent / "results"
SPECULATIVE = ("ngram-simple", "ngram-map-k", "ngram-mod")  # [llm] speculative, besides "none"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@dataclass(frozen=True)
class Setting:
    name: str
    extractor: str
    model: str
    engine: str
    slots: int
    load: int = 0
    threads: int | None = None
    speculative: str = "none"

    @classmethod
    def parse(cls, text: str) -> Setting:
        name, _, spec = text.partition("=")
        spec, _, speculative = spec.partition("+")
        parts = spec.split(":")
        valid = (
            bool(name) and len(parts) in (4, 5, 6) and parts[0] in ("distilled", "multistep")
            and parts[2] in ("python", "server") and all(p.isdigit() for p in parts[3:])
            and speculative in ("", *SPECULATIVE) and not (speculative and parts[2] != "server")
        )
        if not valid:
            raise typer.BadParameter(
                f"{text!r}: expected NAME=distilled|multistep:MODEL:python|server:SLOTS[:LOAD[:THREADS]]"
                f"[+SPECULATIVE], SPECULATIVE (server only) one of {', '.join(SPECULATIVE)}"
            )
        numbers = [int(p) for p in parts[3:]] + [0, 0]
        return cls(name, parts[0], parts[1], parts[2], numbers[0], numbers[1], numbers[2] or None,
                   speculative or "none")


def _busy() -> None:  # pragma: no cover - runs in a child process
    while True:
        pass


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """`count` processes each spinning one core, for the duration."""
    workers = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()
            worker.join()


def run_setting(
    setting: Setting, dataset: Dataset, work: Path, cache_root: Path
) -> tuple[dict[str, Any], Path]:
    """Extract the dataset's passages with `setting`; returns its row (throughput) and its records."""
    cache = work / f"cache-{setting.name}"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "models").symlink_to(cache_root / "models")  # the assembled local models
    llm = LLMSettings(model=setting.model, engine=setting.engine, slots=setting.slots,  # type: ignore[arg-type]
                      threads=setting.threads, speculative=setting.speculative)  # type: ignore[arg-type]
    settings = Settings(llm=llm, cache_dir=cache, data_dir=work / setting.name)
    usage = Usage()
    setup = Runtime(settings).extraction(setting.extractor, usage=usage)
    assert setup.cached is not None
    # Warm-up outside the clock: loads the model (starts the server), exports the adapter.
    setup.cached.chat([{"role": "user", "content": "Say OK."}], max_tokens=4, stage="warmup")
    documents = dataset.documents()[0]
    records = work / f"{setting.name}.jsonl"
    with busy_processes(setting.load):
        started = time.perf_counter()
        stats = extract_corpus(documents, setup.extractor, records, model=setup.model,
                               prompt_versions=setup.prompt_versions, workers=setting.slots, progress=True)
        wall = time.perf_counter() - started
    setup.cached.close()
    stop_servers()
    stages = {k: v for k, v in usage.stages().items() if k != "warmup"}
    calls = sum(s.calls for s in stages.values())
    completion = sum(s.completion_tokens for s in stages.values())
    prompt = sum(s.prompt_tokens for s in stages.values())
    loops = sum(s.stopped_looping + s.cut_at_budget for s in stages.values())
    passages, words = len(documents), sum(len(d.text.split()) for d in documents)
    row = {
        "setting": asdict(setting),
        "model": setup.model,
        "passages": passages,
        "chunks": stats["chunks"],
        "words": words,
        "wall_seconds": round(wall, 1),
        "passages_per_hour": round(passages / wall * 3600, 1),
        "seconds_per_passage": round(wall / passages, 2),
        "completion_tokens_per_passage": round(completion / passages, 1),
        "prompt_tokens_per_passage": round(prompt / passages, 1),
        "completion_tokens_per_second": round(completion / wall, 1),
        "llm_calls_per_1000_words": round(calls * 1000 / words, 2),
        "llm_seconds_per_passage": round(sum(s.seconds for s in stages.values()) / passages, 2),
        "loops_per_1000_chunks": round(loops * 1000 / max(1, stats["chunks"]), 1),
        "stages": {k: asdict(v) for k, v in stages.items()},
    }
    return row, records


def score(name: str, records: Path, dataset: Dataset, work: Path, embedder: Embedder,
          threshold: float) -> tuple[dict[str, Any], GraphTriples]:
    """Quality of a setting's records, replayed into a store of their own."""
    settings = Settings(data_dir=work / f"score-{name}")
    replay = ReplayExtractor.from_files([records])
    prepared = prepare_corpus(dataset, settings, f"replay-{name}", work_dir=work / f"score-{name}",
                              embedder=embedder, replay=replay, progress=False)
    with prepared.open_store() as store:
        kg = eval_kg(dataset, store, embedder, threshold, progress=False)
        triples = GraphTriples(store)
        failed = sum(len(d.metadata.get("failed_chunks") or {}) for d in store.iter_documents())
    return {"kg_coverage": kg.aggregates["supporting"].metrics.get("coverage"),
            "triples": len(triples.all), "failed_chunks": failed}, triples


def add_agreement(rows: list[dict[str, Any]], graphs: dict[str, GraphTriples], teacher: GraphTriples,
                  embedder: Embedder, threshold: float, baseline: str | None) -> None:
    """Each row's triple precision / recall / F1 against the teacher's graph, chunk by chunk; each row but
    the `baseline` setting's also its F1 minus the baseline's with a 95% paired-bootstrap interval over
    chunks (`triple_f1_vs_baseline`: is the difference more than a few chunks' noise?)."""
    counts = {name: chunk_counts(graphs[name], teacher, embedder, threshold)
              for name in (row["setting"]["name"] for row in rows)}
    for row in rows:
        name = row["setting"]["name"]
        row["agreement_with_teacher"] = agreement_of(counts[name].values(), threshold)
        if baseline in counts and name != baseline:
            row["triple_f1_vs_baseline"] = f1_difference(counts[name], counts[baseline])


def add_ratios(rows: list[dict[str, Any]], baseline: str) -> None:
    """Each row's passages per hour and completion tokens per passage as multiples of the `baseline`
    setting's, measured in the same run."""
    base = next(r for r in rows if r["setting"]["name"] == baseline)
    for row in rows:
        row["ratio_passages_per_hour"] = round(row["passages_per_hour"] / base["passages_per_hour"], 2)
        row["ratio_completion_tokens"] = round(
            row["completion_tokens_per_passage"] / base["completion_tokens_per_passage"], 2
        )


@app.command("run")
def main(
    dataset: Annotated[Path, typer.Option(help="A dataset folder (dev.json + corpus.json).")],
    setting: Annotated[list[str], typer.Option(help="NAME=EXTRACTOR:MODEL:ENGINE:SLOTS[:LOAD]; repeat.")],
    teacher_records: Annotated[
        Path | None,
        typer.Option(help="The teacher's records of the same passages (default: this run's first multistep "
                     "setting's)."),
    ] = None,
    passages: Annotated[int, typer.Option(help="At most this many supporting passages.")] = 50,
    threshold: Annotated[float, typer.Option(help="Cosine similarity for a triple match.")] = 0.88,
    out: Annotated[Path | None, typer.Option(help="Result file.")] = None,
    keep_records: Annotated[
        Path | None, typer.Option(help="Copy each setting's records into this folder.")
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="The setting the ratios are to (default: the first).")
    ] = None,
) -> None:
    settings_list = [Setting.parse(s) for s in setting]
    baseline = baseline or settings_list[0].name
    if baseline not in {s.name for s in settings_list}:
        raise typer.BadParameter(f"--baseline {baseline!r} names no --setting")
    data = load_dataset(dataset).first_questions_within(passages)
    chunks = sum(len(chunk_text(p.text)) for p in data.passages)
    embedder = MemoEmbedder(make_embedder(Settings().embedding))
    cache_root = Settings().cache_dir
    rows: list[dict[str, Any]] = []
    path = out or RESULTS / f"throughput_bench-{len(data.passages)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="throughput-bench-") as tmp:
        work = Path(tmp)
        graphs = {}
        for item in settings_list:
            typer.echo(f"--- {item.name}: {item}")
            row, records = run_setting(item, data, work, cache_root)
            if keep_records is not None:  # before scoring: the extraction is the costly part
                keep_records.mkdir(parents=True, exist_ok=True)
                (keep_records / records.name).write_bytes(records.read_bytes())
            quality, graphs[item.name] = score(item.name, records, data, work, embedder, threshold)
            row |= quality | {"records": records.name}
            rows.append(row)
            typer.echo(json.dumps({k: v for k, v in row.items() if k != "stages"}))
            # A long run keeps what it measured so far if a later setting fails.
            partial = {"benchmark": "throughput", "partial": True, "dataset": str(dataset), "settings": rows}
            path.write_text(json.dumps(partial, indent=1), encoding="utf-8")
        source = next((r for r in rows if r["setting"]["extractor"] == "multistep"), None)
        if teacher_records is None and source is None:
            # No teacher graph: speed and coverage only; the kept records can be scored against one later.
            teacher, teacher_triples, teacher_name = None, None, None
        elif teacher_records is None:
            teacher_records = work / source["records"]
            teacher = {k: source[k] for k in ("kg_coverage", "triples", "failed_chunks")}
            teacher_triples = graphs[source["setting"]["name"]]
            teacher_name = source["setting"]["name"]
        else:
            teacher, teacher_triples = score("teacher", teacher_records, data, work, embedder, threshold)
            teacher_name = str(teacher_records)
        if teacher_triples is not None:
            add_agreement(rows, graphs, teacher_triples, embedder, threshold, baseline)
    add_ratios(rows, baseline)
    result = {
        "benchmark": "throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": str(dataset),
        "questions": len(data.questions),
        "passages": len(data.passages),
        "chunks": chunks,
        "teacher": None if teacher is None else {"records": teacher_name, **teacher},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1m_at_end": os.getloadavg()[0]},
        "baseline": baseline,
        "settings": rows,
    }
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    typer.echo(f"wrote {path}")


def score_run(run: dict[str, Any], data: Dataset, records: Path, teacher_records: Path, embedder: Embedder,
              threshold: float) -> dict[str, Any]:
    """`run` (a result of `run`) with its teacher and each setting's triple F1 filled in from the records it
    kept in `records`. Raises ValueError when a setting's records are missing or replay to another quality
    than the run measured (they are not that run's records)."""
    graphs: dict[str, GraphTriples] = {}
    with tempfile.TemporaryDirectory(prefix="throughput-score-") as tmp:
        work = Path(tmp)
        for row in run["settings"]:
            name, path = row["setting"]["name"], records / row["records"]
            if not path.is_file():
                raise ValueError(f"{path} is missing (the kept records of setting {name!r})")
            quality, graphs[name] = score(name, path, data, work, embedder, threshold)
            measured = {k: row[k] for k in quality}
            if quality != measured:
                raise ValueError(f"{path} replays to {quality}, the run measured {measured}: not the records "
                                 "of this run")
        teacher, teacher_triples = score("teacher", teacher_records, data, work, embedder, threshold)
    scored = {**run, "settings": [dict(row) for row in run["settings"]]}
    add_agreement(scored["settings"], graphs, teacher_triples, embedder, threshold, run.get("baseline"))
    scored["teacher"] = {"records": str(teacher_records), **teacher,
                         "scored": datetime.now(UTC).isoformat(timespec="seconds")}
    return scored


@app.command("score")
def score_kept(
    result: Annotated[Path, typer.Option(help="The result file of an earlier `run`.")],
    records: Annotated[Path, typer.Option(help="The folder that run kept its records in (--keep-records).")],
    teacher_records: Annotated[Path, typer.Option(help="The teacher's records of the same passages.")],
    threshold: Annotated[float, typer.Option(help="Cosine similarity for a triple match.")] = 0.88,
) -> None:
    """Score an earlier run's kept records against a teacher graph made since: fills in the result's
    teacher and each setting's triple F1 without extracting again. The speed columns stay the run's own;
    records that replay to another quality than the run measured are refused."""
    run = json.loads(result.read_text(encoding="utf-8"))
    data = load_dataset(Path(run["dataset"])).first_questions_within(run["passages"])
    if len(data.passages) != run["passages"]:
        raise typer.BadParameter(f"{run['dataset']} gives {len(data.passages)} passages, the run had "
                                 f"{run['passages']}", param_hint="--result")
    embedder = MemoEmbedder(make_embedder(Settings().embedding))
    try:
        run = score_run(run, data, records, teacher_records, embedder, threshold)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--records") from None
    result.write_text(json.dumps(run, indent=1), encoding="utf-8")
    for row in run["settings"]:
        typer.echo(f"{row['setting']['name']}: triple F1 {row['agreement_with_teacher']['f1']}")
    typer.echo(f"wrote {result}")


if __name__ == "__main__":
    app()
