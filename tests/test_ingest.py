"""Ingestion control flow with a rule-based fake LLM: provenance, idempotent reruns, resumption after
a crash without repeating finished calls, replacement of changed documents, failed chunks and
--retry-failed, per-file errors, dry runs, entity resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthkg.config import Settings, StoreSettings
from synthkg.indexes import SearchIndex
from synthkg.ingest import IngestError, IngestOptions, IngestSummary, ingest
from synthkg.llm.base import LLMError
from synthkg.model import Entity, GraphBatch, Proposition, Relation
from synthkg.resolve import EntityResolver, MergeLog
from synthkg.store.base import GraphStore
from synthkg.store.embedded import EmbeddedStore
from synthkg.store.neo4j import Neo4jStore
from tests.fakes import write_corpus
from tests.retrieval.helpers import HashingEmbedder
from tests.rule_llm import POISON, RuleBasedLLM

DOCS = {
    "a.txt": "Marie Curie was born in Warsaw. Marie Curie worked in Paris with Pierre Curie.",
    "b.txt": "Pierre Curie taught at the Sorbonne in Paris.",
    "c.txt": "Albert Einstein visited Marie Curie in Zurich.",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus", DOCS)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        store=StoreSettings(path=tmp_path / "store"), cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"
    )


def run(paths: list[Path], settings: Settings, llm: RuleBasedLLM, **options: object) -> IngestSummary:
    return ingest(
        paths,
        settings=settings,
        backend=llm,
        embedder=HashingEmbedder(),
        options=IngestOptions(**options),
        progress=False,
    )


def test_ingest_builds_graph_with_provenance(corpus: Path, settings: Settings) -> None:
    summary = run([corpus], settings, RuleBasedLLM())
    assert (summary.documents_loaded, summary.documents_ingested, summary.failures) == (3, 3, [])
    assert summary.usage["entities"]["calls"] == 3 and summary.usage["quadruples"]["calls"] == 3
    with EmbeddedStore(settings.store.path, read_only=True) as store:
        counts = store.counts()
        assert (counts.documents, counts.chunks) == (3, 3)
        curie = store.find_entities("marie curie")
        assert len(curie) == 1  # one entity across documents a and c
        props = store.propositions_of_entity(curie[0].id)
        assert {"Marie Curie appears with Warsaw.", "Albert Einstein appears with Marie Curie."} <= {
            p.text for p in props
        }
        for prop in props:  # proposition -> chunk -> document
            chunk = store.get_chunk(prop.chunk_id)
            assert chunk is not None and store.get_document(chunk.document_id) is not None
    assert Path(summary.run_record).is_file()
    assert json.loads(Path(summary.run_record).read_text())["summary"]["documents_ingested"] == 3


def test_rerun_is_a_no_op(corpus: Path, settings: Settings) -> None:
    run([corpus], settings, RuleBasedLLM())
    with EmbeddedStore(settings.store.path, read_only=True) as store:
        before = store.counts()
    again = RuleBasedLLM()
    summary = run([corpus], settings, again)
    assert (summary.documents_skipped, summary.documents_ingested, len(again.calls)) == (3, 0, 0)
    with EmbeddedStore(settings.store.path, read_only=True) as store:
        assert store.counts() == before


def test_force_reextracts_from_the_cache(corpus: Path, settings: Settings) -> None:
    run([corpus], settings, RuleBasedLLM())
    again = RuleBasedLLM()
    summary = run([corpus], settings, again, force=True)
    assert summary.documents_ingested == 3
    assert len(again.calls) == 0  # every call answered by the on-disk cache
    assert summary.usage["total"]["cached_calls"] == summary.usage["total"]["calls"] > 0


class CrashingLLM(RuleBasedLLM):
    """Dies (like Ctrl-C) on its n-th call."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at

    def chat(self, messages, **kwargs):  # type: ignore[no-untyped-def]
        if len(self.calls) + 1 == self.crash_at:
            raise KeyboardInterrupt
        return super().chat(messages, **kwargs)


