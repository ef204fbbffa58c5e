from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.report import (
    END_MARKER,
    START_MARKER,
    ReportError,
    _pareto,
    build_report,
    corpus_scale_table,
    load_results,
    markers,
    reader_table,
)
from eval.result_files import Cost, DatasetInfo, EvalConfig, EvalResult, ModeSummary, StageCost

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def result(kind: str, date: str, aggregates: dict[str, dict[str, float]], extractor: str = "none",
           latency: float | None = None, build: int = 0) -> EvalResult:
    return EvalResult(
        kind=kind,  # type: ignore[arg-type]
        dataset=DatasetInfo(name="musique", questions=51, passages=1839),
        config=EvalConfig(modes=list(aggregates), extractor=extractor, embedding_model="all-MiniLM-L6-v2"),
        versions={"python": "3.11"},
        rows=[],
        aggregates={
            mode: ModeSummary(n=51, metrics=metrics, latency_ms_p50=latency,
                              latency_ms_p95=None if latency is None else 1.5 * latency)
            for mode, metrics in aggregates.items()
        },
        cost=Cost.of({"build/quadruples": StageCost(calls=3, prompt_tokens=build)}, 1.0, 1.0),
        date=date,
    )


def write(folder: Path, name: str, value: EvalResult) -> None:
    (folder / name).write_text(value.model_dump_json())


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    write(folder, "retrieval-old.json", result(
        "retrieval", "2025-01-01T00:00:00+00:00", {"bm25": {"recall@2": 0.25, "recall@5": 0.5}}, latency=1.0
    ))
    write(folder, "retrieval-new.json", result(
        "retrieval", "2025-02-01T00:00:00+00:00",
        {"bm25": {"recall@2": 0.5, "recall@5": 0.75}, "dense": {"recall@2": 0.6, "recall@5": 0.8}},
        latency=20.0,
    ))
    write(folder, "retrieval-graph.json", result(
        "retrieval", "2025-02-02T00:00:00+00:00", {"graph": {"recall@2": 0.7, "recall@5": 0.9}},
        extractor="multistep", latency=2500.0, build=90_000,
    ))
    write(folder, "qa.json", result(
        "qa", "2025-02-03T00:00:00+00:00",
        {"bm25/single": {"em": 0.2, "f1": 0.4, "tokens_per_question": 300.0},
         "graph/iterative": {"em": 0.4, "f1": 0.6, "tokens_per_question": 1200.0}},
        extractor="multistep", latency=4000.0,
    ))
    write(folder, "kg.json", result(
        "kg", "2025-02-04T00:00:00+00:00", {"supporting": {"coverage": 0.45}, "global": {"coverage": 0.6}},
        extractor="multistep",
    ))
    (folder / "store_bench.json").write_text(json.dumps({"benchmark": "store"}))
    (folder / "stray.json").write_text(json.dumps({"something": "else"}))
    return folder


def test_table_keeps_the_latest_run_per_mode(results_dir: Path) -> None:
    report = build_report(results_dir)
    modes = [(r.kind, r.mode, r.extractor) for r in report.rows]
    assert modes == [
        ("retrieval", "bm25", "none"), ("retrieval", "dense", "none"), ("retrieval", "graph", "multistep"),
        ("qa", "bm25/single", "multistep"), ("qa", "graph/iterative", "multistep"),
        ("kg", "global", "multistep"), ("kg", "supporting", "multistep"),
    ]
    lines = report.table.splitlines()
    assert lines[0].startswith("| dataset | kind | mode |") and len(lines) == 2 + 7
    assert ("| musique (51 q, 1,839 p) | retrieval | bm25 | none | 51 | 0.500 | 0.750 | – | – | – | 0 | 0 "
            "| 20.0 ms | 30.0 ms |") in lines
    assert ("| musique (51 q, 1,839 p) | retrieval | graph | multistep | 51 | 0.700 | 0.900 | – | – | – | 0 "
            "| 90,000 | 2.5 s | 3.8 s |") in lines
    assert any("| qa | graph/iterative |" in line and "| 0.400 | 0.600 |" in line and "| 1,200 |" in line
               for line in lines)
    assert any("| kg | supporting |" in line and "| 0.450 |" in line for line in lines)
    # a benchmark's own record is expected in the folder; a stray JSON file is named
    assert report.notes == ["skipped stray.json: not an evaluation result file"]


