"""The extraction throughput benchmark: its settings, one setting run end to end with a scripted student
(control flow only: records written, throughput and quality fields, the baseline ratio), and its README
table generated from a result file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from eval.bench_tables import throughput_table
from eval.benchmarks.throughput_bench import Setting, add_ratios, run_setting, score, score_run
from eval.datasets import load_dataset
from synthkg.prompts import load_prompt
from tests.eval.conftest import SAMPLE_DIR
from tests.fakes import StreamingScriptedChatModel
from tests.retrieval.helpers import HashingEmbedder
from tests.test_extract_cli import lines_reply, lines_student


def test_settings_parse_and_bad_ones_are_refused() -> None:
    assert Setting.parse("lines-4=distilled:runs/s:server:4") == Setting(
        "lines-4", "distilled", "runs/s", "server", 4, 0, None
    )
    assert Setting.parse("shared=distilled:m:python:1:1").load == 1
    assert Setting.parse("one-thread=distilled:m:server:4:1:1").threads == 1
    assert Setting.parse("spec=distilled:m:server:4+ngram-simple").speculative == "ngram-simple"
    assert Setting.parse("plain=distilled:m:server:4").speculative == "none"
    bad_ones = ("x=distilled:m:gpu:1", "distilled:m:server:4", "x=teacher:m:server:4", "x=distilled:m:server",
                "x=distilled:m:server:4+magic", "x=distilled:m:python:1+ngram-simple")
    for bad in bad_ones:
        with pytest.raises(typer.BadParameter, match="expected NAME="):
            Setting.parse(bad)


def test_a_setting_runs_and_is_scored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = StreamingScriptedChatModel(lines_reply)
    fake.parallel = 2  # type: ignore[attr-defined]
    monkeypatch.setattr("synthkg.llm.factory.make_student_backend", lambda settings, cache_dir: fake)
    monkeypatch.setattr("synthkg.runtime.load_student_prompt", lambda path: lines_student())
    data = load_dataset(SAMPLE_DIR / "demo_question.json", SAMPLE_DIR / "demo_corpus.json")
    cache_root = tmp_path / "cache-root"
    (cache_root / "models").mkdir(parents=True)
    setting = Setting("fake", "distilled", "runs/student", "server", 2)
    row, records = run_setting(setting, data, tmp_path / "work", cache_root)
    assert row["passages"] == len(data.passages)
    assert row["chunks"] == len(records.read_text().splitlines()) >= len(data.passages)  # a record a chunk
    assert row["completion_tokens_per_passage"] > 0 and row["passages_per_hour"] > 0
    assert row["stages"].keys() == {"one_call"}  # the warm-up call is not counted
    assert fake.calls[0].messages[-1]["content"] == "Say OK."
    assert load_prompt("one_call_lines").system == fake.calls[1].messages[0]["content"]
    quality, triples = score("fake", records, data, tmp_path / "work", HashingEmbedder(), 0.88)
    assert quality["failed_chunks"] == 0 and quality["triples"] == len(triples.all) > 0

    # Scored later against a teacher graph (here the same records: every triple agrees).
    run = {"settings": [row | quality | {"records": records.name}], "teacher": None, "baseline": "fake"}
    scored = score_run(run, data, records.parent, records, HashingEmbedder(), 0.88)
    assert scored["settings"][0]["agreement_with_teacher"]["f1"] == 1.0
    assert scored["teacher"]["triples"] == quality["triples"] and scored["teacher"]["scored"]
    assert run["teacher"] is None and "agreement_with_teacher" not in run["settings"][0]  # a new result
    # Records that are not the run's (another quality than it measured), or missing ones, are refused.
    other = {"settings": [run["settings"][0] | {"triples": quality["triples"] + 1}]}
    with pytest.raises(ValueError, match="not the records of this run"):
        score_run(other, data, records.parent, records, HashingEmbedder(), 0.88)
    with pytest.raises(ValueError, match="is missing"):
        score_run(run, data, tmp_path / "elsewhere", records, HashingEmbedder(), 0.88)


def test_the_readme_table_comes_from_the_newest_result(tmp_path: Path) -> None:
    assert throughput_table(tmp_path) is None

    def row(name: str, per_hour: float, ratio: float) -> dict[str, object]:
        return {
            "setting": {"name": name, "extractor": "distilled", "model": f"runs/{name}", "engine": "server",
                        "slots": 4, "load": 0},
            "passages_per_hour": per_hour, "ratio_passages_per_hour": ratio,
            "completion_tokens_per_passage": 300.0, "completion_tokens_per_second": 40.0,
            "llm_calls_per_1000_words": 12.3, "loops_per_1000_chunks": 0.0, "failed_chunks": 1, "chunks": 53,
            "agreement_with_teacher": {"f1": 0.41}, "kg_coverage": 0.2,
        }

    result = {"benchmark": "throughput", "dataset": "../shared/data/multihop/musique", "passages": 50,
              "chunks": 53, "teacher": {"records": "data/records/t.jsonl", "kg_coverage": 0.167,
                                        "failed_chunks": 2}}
    old = {**result, "date": "2026-01-01", "settings": [row("a", 1, 1)]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(
        {**result, "date": "2026-12-03", "settings": [row("base", 160.0, 1.0), row("fast", 1200.0, 7.5)]}
    ))
    # A run still going (its partial file, newest of all) is no result yet.
    (tmp_path / "partial.json").write_text(json.dumps(
        {"benchmark": "throughput", "partial": True, "settings": [row("half", 9.0, 1.0)]}
    ))
    table = throughput_table(tmp_path)
    assert table is not None and "2026-12-03" in table and "| half |" not in table and "| a |" not in table
    expected = "| fast | distilled `fast` | server, 4 | 1,200 | 7.50x | 300 | 40.0 | 12.3 | 0 | 1 / 53 | 0.41"
    assert expected in table
    # With the F1 difference to the baseline the run measured, its interval is shown beside the F1.
    compared = row("fast", 1200.0, 7.5) | {"triple_f1_vs_baseline": {"difference": -0.014,
                                                                      "ci95": [-0.05, 0.021]}}
    (tmp_path / "new.json").write_text(json.dumps(
        {**result, "date": "2026-12-03", "settings": [row("base", 160.0, 1.0), compared]}
    ))
    table = throughput_table(tmp_path)
    assert table is not None and "| 0.410 (-0.014, 95% CI -0.050 to +0.021) | 0.2" in table
    assert "| 1 / 53 | 0.410 | 0.2" in table  # the baseline's own row: no difference


def test_ratios_are_to_the_named_baseline() -> None:
    def row(name: str, per_hour: float, tokens: float) -> dict[str, object]:
        return {"setting": {"name": name}, "passages_per_hour": per_hour,
                "completion_tokens_per_passage": tokens}

    rows = [row("teacher", 60.0, 700.0), row("current", 120.0, 540.0), row("lines", 600.0, 180.0)]
    add_ratios(rows, "current")
    assert [r["ratio_passages_per_hour"] for r in rows] == [0.5, 1.0, 5.0]
    assert [r["ratio_completion_tokens"] for r in rows] == [1.3, 1.0, 0.33]
