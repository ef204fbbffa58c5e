"""`KnowledgeGraph` over a store built from hand-written records, a hashing embedder and a scripted model
(the fake checks control flow and wiring only, never answer quality)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel

from synthkg.api import EmptyStoreError, KnowledgeGraph
from synthkg.config import Settings
from synthkg.extract.lines import render_lines
from synthkg.extract.schema import ChunkGraph
from synthkg.indexes import IndexMismatchError, SearchIndex
from synthkg.model import Document, GraphBatch
from synthkg.prompts import load_prompt
from synthkg.store.embedded import EmbeddedStore
from tests.fakes import RecordedCall, ScriptedChatModel
from tests.retrieval.corpus import QUESTION, SUPPORT_A, SUPPORT_B, build_batch, chunk_id_of
from tests.retrieval.helpers import HashingEmbedder

SUB_QUERY = "Where was Yorick Bellamy born?"


def build_graph_dir(path: Path, embedder: object) -> GraphBatch:
    """The 2-hop corpus written to an embedded store at `path`, indexed where the settings expect it."""
    batch = build_batch()
    with EmbeddedStore(path) as store:
        store.write(batch)
        SearchIndex.open(path / "index", embedder).update(store)  # type: ignore[arg-type]
    return batch


def make_settings(tmp_path: Path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data")


DIRECTOR_QUERY = "Who directed Xanadu Nights?"


def cited(text: str, *needles: str) -> list[int]:
    """The numbers of the passages in `text` that hold each needle."""
    return [int(m.group(1)) for needle in needles
            if (m := re.search(r"\[(\d+)\] [^\n]*" + re.escape(needle), text))]


def citing_model() -> ScriptedChatModel:
    """Asks one sub-query, then answers citing the passages that hold the two supporting facts; as a
    decomposing reader, plans the two hops, answers each from the passage that holds it and composes."""

    def reply(call: RecordedCall) -> str:
        system = call.messages[0]["content"]
        if system == load_prompt("reader_decompose").system:
            return json.dumps({"steps": [DIRECTOR_QUERY, "Where was #1 born?"]})
        if system == load_prompt("reader_compose").system:
            return '{"answer": "Portugal"}'
        if system == load_prompt("reader_intermediate").system and DIRECTOR_QUERY in call.last_user:
            return json.dumps({"answer": "Yorick Bellamy",
                               "citations": cited(call.last_user, "directed by Yorick Bellamy")})
        if system == load_prompt("reader_intermediate").system:
            return '{"answer": "Lisbon, Portugal", "citations": [1]}'
        if "Earlier steps:\n(none)" in call.last_user:
            return json.dumps({"sub_query": SUB_QUERY})
        numbers = cited(call.last_user, "directed by Yorick Bellamy", "born in Lisbon, Portugal")
        return json.dumps({"answer": "Portugal", "citations": numbers})

    return ScriptedChatModel(reply)


@pytest.fixture
def graph_dir(tmp_path: Path) -> tuple[Path, GraphBatch]:
    path = tmp_path / "kg"
    return path, build_graph_dir(path, HashingEmbedder())


def test_retrieve_needs_no_llm(graph_dir: tuple[Path, GraphBatch], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    path, batch = graph_dir

    def no_llm(*_: object) -> None:
        raise AssertionError("retrieve must not create an LLM backend")

    monkeypatch.setattr("synthkg.llm.factory.make_backend", no_llm)
    with KnowledgeGraph.open(path, settings=make_settings(tmp_path), embedder=HashingEmbedder()) as kg:
        result = kg.retrieve(QUESTION, k=3)
        assert result.mode == "graph" and len(result.chunks) == 3
        # The bridge passage shares no word with the question: the graph path brings it in.
        assert {chunk_id_of(batch, SUPPORT_A), chunk_id_of(batch, SUPPORT_B)} <= set(result.chunk_ids)
        assert "Xanadu Nights" in result.question_entities
        assert any("Yorick Bellamy" in path for c in result.chunks for path in c.paths)
        bm25 = kg.retrieve("lighthouse keeper Maine", k=2, mode="bm25")
        assert {c.chunk_id for c in bm25.chunks} <= {c.id for c in batch.chunks}
        assert kg.stats().documents == len(batch.documents)
    assert kg.usage.total().calls == 0


def test_iterative_query_cites_existing_chunks_and_is_cached(
    graph_dir: tuple[Path, GraphBatch], tmp_path: Path
) -> None:
    path, batch = graph_dir
    settings = make_settings(tmp_path)
    model = citing_model()
    with KnowledgeGraph.open(path, settings=settings, backend=model, embedder=HashingEmbedder()) as kg:
        answer = kg.query(QUESTION)
    assert answer.answer == "Portugal" and answer.mode == "iterative" and not answer.forced_final
    assert [s.sub_query for s in answer.trace] == [None, SUB_QUERY]
    assert answer.trace[1].intermediate_answer == "Lisbon, Portugal"
    cited = {c.chunk_id for c in answer.citations}
    assert cited == {chunk_id_of(batch, SUPPORT_A), chunk_id_of(batch, SUPPORT_B)}
    texts = {c.id: c.text for c in batch.chunks}
    assert all(texts[c.chunk_id] == c.text for c in answer.citations)
    assert answer.usage.calls == len(model.calls) == 3
    assert kg.usage.total().calls == 3 and kg.usage.total().cached_calls == 0

    # The same question again: every call comes from the on-disk cache, the model is not called.
    silent = ScriptedChatModel([])
    with KnowledgeGraph.open(path, settings=settings, backend=silent, embedder=HashingEmbedder()) as kg:
        again = kg.query(QUESTION)
        assert kg.usage.total().cached_calls == 3
    assert silent.calls == [] and again.answer == "Portugal" and again.citations == answer.citations


def test_single_reader_with_a_langchain_chat_model(
    graph_dir: tuple[Path, GraphBatch], tmp_path: Path
) -> None:
    path, batch = graph_dir
    chat = FakeListChatModel(responses=['{"answer": "Yorick Bellamy", "citations": [1]}'])
    with KnowledgeGraph.open(path, settings=make_settings(tmp_path), backend=chat,
                             embedder=HashingEmbedder()) as kg:
        answer = kg.query(QUESTION, reader="single", k=2, mode="ppr")
    assert answer.answer == "Yorick Bellamy" and answer.usage.calls == 1
    assert [c.number for c in answer.citations] == [1]
    assert answer.citations[0].chunk_id in {c.id for c in batch.chunks}


@pytest.mark.parametrize("question", ["", "  \n"])
def test_empty_question(graph_dir: tuple[Path, GraphBatch], tmp_path: Path, question: str) -> None:
    path, _ = graph_dir
    with KnowledgeGraph.open(path, settings=make_settings(tmp_path), embedder=HashingEmbedder()) as kg:
        with pytest.raises(ValueError, match="the question is empty"):
            kg.retrieve(question)
        with pytest.raises(ValueError, match="the question is empty"):
            kg.query(question)


def test_missing_and_empty_store(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with KnowledgeGraph.open(missing, settings=make_settings(tmp_path), embedder=HashingEmbedder()) as kg:
        with pytest.raises(EmptyStoreError, match=r"no documents in the store at .*nowhere: run `synthkg"):
            kg.query(QUESTION)
        assert kg.stats().documents == 0
    assert not missing.exists()  # asking does not create a store

    EmbeddedStore(tmp_path / "empty").close()
    with KnowledgeGraph.open(tmp_path / "empty", settings=make_settings(tmp_path),
                             embedder=HashingEmbedder()) as kg, pytest.raises(EmptyStoreError, match="empty"):
        kg.retrieve(QUESTION)


def test_asking_while_the_first_ingest_runs_says_so(tmp_path: Path) -> None:
    """Issue 15: documents are in the store before the ingest builds the index at its end; asking then
    advised `synthkg reindex` instead of saying the ingest is still running."""
    path = tmp_path / "kg"
    writer = EmbeddedStore(path)  # the ingest in progress: holds the lock, has written documents
    writer.write(build_batch())
    try:
        with KnowledgeGraph.open(path, settings=make_settings(tmp_path), embedder=HashingEmbedder()) as kg:
            with pytest.raises(Exception, match="still running") as error:
                kg.retrieve(QUESTION)
            assert "reindex" not in str(error.value)
    finally:
        writer.close()
    settings = make_settings(tmp_path)
    with KnowledgeGraph.open(path, settings=settings, embedder=HashingEmbedder()) as kg, pytest.raises(
        Exception, match="run `synthkg reindex`"  # no writer now: the index is simply missing
    ):
        kg.retrieve(QUESTION)


def test_index_of_another_embedding_model_asks_for_reindex(
    graph_dir: tuple[Path, GraphBatch], tmp_path: Path
) -> None:
    path, batch = graph_dir
    other = HashingEmbedder(name="other-model", dim=32)
    with KnowledgeGraph.open(path, settings=make_settings(tmp_path), embedder=other) as kg:
        with pytest.raises(IndexMismatchError, match="run `synthkg reindex`"):
            kg.retrieve(QUESTION)
        index = kg.reindex()
        assert index.embedding_model == "other-model" and index.size("chunks") == len(batch.chunks)
        assert kg.retrieve(QUESTION, k=2).chunks


def test_ingest_then_retrieve(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps([
        {"id": "p1", "title": "Lisbon", "text": "Lisbon is the capital of Portugal."},
        {"id": "p2", "title": "Oslo", "text": "Oslo is the capital of Norway."},
        {"id": "p3", "title": "Porto", "text": "Porto lies on the Douro river."},
    ]))
    store_dir = tmp_path / "kg"
    with KnowledgeGraph.open(store_dir, settings=make_settings(tmp_path), embedder=HashingEmbedder()) as kg:
        summary = kg.ingest(corpus, extractor="none")  # chunks only: no LLM
        assert summary.documents_ingested == 3 and summary.run_record is not None
        hits = kg.retrieve("capital of Norway", k=1, mode="bm25")
        assert kg.store.get_chunk(hits.chunks[0].chunk_id).text == "Oslo is the capital of Norway."
        assert kg.stats().chunks == 3
    # The write lock was released on close: another writer can open the store.
    EmbeddedStore(store_dir).close()


@pytest.mark.slow  # the real local model: several minutes on 2 cores
def test_end_to_end_with_the_local_model(tmp_path: Path) -> None:
    """Ingest 3 sample passages (the 2 supporting ones and a distractor) with Qwen2.5-Coder-0.5B and ask
    the 2-hop question iteratively. The small model's answer may be wrong: the test checks structure."""
    from synthkg.config import LLMSettings, default_cache_dir
    from synthkg.llm.llamacpp import LlamaCppBackend

    sample = Path(__file__).resolve().parents[1] / "data" / "sample"
    wanted = {"demo-00383", "demo-00380", "demo-00382"}
    passages = [p for p in json.loads((sample / "demo_corpus.json").read_text()) if p["id"] in wanted]
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps(passages))
    question = json.loads((sample / "demo_question.json").read_text())[0]["question"]
    # The model file comes from the shared cache; this test's calls are cached under tmp_path.
    backend = LlamaCppBackend("qwen2.5-coder-0.5b", default_cache_dir())
    settings = make_settings(tmp_path).model_copy(update={"llm": LLMSettings(model="qwen2.5-coder-0.5b")})
    with KnowledgeGraph.open(tmp_path / "kg", settings=settings, backend=backend) as kg:
        summary = kg.ingest(corpus)
        assert summary.documents_ingested == 3 and summary.propositions > 0 and summary.entities > 0
        answer = kg.query(question)
        chunks = {c.id: c.text for c in kg.store.iter_chunks()}
    print(f"\nanswer: {answer.answer!r}; citations: {[(c.number, c.chunk_id) for c in answer.citations]}; "
          f"trace: {[(s.sub_query, s.intermediate_answer) for s in answer.trace]}; usage: {answer.usage}")
    assert answer.answer.strip()
    assert answer.citations, "the model cited no passage"
    assert all(chunks[c.chunk_id] == c.text for c in answer.citations)
    assert 1 <= answer.usage.calls <= 2 * 5 + 1