def test_a_subset_of_the_same_dataset_is_a_row_of_its_own(results_dir: Path) -> None:
    subset = result("retrieval", "2025-03-01T00:00:00+00:00", {"bm25": {"recall@2": 0.9, "recall@5": 1.0}})
    subset.dataset = DatasetInfo(name="musique", questions=19, passages=50)
    write(results_dir, "retrieval-subset.json", subset)
    bm25 = [line for line in build_report(results_dir).table.splitlines() if "| retrieval | bm25 |" in line]
    assert [line.split(" | ")[0] for line in bm25] == ["| musique (19 q, 50 p)", "| musique (51 q, 1,839 p)"]
    assert "| 0.500 | 0.750 |" in bm25[1]  # the full-corpus run is not replaced by the newer subset run


def recorded_run(date: str, passages: int, rows: list[tuple[str, str, str | None, dict[str, float]]]
                 ) -> EvalResult:
    """A `--recorded-only` retrieval run whose aggregates are the means of `rows` (question, mode, type,
    metrics)."""
    modes = list(dict.fromkeys(mode for _, mode, _, _ in rows))
    aggregates = {}
    for mode in modes:
        values = [m for _, m_mode, _, m in rows if m_mode == mode]
        names = {name for m in values for name in m}
        aggregates[mode] = ModeSummary(n=len(values), metrics={
            name: sum(m[name] for m in values) / len(values) for name in names})
    run = result("retrieval", date, {})
    run.dataset = DatasetInfo(name="2wiki", questions=len({q for q, *_ in rows}), passages=passages)
    run.config = EvalConfig(modes=modes, extractor="distilled-records", embedding_model="m",
                            recorded_only=True)
    run.aggregates = aggregates
    run.rows = [{"question_id": q, "mode": mode, "gold": [], "retrieved": [], "metrics": m, "latency_ms": 1.0,
                 **({"question_type": kind} if kind else {})} for q, mode, kind, m in rows]
    return run


def test_corpus_scale_table_per_size_and_by_question_type(results_dir: Path) -> None:
    small = recorded_run("2025-01-01T00:00:00+00:00", 600, [
        ("q1", "dense", None, {"recall@5": 0.5}), ("q1", "hippo", None, {"recall@5": 1.0}),
    ])
    rows = []
    for q, kind, dense, hippo, graph in (("q1", "comparison", 0.5, 1.0, 0.5),
                                         ("q2", "comparison", 1.0, 1.0, 1.0),
                                         ("q3", "compositional", 0.5, 0.5, 1.0)):
        rows += [(q, "dense", kind, {"recall@5": dense}), (q, "hippo", kind, {"recall@5": hippo}),
                 (q, "graph", kind, {"recall@5": graph})]
    large = recorded_run("2025-01-02T00:00:00+00:00", 1400, rows)
    older_large = recorded_run("2024-12-01T00:00:00+00:00", 1400, rows[:3])
    answers_only = recorded_run("2025-01-03T00:00:00+00:00", 300, [
        ("h1", "dense", None, {"answer@5": 0.5}), ("h1", "ppr", None, {"answer@5": 0.25}),
    ])
    answers_only.dataset.name = "hotpot"
    not_recorded = result("retrieval", "2025-05-01T00:00:00+00:00", {"dense": {"recall@5": 0.1}})
    files = [(Path(f"r{i}.json"), r) for i, r in enumerate((small, large, older_large, answers_only,
                                                             not_recorded))]
    lines = (corpus_scale_table(files) or "").splitlines()
    assert lines[2:5] == [
        "| 2wiki, 600 passages (2025-01-01) | 1 | recall@5 | 0.500 | – | – | 1.000 | 2.00x |",
        "| 2wiki, 1,400 passages (2025-01-02) | 3 | recall@5 | 0.667 | 0.833 | – | 0.833 | 1.25x |",
        "| hotpot, 300 passages (2025-01-03) | 1 | answer@5 | 0.500 | – | 0.250 | – | 0.50x |",
    ]
    typed = lines[lines.index("By question type (each dataset's largest run above):") + 4:]
    assert typed == [
        "| 2wiki, comparison | 2 | recall@5 | 0.750 | 0.750 | – | 1.000 | 1.33x |",
        "| 2wiki, compositional | 1 | recall@5 | 0.500 | 1.000 | – | 0.500 | 2.00x |",
    ]
    assert corpus_scale_table([(Path("x.json"), not_recorded)]) is None