def test_resume_after_crash_repeats_no_finished_call(corpus: Path, settings: Settings) -> None:
    first = CrashingLLM(crash_at=4)  # documents are 2 calls each: dies inside the second document
    with pytest.raises(KeyboardInterrupt):
        run([corpus], settings, first)
    with EmbeddedStore(settings.store.path, read_only=True) as store:
        assert store.counts().documents == 1  # the finished document, nothing of the broken one
    finished_calls = {json.dumps(c.messages) for c in first.calls}

    second = RuleBasedLLM()
    summary = run([corpus], settings, second)
    assert (summary.documents_skipped, summary.documents_ingested) == (1, 2)
    assert not finished_calls & {json.dumps(c.messages) for c in second.calls}
    assert len(first.calls) + len(second.calls) == 6  # 3 documents x 2 calls, none twice

    fresh = Settings(
        store=StoreSettings(path=settings.store.path.parent / "fresh"),
        cache_dir=settings.cache_dir.parent / "fresh-cache",
        data_dir=settings.data_dir,
    )
    run([corpus], fresh, RuleBasedLLM())
    with (
        EmbeddedStore(settings.store.path, read_only=True) as a,
        EmbeddedStore(fresh.store.path, read_only=True) as b,
    ):
        assert a.counts() == b.counts()  # the resumed store equals one built in a single run
        assert sorted(r.id for r in a.iter_relations()) == sorted(r.id for r in b.iter_relations())


def test_changed_document_replaces_what_only_it_supported(corpus: Path, settings: Settings) -> None:
    run([corpus], settings, RuleBasedLLM())
    (corpus / "b.txt").write_text("Pierre Curie married Marie Curie in Sceaux.", encoding="utf-8")
    summary = run([corpus], settings, RuleBasedLLM())
    assert (summary.documents_replaced, summary.documents_skipped) == (1, 2)
    with EmbeddedStore(settings.store.path, read_only=True) as store:
        assert store.find_entities("Sorbonne") == []  # only the old text named it
        assert store.find_entities("Sceaux")
        assert store.counts().documents == 3


def test_failed_chunk_is_recorded_and_retried(corpus: Path, settings: Settings) -> None:
    (corpus / "d.txt").write_text(f"Niels Bohr {POISON} lived in Copenhagen.", encoding="utf-8")
    summary = run([corpus], settings, RuleBasedLLM())
    assert [(f.chunk_index, f.reason.split(":")[0]) for f in summary.failures] == [(0, "entities")]
    assert summary.documents_ingested == 4  # the failed chunk's document and the others are kept

    skipped = run([corpus], settings, RuleBasedLLM())
    assert skipped.documents_skipped == 4  # without --retry-failed nothing is redone

    retry = RuleBasedLLM()
    retried = run([corpus], settings, retry, retry_failed=True)
    assert retried.documents_ingested == 1 and retried.failures == []
    assert retry.calls and all(c.temperature and c.temperature > 0 for c in retry.calls)
    with EmbeddedStore(settings.store.path, read_only=True) as store:
        assert store.find_entities("Niels Bohr")
        (doc,) = [d for d in store.iter_documents() if "Bohr" in d.text]
        assert doc.metadata["failed_chunks"] == {}


