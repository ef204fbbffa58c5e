from __future__ import annotations

import json
import logging
import re

import pytest

from retrieval.reader import answer
from retrieval.retrievers import RetrievalResult, RetrievedChunk, make_retriever
from synthkg.prompts import load_prompt
from tests.fakes import RecordedCall, ScriptedChatModel
from tests.retrieval.conftest import Corpus
from tests.retrieval.corpus import QUESTION, SUPPORT_A, SUPPORT_B, chunk_id_of

SUB_QUERY = "Where was Yorick Bellamy born?"


def passage(n: int, text: str | None = None) -> RetrievedChunk:
    return RetrievedChunk(
        chunk_id=f"chunk:{n}", document_id=f"doc:{n}", score=1.0, text=text or f"passage {n}"
    )


class StaticRetriever:
    """Fixed chunks per query (anything else gets `default`); records the queries."""

    def __init__(
        self, by_query: dict[str, list[RetrievedChunk]], default: list[RetrievedChunk] | None = None
    ):
        self.by_query = by_query
        self.default = default or []
        self.queries: list[str] = []

    def __call__(self, query: str, k: int) -> RetrievalResult:
        self.queries.append(query)
        return RetrievalResult(
            question=query, mode="graph", chunks=self.by_query.get(query, self.default)[:k]
        )


def two_step_retriever() -> StaticRetriever:
    return StaticRetriever(
        {
            QUESTION: [passage(1, "Xanadu Nights was directed by Yorick Bellamy."), passage(2)],
            SUB_QUERY: [passage(2), passage(3, "Yorick Bellamy was born in Lisbon, Portugal.")],
        }
    )


def by_prompt(final: str, intermediate: str, iterate: list[str]) -> ScriptedChatModel:
    """A model answering by which prompt it is given; `iterate` replies in turn (the last repeats)."""
    turns = iter(iterate)
    last = [iterate[-1]]

    def reply(call: RecordedCall) -> str:
        system = call.messages[0]["content"]
        if system == load_prompt("reader_final").system:
            return final
        if system == load_prompt("reader_intermediate").system:
            return intermediate
        last[0] = next(turns, last[0])
        return last[0]

    return ScriptedChatModel(reply)


