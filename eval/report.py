"""The evaluation report: every result file of a folder as one markdown table, three plots (answer F1
against reader tokens per question, the cost/quality frontier; the same per dataset as the reader's
scaling curve, its step budgets joined; recall@5 per retrieval mode), and optionally that block pasted
into a README between the markers

    <!-- eval-report:start -->
    <!-- eval-report:end -->

(and the store and ingestion benchmark tables into their own blocks, see eval.bench_tables; the readers'
table, calls, sub-queries and forced answers per question where a reader took steps, into
`<!-- eval-report:reader:start -->` ... `<!-- eval-report:reader:end -->`).

Only the latest run per (dataset and its size, kind, mode, extractor) is shown: reruns replace their
older numbers instead of piling up. A reader's step budget is part of its mode ("graph/iterative
(3 steps)"), so the runs of a budget sweep each keep their row."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from eval.bench_tables import TABLES
from eval.result_files import DEFAULT_RESULTS_DIR, EvalConfig, EvalResult

START_MARKER = "<!-- eval-report:start -->"
END_MARKER = "<!-- eval-report:end -->"
FRONTIER_PLOT = "frontier.png"
RECALL_PLOT = "recall_at_5.png"
SCALING_PLOT = "reader_scaling.png"
REPORT_FILE = "report.md"
_KIND_ORDER = {"retrieval": 0, "qa": 1, "kg": 2}


class ReportError(RuntimeError):
    """The results folder cannot be read or the README cannot be written."""


class ReportRow(BaseModel):
    dataset: str
    questions: int
    passages: int
    kind: str
    mode: str
    extractor: str
    n: int
    run_mode: str = Field("", description="the mode as the run named it; `mode` adds the reader's budget")
    steps: int | None = Field(None, description="the reader's step budget (iterative, decompose)")
    per_step_k: int | None = Field(None, description="passages per sub-query, where not the reader's k")
    recall_2: float | None = None
    recall_5: float | None = None
    em: float | None = None
    f1: float | None = None
    coverage: float | None = None
    tokens_per_question: float | None = None
    calls_per_question: float | None = None
    sub_query_share: float | None = Field(None, description="questions the reader asked a sub-query for")
    sub_queries_per_question: float | None = None
    forced_final: float | None = Field(None, description="answers forced after the last step")
    build_tokens: int = 0
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    date: str
    file: str


class DistillRow(BaseModel):
    """One extractor of a distillation benchmark file (`eval/benchmarks/distill_bench.py`)."""

    role: str
    extractor: str
    backend: str  # the runtime: llamacpp, hf or openai
    model: str
    passages: int
    words: int
    calls_per_1000_words: float
    prompt_tokens_per_1000_words: float
    completion_tokens_per_1000_words: float
    llm_seconds_per_1000_words: float
    failed_chunks: int
    chunks: int | None = None
    coverage: float | None = None
    triple_f1_vs_teacher: float | None = None
    date: str
    file: str


@dataclass
class Report:
    rows: list[ReportRow]
    table: str
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    readme_updated: bool = False
    distill_rows: list[DistillRow] = field(default_factory=list)


def load_results(results_dir: Path) -> tuple[list[tuple[Path, EvalResult]], list[str]]:
    """The result files of `results_dir` (sorted by name) and a note for each JSON file that is not one."""
    if not results_dir.is_dir():
        raise ReportError(f"results folder {results_dir} does not exist")
    results, notes = [], []
    for path in sorted(results_dir.glob("*.json")):
        try:
            raw = path.read_bytes()
        except OSError:
            notes.append(f"skipped {path.name}: unreadable")
            continue
        try:
            results.append((path, EvalResult.model_validate_json(raw)))
        except (ValidationError, ValueError):
            if not _is_run_record(raw):
                notes.append(f"skipped {path.name}: not an evaluation result file")
    return results, notes


def _is_run_record(raw: bytes) -> bool:
    """A benchmark's or an ingest run's record (JSON with "benchmark" or "kind"): expected in the
    folder, not worth a note; the distillation ones get a table of their own."""
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    return isinstance(data, dict) and ("benchmark" in data or "kind" in data)


def distill_rows(results_dir: Path) -> list[DistillRow]:
    """Teacher and student rows of the distillation benchmark files, the latest per (student model, its
    backend, passages). Other JSON files are not these and are left alone."""
    latest: dict[tuple[str, str, int], tuple[str, str, list[DistillRow]]] = {}
    for path in sorted(results_dir.glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("benchmark") != "distill":
            continue
        try:
            rows = [_distill_row(role, data, path.name) for role in ("teacher", "student")]
        except (KeyError, TypeError, ValidationError):
            continue
        key = (rows[1].model, rows[1].backend, rows[1].passages)
        if key not in latest or (data["date"], path.name) > latest[key][:2]:
            latest[key] = (data["date"], path.name, rows)
    ordered = sorted(latest.values(), key=lambda v: (v[2][1].model, v[2][1].passages, v[2][1].backend))
    return [row for _, _, rows in ordered for row in rows]


def _distill_row(role: str, data: dict[str, Any], file: str) -> DistillRow:
    side = data[role]
    agreement = side.get("agreement_with_teacher") or {}
    return DistillRow(
        role=role,
        extractor=side["extractor"],
        backend=side["backend"],
        model=side["model"],
        passages=data["passages"],
        words=data["words"],
        calls_per_1000_words=side["llm_calls_per_1000_words"],
        prompt_tokens_per_1000_words=side["prompt_tokens_per_1000_words"],
        completion_tokens_per_1000_words=side["completion_tokens_per_1000_words"],
        llm_seconds_per_1000_words=side["llm_seconds_per_1000_words"],
        failed_chunks=side["failed_chunks"],
        chunks=side.get("chunks"),
        coverage=(side.get("kg_coverage") or {}).get("coverage"),
        triple_f1_vs_teacher=agreement.get("f1"),
        date=data["date"],
        file=file,
    )


def distill_table(rows: list[DistillRow]) -> str:
    """Student against teacher on the same chunks, per 1,000 words, with the student / teacher ratios."""
    header = ("| extractor | model | passages (words) | LLM calls | prompt tokens | completion tokens "
              "| LLM seconds | failed chunks | KG coverage | triple F1 vs teacher |")
    lines = ["Distilled student against the multi-step teacher, per 1,000 words of the same passages:", "",
             header, "|" + "---|" * header.count(" | ") + "---|"]
    for r in rows:
        failed = f"{r.failed_chunks} / {r.chunks}" if r.chunks else str(r.failed_chunks)
        lines.append("| " + " | ".join([
            f"{r.role}: {r.extractor} ({r.backend})", f"`{r.model}`", f"{r.passages} ({r.words:,})",
            f"{r.calls_per_1000_words:.1f}", _tokens(r.prompt_tokens_per_1000_words),
            _tokens(r.completion_tokens_per_1000_words), f"{r.llm_seconds_per_1000_words:,.0f}", failed,
            _number(r.coverage), _number(r.triple_f1_vs_teacher),
        ]) + " |")
        if r.role == "student":
            teacher = next(t for t in rows if t.file == r.file and t.role == "teacher")
            lines.append("| " + " | ".join([
                "ratio student / teacher", "", "",
                _ratio(r.calls_per_1000_words, teacher.calls_per_1000_words), "", "",
                _ratio(r.llm_seconds_per_1000_words, teacher.llm_seconds_per_1000_words), "",
                _ratio(r.coverage, teacher.coverage), "",
            ]) + " |")
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}x"


def report_rows(results: list[tuple[Path, EvalResult]]) -> list[ReportRow]:
    """One row per result and mode, the latest per (dataset, size, kind, mode, extractor)."""
    latest: dict[tuple[str, int, int, str, str, str], ReportRow] = {}
    for path, result in results:
        for mode, summary in result.aggregates.items():
            metrics = summary.metrics
            tokens = metrics.get("tokens_per_question") if result.kind == "qa" else None
            row = ReportRow(
                dataset=result.dataset.name,
                questions=result.dataset.questions,
                passages=result.dataset.passages,
                kind=result.kind,
                mode=mode_label(mode, result.config),
                extractor=result.config.extractor,
                n=summary.n,
                run_mode=mode,
                steps=result.config.max_iterations,
                per_step_k=_per_step_k(result.config),
                recall_2=metrics.get("recall@2"),
                recall_5=metrics.get("recall@5"),
                em=metrics.get("em"),
                f1=metrics.get("f1"),
                coverage=metrics.get("coverage"),
                # Retrieval calls no LLM at query time: 0 tokens, not unknown.
                tokens_per_question=0.0 if result.kind == "retrieval" else tokens,
                calls_per_question=metrics.get("calls_per_question"),
                sub_query_share=metrics.get("sub_query_share"),
                sub_queries_per_question=metrics.get("sub_queries_per_question"),
                forced_final=metrics.get("forced_final"),
                build_tokens=result.cost.build_tokens,
                latency_ms_p50=summary.latency_ms_p50,
                latency_ms_p95=summary.latency_ms_p95,
                date=result.date,
                file=path.name,
            )
            key = (row.dataset, row.questions, row.passages, row.kind, row.mode, row.extractor)
            if key not in latest or (row.date, row.file) > (latest[key].date, latest[key].file):
                latest[key] = row
    return sorted(latest.values(), key=lambda r: (r.dataset, r.questions, r.passages, _KIND_ORDER[r.kind],
                                                  r.mode, r.extractor))


def mode_label(mode: str, config: EvalConfig) -> str:
    """A QA mode with the reader's budget where it has one ("graph/iterative (3 steps, k 3 per step)"),
    so that runs at other budgets get rows of their own."""
    if config.max_iterations is None:
        return mode
    per_step = _per_step_k(config)
    steps = f"{config.max_iterations} step{'' if config.max_iterations == 1 else 's'}"
    return f"{mode} ({steps}{'' if per_step is None else f', k {per_step} per step'})"


def _per_step_k(config: EvalConfig) -> int | None:
    return config.step_k if config.step_k is not None and config.step_k != config.k else None


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _tokens(value: float | int | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _latency(ms: float | None) -> str:
    if ms is None:
        return "–"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def markdown_table(rows: list[ReportRow]) -> str:
    header = ("| dataset | kind | mode | extractor | n | recall@2 | recall@5 | EM | F1 | coverage | tokens/q "
              "| build tokens | latency p50 | p95 |")
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for r in rows:
        cells = [
            _scope(r), r.kind, r.mode, r.extractor, str(r.n),
            _number(r.recall_2), _number(r.recall_5), _number(r.em), _number(r.f1), _number(r.coverage),
            _tokens(r.tokens_per_question), _tokens(r.build_tokens), _latency(r.latency_ms_p50),
            _latency(r.latency_ms_p95),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reader_table(rows: list[ReportRow]) -> str | None:
    """Per dataset (and size) where a reader took steps: every QA run on it, with calls, sub-queries and
    forced answers per question, and F1 and tokens against graph single-shot on the same questions. None
    when no run took steps."""
    qa = [r for r in rows if r.kind == "qa" and r.f1 is not None]
    scopes = list(dict.fromkeys(_scope(r) for r in qa if r.steps is not None))
    if not scopes:
        return None
    header = ("| questions | retrieval / reader | EM | F1 | F1 / graph single | LLM calls / q | tokens / q "
              "| tokens / graph single | with a sub-query | sub-queries / q | answers forced |")
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for scope in scopes:
        runs = sorted((r for r in qa if _scope(r) == scope),
                      key=lambda r: (r.steps is not None, r.run_mode, r.steps or 0, r.per_step_k or 0))
        base = next((r for r in runs if r.run_mode == "graph/single"), None)
        for r in runs:
            stepped = r.steps is not None
            cells = [
                f"{scope}, {r.extractor}", r.mode, _number(r.em), _number(r.f1),
                _ratio(r.f1, base.f1 if base else None), _number(r.calls_per_question, 2),
                _tokens(r.tokens_per_question),
                _ratio(r.tokens_per_question, base.tokens_per_question if base else None),
                _percent(r.sub_query_share) if stepped else "–",
                _number(r.sub_queries_per_question, 2) if stepped else "–",
                _percent(r.forced_final) if stepped else "–",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


GRAPH_COLUMNS = ("graph", "ppr", "hippo")


def corpus_scale_table(results: list[tuple[Path, EvalResult]]) -> str | None:
    """Retrieval over recorded corpora (`--recorded-only`): per dataset and corpus size the newest run's
    recall@5 (answer@5 where the dataset has no supporting passages) of dense and each graph mode, then,
    for each dataset's largest run, the same split by the dataset's question type. None without such runs."""
    newest: dict[tuple[str, int], tuple[Path, EvalResult]] = {}
    for path, result in results:
        if result.kind != "retrieval" or not result.config.recorded_only or "dense" not in result.aggregates:
            continue
        key = (result.dataset.name, result.dataset.passages)
        if key not in newest or (result.date, path.name) > (newest[key][1].date, newest[key][0].name):
            newest[key] = (path, result)
    if not newest:
        return None
    header = "| corpus | questions | metric | dense | " + " | ".join(GRAPH_COLUMNS) + " | best / dense |"
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    largest: dict[str, EvalResult] = {}
    for (name, passages), (_, result) in sorted(newest.items()):
        largest[name] = result
        metric = _headline_metric(result.aggregates["dense"].metrics)
        values = {mode: summary.metrics.get(metric) for mode, summary in result.aggregates.items()}
        lines.append(_scale_line(f"{name}, {passages:,} passages ({result.date[:10]})",
                                 result.aggregates["dense"].n, metric, values))
    typed = [(name, r) for name, r in largest.items() if any(row.get("question_type") for row in r.rows)]
    if typed:
        lines += ["", "By question type (each dataset's largest run above):", "",
                  header.replace("| corpus |", "| corpus, question type |"),
                  "|" + "---|" * header.count(" | ") + "---|"]
        for name, result in typed:
            metric = _headline_metric(result.aggregates["dense"].metrics)
            by_type: dict[str, dict[str, list[float]]] = {}
            for row in result.rows:
                if metric in row["metrics"]:
                    by_type.setdefault(row.get("question_type") or "untyped", {}).setdefault(
                        row["mode"], []).append(row["metrics"][metric])
            for kind, modes in sorted(by_type.items()):
                values = {mode: sum(v) / len(v) for mode, v in modes.items()}
                lines.append(_scale_line(f"{name}, {kind}", len(modes.get("dense", [])), metric, values))
    return "\n".join(lines)


def _headline_metric(dense_metrics: dict[str, float | None]) -> str:
    return "recall@5" if dense_metrics.get("recall@5") is not None else "answer@5"


def _scale_line(scope: str, questions: int, metric: str, values: dict[str, float | None]) -> str:
    dense = values.get("dense")
    graph = [values.get(mode) for mode in GRAPH_COLUMNS]
    best = max((v for v in graph if v is not None), default=None)
    cells = [scope, str(questions), metric, _number(dense), *(_number(v) for v in graph), _ratio(best, dense)]
    return "| " + " | ".join(cells) + " |"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _scope(row: ReportRow) -> str:
    """The dataset and the part of it the run read: the same dataset at another size is another row."""
    return f"{row.dataset} ({row.questions} q, {row.passages:,} p)"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ReportError("the plots need matplotlib: pip install 'synthkg[eval]'") from exc
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_frontier(rows: list[ReportRow], path: Path) -> Path | None:
    """Answer F1 (filled) and EM (hollow) against reader tokens per question, one point per QA mode;
    per dataset, the line joins the runs no other run beats on both (the cost/quality frontier). None
    without QA."""
    points = [r for r in rows if r.kind == "qa" and r.f1 is not None and r.tokens_per_question is not None]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, r in enumerate(points):
        color = f"C{i % 10}"
        label = f"{_scope(r)}: {r.mode} ({r.extractor})"
        ax.scatter(r.tokens_per_question, r.f1, color=color, label=label, zorder=3)
        if r.em is not None:
            ax.scatter(r.tokens_per_question, r.em, facecolors="none", edgecolors=color, zorder=3)
    # One frontier per dataset (and size): runs on different questions do not compete.
    for scope in dict.fromkeys(_scope(r) for r in points):
        runs = [r for r in points if _scope(r) == scope]
        frontier = _pareto([(r.tokens_per_question or 0.0, r.f1 or 0.0) for r in runs])
        ax.plot(*zip(*frontier, strict=True), color="gray", linestyle="--", linewidth=1, zorder=2)
    ax.set_xlabel("reader tokens per question (prompt + completion)")
    ax.set_ylabel("F1 (filled), EM (hollow)")
    ax.set_title("Cost / quality frontier")
    ax.set_ylim(0, 1)
    return _save(plt, fig, [ax], path)


def _save(plt: Any, fig: Any, axes: list[Any], path: Path, *, legend_size: int = 7,
          grid_axis: str = "both") -> Path:
    """Grid and legend on each of `axes`, then the figure written to `path` and closed."""
    for ax in axes:
        ax.grid(axis=grid_axis, alpha=0.3)
        ax.legend(fontsize=legend_size, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_scaling(rows: list[ReportRow], path: Path) -> Path | None:
    """Per dataset (and size) with runs at two or more step budgets: F1 against reader tokens per question,
    each (retrieval, reader, k per step) series joined in budget order and labelled with its steps, the
    single-shot runs as stars. None when no dataset has such a sweep."""
    qa = [r for r in rows if r.kind == "qa" and r.f1 is not None and r.tokens_per_question is not None]
    scopes = [s for s in dict.fromkeys(_scope(r) for r in qa)
              if len({r.steps for r in qa if _scope(r) == s and r.steps is not None}) >= 2]
    if not scopes:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(scopes), figsize=(6.5 * len(scopes), 4.5), squeeze=False)
    for ax, scope in zip(axes[0], scopes, strict=True):
        runs = [r for r in qa if _scope(r) == scope]
        series: dict[str, list[ReportRow]] = {}
        for r in runs:
            if r.steps is not None:
                per_step = "" if r.per_step_k is None else f" (k {r.per_step_k} per step)"
                series.setdefault(r.run_mode + per_step, []).append(r)
        for i, (name, points) in enumerate(series.items()):
            points.sort(key=lambda r: r.steps or 0)
            xs = [r.tokens_per_question or 0.0 for r in points]
            ys = [r.f1 or 0.0 for r in points]
            ax.plot(xs, ys, marker="o", color=f"C{i % 10}", label=name, zorder=3)
            for r, x, y in zip(points, xs, ys, strict=True):
                ax.annotate(str(r.steps), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        for j, r in enumerate(r for r in runs if r.steps is None):
            ax.scatter(r.tokens_per_question, r.f1, marker="*", s=120, color=f"C{(len(series) + j) % 10}",
                       label=r.mode, zorder=4)
        ax.set_xscale("log")
        ax.set_xlabel("reader tokens per question (log)")
        ax.set_ylabel("F1")
        ax.set_title(f"{scope}, {runs[0].extractor}: F1 per step budget", fontsize=9)
    return _save(plt, fig, list(axes[0]), path)


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats with fewer (or equal) tokens and a higher score, by tokens."""
    best = -1.0
    frontier = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            frontier.append((x, y))
            best = y
    return frontier


