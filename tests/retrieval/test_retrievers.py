from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from retrieval.rerank import llm_reranker
from retrieval.retrievers import (
    MODES,
    RETRIEVERS,
    Expansion,
    GraphRetriever,
    PPRRetriever,
    RetrievalParams,
    RetrievedChunk,
    Retriever,
    Seed,
    closeness,
    is_name,
    make_retriever,
    name_spans,
    render_path,
    retrieve,
    titled_chunks,
)
from synthkg.indexes import SearchIndex
from synthkg.model import Entity, Relation, normalize_name
from synthkg.store.embedded import EmbeddedStore
from tests.fakes import ScriptedChatModel
from tests.retrieval.conftest import Corpus
from tests.retrieval.corpus import DOCS, QUESTION, SUPPORT_A, SUPPORT_B, build_batch, chunk_id_of
from tests.retrieval.helpers import HashingEmbedder


def ranks(corpus: Corpus, question: str, mode: str, k: int = 10) -> dict[str, int]:
    """1-based rank of each returned chunk, keyed by its document title."""
    titles = {
        c.id: d.title for d in corpus.batch.documents for c in corpus.batch.chunks if c.document_id == d.id
    }
    result = retrieve(question, k, mode, store=corpus.store, index=corpus.index)  # type: ignore[arg-type]
    return {titles[c.chunk_id]: i for i, c in enumerate(result.chunks, 1)}


# --- the 2-hop question with the real embedder --------------------------------------------------------
@pytest.mark.slow
def test_two_hop_question_graph_modes_find_both_passages_baselines_do_not(two_hop: Corpus) -> None:
    found = {mode: ranks(two_hop, QUESTION, mode) for mode in MODES}

    # Baselines: the first hop is easy, the bridge passage shares no word with the question.
    assert found["bm25"][SUPPORT_A] <= 5
    assert SUPPORT_B not in found["bm25"]  # no term overlap at all: BM25 scores it 0
    assert found["dense"][SUPPORT_A] == 1
    assert found["dense"][SUPPORT_B] > 5
    # The graph reaches the director's passage through "Xanadu Nights -[directed by]-> Yorick Bellamy".
    assert (found["graph"][SUPPORT_A], found["graph"][SUPPORT_B]) == (1, 2)
    assert found["ppr"][SUPPORT_A] == 1
    assert found["ppr"][SUPPORT_B] <= 3
    # The whole-corpus walk reaches it too (less sharply on this toy corpus: every passage gets some
    # reset mass from its dense score).
    assert found["hippo"][SUPPORT_A] == 1
    assert found["hippo"][SUPPORT_B] <= 5 < found["dense"][SUPPORT_B]


@pytest.mark.slow
def test_graph_result_carries_evidence_and_timings(two_hop: Corpus) -> None:
    result = retrieve(QUESTION, 5, "graph", store=two_hop.store, index=two_hop.index)
    assert result.question_entities == ["Xanadu Nights"]
    bridge = next(c for c in result.chunks if c.chunk_id == chunk_id_of(two_hop.batch, SUPPORT_B))
    assert bridge.paths == ["Xanadu Nights -[directed by]-> Yorick Bellamy"]
    assert bridge.propositions and all(p.startswith("Yorick Bellamy") for p in bridge.propositions)
    assert bridge.document_id == next(d.id for d in two_hop.batch.documents if d.title == SUPPORT_B)
    assert "Lisbon, Portugal" in bridge.text
    assert set(result.timings_ms) >= {
        "embed",
        "1_propositions",
        "2_question_entities",
        "3_subgraph",
        "4_propositions_in_graph",
        "5_chunks",
        "total",
    }
    scores = [c.score for c in result.chunks]
    assert len(result.chunks) == 5 and all(s > 0 for s in scores)


@pytest.mark.slow
def test_question_without_entity_names_is_anchored_on_top_propositions(two_hop: Corpus) -> None:
    question = "Who directed a film about a lighthouse keeper?"
    for mode in ("graph", "ppr"):
        result = retrieve(question, 3, mode, store=two_hop.store, index=two_hop.index)
        assert result.question_entities == []
        assert result.chunks[0].chunk_id == chunk_id_of(two_hop.batch, SUPPORT_A)


