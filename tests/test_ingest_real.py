"""The real thing: three short real passages ingested with the local Qwen2.5-Coder-0.5B (llama.cpp) into
the embedded store and into the Bolt server. Checks facts that any usable extraction must contain; the
model's quality is measured by the benchmarks, not here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthkg.config import LLMSettings, Settings, StoreSettings
from synthkg.ingest import IngestOptions, ingest
from synthkg.store.base import GraphStore
from synthkg.store.neo4j import Neo4jStore

pytestmark = pytest.mark.slow

PASSAGES = [
    {
        "id": "donnie-smith",
        "title": "Donnie Smith",
        "text": 'Donald W. "Donnie" Smith (born December 7, 1990 in Detroit, Michigan) is an American soccer '
        "player who plays as a left back for New England Revolution in Major League Soccer.",
    },
    {
        "id": "robert-kraft",
        "title": "Robert Kraft",
        "text": "Robert Kenneth Kraft (born June 5, 1941) is an American businessman. "
        "He is the chairman and chief executive officer of the Kraft Group, a diversified holding company.",
    },
    {
        "id": "mls-cup-2005",
        "title": "MLS Cup 2005",
        "text": "MLS Cup 2005 was played between the New England Revolution and the Los Angeles Galaxy. "
        "The game was played at Pizza Hut Park in Frisco, Texas on November 13, 2005.",
    },
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("real") / "corpus.json"
    path.write_text(json.dumps(PASSAGES), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Shared by both stores' runs: the second ingest reads every call from the cache.
    return tmp_path_factory.mktemp("llm-cache")


def names_in(store: GraphStore) -> str:
    return " | ".join(sorted(e.name for e in store.iter_entities()))


def test_real_model_ingest_embedded_and_bolt(
    corpus: Path, cache_dir: Path, tmp_path: Path, graph_store: GraphStore
) -> None:
    store_settings = (
        StoreSettings(backend="neo4j")
        if isinstance(graph_store, Neo4jStore)
        else StoreSettings(path=tmp_path / "unused")
    )
    settings = Settings(
        store=store_settings,
        llm=LLMSettings(model="qwen2.5-coder-0.5b", max_tokens=768),
        cache_dir=cache_dir,
        data_dir=tmp_path / "data",
    )
    summary = ingest([corpus], settings=settings, store=graph_store, options=IngestOptions(), progress=False)
    print(summary.render())
    assert summary.documents_ingested == 3
    assert summary.usage["total"]["calls"] >= 6  # entities + quadruples per passage, at least

    everything = names_in(graph_store)
    for name in ("New England Revolution", "Robert Kenneth Kraft", "Pizza Hut Park"):  # as written
        assert graph_store.find_entities(name), f"{name!r} not among: {everything}"
    kraft = graph_store.find_entities("Robert Kenneth Kraft")[0]
    facts = " ".join(p.text for p in graph_store.propositions_of_entity(kraft.id))
    assert "Kraft Group" in facts, facts
    # Provenance: every proposition leads back to its passage.
    for prop in graph_store.iter_propositions():
        chunk = graph_store.get_chunk(prop.chunk_id)
        assert chunk is not None
        doc = graph_store.get_document(chunk.document_id)
        assert doc is not None and doc.title in {p["title"] for p in PASSAGES}
    assert graph_store.counts().relations >= 3


def test_the_shipped_student_ingests_in_one_call_per_chunk(corpus: Path, tmp_path: Path) -> None:
    # `synthkg ingest --extractor distilled` with no model named: the shipped adapter on llama.cpp.
    settings = Settings(
        store=StoreSettings(path=tmp_path / "graph"),
        llm=LLMSettings(model="synthkg-student"),
        cache_dir=tmp_path / "cache",
        data_dir=tmp_path / "data",
    )
    options = IngestOptions(extractor="distilled")
    summary = ingest([corpus], settings=settings, options=options, progress=False)
    print(summary.render())
    assert summary.documents_ingested == 3
    calls = summary.usage["total"]["calls"]
    assert 3 <= calls <= 6, calls  # one per chunk, plus a re-ask where an answer was unusable
    from synthkg.store import open_store

    with open_store(settings.store) as store:
        everything = names_in(store)
        assert store.find_entities("Robert Kenneth Kraft") or store.find_entities("Robert Kraft"), everything
        assert store.counts().propositions >= 3