def distill_file(
    date: str, student_calls: float, student_coverage: float, student_backend: str = "llamacpp"
) -> dict[str, object]:
    def side(extractor: str, model: str, calls: float, coverage: float, failed: int) -> dict[str, object]:
        return {"extractor": extractor, "backend": "llamacpp", "model": model,
                "llm_calls_per_1000_words": calls,
                "prompt_tokens_per_1000_words": 10_000.0, "completion_tokens_per_1000_words": 5_000.0,
                "llm_seconds_per_1000_words": 10.0 * calls, "failed_chunks": failed, "chunks": 60,
                "kg_coverage": {"coverage": coverage}}
    student = side("distilled", "adapters/student", student_calls, student_coverage, 3)
    student["agreement_with_teacher"] = {"f1": 0.5}
    student["backend"] = student_backend
    return {"benchmark": "distill", "date": date, "passages": 50, "words": 4000,
            "teacher": side("multistep", "teacher-1.5b", 12.0, 0.4, 1), "student": student}


def test_distillation_benchmark_gets_its_own_table_with_ratios(results_dir: Path) -> None:
    for name, date, calls, coverage in (("old", "2025-01-01", 6, 0.1), ("new", "2025-02-01", 3, 0.38)):
        record = distill_file(f"{date}T00:00:00+00:00", calls, coverage)
        (results_dir / f"distill-{name}.json").write_text(json.dumps(record))
    report = build_report(results_dir)
    assert [(r.role, r.file) for r in report.distill_rows] == [
        ("teacher", "distill-new.json"), ("student", "distill-new.json")
    ]
    lines = report.table.splitlines()
    teacher = next(line for line in lines if line.startswith("| teacher: multistep (llamacpp) |"))
    assert "| 50 (4,000) | 12.0 | 10,000 | 5,000 | 120 | 1 / 60 | 0.400 | – |" in teacher
    student = next(line for line in lines if line.startswith("| student: distilled (llamacpp) |"))
    assert "| 3.0 |" in student and "| 3 / 60 | 0.380 | 0.500 |" in student
    ratio = next(line for line in lines if line.startswith("| ratio student / teacher |"))
    assert ratio.count("0.25x") == 2 and "0.95x" in ratio  # calls and seconds; coverage
    assert all(cell.strip() for cell in teacher.split("|")[1:-1])  # no empty cell in a data row


def test_the_same_student_on_another_backend_is_a_row_of_its_own(results_dir: Path) -> None:
    for backend, date in (("hf", "2025-01-01"), ("llamacpp", "2025-02-01")):
        record = distill_file(f"{date}T00:00:00+00:00", 1, 0.1, student_backend=backend)
        (results_dir / f"distill-{backend}.json").write_text(json.dumps(record))
    students = [r for r in build_report(results_dir).distill_rows if r.role == "student"]
    assert [(r.backend, r.file) for r in students] == [
        ("hf", "distill-hf.json"), ("llamacpp", "distill-llamacpp.json")
    ]


def test_plots_are_pngs_and_report_md_links_them(results_dir: Path) -> None:
    report = build_report(results_dir)
    assert [p.name for p in report.plots] == ["frontier.png", "recall_at_5.png"]
    for plot in report.plots:
        assert plot.read_bytes().startswith(PNG_MAGIC) and plot.stat().st_size > 5000
    markdown = (results_dir / "report.md").read_text()
    assert report.table in markdown
    assert "![frontier](frontier.png)" in markdown and "![recall_at_5](recall_at_5.png)" in markdown