@pytest.mark.slow
def test_deleted_document_leaves_results_after_index_update(two_hop: Corpus) -> None:
    gone = chunk_id_of(two_hop.batch, SUPPORT_A)
    before = ranks(two_hop, QUESTION, "dense")
    two_hop.store.delete_document(next(d.id for d in two_hop.batch.documents if d.title == SUPPORT_A))
    stats = two_hop.index.update(two_hop.store)
    assert stats.removed["chunks"] == 1 and stats.removed["propositions"] == 3
    for mode in MODES:
        result = retrieve(QUESTION, 10, mode, store=two_hop.store, index=two_hop.index)
        assert gone not in result.chunk_ids, mode
    assert SUPPORT_A in before


# --- fast tests with the hashing embedder -------------------------------------------------------------
@pytest.fixture
def hashed(tmp_path: Path) -> Iterator[Corpus]:
    batch = build_batch()
    store = EmbeddedStore(tmp_path / "store")
    try:
        store.write(batch)
        index = SearchIndex.open(tmp_path / "index", HashingEmbedder())
        index.update(store)
        yield Corpus(store, index, batch)
    finally:
        store.close()


def test_a_chunk_whose_extraction_failed_stays_retrievable_in_graph_modes(tmp_path: Path) -> None:
    # Yorick Bellamy's passage as ingestion leaves a failed chunk: the text, no propositions, and the
    # failure recorded on its document. Only the other passages' facts mention him.
    docs = tuple(replace(d, propositions=(), relations=()) if d.title == SUPPORT_B else d for d in DOCS)
    batch = build_batch(docs)
    batch.documents = [
        d.model_copy(update={"metadata": {"failed_chunks": {"0": "repetition"}, "chunks": 1}})
        if d.title == SUPPORT_B else d
        for d in batch.documents
    ]
    failed = chunk_id_of(batch, SUPPORT_B)
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(batch)
        index = SearchIndex.open(tmp_path / "index", HashingEmbedder())
        index.update(store)
        assert not [p for p in store.iter_propositions() if p.chunk_id == failed]
        graph = retrieve("Where was Yorick Bellamy born?", 3, "graph", store=store, index=index)
        assert graph.chunk_ids[0] == failed  # its text names the question's entity: it ranks as reached
        # PPR reaches it only through the one entity its text names (no propositions to add mass).
        ppr = retrieve("Where was Yorick Bellamy born?", 3, "ppr", store=store, index=index)
        assert failed in ppr.chunk_ids
        for result in (graph, ppr):
            hit = next(c for c in result.chunks if c.chunk_id == failed)
            assert hit.propositions == [] and "Lisbon" in hit.text


def test_every_mode_on_an_empty_store_returns_nothing(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "store") as store:
        index = SearchIndex.open(tmp_path / "index", HashingEmbedder())
        index.update(store)
        for mode in MODES:
            result = retrieve("Who directed Xanadu Nights?", 5, mode, store=store, index=index)
            assert result.chunks == [] and result.mode == mode


