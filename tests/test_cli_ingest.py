"""`synthkg ingest` from the command line with bad input: exit codes that tell a partly bad batch from a
clean one, each problem printed once, and a dry run that writes nothing (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthkg.cli import PARTLY_LOADED, app
from tests.retrieval.helpers import HashingEmbedder

runner = CliRunner()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNTHKG_CONFIG", raising=False)
    monkeypatch.setenv("SYNTHKG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("synthkg.embeddings.make_embedder", lambda settings: HashingEmbedder())


def ingest(*args: str) -> tuple[int, str]:
    options = ["--extractor", "none", "--no-progress"]
    result = runner.invoke(app, ["--store-path", "kg", "ingest", *args, *options])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_exit_codes_tell_clean_partly_bad_and_all_bad_batches(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (good / "a.txt").write_text("Lisbon is the capital of Portugal.", encoding="utf-8")
    (bad / "binary.txt").write_bytes(b"\x00\x01PNG\x00\x00")
    code, output = ingest(str(good))
    assert code == 0, output
    code, output = ingest(str(good), str(bad))
    assert code == PARTLY_LOADED == 2, output
    assert output.count("binary.txt") == 1  # listed once, in the summary
    code, output = ingest(str(bad))
    assert code == 1 and output.count("binary.txt") == 1
    assert "2 the readable documents" in " ".join(runner.invoke(app, ["ingest", "--help"]).output.split())


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Lisbon is the capital of Portugal.", encoding="utf-8")
    result = runner.invoke(app, ["--store-path", "kg", "ingest", str(docs), "--dry-run", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "dry run (estimate)" in result.output
    assert not (tmp_path / "kg").exists()  # no store folder, lock or log appears
    # Over an existing store too: its files stay as they were.
    assert ingest(str(docs))[0] == 0
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "kg").rglob("*") if p.is_file()}
    (docs / "b.txt").write_text("Madrid is the capital of Spain.", encoding="utf-8")
    again = runner.invoke(app, ["--store-path", "kg", "ingest", str(docs), "--dry-run"])
    assert again.exit_code == 0 and "documents=1" in again.output  # only the new one would be extracted
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "kg").rglob("*") if p.is_file()} == before