def test_retrieval_only_results_draw_no_frontier(tmp_path: Path) -> None:
    write(tmp_path, "r.json", result("retrieval", "2025-01-01T00:00:00+00:00", {"bm25": {"recall@5": 0.5}}))
    report = build_report(tmp_path)
    assert [p.name for p in report.plots] == ["recall_at_5.png"]
    assert not (tmp_path / "frontier.png").exists()
    assert "no QA results: frontier.png not drawn" in report.notes


def test_readme_block_between_markers_is_replaced(results_dir: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    before, after = "# Project\n\nIntro.\n\n", "\n\n## Licence\nApache-2.0\n"
    readme.write_text(f"{before}{START_MARKER}\nold numbers\n{END_MARKER}{after}")
    report = build_report(results_dir, readme=readme)
    text = readme.read_text()
    assert report.readme_updated
    assert text.startswith(before + START_MARKER) and text.endswith(END_MARKER + after)
    assert "old numbers" not in text and report.table in text
    assert "![frontier](results/frontier.png)" in text  # relative to the README
    build_report(results_dir, readme=readme)
    assert readme.read_text() == text


def test_readme_without_markers_is_left_alone(results_dir: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n")
    report = build_report(results_dir, readme=readme)
    assert not report.readme_updated and readme.read_text() == "# Project\n"
    assert any("has no <!-- eval-report:start -->" in note for note in report.notes)
    missing = tmp_path / "NOPE.md"
    report = build_report(results_dir, readme=missing)
    assert not missing.exists() and any("does not exist (not created)" in n for n in report.notes)


def test_empty_and_missing_results_folders(tmp_path: Path) -> None:
    report = build_report(tmp_path)
    assert report.rows == [] and report.plots == [] and "no evaluation results" in report.notes[0]
    with pytest.raises(ReportError, match="does not exist"):
        load_results(tmp_path / "missing")


def test_pareto_frontier() -> None:
    points = [(300.0, 0.5), (100.0, 0.3), (200.0, 0.2), (100.0, 0.1), (400.0, 0.5)]
    assert _pareto(points) == [(100.0, 0.3), (300.0, 0.5)]


def test_store_and_ingest_benchmark_tables_fill_their_own_readme_blocks(results_dir: Path) -> None:
    def store(rate: float, p50: float) -> dict[str, object]:
        return {"relations_per_s": rate, "neighbors_1hop": {"p50_ms": p50, "p95_ms": 2 * p50},
                "neighbors_2hop": {"p50_ms": 10 * p50, "p95_ms": 20 * p50}}
    stores = {"embedded": store(20_000.0, 0.01), "neo4j": store(1_000.0, 5.0) | {"server": "ArcadeDB"}}
    (results_dir / "store_bench.json").write_text(json.dumps({"benchmark": "store_bench", "stores": stores}))
    per = {"llm_calls_per_passage": 2.3, "prompt_tokens_per_passage": 1570.6,
           "completion_tokens_per_passage": 737.9, "seconds_per_passage": 54.75, "entities_per_passage": 9.7,
           "propositions_per_passage": 5.6, "relations_per_passage": 7.0, "failed_chunks": 2, "chunks": 53}
    for date, passages in (("2025-01-01", 12), ("2025-02-01", 50)):
        run = {"benchmark": "ingest", "date": f"{date}T00:00:00", "model": "m", "passages": passages,
               "per": per}
        (results_dir / f"ingest-{passages}.json").write_text(json.dumps(run))
    readme = results_dir / "README.md"
    pairs = (markers(), markers("store"), markers("ingest"))
    blocks = "".join(f"{start}\nold\n{end}\n" for start, end in pairs)
    readme.write_text(blocks)
    build_report(results_dir, readme=readme)
    text = readme.read_text()
    assert "old" not in text
    assert "| Neo4jStore over Bolt (ArcadeDB) | 1,000 | 5.0 / 10.0 ms | 50.0 / 100.0 ms |" in text
    assert "| ratio Neo4j / embedded (p50) | 0.05x | 500x | 500x |" in text
    runs = [line for line in text.splitlines() if line.startswith("| `m`")]
    assert [r.split(" | ")[0] for r in runs] == [
        "| `m`, 50 passages (2025-02-01)", "| `m`, 12 passages (2025-01-01)"
    ]
    assert runs[0].endswith("| 2.30 | 1,571 | 738 | 54.8 | 9.7 | 5.6 | 7.0 | 2 / 53 |")


def sweep_result(steps: int, f1: float, tokens: float, reader: str = "iterative",
                 step_k: int | None = None) -> EvalResult:
    metrics = {"em": f1, "f1": f1, "tokens_per_question": tokens}
    run = result("qa", f"2025-03-0{steps}T00:00:00+00:00", {f"graph/{reader}": metrics},
                 extractor="distilled")
    run.config = run.config.model_copy(update={"reader": reader, "k": 5, "max_iterations": steps,
                                               "step_k": step_k or 5})
    return run


def test_a_step_budget_sweep_keeps_a_row_per_budget_and_draws_the_scaling_plot(tmp_path: Path) -> None:
    for steps, f1, tokens in ((1, 0.40, 2500.0), (2, 0.45, 4000.0), (5, 0.50, 7700.0)):
        write(tmp_path, f"qa-iter-{steps}.json", sweep_result(steps, f1, tokens))
    write(tmp_path, "qa-decompose.json", sweep_result(4, 0.48, 1300.0, reader="decompose", step_k=3))
    single = {"graph/single": {"em": 0.4, "f1": 0.44, "tokens_per_question": 700.0}}
    write(tmp_path, "qa-single.json",
          result("qa", "2025-03-09T00:00:00+00:00", single, extractor="distilled"))
    report = build_report(tmp_path)
    assert [r.mode for r in report.rows] == [
        "graph/decompose (4 steps, k 3 per step)", "graph/iterative (1 step)", "graph/iterative (2 steps)",
        "graph/iterative (5 steps)", "graph/single",
    ]
    assert [p.name for p in report.plots] == ["frontier.png", "reader_scaling.png"]
    assert (tmp_path / "reader_scaling.png").read_bytes().startswith(PNG_MAGIC)


def test_one_budget_draws_no_scaling_plot(results_dir: Path) -> None:
    report = build_report(results_dir)
    assert "reader_scaling.png" not in [p.name for p in report.plots]
    assert not (results_dir / "reader_scaling.png").exists()


def test_reader_table_compares_each_run_with_graph_single_shot(tmp_path: Path) -> None:
    stepped = sweep_result(2, 0.5, 1400.0)
    stepped.aggregates["graph/iterative"].metrics.update({
        "calls_per_question": 3.5, "sub_query_share": 0.75, "sub_queries_per_question": 1.25,
        "forced_final": 0.5,
    })
    write(tmp_path, "qa-iter.json", stepped)
    single = {"graph/single": {"em": 0.4, "f1": 0.4, "tokens_per_question": 700.0, "calls_per_question": 1.0}}
    write(tmp_path, "qa-single.json",
          result("qa", "2025-03-09T00:00:00+00:00", single, extractor="distilled"))
    table = reader_table(build_report(tmp_path).rows)
    assert table is not None
    lines = table.splitlines()
    scope = "| musique (51 q, 1,839 p), distilled"
    assert lines[2].startswith(f"{scope} | graph/single | 0.400 | 0.400 | 1.00x | 1.00 |")
    assert lines[3] == (f"{scope} | graph/iterative (2 steps) | 0.500 | 0.500 | 1.25x "
                        "| 3.50 | 1,400 | 2.00x | 75% | 1.25 | 50% |")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- eval-report:reader:start -->\n<!-- eval-report:reader:end -->\n")
    build_report(tmp_path, readme)
    assert "| graph/iterative (2 steps) |" in readme.read_text()


def test_no_reader_table_without_steps(results_dir: Path) -> None:
    rows = [r for r in build_report(results_dir).rows if r.mode != "graph/iterative"]
    assert reader_table(rows) is None
