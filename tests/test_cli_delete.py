"""`synthkg delete` and `KnowledgeGraph.delete` over the hand-written 2-hop corpus, its documents given
sources as the loaders would (two records of one corpus.json, one text file), with a hashing embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthkg.api import KnowledgeGraph
from synthkg.cli import app
from synthkg.config import Settings
from synthkg.delete import UnknownDocumentError
from synthkg.indexes import SearchIndex
from synthkg.model import Document, GraphBatch, StoreCounts
from synthkg.store.embedded import EmbeddedStore
from tests.retrieval.corpus import build_batch, chunk_id_of
from tests.retrieval.helpers import HashingEmbedder
from tests.store.corpus import snapshot

runner = CliRunner()

# Records of corpus.json (their ids are the record ids, here the titles) and one text file.
IN_CORPUS = ("Xanadu Nights", "Yorick Bellamy")
TEXT_FILE = "Lisbon"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNTHKG_CONFIG", raising=False)
    monkeypatch.setenv("SYNTHKG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("synthkg.embeddings.make_embedder", lambda settings: HashingEmbedder())


def with_sources(batch: GraphBatch, tmp_path: Path) -> GraphBatch:
    documents = []
    for d in batch.documents:
        if d.title in IN_CORPUS:
            d = d.model_copy(update={"source": "corpus.json"})
        elif d.title == TEXT_FILE:
            # a text file's document id comes from its resolved path (synthkg.loaders)
            path = tmp_path / "lisbon.txt"
            moved = Document.create(d.text, title=d.title, source="lisbon.txt", key=str(path.resolve()))
            chunks = [c.model_copy(update={"document_id": moved.id}) if c.document_id == d.id else c
                      for c in batch.chunks]
            batch = batch.model_copy(update={"chunks": chunks})
            d = moved
        documents.append(d)
    return batch.model_copy(update={"documents": documents})


@pytest.fixture
def kg_path(tmp_path: Path) -> Path:
    path = tmp_path / "kg"
    with EmbeddedStore(path) as store:
        store.write(with_sources(build_batch(), tmp_path))
        SearchIndex.open(path / "index", HashingEmbedder()).update(store)  # type: ignore[arg-type]
    return path


def invoke(path: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--store-path", str(path), "delete", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def state(path: Path) -> tuple[dict[str, dict[str, object]], dict[str, bytes]]:
    with EmbeddedStore(path, read_only=True) as store:
        records = snapshot(store)
    index = {p.name: p.read_bytes() for p in sorted((path / "index").iterdir()) if p.is_file()}
    return records, index  # type: ignore[return-value]


def doc_id(path: Path, title: str) -> str:
    with EmbeddedStore(path, read_only=True) as store:
        return next(d.id for d in store.iter_documents() if d.title == title)


def entity_names(path: Path) -> set[str]:
    with EmbeddedStore(path, read_only=True) as store:
        return {e.name for e in store.iter_entities()}


def test_unknown_id_exits_1_and_changes_nothing(kg_path: Path) -> None:
    before = state(kg_path)
    code, output = invoke(kg_path, "doc:nope")
    assert code == 1 and "no document matches 'doc:nope'" in output and "nothing was deleted" in output
    # one unknown argument among known ones: still nothing is deleted
    code, output = invoke(kg_path, doc_id(kg_path, "Yorick Bellamy"), "missing.json")
    assert code == 1 and "'missing.json'" in output and "Yorick" not in output
    assert state(kg_path) == before


def test_dry_run_says_what_would_go_and_changes_nothing(kg_path: Path) -> None:
    before = state(kg_path)
    yorick = doc_id(kg_path, "Yorick Bellamy")
    code, output = invoke(kg_path, yorick, "--dry-run")
    assert code == 0, output
    assert f"would delete {yorick} (Yorick Bellamy, corpus.json): 1 chunk, 3 propositions, 4 relations, " \
           "1 entity" in output
    assert "entities left with no mention: London" in output
    assert "nothing was changed (--dry-run)" in output
    assert state(kg_path) == before


def test_delete_keeps_what_other_documents_support_and_updates_the_index(kg_path: Path) -> None:
    yorick = doc_id(kg_path, "Yorick Bellamy")
    with EmbeddedStore(kg_path, read_only=True) as store:
        gone_chunk = store.chunks_of_document(yorick)[0].id
    code, output = invoke(kg_path, yorick)
    assert code == 0, output
    assert f"deleted {yorick} (Yorick Bellamy, corpus.json): 1 chunk, 3 propositions" in output
    assert "search index: dropped 3 propositions, 1 entity, 1 chunk" in output
    names = entity_names(kg_path)
    # Yorick Bellamy is still mentioned by "Xanadu Nights", Lisbon and Paris by their own documents
    assert {"Yorick Bellamy", "Lisbon", "Paris"} <= names and "London" not in names
    with EmbeddedStore(kg_path, read_only=True) as store:
        assert store.get_document(yorick) is None and store.get_chunk(gone_chunk) is None
        assert not any("born in Lisbon" in p.text for p in store.iter_propositions())
    index = SearchIndex.open(kg_path / "index", HashingEmbedder())
    assert gone_chunk not in index.ids("chunks")
    hits = [cid for cid, _ in index.bm25_search("chunks", "Yorick Bellamy born Lisbon Portugal 1941", 20)]
    assert gone_chunk not in hits and hits

    code, output = invoke(kg_path, yorick)  # already gone
    assert code == 1 and f"no document matches '{yorick}'" in output


def test_delete_by_source_takes_every_document_of_the_file(kg_path: Path, tmp_path: Path) -> None:
    code, output = invoke(kg_path, str(tmp_path / "corpus.json"), "--dry-run")  # the same file, resolved
    assert code == 0 and output.count("would delete") == 2, output
    code, output = invoke(kg_path, "corpus.json")
    assert code == 0 and output.count("deleted doc:") == 2, output
    assert "total: 2 documents, 2 chunks, 6 propositions, 6 relations" in output
    names = entity_names(kg_path)
    assert "Yorick Bellamy" not in names and "Xanadu Nights" not in names  # both of its documents went
    assert {"Lisbon", "Paris"} <= names


def test_delete_by_record_id_and_by_text_file_path(
    kg_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = invoke(kg_path, "Xanadu Nights", "--json")  # the record id
    assert code == 0, output
    result = json.loads(output)
    assert [d["title"] for d in result["documents"]] == ["Xanadu Nights"] and not result["dry_run"]
    # the text file's document, by its path, also from another folder (its recorded source is relative)
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, output = invoke(kg_path, str(tmp_path / "lisbon.txt"))
    assert code == 0 and "(Lisbon, lisbon.txt)" in output, output


def test_missing_store(tmp_path: Path) -> None:
    code, output = invoke(tmp_path / "nothing-here", "doc:x")
    assert code == 1 and "no documents in the store" in output
    assert not (tmp_path / "nothing-here").exists()


def test_api_delete_returns_typed_results(kg_path: Path, tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data")
    batch = build_batch()
    with KnowledgeGraph.open(kg_path, settings=settings, embedder=HashingEmbedder()) as kg:
        with pytest.raises(UnknownDocumentError, match="'nope'"):
            kg.delete(["Xanadu Nights", "nope"])
        planned = kg.delete("Xanadu Nights", dry_run=True)
        done = kg.delete("Xanadu Nights")
        assert planned.dry_run and not done.dry_run
        assert planned.total == done.total == StoreCounts(documents=1, chunks=1, propositions=3, relations=2,
                                                          entities=1)
        assert done.documents[0].entities == ["Xanadu Nights"]  # Maine: "Lighthouse keepers" mentions it
        assert done.index_removed == {"propositions": 3, "entities": 1, "chunks": 1}
        hits = kg.retrieve("Xanadu Nights drama film lighthouse keeper", k=10, mode="bm25")
        assert chunk_id_of(batch, "Xanadu Nights") not in hits.chunk_ids
        assert kg.stats().documents == len(batch.documents) - 1
