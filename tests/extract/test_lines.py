"""The line format of a ChunkGraph: rendering, parsing (strict where it must be, keeping what came
before a problem), the loop guard, and the grammar llama.cpp constrains it with."""

from __future__ import annotations

import importlib.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthkg.extract.lines import GRAMMAR, LoopGuard, loop_start, parse_lines, render_lines
from synthkg.extract.parse import ParseError
from synthkg.extract.schema import ChunkGraph, ExtractedEntity, Quadruple

ANSWER = """PERSON: Ada Lovelace; Charles Babbage
LOCATION: London
> Charles Babbage designed the Analytical Engine in London.
Charles Babbage | designed | Analytical Engine
Analytical Engine | was designed in | London
> Ada Lovelace published notes on the Analytical Engine.
Ada Lovelace | published notes on | Analytical Engine
"""


def test_parse_reads_entities_propositions_and_triples() -> None:
    graph, report = parse_lines(ANSWER)
    assert [(e.name, e.type) for e in graph.entities] == [
        ("Ada Lovelace", "PERSON"), ("Charles Babbage", "PERSON"), ("London", "LOCATION")
    ]
    assert [(q.subject, q.relation, q.object) for q in graph.quadruples] == [
        ("Charles Babbage", "designed", "Analytical Engine"),
        ("Analytical Engine", "was designed in", "London"),
        ("Ada Lovelace", "published notes on", "Analytical Engine"),
    ]
    assert graph.quadruples[1].proposition == "Charles Babbage designed the Analytical Engine in London."
    assert report.skipped == [] and report.loop_at is None and not report.cut


def test_render_groups_triples_under_their_proposition_and_round_trips() -> None:
    graph, _ = parse_lines(ANSWER)
    assert render_lines(graph) == ANSWER
    assert parse_lines(render_lines(graph))[0] == graph


def test_render_replaces_separators_inside_values() -> None:
    graph = ChunkGraph(
        entities=[ExtractedEntity(name="A; B", type="person"), ExtractedEntity(name="C|D", type="film")],
        quadruples=[Quadruple(subject="X|Y", relation="rel\nation", object="Z", proposition="One\nline.")],
    )
    text = render_lines(graph)
    parsed, report = parse_lines(text)
    assert not report.skipped
    assert {(e.name, e.type) for e in parsed.entities} >= {("A, B", "PERSON"), ("C,D", "WORK")}
    triples = [(q.subject, q.relation, q.proposition) for q in parsed.quadruples]
    assert triples == [("X,Y", "rel ation", "One line.")]


def test_cut_answer_keeps_the_facts_before_the_cut() -> None:
    cut = ANSWER + "> Ada Lovelace worked with Charles Bab"
    graph, report = parse_lines(cut, finish_reason="length")
    assert report.cut and len(graph.quadruples) == 3
    # A cut in the middle of a triple drops only that triple.
    graph, _ = parse_lines(ANSWER[: ANSWER.index("| published") + 5], finish_reason="length")
    assert len(graph.quadruples) == 2


def test_unreadable_lines_are_skipped_and_reported() -> None:
    text = "Here is the graph:\n" + ANSWER + "A | b\nAda Lovelace | knew | Charles Babbage\n"
    graph, report = parse_lines(text.replace("> Charles", "Orphan | before | any\n> Charles"))
    # The last triple belongs to the proposition above it; the one before any proposition is skipped.
    assert len(graph.quadruples) == 4 and graph.quadruples[-1].relation == "knew"
    assert report.skipped == ["Here is the graph:", "Orphan | before | any", "A | b"]


def test_nothing_usable_is_an_error_with_a_reason() -> None:
    with pytest.raises(ParseError) as empty:
        parse_lines("  \n")
    assert empty.value.reason == "empty"
    with pytest.raises(ParseError) as prose:
        parse_lines("I cannot do that.")
    assert prose.value.reason == "schema"
    with pytest.raises(ParseError) as looping:
        parse_lines("> A.\n> A.\n> A.\n")
    assert looping.value.reason == "repetition"


def test_an_answer_stopped_before_its_first_fact_is_an_error() -> None:
    entities = ANSWER.split("> ")[0]
    graph, _ = parse_lines(entities)  # ended by the model: a chunk without facts
    assert graph.entities and not graph.quadruples
    with pytest.raises(ParseError) as runaway:
        parse_lines(entities + "OTHER: great-great-great-great-great", finish_reason="loop")
    assert runaway.value.reason == "repetition"
    with pytest.raises(ParseError) as cut:
        parse_lines(entities + "> Charles Babbage designed", finish_reason="length")
    assert cut.value.reason == "truncated"


def test_a_loop_is_cut_where_it_starts() -> None:
    looping = ANSWER + "> Charles Babbage designed the Analytical Engine in London.\n" + ANSWER * 3
    graph, report = parse_lines(looping, finish_reason="loop")
    assert report.loop_at == ANSWER.count("\n")
    assert len(graph.quadruples) == 3


def test_loop_start_needs_a_repeated_proposition_or_three_repeated_lines() -> None:
    lines = ANSWER.splitlines()
    assert loop_start(lines) is None
    assert loop_start([*lines, lines[3]]) is None  # one triple written twice is not a loop
    assert loop_start([*lines, lines[3], lines[4], lines[3]]) == len(lines)
    assert loop_start([*lines, lines[2]]) == len(lines)  # a proposition again


def test_loop_guard_stops_on_loops_and_runaway_lines() -> None:
    guard = LoopGuard(max_line_chars=200)
    assert not guard(ANSWER)
    assert not guard(ANSWER + "Ada Lovelace | knew")
    assert guard(ANSWER + "> Ada Lovelace published notes on the Analytical Engine.\n")
    assert LoopGuard(max_line_chars=200)("> " + "very " * 60)


entity_names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.sampled_from(["stop", "length", "loop"]))
def test_parse_never_crashes(text: str, finish_reason: str) -> None:
    try:
        graph, _ = parse_lines(text, finish_reason=finish_reason)
    except ParseError as exc:
        assert exc.reason in {"empty", "schema", "repetition", "truncated"}
    else:
        assert graph.entities or graph.quadruples
        assert graph.quadruples or finish_reason == "stop"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(entity_names, st.sampled_from(["PERSON", "WORK", "OTHER", "x"])), max_size=5),
    st.lists(st.tuples(values, values, values, values), min_size=1, max_size=5),
)
def test_rendered_graphs_parse_back(entities: list[tuple[str, str]], quads: list[tuple[str, ...]]) -> None:
    quadruples = []
    for subject, relation, obj, proposition in quads:
        if all(v.strip() for v in (subject, relation, obj, proposition)):
            quadruples.append(
                Quadruple(subject=subject, relation=relation, object=obj, proposition=proposition)
            )
    graph = ChunkGraph(
        entities=[ExtractedEntity(name=n, type=t) for n, t in entities if n.strip()], quadruples=quadruples
    )
    text = render_lines(graph)
    if not text:
        return
    parsed, report = parse_lines(text)
    assert not report.skipped
    rendered_again = render_lines(parsed)
    assert parse_lines(rendered_again)[0] == parsed  # rendering is a fixed point after one pass


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed")
def test_grammar_compiles_in_llama_cpp() -> None:
    from llama_cpp import LlamaGrammar

    assert LlamaGrammar.from_string(GRAMMAR, verbose=False) is not None
