"""The evaluation (eval/corpus.py, retrieval_eval.py, qa_eval.py, kg_eval.py, result_files.py) on real
stores and indexes: the sample data (chunks only, no LLM), a hand-written
graph for the graph modes and KG coverage, and a scripted chat model for the QA accounting."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval.corpus import BUILD_LEDGER, build_cost, corpus_key, prepare_corpus
from eval.datasets import Dataset, Passage, Question, load_dataset
from eval.kg_eval import eval_kg
from eval.qa_eval import eval_qa
from eval.result_files import Cost, EvalConfig, EvalError, EvalResult, write_result
from eval.retrieval_eval import eval_retrieval, to_passages
from retrieval.retrievers import retrieve
from synthkg.config import Settings, StoreSettings
from synthkg.indexes import SearchIndex
from synthkg.llm.base import ChatResult
from synthkg.llm.cache import CachedBackend
from synthkg.model import Document
from synthkg.prompts import load_prompt
from synthkg.store.embedded import EmbeddedStore
from tests.eval.conftest import SAMPLE_DIR
from tests.fakes import RecordedCall, ScriptedChatModel
from tests.retrieval.corpus import DOCS, QUESTION, SUPPORT_A, SUPPORT_B, Doc, build_batch
from tests.retrieval.helpers import HashingEmbedder


def settings_in(tmp_path: Path) -> Settings:
    return Settings(
        store=StoreSettings(path=tmp_path / "unused-store"),
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
    )


def expected_ranking(dataset: Dataset, document_ids: list[str], k: int) -> list[str]:
    """The passage ranking computed without the runner: documents rebuilt the way the loader builds them."""
    passage_of = {Document.create(p.text, title=p.title, key=p.id).id: p.id for p in dataset.passages}
    ranked: list[str] = []
    for document_id in document_ids:
        if passage_of[document_id] not in ranked:
            ranked.append(passage_of[document_id])
    return ranked[:k]


# --- end to end on the sample data, chunks only --------------------------------------------------------
def test_sample_bm25_and_dense_end_to_end(tmp_path: Path) -> None:
    dataset = load_dataset(SAMPLE_DIR)
    embedder = HashingEmbedder()
    prepared = prepare_corpus(dataset, settings_in(tmp_path), "none", embedder=embedder, progress=False)
    assert prepared.settings.store.path == tmp_path / "data" / "eval" / prepared.key / "store"
    assert prepared.summary.documents_ingested == 40

    with prepared.open_store() as store:
        index = SearchIndex.open(prepared.settings.index_path(), embedder)
        run = eval_retrieval(dataset, store, index, ["bm25", "dense"], (2, 5), progress=False)
        # Recall of the first question, from the retriever's own chunks.
        question = dataset.questions[0]
        for mode in ("bm25", "dense"):
            chunks = retrieve(question.question, 10, mode, store=store, index=index).chunks
            top = expected_ranking(dataset, [c.document_id for c in chunks], 5)
            gold = set(question.supporting_passage_ids)
            row = next(r for r in run.rows if r.question_id == question.id and r.mode == mode)
            assert row.retrieved == top
            assert row.metrics["recall@5"] == len(gold & set(top)) / len(gold)
            assert row.metrics["recall@2"] == len(gold & set(top[:2])) / len(gold)
            assert row.metrics["hits@5"] == float(bool(gold & set(top)))

    assert len(run.rows) == 2 * len(dataset.questions)
    for mode in ("bm25", "dense"):
        summary = run.aggregates[mode]
        rows = [r for r in run.rows if r.mode == mode]
        assert summary.n == 4 and summary.skipped == 0
        assert summary.metrics["recall@5"] == pytest.approx(sum(r.metrics["recall@5"] for r in rows) / 4)
        assert all(0.0 <= v <= 1.0 for r in rows for v in r.metrics.values())
        assert summary.latency_ms_p50 is not None and summary.latency_ms_p95 is not None
        assert 0 < summary.latency_ms_p50 <= summary.latency_ms_p95
        assert all(len(r.retrieved) == len(set(r.retrieved)) <= 5 for r in rows)

    stages, build_seconds = prepared.build_cost()
    config = EvalConfig(modes=["bm25", "dense"], ks=[2, 5], extractor="none", embedding_model=embedder.name)
    path = write_result("retrieval", dataset, config, run.rows, run.aggregates,
                        Cost.of(stages, build_seconds, run.wall_seconds), tmp_path / "results")
    assert re.fullmatch(r"retrieval-sample-bm25\+dense-\d{8}T\d{12}Z\.json", path.name)
    data = json.loads(path.read_text())
    assert set(data) == {
        "kind", "dataset", "config", "versions", "rows", "aggregates", "cost", "date", "notes"
    }
    assert data["notes"] == []
    assert data["dataset"] == {"name": "sample", "questions": 4, "passages": 40}
    assert data["config"]["extractor"] == "none" and data["config"]["embedding_model"] == "hashing-test"
    assert {"python", "synthkg", "numpy"} <= set(data["versions"])
    assert data["cost"]["llm_calls"] == 0 and data["cost"]["build_wall_seconds"] > 0
    assert EvalResult.model_validate(data).aggregates["bm25"].metrics == run.aggregates["bm25"].metrics


def test_prepare_is_idempotent_and_stores_never_mix(tmp_path: Path) -> None:
    dataset = load_dataset(SAMPLE_DIR)
    small = dataset.subset(1)
    settings = settings_in(tmp_path)
    first = prepare_corpus(small, settings, "none", embedder=HashingEmbedder(), progress=False)
    again = prepare_corpus(small, settings, "none", embedder=HashingEmbedder(), progress=False)
    assert (again.summary.documents_ingested, again.summary.documents_skipped) == (0, len(small.passages))
    assert again.summary.store_totals == first.summary.store_totals
    assert again.settings.store.path == first.settings.store.path
    # The skip-only rerun built nothing: the build time is the first run's, indexing included.
    ledger = [json.loads(line) for line in (first.settings.data_dir / BUILD_LEDGER).read_text().splitlines()]
    assert [run["documents_ingested"] for run in ledger] == [len(small.passages), 0]
    assert again.build_cost()[1] == ledger[0]["seconds"] >= first.summary.wall_seconds
    keys = {corpus_key(small, "none"), corpus_key(small, "multistep"), corpus_key(dataset, "none")}
    assert len(keys) == 3


def test_notes_name_skipped_passages_and_failed_chunks(tmp_path: Path) -> None:
    passages = [Passage(id="p1", title="One", text="Lisbon is in Portugal."), Passage(id="p2", text="   ")]
    dataset = Dataset("tiny", passages, [Question(id="q", question="Where is Lisbon?", answer="Portugal")])
    prepared = prepare_corpus(dataset, settings_in(tmp_path), "none", embedder=HashingEmbedder(),
                              progress=False)
    assert prepared.notes() == ["not ingested: passage p2: empty document, skipped"]
    failed = Document.create("Text.", key="p3", metadata={"failed_chunks": {"0": "unparseable", "2": "x"}})
    with EmbeddedStore(prepared.settings.store.path) as store:
        store.upsert_documents([failed])
    assert prepared.notes()[0] == "2 chunk(s) failed extraction: their passages lack graph facts"


def test_to_passages_dedupes_in_rank_order() -> None:
    passage_of = {"doc:a": "A", "doc:b": "B", "doc:c": "C"}
    ranked = to_passages(["doc:b", "doc:b", "doc:x", "doc:a", "doc:c"], passage_of, 3)
    assert ranked == ["B", "doc:x", "A"]  # an unknown document keeps its rank under its own id


def test_empty_store_is_a_clear_error(tmp_path: Path) -> None:
    dataset = load_dataset(SAMPLE_DIR)
    with EmbeddedStore(tmp_path / "store") as store:
        index = SearchIndex.open(tmp_path / "index", HashingEmbedder())
        with pytest.raises(EvalError, match="store holds no chunks"):
            eval_retrieval(dataset, store, index, ["bm25"])
        with pytest.raises(EvalError, match="store holds no chunks"):
            eval_kg(dataset, store, HashingEmbedder())


def test_build_cost_sums_the_build_ledger(tmp_path: Path) -> None:
    usage = {"calls": 3, "cached_calls": 1, "prompt_tokens": 200, "completion_tokens": 50, "seconds": 4.0,
             "cached_prompt_tokens": 100, "cached_completion_tokens": 20, "cached_seconds": 2.0}
    runs = [
        {"documents_ingested": 2, "seconds": 7.5, "usage": {"entities": usage, "total": usage}},
        {"documents_ingested": 1, "seconds": 2.5, "usage": {"entities": usage}},
        {"documents_ingested": 0, "seconds": 1.0, "usage": {}},  # skipped everything
    ]
    lines = [json.dumps(run) for run in runs] + ['{"documents_ingested": 5, "seco']  # torn by a crash
    (tmp_path / BUILD_LEDGER).write_text("\n".join(lines))
    stages, wall = build_cost(tmp_path)
    assert wall == 10.0
    assert set(stages) == {"build/entities"}
    entities = stages["build/entities"]
    assert (entities.calls, entities.cached_calls) == (6, 2)
    assert (entities.prompt_tokens, entities.completion_tokens) == (600, 140)


# --- graph modes on a hand-written graph -------------------------------------------------------------
def graph_dataset(docs: tuple[Doc, ...], questions: list[Question]) -> Dataset:
    """Passages keyed by title, as tests.retrieval.corpus keys its documents."""
    return Dataset("handmade", [Passage(id=d.title, title=d.title, text=d.text) for d in docs], questions)


TWO_HOP = Question(
    id="q1", question=QUESTION, answer="Portugal", supporting_passage_ids=[SUPPORT_A, SUPPORT_B]
)


def test_graph_and_ppr_modes_reach_the_bridge_passage(tmp_path: Path) -> None:
    dataset = graph_dataset(DOCS, [TWO_HOP])
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(build_batch())
        index = SearchIndex.open(tmp_path / "index", HashingEmbedder())
        index.update(store)
        run = eval_retrieval(dataset, store, index, ["bm25", "graph", "ppr"], (2, 5), progress=False)
        for row in run.rows:
            chunks = retrieve(QUESTION, 10, row.mode, store=store, index=index).chunks  # type: ignore[arg-type]
            assert row.retrieved == expected_ranking(dataset, [c.document_id for c in chunks], 5)
    recall = {r.mode: r.metrics["recall@5"] for r in run.rows}
    # The bridge passage shares no word with the question: BM25 cannot find it, the graph walks to it.
    assert recall["bm25"] == 0.5
    assert recall["graph"] == 1.0
    assert recall["ppr"] == 1.0


def test_questions_without_supporting_passages_are_scored_by_answer_at_k(
    graph_store: GraphStoreAndIndex,
) -> None:
    # As HotpotQA dev300: no gold passages, so recall cannot be scored; the answer string can be looked for.
    questions = [TWO_HOP.model_copy(update={"supporting_passage_ids": []}),
                 Question(id="yn", question="Was Xanadu Nights directed by Yorick Bellamy?", answer="yes")]
    dataset = graph_dataset(DOCS, [TWO_HOP, *questions])
    store, index = graph_store
    run = eval_retrieval(dataset, store, index, ["graph"], (2, 5), progress=False)
    with_gold, without, yes_no = run.rows
    assert "recall@5" in with_gold.metrics and with_gold.metrics["answer@5"] == 1.0  # "Portugal"
    assert set(without.metrics) == {"answer@2", "answer@5"} and without.metrics["answer@5"] == 1.0
    assert yes_no.metrics == {}
    summary = run.aggregates["graph"]
    assert summary.n == 1 and summary.skipped == 2
    assert summary.metrics["recall@5"] == with_gold.metrics["recall@5"]
    assert summary.metrics["answer@5"] == 1.0  # over the two questions with a span answer
    assert summary.notes == ["2 question(s) without supporting passages: answer@k only (2 of 3 have a span "
                             "answer)"]


# --- question answering with a scripted model --------------------------------------------------------
def qa_dataset() -> Dataset:
    return graph_dataset(
        DOCS,
        [
            TWO_HOP,
            Question(id="q2", question="Where was Yorick Bellamy born?", answer="Lisbon Portugal",
                     answer_aliases=["Lisboa"], supporting_passage_ids=[SUPPORT_B]),
        ],
    )


GraphStoreAndIndex = tuple[EmbeddedStore, SearchIndex]


@pytest.fixture
def graph_store(tmp_path: Path) -> Iterator[GraphStoreAndIndex]:
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(build_batch())
        index = SearchIndex.open(tmp_path / "index", HashingEmbedder())
        index.update(store)
        yield store, index


def test_qa_single_scores_and_counts(graph_store: GraphStoreAndIndex) -> None:
    store, index = graph_store
    reply = '{"answer": "Portugal", "citations": [1]}'
    model = ScriptedChatModel([reply, reply])
    run = eval_qa(qa_dataset(), store, index, model, "graph", "single", k=3, progress=False)

    q1, q2 = run.rows
    assert (q1.em, q1.f1) == (1.0, 1.0)
    assert q2.em == 0.0 and q2.f1 == pytest.approx(2 / 3)  # "portugal" vs "lisbon portugal"
    assert {r.mode for r in run.rows} == {"graph/single"}
    for row in run.rows:
        # ScriptedChatModel bills 10 prompt tokens and len(text) // 4 completion tokens per call.
        assert (row.calls, row.prompt_tokens, row.completion_tokens) == (1, 10, len(reply) // 4)
        assert row.cited_passages and row.cited_passages[0] in {d.title for d in DOCS}
    summary = run.aggregates["graph/single"]
    assert summary.metrics["em"] == 0.5
    assert summary.metrics["f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert summary.metrics["tokens_per_question"] == 10 + len(reply) // 4
    assert (run.cost.calls, run.cost.prompt_tokens) == (2, 20)
    assert len(model.calls) == 2


def test_qa_iterative_and_a_cached_rerun_cost_the_same(
    graph_store: GraphStoreAndIndex, tmp_path: Path
) -> None:
    store, index = graph_store
    dataset = graph_dataset(DOCS, [TWO_HOP])

    def reply(call: RecordedCall) -> str:
        system = call.messages[0]["content"]
        if system == load_prompt("reader_intermediate").system:
            return '{"answer": "Lisbon, Portugal", "citations": [1]}'
        if "Yorick Bellamy was born" in call.last_user:
            return '{"answer": "Portugal", "citations": [1, 2]}'
        return '{"sub_query": "Where was Yorick Bellamy born?"}'

    runs = []
    for _ in range(2):
        with CachedBackend(ScriptedChatModel(reply), tmp_path / "cache") as cached:
            runs.append(eval_qa(dataset, store, index, cached, "bm25", "iterative", k=2, progress=False))
    first, second = (r.rows[0] for r in runs)
    assert first.prediction == "Portugal" and first.em == 1.0
    # Sub-query, its intermediate answer, the final answer.
    assert (first.calls, first.cached_calls) == (3, 0)
    # The rerun is served from the cache and still reports what the calls cost.
    assert second.cached_calls == second.calls == first.calls
    assert (second.prompt_tokens, second.completion_tokens) == (first.prompt_tokens, first.completion_tokens)


def test_qa_reports_cache_hits_at_their_original_cost(graph_store: GraphStoreAndIndex) -> None:
    store, index = graph_store
    hit = ChatResult(text='{"answer": "Portugal", "citations": []}', cached=True,
                     extra={"cached_prompt_tokens": 321, "cached_completion_tokens": 12})
    run = eval_qa(graph_dataset(DOCS, [TWO_HOP]), store, index, ScriptedChatModel([hit]), "dense", "single",
                  progress=False)
    row = run.rows[0]
    assert (row.calls, row.cached_calls, row.prompt_tokens, row.completion_tokens) == (1, 1, 321, 12)


# --- KG coverage -------------------------------------------------------------------------------------
KG_DOCS = (
    Doc("Xanadu Nights", "Xanadu Nights is a 1987 film directed by Yorick Bellamy.",
        (("Xanadu Nights was directed by Yorick Bellamy.", ("Xanadu Nights", "Yorick Bellamy")),),
        (("Xanadu Nights", "directed by", "Yorick Bellamy", 0),)),
    Doc("Yorick Bellamy", "Yorick Bellamy was born in Lisbon.",
        (("Yorick Bellamy was born in Lisbon.", ("Yorick Bellamy", "Lisbon")),),
        (("Yorick Bellamy", "born in", "Lisbon", 0),)),
    Doc("Bellamy family", "Yorick Bellamy's date of birth is 1941.",
        (("Yorick Bellamy's date of birth is 1941.", ("Yorick Bellamy", "1941")),),
        (("Yorick Bellamy", "date of birth", "1941", 0),)),
)


def test_kg_coverage_supporting_and_global(tmp_path: Path) -> None:
    questions = [
        Question.model_validate({
            "id": "q1", "question": "When was the director of Xanadu Nights born?", "answer": "1941",
            "supporting_passage_ids": ["Xanadu Nights", "Yorick Bellamy"],
            "evidence": [["Xanadu Nights", "directed by", "Yorick Bellamy"],
                         ["Yorick Bellamy", "date of birth", "1941"]],
        }),
        Question(id="q2", question="Who directed Xanadu Nights?", answer="Yorick Bellamy",
                 supporting_passage_ids=["Xanadu Nights"]),
    ]
    dataset = graph_dataset(KG_DOCS, questions)
    with EmbeddedStore(tmp_path / "store") as store:
        store.write(build_batch(KG_DOCS))
        run = eval_kg(dataset, store, HashingEmbedder(), threshold=0.88, progress=False)

    scored, unscored = run.rows
    assert unscored.n_gold == 0 and unscored.supporting is None
    assert scored.n_gold == 2 and scored.supporting is not None and scored.global_ is not None
    # The supporting passages state the first triple; the date of birth is only in a third passage.
    assert [t.covered for t in scored.supporting.triples] == [True, False]
    assert scored.supporting.n_extracted == 2
    assert scored.supporting.coverage == 0.5
    assert scored.global_.coverage == 1.0 and scored.global_.n_extracted == 3
    assert run.aggregates["supporting"].metrics["coverage"] == 0.5
    assert run.aggregates["supporting"].metrics["coverage_micro"] == 0.5
    assert run.aggregates["global"].metrics["coverage"] == 1.0
    assert run.aggregates["supporting"].skipped == 1
    assert "no gold triples" in run.aggregates["supporting"].notes[0]
    dumped = scored.model_dump(mode="json", by_alias=True)
    assert "global" in dumped and dumped["global"]["coverage"] == 1.0
