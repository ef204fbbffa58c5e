"""`synthkg query`, `retrieve` and `reindex` through the real root command, over the hand-written 2-hop
corpus. The LLM is the scripted fake of tests/test_api.py (injected where the settings' backend is made);
the fast tests also swap the embedding model for the hashing embedder, the slow one uses the real MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthkg.cli import app
from synthkg.model import GraphBatch
from tests.retrieval.corpus import QUESTION, SUPPORT_A, SUPPORT_B, chunk_id_of
from tests.retrieval.helpers import HashingEmbedder
from tests.test_api import DIRECTOR_QUERY, SUB_QUERY, build_graph_dir, citing_model

runner = CliRunner()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty working folder (no synthkg.toml), its own LLM call cache, and the scripted model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNTHKG_CONFIG", raising=False)
    monkeypatch.setenv("SYNTHKG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("synthkg.llm.factory.make_backend", lambda *_: citing_model())


@pytest.fixture
def hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The configured embedding model becomes the hashing embedder."""
    monkeypatch.setattr("synthkg.embeddings.make_embedder", lambda settings: HashingEmbedder())


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def graph(tmp_path: Path, embedder: object) -> tuple[str, GraphBatch]:
    path = tmp_path / "kg"
    return str(path), build_graph_dir(path, embedder)


@pytest.mark.usefixtures("hashing")
def test_query_json(tmp_path: Path) -> None:
    store, batch = graph(tmp_path, HashingEmbedder())
    code, output = invoke("--store-path", store, "query", QUESTION, "--json")
    assert code == 0, output
    answer = json.loads(output)
    assert answer["answer"] == "Portugal" and answer["mode"] == "iterative"
    cited = {c["chunk_id"] for c in answer["citations"]}
    assert cited == {chunk_id_of(batch, SUPPORT_A), chunk_id_of(batch, SUPPORT_B)}
    assert [s["sub_query"] for s in answer["trace"]] == [None, SUB_QUERY]
    assert answer["usage"]["calls"] == 3


@pytest.mark.usefixtures("hashing")
def test_query_readable_with_trace_then_cached(tmp_path: Path) -> None:
    store, batch = graph(tmp_path, HashingEmbedder())
    code, output = invoke("--store-path", store, "query", QUESTION, "--trace", "--k", "3")
    assert code == 0, output
    assert "answer:   Portugal" in output
    assert f"] Xanadu Nights (chunk {chunk_id_of(batch, SUPPORT_A)})" in output
    assert f"] Yorick Bellamy (chunk {chunk_id_of(batch, SUPPORT_B)})" in output
    assert "      Yorick Bellamy was born in Lisbon, Portugal, in 1941." in output  # the cited text
    assert f"2. sub-query: {SUB_QUERY}" in output and "intermediate answer: Lisbon, Portugal" in output
    assert "1. retrieval for the question" in output and "retrieved: chunk:" in output
    assert "llm: 3 calls (0 from the cache)" in output

    code, again = invoke("--store-path", store, "query", QUESTION, "--trace", "--k", "3")
    assert code == 0 and "llm: 3 calls (3 from the cache), 0 prompt + 0 completion tokens spent" in again


@pytest.mark.usefixtures("hashing")
def test_single_reader(tmp_path: Path) -> None:
    store, _ = graph(tmp_path, HashingEmbedder())
    code, output = invoke("--store-path", store, "query", QUESTION, "--single", "--mode", "bm25", "--json")
    assert code == 0, output
    answer = json.loads(output)
    assert answer["mode"] == "single" and answer["usage"]["calls"] == 1
    assert answer["trace"][0]["note"] == "retrieval for the question"


@pytest.mark.usefixtures("hashing")
def test_decomposing_reader(tmp_path: Path) -> None:
    store, batch = graph(tmp_path, HashingEmbedder())
    code, output = invoke("--store-path", store, "query", QUESTION, "--reader", "decompose", "--step-k", "2",
                          "--json")
    assert code == 0, output
    answer = json.loads(output)
    assert answer["mode"] == "decompose" and not answer["forced_final"]
    assert answer["answer"] == "Lisbon, Portugal"
    assert [s["sub_query"] for s in answer["trace"]] == [None, DIRECTOR_QUERY, SUB_QUERY, None]
    assert [len(s["retrieved_chunk_ids"]) for s in answer["trace"]] == [5, 2, 2, 0]
    # The plan and two intermediate answers (a chain: the last one is the answer); citations from the steps.
    assert answer["usage"]["calls"] == 3
    assert chunk_id_of(batch, SUPPORT_A) in {c["chunk_id"] for c in answer["citations"]}


@pytest.mark.usefixtures("hashing")
def test_retrieve_shows_chunks_with_their_evidence(tmp_path: Path) -> None:
    store, batch = graph(tmp_path, HashingEmbedder())
    code, output = invoke("--store-path", store, "retrieve", QUESTION, "--k", "3")
    assert code == 0, output
    assert "question entities: Xanadu Nights" in output
    assert f"Yorick Bellamy (chunk {chunk_id_of(batch, SUPPORT_B)}, score " in output
    assert "   path: Xanadu Nights -[directed by]-> Yorick Bellamy" in output
    assert "   - Xanadu Nights was directed by Yorick Bellamy." in output
    assert output.count("(chunk chunk:") == 3

    code, output = invoke("--store-path", store, "retrieve", "lighthouse keeper", "--mode", "dense", "--json")
    assert code == 0, output
    result = json.loads(output)
    assert result["mode"] == "dense" and len(result["chunks"]) == 5
    assert {c["chunk_id"] for c in result["chunks"]} <= {c.id for c in batch.chunks}