def test_sub_query_then_answer() -> None:
    retriever = two_step_retriever()
    replies = [
        json.dumps({"sub_query": SUB_QUERY}),
        '{"answer": "Lisbon, Portugal", "citations": [3]}',
        '```json\n{"answer": "Portugal", "citations": [1, 3, 7]}\n```',
    ]
    model = ScriptedChatModel(replies)
    result = answer(QUESTION, retriever, model, max_iterations=5, k=2)

    assert result.answer == "Portugal"
    assert not result.forced_final
    # Passage 7 does not exist: dropped. Numbers follow first appearance: 1, 2, then 3 from the sub-query.
    assert [(c.number, c.chunk_id, c.text) for c in result.citations] == [
        (1, "chunk:1", "Xanadu Nights was directed by Yorick Bellamy."),
        (3, "chunk:3", "Yorick Bellamy was born in Lisbon, Portugal."),
    ]
    assert retriever.queries == [QUESTION, SUB_QUERY]
    assert [(s.sub_query, s.intermediate_answer, s.retrieved_chunk_ids) for s in result.trace] == [
        (None, None, ["chunk:1", "chunk:2"]),
        (SUB_QUERY, "Lisbon, Portugal", ["chunk:2", "chunk:3"]),
    ]
    intermediate_prompt = model.calls[1].last_user
    assert "[2] passage 2" in intermediate_prompt and "[3] Yorick" in intermediate_prompt
    assert "[1]" not in intermediate_prompt and f"Question: {SUB_QUERY}" in intermediate_prompt
    last_prompt = model.calls[2].last_user
    assert f"- {SUB_QUERY} -> Lisbon, Portugal" in last_prompt and "[3] Yorick" in last_prompt
    assert result.usage.calls == 3
    assert result.usage.prompt_tokens == 3 * 10  # the fake reports 10 per call
    assert result.usage.completion_tokens == sum(len(c) // 4 for c in replies)
    assert result.prompt_versions == {"reader_iterate": "2", "reader_intermediate": "1"}
    assert all(call.json_schema is not None and call.max_tokens == 256 for call in model.calls)
    assert result.seconds >= 0


def test_a_model_that_never_answers_gets_a_forced_final_answer() -> None:
    model = by_prompt(
        final='{"answer": "Portugal", "citations": [1, 3]}',
        intermediate='{"answer": "Lisbon", "citations": [1]}',
        iterate=[json.dumps({"sub_query": f"question {i}?"}) for i in range(10)],
    )
    retriever = StaticRetriever({}, default=[passage(3)])
    result = answer(QUESTION, retriever, model, max_iterations=3)

    assert result.forced_final
    assert result.answer == "Portugal"
    # The one chunk retrieved is passage 1; "3" points at nothing and is dropped.
    assert [(c.number, c.chunk_id) for c in result.citations] == [(1, "chunk:3")]
    assert result.usage.calls == 3 + 3 + 1  # decisions, intermediate answers, the forced one
    assert [s.sub_query for s in result.trace] == [None, "question 0?", "question 1?", "question 2?"]
    assert retriever.queries == [QUESTION, "question 0?", "question 1?", "question 2?"]
    assert result.prompt_versions["reader_final"] == "1"


def test_malformed_replies_are_recorded_and_the_loop_goes_on() -> None:
    model = ScriptedChatModel(
        ["I am not sure yet.", '{"answer": ', '{"answer": "Portugal", "citations": ["[1]"]}']
    )
    result = answer(QUESTION, two_step_retriever(), model)
    assert result.answer == "Portugal" and not result.forced_final
    assert [c.chunk_id for c in result.citations] == ["chunk:1"]
    assert [s.note for s in result.trace[1:]] == ["unparseable model output", "unparseable model output"]
    assert result.usage.calls == 3


def test_garbage_to_the_end_still_returns_an_answer() -> None:
    result = answer(
        QUESTION, two_step_retriever(), ScriptedChatModel(["no idea, sorry\nreally"] * 3), max_iterations=2
    )
    assert result.forced_final
    assert result.answer == "no idea, sorry"  # a plain-text final reply's first line is taken as the answer
    assert result.citations == []
    assert result.usage.calls == 3
    assert any("no parseable answer" in w for w in result.warnings)


def test_broken_final_json_falls_back_on_the_last_intermediate_answer() -> None:
    model = by_prompt(
        final='{"answer": "Portu',
        intermediate='{"answer": "Lisbon, Portugal", "citations": [3]}',
        iterate=[json.dumps({"sub_query": SUB_QUERY}), '{"sub_query": ""}'],
    )
    result = answer(QUESTION, two_step_retriever(), model, max_iterations=2)
    assert result.forced_final and result.answer == "Lisbon, Portugal"
    assert result.trace[-1].note == "model output had neither an answer nor a sub-query"


def test_a_repeated_sub_query_is_not_retrieved_again() -> None:
    retriever = two_step_retriever()
    model = ScriptedChatModel(
        [json.dumps({"sub_query": QUESTION.upper()}), '{"answer": "Portugal", "citations": [1]}']
    )
    result = answer(QUESTION, retriever, model)
    assert retriever.queries == [QUESTION]
    assert result.trace[1].note == "not retrieved: the sub-query repeats the question"
    assert result.trace[1].kind == "rejected" and result.sub_queries == 0
    assert result.answer == "Portugal"
    # The re-ask states the problem.
    assert "repeats the question" in model.calls[1].messages[-1]["content"]


ECHO = "Xanadu Nights was directed by Yorick Bellamy."


class SeedingRetriever(StaticRetriever):
    """A StaticRetriever that takes seeds (as make_retriever's do) and gives graph facts: the question's
    linked entity and the entity reached from it."""

    def __init__(self) -> None:
        super().__init__({})
        self.seeds: list[list[str]] = []

    def __call__(self, query: str, k: int, seeds: list[str] | tuple[str, ...] = ()) -> RetrievalResult:
        self.queries.append(query)
        self.seeds.append(list(seeds))
        if query == QUESTION:
            first = passage(1, ECHO).model_copy(update={"reached": ["Yorick Bellamy"]})
            return RetrievalResult(question=query, mode="graph", chunks=[first],
                                   question_entities=["Xanadu Nights"])
        return RetrievalResult(question=query, mode="graph",
                               chunks=[passage(3, "Yorick Bellamy was born in Lisbon, Portugal.")])


def test_a_copied_passage_is_re_asked_then_replaced_by_the_graphs_bridge_query() -> None:
    """Seen in the demo: a 0.5B reader's "sub-query" was a sentence copied from a passage."""
    retriever = SeedingRetriever()
    model = by_prompt(
        final='{"answer": "Lisbon", "citations": [3]}',
        intermediate='{"answer": "Lisbon", "citations": [3]}',
        iterate=[json.dumps({"sub_query": ECHO}), json.dumps({"sub_query": ECHO + " Really."}),
                 '{"answer": "Lisbon", "citations": [1, 3]}'],
    )
    result = answer(QUESTION, retriever, model, max_iterations=5)
    kinds = [(s.kind, s.note.split(":")[0]) for s in result.trace]
    assert kinds == [("question", "retrieval for the question"), ("rejected", "not retrieved"),
                     ("rejected", "not retrieved"), ("bridge", "templated bridge query")]
    assert "copies a retrieved passage" in result.trace[1].note
    bridge = "Which country is the birthplace of the director of the film Yorick Bellamy?"
    assert retriever.queries == [QUESTION, bridge] and result.trace[3].sub_query == bridge
    assert result.answer == "Lisbon" and result.sub_queries == 1


def test_sub_queries_start_from_the_intermediate_answers_so_far() -> None:
    retriever = SeedingRetriever()
    model = by_prompt(
        final='{"answer": "x", "citations": []}',
        intermediate='{"answer": "Yorick Bellamy", "citations": [1]}',
        iterate=[json.dumps({"sub_query": "Who directed Xanadu Nights?"}),
                 json.dumps({"sub_query": "Where was he born?"}), '{"answer": "Lisbon", "citations": [2]}'],
    )
    answer(QUESTION, retriever, model)
    assert retriever.seeds == [[], [], ["Yorick Bellamy"]]  # no seeds for the question itself


@pytest.mark.parametrize(
    ("sub_query", "reason"),
    [
        ("Where was Yorick Bellamy born?", None),
        ("Who directed it?", None),
        ("Xanadu Nights was directed by Yorick Bellamy.", "copies a retrieved passage"),
        ("Which country is the birthplace of the director of Xanadu Nights?", "repeats the question"),
        ("In which country exactly is the famous birthplace of the director of the film Xanadu Nights?",
         "is not shorter than the question"),
        ("Yorick Bellamy birthplace", "is not a question"),
        ("", "is empty"),
    ],
)
def test_sub_query_rejections(sub_query: str, reason: str | None) -> None:
    from retrieval.subqueries import rejection

    assert rejection(sub_query, QUESTION, [ECHO, "Lisbon is the capital of Portugal."]) == reason


def test_bridge_query_swaps_the_linked_entity_for_the_reached_one() -> None:
    from retrieval.subqueries import bridge_query

    assert bridge_query(QUESTION, ["Xanadu Nights"], ["Xanadu Nights", "Yorick Bellamy"]) == (
        "Which country is the birthplace of the director of the film Yorick Bellamy?"
    )
    assert bridge_query("Who made it?", [], ["Yorick Bellamy"]) == "Yorick Bellamy: Who made it?"
    assert bridge_query(QUESTION, ["Xanadu Nights"], ["Xanadu Nights"]) is None


def test_single_shot_makes_one_call() -> None:
    retriever = two_step_retriever()
    model = ScriptedChatModel(['Answer: {"answer": "Yorick Bellamy", "citations": [1, 2]}'])
    result = answer(QUESTION, retriever, model, mode="single")
    assert (result.answer, result.mode, result.forced_final) == ("Yorick Bellamy", "single", False)
    assert [c.chunk_id for c in result.citations] == ["chunk:1", "chunk:2"]
    assert result.usage.calls == 1 and retriever.queries == [QUESTION]
    assert model.calls[0].messages[0]["content"] == load_prompt("reader_single").system
    assert result.prompt_versions == {"reader_single": "1"}


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_a_clear_error(question: str) -> None:
    with pytest.raises(ValueError, match="question is empty"):
        answer(question, two_step_retriever(), ScriptedChatModel(["{}"]))


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown reader mode 'loop'"):
        answer(QUESTION, two_step_retriever(), ScriptedChatModel(["{}"]), mode="loop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_iterations must be >= 1"):
        answer(QUESTION, two_step_retriever(), ScriptedChatModel(["{}"]), max_iterations=0)


def test_long_question_is_truncated_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    question = "Which country " + "really " * 200 + "?"
    retriever = StaticRetriever({}, default=[passage(1)])
    with caplog.at_level(logging.WARNING, logger="retrieval.reader"):
        result = answer(
            question, retriever, ScriptedChatModel(['{"answer": "x"}']), mode="single", context_tokens=200
        )
    limit = int(200 * 4 * 0.75 * 0.25)
    assert len(retriever.queries[0]) == limit
    assert "truncated" in caplog.text and any("truncated" in w for w in result.warnings)
    assert result.question == question.strip()


def test_passages_are_cut_to_the_context_budget() -> None:
    retriever = StaticRetriever({}, default=[passage(n, "word " * 2000) for n in range(1, 11)])
    model = ScriptedChatModel(['{"answer": "x", "citations": [10]}'])
    result = answer(QUESTION, retriever, model, mode="single", k=10, context_tokens=1024)
    prompt = "".join(m["content"] for m in model.calls[0].messages)
    assert len(prompt) < 1024 * 4
    assert "[10] word" in prompt and prompt.count("...") == 10
    assert [c.number for c in result.citations] == [10]



@pytest.mark.slow
def test_end_to_end_citations_point_at_the_supporting_chunks(two_hop: Corpus) -> None:
    def cite_support(call: RecordedCall) -> str:
        text = call.last_user
        numbers = [
            int(m.group(1))
            for needle in ("directed by Yorick Bellamy", "born in Lisbon, Portugal")
            if (m := re.search(r"\[(\d+)\] [^\n]*" + re.escape(needle), text))
        ]
        return json.dumps({"answer": "Portugal", "citations": numbers})

    retriever = make_retriever(two_hop.store, two_hop.index, mode="graph")
    result = answer(QUESTION, retriever, ScriptedChatModel(cite_support), k=5)
    assert result.answer == "Portugal"
    assert [c.chunk_id for c in result.citations] == [
        chunk_id_of(two_hop.batch, SUPPORT_A),
        chunk_id_of(two_hop.batch, SUPPORT_B),
    ]
    for citation in result.citations:
        stored = two_hop.store.get_chunk(citation.chunk_id)
        assert (
            stored is not None and stored.document_id == citation.document_id and stored.text == citation.text
        )


def test_a_comparison_asks_the_answered_follow_up_about_the_other_name() -> None:
    """Seen in the demo: on "X or Y" the reader asked Y's release date, then only repeated it; the templated
    sibling query asks the same about X."""
    question = "Which album came out first, Stands For Decibels or Pleasure Victim?"
    asked_y = "When was Pleasure Victim released?"
    retriever = StaticRetriever({}, default=[passage(1, "Pleasure Victim is a 1982 album.")])
    model = by_prompt(
        final='{"answer": "Stands For Decibels", "citations": [1]}',
        intermediate='{"answer": "1982", "citations": [1]}',
        iterate=[json.dumps({"sub_query": asked_y}), json.dumps({"sub_query": asked_y}),
                 json.dumps({"sub_query": asked_y}), '{"answer": "Stands For Decibels", "citations": [1]}'],
    )
    result = answer(question, retriever, model, max_iterations=6)
    kinds = [s.kind for s in result.trace]
    assert kinds == ["question", "model", "rejected", "rejected", "bridge"]
    assert result.trace[-1].sub_query == "When was Stands For Decibels released?"
    assert result.trace[-1].note.startswith("templated sibling query")
    assert retriever.queries == [question, asked_y, "When was Stands For Decibels released?"]
    assert result.answer == "Stands For Decibels" and not result.forced_final


def test_sibling_query_names_the_next_thing_not_asked_about() -> None:
    from retrieval.subqueries import sibling_query

    names = ["Stands For Decibels", "Pleasure Victim"]
    asked = ["When was Pleasure Victim released?"]
    assert sibling_query(asked, names, asked) == "When was Stands For Decibels released?"
    everything = ["When was Pleasure Victim released?", "When was Stands For Decibels released?"]
    assert sibling_query(everything, names, everything) is None  # both asked about
    assert sibling_query(["Who made it?"], names, ["Who made it?"]) is None  # names neither


# --- decompose: plan, answer each step from its own passages, compose ----------------------------------
DIRECTOR_Q = "Who directed Xanadu Nights?"
BIRTHPLACE_Q = "Where was Yorick Bellamy born?"


class CountingRetriever(StaticRetriever):
    """A StaticRetriever that also records each call's k."""

    def __init__(self, by_query: dict[str, list[RetrievedChunk]]) -> None:
        super().__init__(by_query)
        self.ks: list[int] = []

    def __call__(self, query: str, k: int) -> RetrievalResult:
        self.ks.append(k)
        return super().__call__(query, k)


def decompose_retriever() -> CountingRetriever:
    # Numbers by first appearance: chunk:1 -> 1, chunk:2 -> 2, chunk:4 -> 3, chunk:3 -> 4, chunk:5 -> 5.
    return CountingRetriever({
        QUESTION: [passage(1, "Xanadu Nights was directed by Yorick Bellamy."), passage(2)],
        DIRECTOR_Q: [passage(1), passage(4), passage(6)],
        BIRTHPLACE_Q: [passage(3, "Yorick Bellamy was born in Lisbon, Portugal."), passage(5), passage(7)],
    })


def planner(plan: list[str], intermediates: list[str], composed: str = '{"answer": "Portugal"}',
            final: str = '{"answer": "from the passages", "citations": [1]}') -> ScriptedChatModel:
    """A model answering the decomposing reader's prompts: the plan, the intermediate answers in turn, the
    composed answer, and the forced final / single-shot answer."""
    turns = iter(intermediates)

    def reply(call: RecordedCall) -> str:
        system = call.messages[0]["content"]
        if system == load_prompt("reader_decompose").system:
            return json.dumps({"steps": plan})
        if system == load_prompt("reader_intermediate").system:
            return next(turns)
        if system == load_prompt("reader_compose").system:
            return composed
        return final

    return ScriptedChatModel(reply)


def test_decompose_answers_each_planned_step_and_a_chain_ends_with_its_last_answer() -> None:
    retriever = decompose_retriever()
    model = planner([DIRECTOR_Q, "Where was #1 born?"],
                    ['{"answer": "Yorick Bellamy", "citations": [1]}',
                     '{"answer": "Lisbon, Portugal", "citations": [4, 2]}'])
    result = answer(QUESTION, retriever, model, mode="decompose", k=2, step_k=2)

    assert result.answer == "Lisbon, Portugal" and not result.forced_final
    # The second step names the first one's answer; each step retrieves step_k chunks.
    assert retriever.queries == [QUESTION, DIRECTOR_Q, BIRTHPLACE_Q] and retriever.ks == [2, 2, 2]
    assert [(s.kind, s.sub_query, s.intermediate_answer) for s in result.trace][:3] == [
        ("question", None, None), ("model", DIRECTOR_Q, "Yorick Bellamy"),
        ("model", BIRTHPLACE_Q, "Lisbon, Portugal"),
    ]
    assert "chain" in result.trace[3].note
    # Citations are what the steps cited among their own passages (passage 2 was not the second step's).
    assert [c.chunk_id for c in result.citations] == ["chunk:1", "chunk:3"]
    # The plan and two steps: no composing call for a chain.
    assert result.usage.calls == 3 and result.sub_queries == 2
    # The plan reads no passages: that is what keeps the mode cheap.
    assert "directed by" not in model.calls[0].last_user and "born in" not in model.calls[0].last_user
    assert set(result.prompt_versions) == {"reader_decompose", "reader_intermediate"}


def test_decompose_composes_a_yes_no_comparison_from_the_answers_alone() -> None:
    question = "Are Xanadu Nights and Blue Harbor from the same country?"
    retriever = StaticRetriever({}, default=[passage(1, "Xanadu Nights is a Portuguese film."),
                                             passage(2, "Blue Harbor is a Portuguese film.")])
    model = planner(["Which country is Xanadu Nights from?", "Which country is Blue Harbor from?"],
                    ['{"answer": "Portugal", "citations": [1]}', '{"answer": "Portugal", "citations": [2]}'],
                    composed='{"answer": "yes"}')
    result = answer(question, retriever, model, mode="decompose", k=2)

    assert result.answer == "yes" and not result.forced_final and result.usage.calls == 4
    compose_call = model.calls[-1]
    assert compose_call.messages[0]["content"] == load_prompt("reader_compose").system
    assert "- Which country is Blue Harbor from? -> Portugal" in compose_call.last_user
    assert "Portuguese film" not in compose_call.last_user  # the answers, not the passages
    assert [c.chunk_id for c in result.citations] == ["chunk:1", "chunk:2"]


@pytest.mark.parametrize(
    ("question", "winner"),
    [
        ("Which film came out first, Xanadu Nights or Blue Harbor?", "Blue Harbor"),
        ("Which film came out later, Xanadu Nights or Blue Harbor?", "Xanadu Nights"),
    ],
)
def test_decompose_settles_a_comparison_of_dates_without_a_composing_call(question: str, winner: str) -> None:
    retriever = StaticRetriever({}, default=[passage(1, "Xanadu Nights is a 1971 film."),
                                             passage(2, "Blue Harbor is a 1965 film.")])
    # The composing call would get it wrong: it is not made.
    model = planner(["When was Xanadu Nights released?", "When was Blue Harbor released?"],
                    ['{"answer": "March 1971", "citations": [1]}', '{"answer": "1965", "citations": [2]}'],
                    composed='{"answer": "wrong"}')
    result = answer(question, retriever, model, mode="decompose", k=2)

    assert result.answer == winner and not result.forced_final and result.usage.calls == 3
    assert "settled from the steps' dates" in result.trace[-1].note
    assert [c.chunk_id for c in result.citations] == ["chunk:1", "chunk:2"]


def test_decompose_reads_the_questions_and_the_cited_passages_when_a_step_is_not_found() -> None:
    retriever = decompose_retriever()
    model = planner([DIRECTOR_Q, "Where was #1 born?"],
                    ['{"answer": "Yorick Bellamy", "citations": [1]}',
                     '{"answer": "Unknown", "citations": []}', '{"answer": "unknown"}'])
    result = answer(QUESTION, retriever, model, mode="decompose", k=2)

    assert result.forced_final and result.answer == "from the passages"
    # The unknown step was asked once more, over twice its passages, before the plan was given up.
    assert retriever.queries[-2:] == [BIRTHPLACE_Q, BIRTHPLACE_Q] and retriever.ks[-2:] == [2, 4]
    assert [s.kind for s in result.trace[-2:]] == ["model", "retry"]
    final_call = model.calls[-1]
    assert final_call.messages[0]["content"] == load_prompt("reader_final").system
    # The question's passages and the cited ones (not those the failed step found), and the steps that worked.
    assert "directed by" in final_call.last_user and "born in" not in final_call.last_user
    assert f"- {DIRECTOR_Q} -> Yorick Bellamy" in final_call.last_user
    assert result.trace[-1].intermediate_answer == "unknown"
    assert result.usage.calls == 5 and result.sub_queries == 2  # a retry is not a new sub-query


def test_decompose_asks_an_unknown_step_again_over_more_passages() -> None:
    retriever = decompose_retriever()
    # The birthplace is the sub-query's second passage: one passage per step misses it.
    retriever.by_query[BIRTHPLACE_Q] = [passage(5), passage(3, "Yorick Bellamy was born in Lisbon.")]
    model = planner([DIRECTOR_Q, "Where was #1 born?"],
                    ['{"answer": "Yorick Bellamy", "citations": [1]}',
                     '{"answer": "unknown"}', '{"answer": "Lisbon", "citations": [4]}'])
    result = answer(QUESTION, retriever, model, mode="decompose", k=2, step_k=1)

    assert result.answer == "Lisbon" and not result.forced_final
    assert retriever.ks == [2, 1, 1, 2]
    retry = result.trace[-2]
    assert (retry.kind, retry.sub_query, retry.intermediate_answer) == ("retry", BIRTHPLACE_Q, "Lisbon")
    assert "again over 2 passages" in retry.note
    first_try, retry_call = model.calls[-2:]
    assert "born in" not in first_try.last_user and "born in" in retry_call.last_user
    # Passage 4 is the retry's own: its citation counts; the superseded try is not a step shown later.
    assert [c.chunk_id for c in result.citations] == ["chunk:1", "chunk:3"]
    assert result.usage.calls == 4 and result.sub_queries == 2


@pytest.mark.parametrize(
    ("plan", "expected_prompt", "note"),
    [
        ([QUESTION], "reader_single", "repeats the question"),  # nothing to split: the single-shot call
        (["Where was #2 born?", DIRECTOR_Q], "reader_final", "names an answer the plan lacks"),
        ([DIRECTOR_Q, DIRECTOR_Q], "reader_final", "repeats an earlier sub-query"),
        ([], "reader_final", None),
    ],
)
def test_a_plan_that_cannot_be_followed_falls_back(
    plan: list[str], expected_prompt: str, note: str | None
) -> None:
    model = planner(plan, ['{"answer": "Yorick Bellamy", "citations": [1]}'])
    result = answer(QUESTION, decompose_retriever(), model, mode="decompose", k=2)

    assert model.calls[-1].messages[0]["content"] == load_prompt(expected_prompt).system
    assert result.answer == "from the passages"
    assert result.forced_final is (expected_prompt == "reader_final")
    if note is not None:
        assert any(s.kind == "rejected" and note in s.note for s in result.trace)


def test_a_long_plan_is_cut_to_the_step_budget() -> None:
    model = planner([DIRECTOR_Q, "Where was #1 born?", "What is the capital of #2?"],
                    ['{"answer": "Yorick Bellamy", "citations": [1]}',
                     '{"answer": "Lisbon", "citations": [4]}'])
    result = answer(QUESTION, decompose_retriever(), model, mode="decompose", k=2, max_iterations=2)
    assert result.sub_queries == 2 and "cut to 2" in result.trace[1].note
    assert result.answer == "Lisbon"


@pytest.mark.parametrize(
    ("step", "answers", "filled"),
    [
        ("Where was #1 born?", ["Yorick Bellamy"], "Where was Yorick Bellamy born?"),
        ("Is #2 older than #1?", ["A", "B"], "Is B older than A?"),
        ("Who directed Xanadu Nights?", [], "Who directed Xanadu Nights?"),
        ("Where was #2 born?", ["A"], None),
        ("Where was #0 born?", ["A"], None),
    ],
)
def test_fill_placeholders(step: str, answers: list[str], filled: str | None) -> None:
    from retrieval.reader import fill_placeholders

    assert fill_placeholders(step, answers) == filled


@pytest.mark.parametrize(
    ("plan", "chain"),
    [
        (["Who directed X?", "Where was #1 born?"], True),
        (["Who is the father of X?", "Who is the father of #1?", "Where did #2 die?"], True),
        (["Who directed X?"], True),
        (["When was X released?", "When was Y released?"], False),
        (["Who directed X?", "Who directed Y?", "When was #1 born?", "When was #2 born?"], False),
        (["Who directed X?", "Where was #12 born?"], False),
        ([], False),
    ],
)
def test_is_chain(plan: list[str], chain: bool) -> None:
    from retrieval.reader import is_chain

    assert is_chain(plan) is chain


def test_step_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="step_k"):
        answer(QUESTION, decompose_retriever(), planner([], []), mode="decompose", step_k=0)


def test_decompose_follows_a_four_step_plan_by_default() -> None:
    """Its default budget is 4 steps, not the iterative reader's 3: cutting a comparison of two bridged
    facts loses the answer."""
    plan = [DIRECTOR_Q, "Who directed Blue Harbor?", "When was #1 born?", "When was #2 born?"]
    answers = ["Yorick Bellamy", "Anna Kowal", "1941", "1961"]
    model = planner(plan, [json.dumps({"answer": a, "citations": []}) for a in answers],
                    composed='{"answer": "Xanadu Nights"}')
    result = answer("Which film has the older director, Xanadu Nights or Blue Harbor?",
                    StaticRetriever({}, default=[passage(1)]), model, mode="decompose")
    assert result.sub_queries == 4 and result.answer == "Xanadu Nights" and not result.forced_final