def test_a_retry_is_never_served_the_answer_that_failed(corpus: Path, settings: Settings) -> None:
    """Issue 15: a retry that failed once was cached and served to every later retry (0 requests)."""

    class Outage(RuleBasedLLM):
        broken = True

        def chat(self, messages: list, **kwargs: object):  # type: ignore[no-untyped-def]
            if self.broken and kwargs.get("temperature"):
                self.calls.append(None)  # type: ignore[arg-type]
                from synthkg.llm.base import ChatResult

                return ChatResult(text="<html>502 Bad Gateway</html>")
            return super().chat(messages, **kwargs)

    (corpus / "d.txt").write_text(f"Niels Bohr {POISON} lived in Copenhagen.", encoding="utf-8")
    assert len(run([corpus], settings, RuleBasedLLM()).failures) == 1
    down = Outage()
    assert len(run([corpus], settings, down, retry_failed=True).failures) == 1 and down.calls
    healthy = Outage()
    healthy.broken = False
    retried = run([corpus], settings, healthy, retry_failed=True)
    assert healthy.calls and retried.failures == []  # asked again, and this time it worked
    assert set(retried.usage) == {"entities", "quadruples", "total"}  # counted under their own stage
    # --force re-extracts too: the failed chunk fresh, the others from the cache.
    (corpus / "e.txt").write_text(f"Lise Meitner {POISON} lived in Vienna.", encoding="utf-8")
    run([corpus], settings, RuleBasedLLM())
    forced = RuleBasedLLM()
    summary = run([corpus], settings, forced, force=True)
    assert summary.failures == [] and summary.documents_ingested == 5
    assert all(c.temperature for c in forced.calls)  # only the failed chunk made calls
    assert set(summary.usage) == {"entities", "quadruples", "total"}  # resampled calls too


def test_bad_files_are_reported_and_the_rest_ingested(corpus: Path, settings: Settings) -> None:
    (corpus / "empty.txt").write_text("", encoding="utf-8")
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02PNG\x00")
    summary = run([corpus], settings, RuleBasedLLM())
    assert summary.documents_ingested == 3
    assert len(summary.load_errors) == 2
    assert any("binary.txt" in e for e in summary.load_errors) and any(
        "empty.txt" in e for e in summary.load_errors
    )


def test_dry_run_estimates_and_writes_nothing(corpus: Path, settings: Settings) -> None:
    llm = RuleBasedLLM()
    summary = run([corpus], settings, llm, dry_run=True)
    assert summary.estimated is not None
    assert summary.estimated["chunks"] == 3 and summary.estimated["llm_calls"] == 6
    assert summary.estimated["prompt_tokens"] > 0
    assert llm.calls == []
    assert not settings.store.path.exists()  # not even an empty store (issue 15)


def test_backend_failure_stops_with_a_clear_error(corpus: Path, settings: Settings) -> None:
    class Down(RuleBasedLLM):
        def chat(self, messages, **kwargs):  # type: ignore[no-untyped-def]
            raise LLMError("cannot reach http://127.0.0.1:9/v1")

    with pytest.raises(IngestError, match=r"cannot reach .*rerun the same command to resume"):
        run([corpus], settings, Down())


def test_resolver_merges_aliases_and_respects_the_blocklist(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "store") as store:
        obama = Entity.create("Barack Obama", "PERSON", aliases=["Obama"])
        store.write(GraphBatch(entities=[obama]))
        variant = Entity.create("Obama", "PERSON")
        prop = Proposition.create("chunk:x", "Obama was born in Hawaii.", [variant.id])
        hawaii = Entity.create("Hawaii", "LOCATION")
        rel = Relation.create(variant.id, "was born in", hawaii.id, prop.id)
        batch = GraphBatch(entities=[variant, hawaii], propositions=[prop], relations=[rel])

        resolved, merges = EntityResolver(store).resolve(batch, "doc:1")
        assert [(m.name, m.into_name, m.method) for m in merges] == [("Obama", "Barack Obama", "alias")]
        assert resolved.relations[0].subject_id == obama.id
        assert resolved.propositions[0].entity_ids == (obama.id,)

        log = MergeLog(tmp_path / "data")
        log.append(merges)
        assert log.read() == merges
        log.block(merges[0])
        _, again = EntityResolver(store, blocked=log.blocked()).resolve(batch, "doc:1")
        assert again == []


