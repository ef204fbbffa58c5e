from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from synthkg.indexes import (
    MANIFEST_FILE,
    IndexMismatchError,
    SearchIndex,
    SearchIndexError,
    tokenize,
    top_k,
)
from synthkg.model import Chunk, Document, Entity, GraphBatch, Proposition
from synthkg.store.embedded import EmbeddedStore
from tests.retrieval.corpus import DOCS, build_batch
from tests.retrieval.helpers import HashingEmbedder


def data_files(path: Path) -> set[str]:
    return {f.name for f in path.iterdir() if f.name not in (MANIFEST_FILE, "lock")}


def test_update_embeds_everything_once_then_only_what_is_new(tmp_path: Path) -> None:
    first, later = build_batch(DOCS[:6]), build_batch(DOCS)
    embedder = HashingEmbedder()
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(first)
        index = SearchIndex.open(tmp_path / "index", embedder)
        stats = index.update(store)
        assert stats.added == {"propositions": 18, "entities": len(first.entities), "chunks": 6}
        assert index.size("chunks") == 6

        embedder.calls.clear()
        store.write(later)
        stats = index.update(store)
        new_props = {p.text for p in later.propositions} - {p.text for p in first.propositions}
        new_names = {e.name for e in later.entities} - {e.name for e in first.entities}
        assert stats.added == {"propositions": len(new_props), "entities": len(new_names), "chunks": 4}
        assert stats.removed == {"propositions": 0, "entities": 0, "chunks": 0}
        embedded = embedder.embedded
        assert len(embedded) == len(new_props) + len(new_names) + 4
        assert new_props | new_names <= set(embedded)

        embedder.calls.clear()
        assert not index.update(store).changed
        assert embedder.calls == []


