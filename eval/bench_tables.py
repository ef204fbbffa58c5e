"""The store, ingestion, extraction-throughput, embedding, retrieval-ablation and gold-links benchmark
tables, generated from their committed result files (`eval/benchmarks/store_bench.py`, `ingest_bench.py`,
`throughput_bench.py`, `embed_bench.py`, `retrieval_ablation.py`, `gold_links_bench.py`) so the README never
carries numbers copied by hand. `synthkg eval report --readme` writes each between its own markers:

    <!-- eval-report:store:start -->       <!-- eval-report:store:end -->
    <!-- eval-report:ingest:start -->      <!-- eval-report:ingest:end -->
    <!-- eval-report:throughput:start -->  <!-- eval-report:throughput:end -->
    <!-- eval-report:embed:start -->       <!-- eval-report:embed:end -->
    <!-- eval-report:ablation:start -->    <!-- eval-report:ablation:end -->
    <!-- eval-report:gold-links:start -->  <!-- eval-report:gold-links:end -->
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

STORE_RESULT = "store_bench.json"


def _benchmark_files(results_dir: Path, benchmark: str) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        # A partial file is a run still going (or one that failed midway): not a result yet.
        if isinstance(data, dict) and data.get("benchmark") == benchmark and not data.get("partial"):
            found.append((path, data))
    return found


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


def _latencies(store: dict[str, Any], hops: str) -> str:
    return f"{_ms(store[hops]['p50_ms'])} / {_ms(store[hops]['p95_ms'])} ms"


def _times(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if a / b < 1 else f"{a / b:,.0f}x"


def store_table(results_dir: Path) -> str | None:
    """Write throughput and neighbourhood query latency of both stores, and Neo4j / embedded ratios."""
    files = [data for path, data in _benchmark_files(results_dir, "store_bench") if path.name == STORE_RESULT]
    if not files:
        return None
    stores = files[0]["stores"]
    lines = ["| store | write (relations/s) | 1-hop p50 / p95 | 2-hop p50 / p95 |", "|---|---|---|---|"]
    names = {"embedded": "EmbeddedStore", "neo4j": "Neo4jStore over Bolt"}
    for key, name in names.items():
        if key in stores:
            store = stores[key]
            server = f" ({store['server']})" if store.get("server") else ""
            lines.append(
                f"| {name}{server} | {store['relations_per_s']:,.0f} | {_latencies(store, 'neighbors_1hop')} "
                f"| {_latencies(store, 'neighbors_2hop')} |"
            )
    if names.keys() <= stores.keys():
        embedded, neo4j = stores["embedded"], stores["neo4j"]
        hop1, hop2 = (
            _times(neo4j[h]["p50_ms"], embedded[h]["p50_ms"]) for h in ("neighbors_1hop", "neighbors_2hop")
        )
        write = _times(neo4j["relations_per_s"], embedded["relations_per_s"])
        lines.append(f"| ratio Neo4j / embedded (p50) | {write} | {hop1} | {hop2} |")
    return "\n".join(lines)


def ingest_table(results_dir: Path) -> str | None:
    """Per passage cost and yield of each ingestion benchmark run, newest first."""
    runs = sorted(
        (data for _, data in _benchmark_files(results_dir, "ingest")), key=lambda d: d["date"], reverse=True
    )
    if not runs:
        return None
    lines = [
        "| run | LLM calls | prompt tokens | completion tokens | seconds | entities | propositions "
        "| relations | failed chunks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        per = run["per"]
        lines.append(
            f"| `{run['model']}`, {run['passages']} passages ({run['date'][:10]}) "
            f"| {per['llm_calls_per_passage']:.2f} | {per['prompt_tokens_per_passage']:,.0f} "
            f"| {per['completion_tokens_per_passage']:,.0f} | {per['seconds_per_passage']:.1f} "
            f"| {per['entities_per_passage']:.1f} | {per['propositions_per_passage']:.1f} "
            f"| {per['relations_per_passage']:.1f} | {per['failed_chunks']} / {per['chunks']} |"
        )
    return "\n".join(lines)


def _f1(row: dict[str, Any]) -> str:
    """The row's triple F1 against the teacher and, where the run compared it, its difference to the
    baseline's with the 95% paired-bootstrap interval over chunks."""
    f1 = (row.get("agreement_with_teacher") or {}).get("f1")
    if f1 is None:
        return "–"
    versus = row.get("triple_f1_vs_baseline")
    if not versus:
        return f"{f1:.3f}"
    low, high = versus["ci95"]
    return f"{f1:.3f} ({versus['difference']:+.3f}, 95% CI {low:+.3f} to {high:+.3f})"


