"""`synthkg eval ...` through the real root command (settings callback included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthkg.cli import app
from tests.eval.conftest import SAMPLE_DIR

runner = CliRunner()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty folder: no synthkg.toml, and the default eval/results and .synthkg land here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNTHKG_CONFIG", raising=False)


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_passages_writes_what_an_eval_reads_as_a_corpus_file(tmp_path: Path) -> None:
    code, output = invoke("eval", "passages", "--dataset", str(SAMPLE_DIR), "--limit", "1", "-o", "one.json")
    assert code == 0, output
    written = json.loads((tmp_path / "one.json").read_text())
    questions = json.loads((SAMPLE_DIR / "dev.json").read_text())
    corpus = {p["id"]: p for p in json.loads((SAMPLE_DIR / "corpus.json").read_text())}
    assert {p["id"] for p in written} == set(questions[0]["context_passage_ids"])
    assert all(p == {k: corpus[p["id"]][k] for k in ("id", "title", "text")} for p in written)
    assert f"wrote {len(written)} passages, those of 1 question(s)" in output
    code, output = invoke("eval", "passages", "--dataset", str(SAMPLE_DIR), "-o", "all.json")
    assert code == 0 and len(json.loads((tmp_path / "all.json").read_text())) == 40
    code, output = invoke("eval", "passages", "--dataset", str(tmp_path / "missing"), "-o", "x.json")
    assert code != 0 and "missing" in output and not (tmp_path / "x.json").exists()


@pytest.mark.slow  # loads the MiniLM embedder
def test_retrieval_on_the_sample_then_report(tmp_path: Path) -> None:
    code, output = invoke("eval", "retrieval", "--dataset", str(SAMPLE_DIR), "--extractor", "none",
                          "--work-dir", "work", "--no-progress")
    assert code == 0, output
    files = list((tmp_path / "eval" / "results").glob("retrieval-sample-bm25+dense-*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["kind"] == "retrieval" and data["config"]["modes"] == ["bm25", "dense"]
    assert data["config"]["extractor"] == "none" and data["config"]["embedding_model"] == "all-MiniLM-L6-v2"
    assert data["dataset"] == {"name": "sample", "questions": 4, "passages": 40}
    for mode in ("bm25", "dense"):
        metrics = data["aggregates"][mode]["metrics"]
        assert 0.0 <= metrics["recall@2"] <= metrics["recall@5"] <= 1.0
        assert f"{mode}: n=4 recall@2=" in output
    assert len(data["rows"]) == 8
    assert [p.name[:16] for p in (tmp_path / "work").iterdir()] == ["sample-none-40p-"]

    code, output = invoke("eval", "report")
    assert code == 0, output
    assert "| sample (4 q, 40 p) | retrieval | bm25 | none | 4 |" in output
    assert (tmp_path / "eval" / "results" / "recall_at_5.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow  # loads the MiniLM embedder
def test_own_jsonl_questions_with_a_corpus_file(tmp_path: Path) -> None:
    questions = json.loads((SAMPLE_DIR / "dev.json").read_text())
    own = tmp_path / "mine.jsonl"
    own.write_text("\n".join(json.dumps(q) for q in questions[2:]) + "\n")
    code, output = invoke("eval", "retrieval", "-d", str(own), "--corpus", str(SAMPLE_DIR / "corpus.json"),
                          "--limit", "1", "--modes", "bm25", "--k", "1,3", "--out", "out", "--no-progress")
    assert code == 0, output
    (path,) = (tmp_path / "out").glob("retrieval-mine-bm25-*.json")
    data = json.loads(path.read_text())
    assert data["dataset"]["questions"] == 1 and data["dataset"]["passages"] == 10
    assert data["config"]["ks"] == [1, 3] and data["config"]["limit"] == 1
    assert set(data["aggregates"]["bm25"]["metrics"]) == {"recall@1", "recall@3", "hits@1", "hits@3",
                                                          "answer@1", "answer@3"}
    assert data["config"]["supporting_only"] is False and data["config"]["distractors"] == 8

    code, output = invoke("eval", "retrieval", "-d", str(own), "--corpus", str(SAMPLE_DIR / "corpus.json"),
                          "--limit", "2", "--supporting-only", "--modes", "bm25", "--out", "closed",
                          "--no-progress")
    assert code == 0, output
    (path,) = (tmp_path / "closed").glob("retrieval-mine-bm25-*.json")
    data = json.loads(path.read_text())
    gold = {p for q in questions[2:4] for p in q["supporting_passage_ids"]}
    assert data["dataset"]["passages"] == len(gold) < 20
    assert data["config"]["supporting_only"] is True and data["config"]["distractors"] is None


@pytest.mark.slow  # loads the MiniLM embedder
def test_kg_counts_questions_without_gold_triples(tmp_path: Path) -> None:
    # The sample carries no gold triples: give the Konrad question the 2Wiki-style evidence of its answer.
    questions = json.loads((SAMPLE_DIR / "dev.json").read_text())
    konrad = next(q for q in questions if q["id"] == "c5118f1a0baf11ebab90acde48001122")
    konrad["evidence"] = [["Konrad V Kantner", "father", "Konrad III the Old"],
                          ["Konrad III the Old", "father", "Konrad II the Gray"]]
    own = tmp_path / "dev.json"
    own.write_text(json.dumps(questions))
    # Chunks only: nothing is extracted, so every gold triple is missed; no LLM is needed.
    code, output = invoke("eval", "kg", "-d", str(own), "--corpus", str(SAMPLE_DIR / "corpus.json"),
                          "--extractor", "none", "--no-progress")
    assert code == 0, output
    (path,) = (tmp_path / "eval" / "results").glob("kg-dev-none-*.json")
    data = json.loads(path.read_text())
    supporting = data["aggregates"]["supporting"]
    assert (supporting["n"], supporting["skipped"]) == (1, 3)
    assert supporting["metrics"]["coverage"] == 0.0 and supporting["metrics"]["gold_triples"] == 2
    assert "3 question(s) have no gold triples" in output
    assert "the store holds no relations" in output
    assert data["config"]["thresholds"] == {"coverage_similarity": 0.88}


def test_bad_dataset_record_is_named(tmp_path: Path) -> None:
    questions = json.loads((SAMPLE_DIR / "dev.json").read_text())
    del questions[1]["answer"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(questions))
    code, output = invoke("eval", "retrieval", "-d", str(bad), "--corpus", str(SAMPLE_DIR / "corpus.json"))
    assert code == 1
    assert f"{bad}: record 1 (id '{questions[1]['id']}'): missing field 'answer'" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--modes", "graph", "--extractor", "none"], "need an extracted graph"),
        (["--modes", "bm25,sparse"], "unknown retrieval mode(s) sparse"),
        (["--k", "2,x"], "--k must be comma-separated integers"),
        (["--k", "0"], "every k must be >= 1"),
        (["--recorded-only"], "--recorded-only needs --records"),
    ],
)
def test_bad_options_fail_with_a_message(args: list[str], message: str) -> None:
    code, output = invoke("eval", "retrieval", "-d", str(SAMPLE_DIR), *args)
    assert code == 1
    assert message in output


def test_report_on_a_missing_folder(tmp_path: Path) -> None:
    code, output = invoke("eval", "report", "--results", str(tmp_path / "nothing"))
    assert code == 1 and "does not exist" in output


def test_help_explains_every_option() -> None:
    for command, options in {
        "retrieval": ["--dataset", "--corpus", "--limit", "--modes", "--k", "--extractor", "--out"],
        "qa": ["--reader", "--modes", "--k", "--max-iterations", "--model"],
        "kg": ["--threshold", "--extractor"],
        "report": ["--results", "--readme"],
    }.items():
        code, output = invoke("eval", command, "--help")
        assert code == 0
        for option in options:
            assert option in output, (command, option)