def test_index_persists_and_reopens_identically(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(build_batch())
        index = SearchIndex.open(tmp_path / "index", embedder)
        index.update(store)
    query = embedder.embed(["Xanadu film directed"])[0]
    reopened = SearchIndex.open(tmp_path / "index", HashingEmbedder())
    for section in ("propositions", "entities", "chunks"):
        assert reopened.ids(section) == index.ids(section)  # type: ignore[arg-type]
        assert reopened.dense_search(section, query, 5) == index.dense_search(section, query, 5)  # type: ignore[arg-type]
    assert reopened.bm25_search("chunks", "lighthouse keeper", 3) == index.bm25_search(
        "chunks", "lighthouse keeper", 3
    )
    manifest = json.loads((tmp_path / "index" / MANIFEST_FILE).read_text())
    assert (manifest["embedding_model"], manifest["dim"]) == ("hashing-test", 64)
    # The title is part of what chunk search sees.
    assert reopened.text("chunks", reopened.ids("chunks")[0]).startswith("Xanadu Nights")  # type: ignore[union-attr]


def test_deleted_documents_leave_the_index_and_old_files_are_removed(tmp_path: Path) -> None:
    batch = build_batch()
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(batch)
        index = SearchIndex.open(tmp_path / "index", HashingEmbedder())
        index.update(store)
        before = data_files(tmp_path / "index")
        victim = next(d for d in batch.documents if d.title == "Lisbon")
        store.delete_document(victim.id)
        stats = index.update(store)
    # Lisbon's chunk and its 2 propositions go; the entity "Lisbon" stays (Yorick Bellamy's passage
    # mentions it), "Atlantic Ocean" goes with the last proposition that mentioned it.
    assert stats.removed == {"propositions": 2, "entities": 1, "chunks": 1}
    assert stats.added == {"propositions": 0, "entities": 0, "chunks": 0}
    victim_chunk = next(c.id for c in batch.chunks if c.document_id == victim.id)
    assert victim_chunk not in SearchIndex.open(tmp_path / "index", HashingEmbedder()).ids("chunks")
    after = data_files(tmp_path / "index")
    assert len(after) == 6  # one .npy and one .json per section: old generations are gone
    assert after != before
    assert not [f for f in (tmp_path / "index").iterdir() if f.name.endswith(".tmp")]


def test_changed_text_under_the_same_id_is_embedded_again(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    doc = Document.create("Ada wrote notes.", title="Notes", key="ada")
    chunk = Chunk.create(doc.id, 0, "Ada wrote notes.")
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(GraphBatch(documents=[doc], chunks=[chunk]))
        index = SearchIndex.open(tmp_path / "index", embedder)
        index.update(store)
        # Same chunk id (same original text), new decontextualized text.
        store.write(
            GraphBatch(chunks=[Chunk.create(doc.id, 0, "Ada wrote notes.", text="Ada Lovelace wrote notes.")])
        )
        embedder.calls.clear()
        stats = index.update(store)
    assert stats.added["chunks"] == 1 and stats.removed["chunks"] == 1
    assert embedder.embedded == ["Notes\nAda Lovelace wrote notes."]
    assert index.ids("chunks") == [chunk.id]


def test_opening_with_another_embedding_model_says_to_reindex(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(build_batch(DOCS[:2]))
        SearchIndex.open(tmp_path / "index", HashingEmbedder("model-a")).update(store)
        with pytest.raises(
            IndexMismatchError, match=r"built with the embedding model 'model-a'.*'model-b'.*synthkg reindex"
        ):
            SearchIndex.open(tmp_path / "index", HashingEmbedder("model-b"))
        with pytest.raises(IndexMismatchError, match=r"64-d vectors.*makes 32-d vectors.*synthkg reindex"):
            SearchIndex.open(tmp_path / "index", HashingEmbedder("model-a", dim=32))

        rebuilt = SearchIndex.rebuild(tmp_path / "index", HashingEmbedder("model-b", dim=32), store)
        assert rebuilt.size("chunks") == 2 and rebuilt.dim == 32
    reopened = SearchIndex.open(tmp_path / "index", HashingEmbedder("model-b", dim=32))
    assert reopened.ids("chunks") == rebuilt.ids("chunks")
    assert len(data_files(tmp_path / "index")) == 6


def test_unreadable_index_files_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "index"
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(build_batch(DOCS[:2]))
        SearchIndex.open(path, HashingEmbedder()).update(store)
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    chunk_file = path / f"chunks.{manifest['sections']['chunks']['generation']}.json"
    chunk_file.write_text('{"ids": ["chunk:x"], "texts": ["x", "y"]}')
    with pytest.raises(SearchIndexError, match=r"section 'chunks' .* inconsistent.*synthkg reindex"):
        SearchIndex.open(path, HashingEmbedder())
    (path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(SearchIndexError, match=r"cannot read .*manifest.json.*synthkg reindex"):
        SearchIndex.open(path, HashingEmbedder())
    (tmp_path / "file").write_text("")
    with pytest.raises(SearchIndexError, match="is a file, not an index directory"):
        SearchIndex.open(tmp_path / "file", HashingEmbedder())


def test_entity_aliases_are_exact_matches(tmp_path: Path) -> None:
    doc = Document.create("IBM makes computers.", key="ibm")
    chunk = Chunk.create(doc.id, 0, doc.text)
    ibm = Entity.create("International Business Machines", aliases=["IBM", "Big Blue"])
    prop = Proposition.create(chunk.id, "IBM makes computers.", [ibm.id])
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(GraphBatch(documents=[doc], chunks=[chunk], entities=[ibm], propositions=[prop]))
        index = SearchIndex.open(tmp_path / "index", HashingEmbedder())
        index.update(store)
    assert index.entities_named_in("What does Big Blue sell?") == {ibm.id: "Big Blue"}
    assert SearchIndex.open(tmp_path / "index", HashingEmbedder()).entities_named_in("Is IBM old?") == {
        ibm.id: "IBM"
    }


def test_bm25_tokens_are_lowercase_words_without_stopwords() -> None:
    assert tokenize("Where was THE director of Xanadu-Nights born?") == [
        "director",
        "xanadu",
        "nights",
        "born",
    ]
    assert tokenize("the of and") == []


def test_top_k_is_ordered_and_stable() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.3])
    assert top_k(scores, 3).tolist() == [1, 3, 2]
    assert top_k(scores, 10).tolist() == [1, 3, 2, 4, 0]
    assert top_k(scores, 0).tolist() == []


def test_dense_search_is_fast_on_10k_rows(tmp_path: Path) -> None:
    n = 10_000
    doc = Document.create("corpus", key="big")
    chunk = Chunk.create(doc.id, 0, "corpus")
    props = [Proposition.create(chunk.id, f"fact number {i} about topic {i % 97}") for i in range(n)]
    embedder = HashingEmbedder(dim=384)
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(GraphBatch(documents=[doc], chunks=[chunk], propositions=props))
        index = SearchIndex.open(tmp_path / "index", embedder)
        index.update(store)
    query = embedder.embed(["fact about topic 5"])[0]
    timings = []
    for _ in range(50):
        start = time.perf_counter()
        hits = index.dense_search("propositions", query, 20)
        timings.append(time.perf_counter() - start)
    assert len(hits) == 20 and hits[0][1] >= hits[-1][1]
    # Measured ~1 ms here; 50 ms leaves room for a busy CI machine and still catches a quadratic slip.
    assert sorted(timings)[len(timings) // 2] < 0.05


def test_large_sections_are_embedded_in_blocks_with_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15: a 17k-chunk document embedded for minutes without a sign of life."""
    batch = build_batch(DOCS)
    whole = HashingEmbedder()
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(batch)
        reference = SearchIndex.open(tmp_path / "one", whole)
        reference.update(store)
        monkeypatch.setattr("synthkg.indexes.EMBED_BLOCK", 4)
        blocks = HashingEmbedder()
        index = SearchIndex.open(tmp_path / "blocks", blocks)
        index.update(store, progress=True)
    assert max(len(call) for call in blocks.calls) == 4 and len(blocks.calls) > 3
    assert "embedding chunks" in capsys.readouterr().err
    for section in ("chunks", "propositions", "entities"):
        assert index.size(section) == reference.size(section)
    query = whole.embed(["Lisbon capital"])[0]
    assert index.dense_search("chunks", query, 3) == reference.dense_search("chunks", query, 3)
