"""`synthkg merges list / undo`: the merge log made visible, and undoing a merge for the next ingest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthkg.cli import app
from synthkg.config import Settings, StoreSettings
from synthkg.ingest import IngestOptions, ingest
from synthkg.resolve import Merge, MergeLog
from synthkg.store.embedded import EmbeddedStore
from tests.retrieval.helpers import HashingEmbedder
from tests.rule_llm import RuleBasedLLM

runner = CliRunner()


@pytest.fixture
def ingested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A store with one document (ingested from a file) and one recorded merge in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNTHKG_CONFIG", raising=False)
    source = tmp_path / "a.txt"
    source.write_text("Marie Curie worked in Paris.", encoding="utf-8")
    store_path = tmp_path / ".synthkg" / "store"
    settings = Settings(store=StoreSettings(path=store_path), cache_dir=tmp_path / "cache")
    ingest([source], settings=settings, backend=RuleBasedLLM(), embedder=HashingEmbedder(),
           options=IngestOptions(), progress=False)
    log = MergeLog(settings.data_dir)
    with EmbeddedStore(settings.store.path, read_only=True) as store:
        document_id = next(store.iter_documents()).id
        curie = store.find_entities("marie curie")[0]
    log.append([Merge("M. Curie", "PERSON", curie.id, curie.name, "embedding", 0.93, document_id)])
    return source, curie.name


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--store-path", ".synthkg/store", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_list_numbers_each_merge_with_method_score_and_document(ingested: tuple[Path, str]) -> None:
    code, output = invoke("merges", "list")
    assert code == 0, output
    assert "1. 'M. Curie' -> 'Marie Curie' (embedding 0.93, document doc:" in output
    code, output = invoke("merges", "list", "--json")
    row = json.loads(output.splitlines()[0])
    assert (row["number"], row["name"], row["undone"]) == (1, "M. Curie", False)


def test_undo_blocks_the_pair_and_says_how_to_apply_it(ingested: tuple[Path, str]) -> None:
    source, _ = ingested
    code, output = invoke("merges", "undo", "1")
    assert code == 0, output
    assert "will not be merged into 'Marie Curie' again" in output
    assert f"synthkg ingest --force {source}" in output
    assert ("m. curie", MergeLog(Path(".synthkg")).read()[0].into_id) in MergeLog(Path(".synthkg")).blocked()
    assert "[undone]" in invoke("merges", "list")[1]


def test_undo_of_an_unknown_number_is_a_clear_error(ingested: tuple[Path, str]) -> None:
    code, output = invoke("merges", "undo", "7")
    assert code == 1 and "no merge numbered 7" in output and "1 to 1" in output


def test_list_without_merges_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = invoke("merges", "list")
    assert code == 0 and "no merges recorded" in output