def test_distilled_ingest_builds_the_named_student(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kg.ingest(..., extractor="distilled")` asks the student (not the settings' teacher model) with the
    prompt it recorded: the shipped one by default, or the adapter folder `student` names."""
    import synthkg.llm.factory as factory
    from synthkg.extract.distilled import STUDENT_PROMPT_FILE, StudentPrompt, load_student_prompt

    graph = {"entities": [{"name": "Oslo", "type": "LOCATION"}, {"name": "Norway", "type": "LOCATION"}],
             "quadruples": [{"subject": "Oslo", "relation": "is the capital of", "object": "Norway",
                             "proposition": "Oslo is the capital of Norway."}]}
    built: list[str] = []
    shipped = load_student_prompt(factory.shipped_student_path())
    assert shipped is not None

    def reply(call: RecordedCall) -> str:  # each student answers in the format it was trained on
        if call.messages[0]["content"] == shipped.system_prompt and shipped.output_format == "lines":
            return render_lines(ChunkGraph.model_validate(graph))
        return json.dumps(graph)

    fake = ScriptedChatModel(reply)

    def student_backend(settings: object, cache_dir: Path) -> ScriptedChatModel:
        built.append(str(factory.student_path(settings)))  # type: ignore[arg-type]
        return fake

    monkeypatch.setattr(factory, "make_student_backend", student_backend)
    monkeypatch.setattr(factory, "make_backend", lambda *a: pytest.fail("the teacher model was built"))
    mine = tmp_path / "my-student"
    mine.mkdir()
    (mine / STUDENT_PROMPT_FILE).write_text(
        StudentPrompt(system_prompt="Graph it.", user_template="Text: $chunk").model_dump_json()
    )
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps([{"id": "p1", "title": "Oslo", "text": "Oslo is the capital of Norway."}]))
    settings = make_settings(tmp_path)
    with KnowledgeGraph.open(tmp_path / "kg", settings=settings, embedder=HashingEmbedder()) as kg:
        first = kg.ingest(corpus, extractor="distilled")
        second = kg.ingest(corpus, extractor="distilled", student=mine, force=True)
        with pytest.raises(ValueError, match="extractor='distilled'"):
            kg.ingest(corpus, student=mine)
        assert kg.store.find_entities("Norway")
    assert built == [str(factory.shipped_student_path()), str(mine)]
    assert first.propositions == second.propositions == 1
    assert fake.calls[0].messages[0]["content"] == shipped.system_prompt
    assert fake.calls[1].messages == [{"role": "system", "content": "Graph it."},
                                      {"role": "user", "content": "Text: Oslo is the capital of Norway."}]


def test_ingest_takes_documents_and_replays_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents made in code ingest like loaded files, and `records` replays recorded extractions
    without any LLM (a chunk with no record fails, as on the CLI)."""
    for builder in ("make_backend", "make_student_backend"):
        monkeypatch.setattr(f"synthkg.llm.factory.{builder}", lambda *a: pytest.fail("an LLM was built"))
    oslo = Document.create("Oslo is the capital of Norway.", title="Oslo", key="oslo")
    porto = Document.create("Porto lies on the Douro river.", title="Porto", key="porto")
    records = tmp_path / "records.jsonl"
    graph = {"entities": [{"name": "Oslo", "type": "LOCATION"}, {"name": "Norway", "type": "LOCATION"}],
             "quadruples": [{"subject": "Oslo", "relation": "is the capital of", "object": "Norway",
                             "proposition": "Oslo is the capital of Norway."}]}
    records.write_text(json.dumps({"text": oslo.text, "graph": graph}) + "\n")
    settings = make_settings(tmp_path)
    with KnowledgeGraph.open(tmp_path / "kg", settings=settings, embedder=HashingEmbedder()) as kg:
        summary = kg.ingest([oslo, porto], records=[records])
        assert summary.documents_ingested == 2 and summary.propositions == 1
        assert [f.reason for f in summary.failures] == ["replay:missing"]
        assert kg.store.get_document(oslo.id) is not None and kg.store.find_entities("Norway")
        assert {c.document_id for c in kg.retrieve("capital of Norway", k=2, mode="dense").chunks} == {
            oslo.id, porto.id}  # both indexed