def plot_recall(rows: list[ReportRow], path: Path) -> Path | None:
    """Recall@5 per retrieval mode, grouped by dataset (and extractor). None without retrieval rows."""
    bars = [r for r in rows if r.kind == "retrieval" and r.recall_5 is not None]
    if not bars:
        return None
    plt = _pyplot()
    groups = list(dict.fromkeys(_group(r) for r in bars))
    modes = list(dict.fromkeys(r.mode for r in bars))
    width = 0.8 / len(modes)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(groups) * max(1, len(modes)) / 2), 4.5))
    for j, mode in enumerate(modes):
        xs, ys = [], []
        for i, group in enumerate(groups):
            match = [r for r in bars if r.mode == mode and _group(r) == group]
            if match:
                xs.append(i + (j - (len(modes) - 1) / 2) * width)
                ys.append(match[0].recall_5 or 0.0)
        ax.bar(xs, ys, width=width, label=mode, color=f"C{j % 10}")
        for x, y in zip(xs, ys, strict=True):
            ax.text(x, y + 0.01, f"{y:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel("recall@5 (gold supporting passages)")
    ax.set_ylim(0, 1.05)
    ax.set_title("Passage recall@5 per retrieval mode")
    return _save(plt, fig, [ax], path, legend_size=8, grid_axis="y")


def _group(row: ReportRow) -> str:
    return f"{_scope(row)}\n{row.extractor}"


def markers(name: str | None = None) -> tuple[str, str]:
    """The README markers of the main block, or of the block `name` (e.g. "store")."""
    if name is None:
        return START_MARKER, END_MARKER
    return f"<!-- eval-report:{name}:start -->", f"<!-- eval-report:{name}:end -->"


def update_readme(readme: Path, block: str, name: str | None = None) -> bool:
    """Replace the text between the markers (of block `name`) in `readme` with `block`; False (nothing
    written) when the file or a marker pair is missing. Never creates a README."""
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8")
    start_marker, end_marker = markers(name)
    start = text.find(start_marker)
    end = text.find(end_marker, start + len(start_marker)) if start >= 0 else -1
    if start < 0 or end < 0:
        return False
    new = text[: start + len(start_marker)] + "\n" + block.strip() + "\n" + text[end:]
    if new != text:
        tmp = readme.with_name(f".{readme.name}.{os.getpid()}.tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, readme)
    return True


def build_report(results_dir: Path = DEFAULT_RESULTS_DIR, readme: Path | None = None) -> Report:
    """Table and plots of every result in `results_dir`, written there as report.md, frontier.png,
    reader_scaling.png and recall_at_5.png; the block goes into `readme` when it has the markers."""
    results, notes = load_results(results_dir)
    rows = report_rows(results)
    distilled = distill_rows(results_dir)
    table = markdown_table(rows)
    if distilled:
        table += "\n\n" + distill_table(distilled)
    report = Report(rows=rows, table=table, notes=notes, distill_rows=distilled)
    if not rows:
        report.notes.append(f"no evaluation results in {results_dir}: run `synthkg eval retrieval ...` first")
        return report
    # No note for a missing budget sweep: most folders have none.
    for plot, name, what in ((plot_frontier, FRONTIER_PLOT, "QA"), (plot_scaling, SCALING_PLOT, None),
                             (plot_recall, RECALL_PLOT, "retrieval")):
        written = plot(rows, results_dir / name)
        if written is None:
            if what is not None:
                report.notes.append(f"no {what} results: {name} not drawn")
        else:
            report.plots.append(written)
    (results_dir / REPORT_FILE).write_text(_block(table, report.plots, results_dir) + "\n", encoding="utf-8")
    if readme is not None:
        report.readme_updated = update_readme(readme, _block(table, report.plots, readme.parent))
        if report.readme_updated:
            report.notes.append(f"updated the report block in {readme}")
        elif not readme.is_file():
            report.notes.append(f"{readme} does not exist (not created): the table is printed above")
        else:
            report.notes.append(
                f"{readme} has no {START_MARKER} ... {END_MARKER} markers: left unchanged; the table is "
                "printed above"
            )
        scale = corpus_scale_table(results)
        if scale is not None and update_readme(readme, scale, "corpus-scale"):
            report.notes.append(f"updated the corpus-scale table in {readme}")
        table_of_readers = reader_table(rows)
        if table_of_readers is not None and update_readme(readme, table_of_readers, "reader"):
            report.notes.append(f"updated the reader table in {readme}")
        for name, make_table in TABLES.items():
            bench_table = make_table(results_dir)
            if bench_table is not None and update_readme(readme, bench_table, name):
                report.notes.append(f"updated the {name} benchmark table in {readme}")
    return report


def _block(table: str, plots: list[Path], relative_to: Path) -> str:
    """The table and the plots as markdown images, linked relative to where the markdown lives."""
    images = [f"![{p.stem}]({Path(os.path.relpath(p.resolve(), relative_to.resolve())).as_posix()})"
              for p in plots]
    return "\n\n".join([table, *images])