@pytest.mark.usefixtures("hashing")
def test_retrieval_and_reader_defaults_come_from_the_settings(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = graph(tmp_path, HashingEmbedder())
    config = tmp_path / "synthkg.toml"
    config.write_text('[retrieval]\nmode = "dense"\nk = 2\n\n[reader]\nmode = "decompose"\nstep_k = 1\n')
    code, output = invoke("--config", str(config), "--store-path", store, "retrieve", QUESTION, "--json")
    assert code == 0, output
    result = json.loads(output)
    assert result["mode"] == "dense" and len(result["chunks"]) == 2
    # An option still wins over the file.
    code, output = invoke("--config", str(config), "--store-path", store, "retrieve", QUESTION, "--k", "3",
                          "--mode", "graph", "--json")
    assert json.loads(output)["mode"] == "graph" and len(json.loads(output)["chunks"]) == 3

    code, output = invoke("--config", str(config), "--store-path", store, "query", QUESTION, "--json")
    assert code == 0, output
    answer = json.loads(output)
    assert answer["mode"] == "decompose"
    assert [len(s["retrieved_chunk_ids"]) for s in answer["trace"]][:3] == [2, 1, 1]  # k 2, step_k 1
    code, output = invoke("--config", str(config), "--store-path", store, "query", QUESTION, "--single",
                          "--json")
    assert json.loads(output)["mode"] == "single"

    # Environment variables reach the nested knobs; a bad value is one line, not a traceback.
    monkeypatch.setenv("SYNTHKG_RETRIEVAL__HOPS", "9")
    code, output = invoke("--store-path", store, "retrieve", QUESTION)
    assert code != 0 and "hops" in output


@pytest.mark.usefixtures("hashing")
def test_user_errors_are_one_line(tmp_path: Path) -> None:
    store, _ = graph(tmp_path, HashingEmbedder())
    code, output = invoke("--store-path", store, "query", "  ")
    assert code == 1 and output.strip() == "error: the question is empty; give a non-empty question"
    code, output = invoke("--store-path", "missing", "retrieve", QUESTION)
    assert code == 1
    assert output.strip() == "error: no documents in the store at missing: run `synthkg ingest` first"
    code, output = invoke("--store-path", "missing", "reindex")
    assert code == 1 and "run `synthkg ingest` first" in output
    assert not (tmp_path / "missing").exists()


@pytest.mark.usefixtures("hashing")
def test_index_of_another_model_then_reindex(tmp_path: Path) -> None:
    store, batch = graph(tmp_path, HashingEmbedder(name="old-model", dim=16))
    code, output = invoke("--store-path", store, "query", QUESTION)
    assert code == 1 and "built with the embedding model 'old-model'" in output
    assert "run `synthkg reindex` to rebuild it" in output
    code, output = invoke("--store-path", store, "reindex")
    assert code == 0, output
    n = len(batch.chunks)
    assert f"with 'hashing-test': {len(batch.propositions)} propositions, {len(batch.entities)} entities, " \
           f"{n} chunks" in output
    code, output = invoke("--store-path", store, "retrieve", QUESTION, "--json")
    assert code == 0 and json.loads(output)["chunks"]


@pytest.mark.slow  # loads the MiniLM embedder
def test_query_with_the_real_embedding_model(tmp_path: Path) -> None:
    from synthkg.embeddings import SentenceTransformerEmbedder

    store, batch = graph(tmp_path, SentenceTransformerEmbedder())
    code, output = invoke("--store-path", store, "query", QUESTION, "--json")
    assert code == 0, output
    answer = json.loads(output)
    assert answer["answer"] == "Portugal"
    assert {c["chunk_id"] for c in answer["citations"]} == {
        chunk_id_of(batch, SUPPORT_A), chunk_id_of(batch, SUPPORT_B)
    }
    code, output = invoke("--store-path", store, "retrieve", QUESTION, "--mode", "ppr")
    assert code == 0 and f"(chunk {chunk_id_of(batch, SUPPORT_A)}" in output


@pytest.mark.usefixtures("hashing")
def test_stored_control_characters_never_reach_the_terminal(tmp_path: Path) -> None:
    """Issue 15: an ingested "\\x1b[2J" cleared the reader's terminal when printed."""
    hostile = "Lisbon is \x1b[2Jthe capital\x07 of Portugal\x08.\u202e Backwards\x00."
    corpus = tmp_path / "hostile.json"
    others = [{"id": f"o{i}", "title": f"Other {i}", "text": f"Madrid is in Spain, {i}."} for i in range(3)]
    corpus.write_text(json.dumps([{"id": "h1", "title": "Evil\x1b]0;pwned\x07", "text": hostile}, *others]))
    store = str(tmp_path / "kg")
    code, output = invoke("--store-path", store, "ingest", str(corpus), "--extractor", "none",
                          "--no-progress")
    assert code == 0, output
    code, output = invoke("--store-path", store, "retrieve", "capital of Portugal", "--mode", "bm25")
    assert code == 0, output
    assert not any(ch in output for ch in "\x1b\x07\x08\x00\u202e")
    assert "\\x1b[2Jthe capital\\x07" in output and "Evil\\x1b]0;pwned\\x07" in output and "\\u202e" in output
    code, output = invoke("--store-path", store, "retrieve", "capital of Portugal", "--mode", "bm25",
                          "--json")
    assert json.loads(output)["chunks"][0]["text"] == hostile  # JSON keeps the exact text