def test_resolver_embedding_merge_has_guards(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(
            GraphBatch(
                entities=[Entity.create("Marie Curie Museum", "ORGANIZATION"), Entity.create("1998", "DATE")]
            )
        )
        resolver = EntityResolver(store, HashingEmbedder(), threshold=0.8)
        batch = GraphBatch(
            entities=[
                Entity.create("Marie Curie museum.", "ORGANIZATION"),
                Entity.create("1999", "DATE"),
                Entity.create("Marie Curie Museum", "PERSON"),
            ]
        )
        _, merges = resolver.resolve(batch)
        # Same words, same type: merged by embedding; numbers never; another type never.
        assert [(m.name, m.method) for m in merges] == []  # "museum." normalizes to the same id already
        batch = GraphBatch(entities=[Entity.create("Curie Museum Marie", "ORGANIZATION")])
        _, merges = resolver.resolve(batch)
        assert [(m.name, m.into_name, m.method) for m in merges] == [
            ("Curie Museum Marie", "Marie Curie Museum", "embedding")
        ]


def test_same_ingest_on_both_stores(corpus: Path, settings: Settings, graph_store: GraphStore) -> None:
    """The embedded store and the Bolt server end up with the same graph, and a rerun adds nothing."""
    if isinstance(graph_store, Neo4jStore):
        settings = settings.model_copy(update={"store": StoreSettings(backend="neo4j")})

    def into_graph_store() -> IngestSummary:
        return ingest(
            [corpus],
            settings=settings,
            store=graph_store,
            backend=RuleBasedLLM(),
            embedder=HashingEmbedder(),
            progress=False,
        )

    summary = into_graph_store()
    assert summary.documents_ingested == 3
    ref_path = settings.data_dir / "reference-store"
    reference = run(
        [corpus], settings.model_copy(update={"store": StoreSettings(path=ref_path)}), RuleBasedLLM()
    )
    assert summary.store_totals == reference.store_totals
    with EmbeddedStore(ref_path, read_only=True) as ref:
        assert sorted(r.id for r in graph_store.iter_relations()) == sorted(
            r.id for r in ref.iter_relations()
        )
    again = into_graph_store()
    assert again.documents_skipped == 3 and again.store_totals == summary.store_totals


def test_resolver_reuses_the_search_index_entity_vectors(tmp_path: Path) -> None:
    """An entity name is embedded once: a later run's resolver takes stored entities' vectors from the
    search index (where their names still match) and embeds only the rest; merges are the same."""
    with EmbeddedStore(tmp_path / "store") as store:
        museum, year = Entity.create("Marie Curie Museum", "ORGANIZATION"), Entity.create("1998", "DATE")
        store.write(GraphBatch(entities=[museum, year]))
        first = HashingEmbedder()
        vectors = first.embed([museum.name, "an older name"])
        embedder = HashingEmbedder()
        known = ([museum.id, year.id], [museum.name, "an older name"], vectors)
        resolver = EntityResolver(store, embedder, threshold=0.8, known=lambda: known)
        batch = GraphBatch(entities=[Entity.create("Curie Museum Marie", "ORGANIZATION")])
        _, merges = resolver.resolve(batch)
        assert [(m.into_name, m.method) for m in merges] == [("Marie Curie Museum", "embedding")]
        # The museum's vector came from the index; "1998" was indexed under another name: embedded anew.
        assert embedder.calls[0] == ["1998"] and "Marie Curie Museum" not in embedder.embedded


def test_a_second_ingest_embeds_only_new_entity_names(
    corpus: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = HashingEmbedder()
    llm = RuleBasedLLM()
    ingest([corpus], settings=settings, backend=llm, embedder=embedder, progress=False)
    more = write_corpus(corpus.parent / "more", {"d.txt": "Marie Curie lived in Paris near Lise Meitner."})
    embedder.calls.clear()
    opened: list[Path] = []
    real_open = SearchIndex.open.__func__  # type: ignore[attr-defined]

    def counting_open(cls: type[SearchIndex], path: Path, emb: object) -> SearchIndex:
        opened.append(Path(path))
        return real_open(cls, path, emb)

    monkeypatch.setattr(SearchIndex, "open", classmethod(counting_open))
    ingest([more], settings=settings, backend=llm, embedder=embedder, progress=False)
    with EmbeddedStore(settings.store.path, read_only=True) as store:
        stored_before = {e.name for e in store.iter_entities()} - {"Lise Meitner"}
    assert stored_before and not (stored_before & set(embedder.embedded))
    assert len(opened) == 1  # the resolver's vectors and the final update share one read of the index