@pytest.mark.parametrize(
    ("question", "k", "mode", "message"),
    [
        ("", 5, "graph", "question is empty"),
        ("   \n", 5, "graph", "question is empty"),
        ("q?", 0, "graph", "k must be >= 1"),
        ("q?", 5, "magic", "unknown retrieval mode 'magic'"),
    ],
)
def test_invalid_arguments_are_clear_errors(
    hashed: Corpus, question: str, k: int, mode: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        retrieve(question, k, mode, store=hashed.store, index=hashed.index)  # type: ignore[arg-type]


def test_stale_index_skips_chunks_the_store_no_longer_has(hashed: Corpus) -> None:
    gone = chunk_id_of(hashed.batch, SUPPORT_A)
    hashed.store.delete_document(next(d.id for d in hashed.batch.documents if d.title == SUPPORT_A))
    for mode in MODES:  # the index was not updated
        result = retrieve("Xanadu Nights film director", 10, mode, store=hashed.store, index=hashed.index)
        assert result.chunks and gone not in result.chunk_ids, mode


def test_exact_entity_match_prefers_the_longest_name(hashed: Corpus) -> None:
    found = hashed.index.entities_named_in("Was Xanadu Nights shot where Xanadu was?")
    names = {hashed.store.get_entity(eid).name: words for eid, words in found.items()}  # type: ignore[union-attr]
    assert names == {"Xanadu Nights": "Xanadu Nights", "Xanadu": "Xanadu"}
    xanadu_nights = next(e.id for e in hashed.batch.entities if e.name == "Xanadu Nights")
    assert hashed.index.entities_named_in("Who directed the film Xanadu Nights?") == {
        xanadu_nights: "Xanadu Nights?"
    }


def test_name_spans_find_capitalized_and_quoted_names() -> None:
    assert name_spans(QUESTION) == ["Xanadu Nights"]
    assert name_spans('Who wrote "The Lord of the Rings" in 1954?') == [
        "The Lord of the Rings",
        "Lord of the Rings",
        "1954",
    ]
    assert name_spans("When was the University of Oxford founded?") == ["University of Oxford"]
    assert name_spans("what is the tallest mountain") == []


def test_closeness_decays_per_hop_and_paths_read_back() -> None:
    a, b, c, d = (Entity.create(n) for n in ("Alpha", "Beta", "Gamma", "Delta"))
    relations = [
        Relation.create(a.id, "knows", b.id, "prop:1"),
        Relation.create(a.id, "met", b.id, "prop:4"),  # parallel edges must not break the walk
        Relation.create(c.id, "employs", b.id, "prop:2"),
        Relation.create(c.id, "pays", b.id, "prop:5"),
        Relation.create(c.id, "owns", d.id, "prop:3"),
    ]
    reach = closeness({a.id: Seed(a.id, 1.0)}, relations, hops=2, decay=0.5)
    assert {eid: r.closeness for eid, r in reach.items()} == {a.id: 1.0, b.id: 0.5, c.id: 0.25}
    expansion = Expansion({e.id: e for e in (a, b, c, d)}, relations, reach)

    # Between parallel relations the walk takes the one with the smallest id: deterministic.
    def first(x: Entity, y: Entity) -> Relation:
        return min((r for r in relations if {r.subject_id, r.object_id} == {x.id, y.id}), key=lambda r: r.id)

    ab, bc = first(a, b), first(b, c)
    assert render_path(expansion, c.id) == f"Alpha -[{ab.predicate}]-> Beta <-[{bc.predicate}]- Gamma"
    assert render_path(expansion, a.id) is None
    assert render_path(expansion, d.id) is None  # beyond 2 hops


def test_rerank_hook_reorders_candidates_before_the_cut(hashed: Corpus) -> None:
    plain = retrieve("Xanadu film director", 3, "dense", store=hashed.store, index=hashed.index)
    reversed_ = retrieve(
        "Xanadu film director",
        3,
        "dense",
        store=hashed.store,
        index=hashed.index,
        params=RetrievalParams(rerank_depth=3),
        rerank=lambda _q, chunks: chunks[::-1],
    )
    assert reversed_.chunk_ids == plain.chunk_ids[::-1]
    assert "rerank" in reversed_.timings_ms


def chunk(n: int) -> RetrievedChunk:
    return RetrievedChunk(chunk_id=f"chunk:{n}", document_id=f"doc:{n}", score=1.0 / n, text=f"passage {n}")


def test_llm_reranker_follows_the_model_and_keeps_the_rest() -> None:
    chunks = [chunk(n) for n in (1, 2, 3, 4)]
    model = ScriptedChatModel(['```json\n{"ranking": [3, "1", 9]}\n```'])
    reordered = llm_reranker(model)("which passage?", chunks)
    assert [c.chunk_id for c in reordered] == ["chunk:3", "chunk:1", "chunk:2", "chunk:4"]
    assert "[4] passage 4" in model.calls[0].last_user
    schema = model.calls[0].json_schema
    assert schema is not None and "ranking" in schema["properties"]


def test_llm_reranker_keeps_the_order_on_garbage() -> None:
    chunks = [chunk(n) for n in (1, 2)]
    assert llm_reranker(ScriptedChatModel(["I think passage two"]))("q", chunks) == chunks


def test_make_retriever_binds_store_index_and_mode(hashed: Corpus) -> None:
    retriever = make_retriever(hashed.store, hashed.index, mode="bm25")
    result = retriever("Xanadu Nights", 2)
    assert result.mode == "bm25" and len(result.chunks) == 2
    assert result.chunks[0].chunk_id == chunk_id_of(hashed.batch, SUPPORT_A)


def test_one_retriever_class_per_mode(hashed: Corpus) -> None:
    """Each mode is its own class on the `Retriever` base; calling one is `retrieve` with its mode."""
    assert list(RETRIEVERS) == list(MODES)
    for mode, cls in RETRIEVERS.items():
        retriever = make_retriever(hashed.store, hashed.index, mode)
        assert type(retriever) is cls and isinstance(retriever, Retriever) and cls.mode == mode
        called = retriever.search(QUESTION, 3)
        direct = retrieve(QUESTION, 3, mode, store=hashed.store, index=hashed.index)
        assert called.chunk_ids == direct.chunk_ids and called.mode == mode
    assert issubclass(PPRRetriever, GraphRetriever)  # the same stages 1-4, another stage 5


def test_is_name_tells_names_from_common_nouns() -> None:
    assert all(is_name(t) for t in ("Lothair II", "Good People", "1984", "Talk About A Stranger"))
    assert not any(is_name(t) for t in ("place of birth", "director", "What is?", "film"))


def test_titled_chunks_match_names_only_longest_first() -> None:
    named = {"Talk About a Stranger": "c1", "Good People (film)": "c2", "Good People": "c3",
             "Place of birth": "c4"}
    titles = {normalize_name(title): [chunk] for title, chunk in named.items()}
    director = "Where does the director of film Talk About A Stranger work at?"
    assert titled_chunks(director, titles) == ["c1"]
    birth = "What is the place of birth of the director of Good People (film)?"  # lower case: no title
    assert titled_chunks(birth, titles) == ["c2"]
    assert titled_chunks("Who wrote Good People?", titles) == ["c3"]


@pytest.mark.slow
def test_a_title_the_question_names_seeds_the_graph_when_extraction_missed_it(
    tmp_path: Path, minilm: object
) -> None:
    # The film's passage as a small extractor leaves it: the film is "a 1987 drama film", never named, so
    # no entity matches the question's "Xanadu Nights"; only the document's title does.
    def unnamed(doc: object) -> object:
        if doc.title != SUPPORT_A:  # type: ignore[attr-defined]
            return doc
        props = tuple((text.replace(SUPPORT_A, "The 1987 drama film"),
                       tuple("1987 drama film" if n == SUPPORT_A else n for n in names))
                      for text, names in doc.propositions)  # type: ignore[attr-defined]
        rels = tuple(("1987 drama film" if s == SUPPORT_A else s, p, o, i)
                     for s, p, o, i in doc.relations)  # type: ignore[attr-defined]
        return replace(doc, propositions=props, relations=rels)  # type: ignore[type-var]

    batch = build_batch(tuple(unnamed(d) for d in DOCS))  # type: ignore[arg-type]
    film, bellamy = chunk_id_of(batch, SUPPORT_A), chunk_id_of(batch, SUPPORT_B)
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(batch)
        index = SearchIndex.open(tmp_path / "index", minilm)  # type: ignore[arg-type]
        index.update(store)
        for mode in ("graph", "ppr", "hippo"):
            with_titles = retrieve(QUESTION, 4, mode, store=store, index=index)  # type: ignore[arg-type]
            without = retrieve(QUESTION, 4, mode, store=store, index=index,  # type: ignore[arg-type]
                               params=RetrievalParams(title_seed_weight=0.0))
            assert film in with_titles.chunk_ids and film not in without.chunk_ids, mode
            if mode != "hippo":  # the second hop, through the film's director (hippo: not in its top 4)
                assert "1987 drama film" in with_titles.question_entities, mode
                assert bellamy in with_titles.chunk_ids and bellamy not in without.chunk_ids, mode