def throughput_table(results_dir: Path) -> str | None:
    """Every setting of the newest throughput benchmark run: speed, cost and the quality kept, with the
    ratio of passages per hour to the run's baseline (the first setting, measured in the same run)."""
    runs = sorted((data for _, data in _benchmark_files(results_dir, "throughput")), key=lambda d: d["date"])
    if not runs:
        return None
    run = runs[-1]
    teacher = run["teacher"]
    graph = "no teacher graph in this run."
    if teacher:
        # `throughput_bench score` scores the records a run kept against a teacher graph made later.
        scored = teacher.get("scored")
        later = f", the run's kept records scored against it on {scored[:10]}" if scored else ""
        graph = (f"teacher graph from `{Path(teacher['records']).name}` (coverage "
                 f"{teacher['kg_coverage']:.3f}, {teacher['failed_chunks']} failed chunks){later}.")
    lines = [
        f"Run of {run['date'][:10]}: {run['passages']} passages ({run['chunks']} chunks) of "
        f"{Path(run['dataset']).name}, {graph}",
        "",
        "| setting | extractor / model | engine, slots | passages / h | x baseline "
        "| completion tokens / passage | tokens / s | calls / 1k words | loops / 1k chunks | failed chunks "
        "| triple F1 vs teacher (difference to baseline, 95% CI) | KG coverage |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in run["settings"]:
        setting = row["setting"]
        load = f", {setting['speculative']}" if setting.get("speculative", "none") != "none" else ""
        load += f", {setting['load']} busy" if setting.get("load") else ""
        load += f", {setting['threads']} threads" if setting.get("threads") else ""
        model = Path(setting["model"]).name
        coverage = row.get("kg_coverage")
        lines.append(
            f"| {setting['name']} | {setting['extractor']} `{model}` "
            f"| {setting['engine']}, {setting['slots']}{load} "
            f"| {row['passages_per_hour']:,.0f} | {row['ratio_passages_per_hour']:.2f}x "
            f"| {row['completion_tokens_per_passage']:,.0f} | {row['completion_tokens_per_second']:.1f} "
            f"| {row['llm_calls_per_1000_words']:.1f} | {row['loops_per_1000_chunks']:.0f} "
            f"| {row['failed_chunks']} / {row['chunks']} | {_f1(row)} "
            f"| {'–' if coverage is None else f'{coverage:.3f}'} |"
        )
    return "\n".join(lines)


def embed_table(results_dir: Path) -> str | None:
    """Embedding speed per chunk size and thread count (newest run of each size), with the minutes 10,000
    chunks take: what the embedding stage of an ingest costs on this machine."""
    newest: dict[bool, dict[str, Any]] = {}
    for _, data in _benchmark_files(results_dir, "embed"):
        size = bool(data["full_size_chunks"])
        if size not in newest or data["date"] > newest[size]["date"]:
            newest[size] = data
    if not newest:
        return None
    lines = [
        "| chunks | words / chunk | model | threads | chunks / s | minutes per 10,000 chunks |",
        "|---|---|---|---|---|---|",
    ]
    for size in sorted(newest):
        run = newest[size]
        kind = "full-size (~256 tokens)" if size else "passage-size"
        for row in run["settings"]:
            lines.append(
                f"| {kind}, {run['chunks']:,} of {Path(run['corpus']).parent.name} | {run['mean_words']:.0f} "
                f"| `{run['model']}` | {row['threads']} | {row['chunks_per_second']:.1f} "
                f"| {10_000 / row['chunks_per_second'] / 60:.1f} |"
            )
    return "\n".join(lines)


def _newest_per_dataset(results_dir: Path, benchmark: str) -> dict[str, dict[str, Any]]:
    """Each dataset's newest run of `benchmark` over the most passages."""
    newest: dict[str, dict[str, Any]] = {}
    for _, data in _benchmark_files(results_dir, benchmark):
        kept = newest.get(data["dataset"])
        if kept is None or (data["passages"], data["date"]) > (kept["passages"], kept["date"]):
            newest[data["dataset"]] = data
    return newest


def ablation_table(results_dir: Path) -> str | None:
    """Recall of each graph-retrieval stage added one at a time (eval/benchmarks/retrieval_ablation.py),
    one table per dataset (its newest run over the most passages)."""
    newest = _newest_per_dataset(results_dir, "retrieval_ablation")
    if not newest:
        return None
    parts = []
    for name in sorted(newest):
        run = newest[name]
        lines = [
            f"{name}, {run['questions']} questions over {run['passages']:,} recorded passages "
            f"({run['date'][:10]}):",
            "",
            "| stage | what it adds | recall@2 | recall@5 | recall@5 / dense | answer@5 | p50 |",
            "|---|---|---|---|---|---|---|",
        ]

        def value(row: dict[str, Any], key: str) -> str:
            return "–" if row.get(key) is None else f"{row[key]:.3f}"

        for row in run["rows"]:
            ratio = f"{row['x_dense_recall@5']:.2f}x" if row.get("x_dense_recall@5") else "–"
            recall = f"{value(row, 'recall@2')} | {value(row, 'recall@5')}"
            lines.append(f"| {row['stage']} | {row['adds']} | {recall} | {ratio} | {value(row, 'answer@5')} "
                         f"| {row['latency_ms_p50']:.0f} ms |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def gold_links_table(results_dir: Path) -> str | None:
    """Per dataset (its newest run over the most passages, eval/benchmarks/gold_links_bench.py): how many
    questions' gold passages the graph links into one chain from the question, by question type, and
    recall@5 of dense, graph and hippo on the questions with the whole chain and on the others."""
    newest = _newest_per_dataset(results_dir, "gold_links")
    if not newest:
        return None
    modes = list(dict.fromkeys(m for run in newest.values() for m in run["recall@5"]))
    header = ("| corpus | questions | gold passages with facts | a gold passage named | whole chain "
              "| whole chain, by type | " + " | ".join(f"{m} recall@5: whole / broken" for m in modes) + " |")
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]

    def share(value: float | None) -> str:
        return "–" if value is None else f"{value:.0%}"

    def number(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    for name in sorted(newest):
        run = newest[name]
        types: dict[str, list[bool]] = {}
        for row in run["rows"]:
            whole = row["gold"] > 0 and row["reachable"] == row["gold"]
            types.setdefault(row.get("question_type") or "untyped", []).append(whole)
        by_type = ", ".join(f"{kind} {sum(v)}/{len(v)}" for kind, v in sorted(types.items()))
        split = [f"{number(run['recall@5'][m]['whole_chain'])} / {number(run['recall@5'][m]['broken_chain'])}"
                 if m in run["recall@5"] else "–" for m in modes]
        cells = [f"{name}, {run['passages']:,} passages ({run['date'][:10]})", str(run["questions"]),
                 share(run["gold_with_facts"]), share(run["questions_with_a_named_gold_passage"]),
                 share(run["questions_with_the_whole_chain"]), by_type, *split]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[Path], str | None]] = {
    "store": store_table,
    "ingest": ingest_table,
    "throughput": throughput_table,
    "embed": embed_table,
    "ablation": ablation_table,
    "gold-links": gold_links_table,
}
