from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthkg.extract.parse import (
    ChunkGraph,
    DecontextualizedText,
    EntityList,
    ParseError,
    QuadrupleList,
    find_repetition,
    normalize,
    parse_json_object,
    parse_numbers,
    parse_output,
)
from synthkg.extract.schema import ExtractedEntity, Quadruple
from synthkg.model import normalize_name

GRAPH = {
    "entities": [{"name": "Ada Lovelace", "type": "PERSON"}, {"name": "London", "type": "LOCATION"}],
    "quadruples": [
        {
            "subject": "Ada Lovelace",
            "relation": "was born in",
            "object": "London",
            "proposition": "Ada Lovelace was born in London.",
        }
    ],
}


def reason_of(text: str, model: type = ChunkGraph, **kwargs: str) -> str:
    with pytest.raises(ParseError) as info:
        parse_output(text, model, **kwargs)
    return info.value.reason


# --- tolerated wrappers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wrap",
    [
        "{}",
        "```json\n{}\n```",
        "```\n{}\n```",
        "Here is the graph:\n```json\n{}\n```\nHope this helps!",
        "Sure! {} That's all.",
        "  \n{}\n\n",
    ],
)
def test_fences_and_prose_around_one_object(wrap: str) -> None:
    graph = parse_output(wrap.replace("{}", json.dumps(GRAPH, indent=2)), ChunkGraph)
    assert graph == ChunkGraph.model_validate(GRAPH)


def test_braces_inside_strings_do_not_confuse_the_scanner() -> None:
    data = {"text": 'a {curly} [bracket] "quoted" passage } ]'}
    assert parse_output("Result: " + json.dumps(data) + " done", DecontextualizedText).text == data["text"]


def test_bare_array_for_a_single_list_model() -> None:
    entities = parse_output('[{"name": "Paris", "type": "LOCATION"}]', EntityList).entities
    assert entities == [ExtractedEntity(name="Paris", type="LOCATION")]
    assert reason_of('[{"name": "Paris"}]', ChunkGraph) == "schema"  # two lists: not guessed


def test_later_object_is_used_when_an_earlier_one_does_not_validate() -> None:
    text = 'Format: {"name": "..."}\nAnswer: {"entities": [{"name": "Paris", "type": "LOCATION"}]}'
    assert parse_output(text, EntityList).entities[0].name == "Paris"


def test_stray_empty_object_in_prose_is_not_a_graph() -> None:
    assert reason_of("I found nothing {} here.") == "schema"


# --- cleaning and dedupe ------------------------------------------------------------------------


def test_dedupe_and_empty_fields() -> None:
    data = {
        "entities": [
            {"name": "  The Beatles ", "type": ""},
            {"name": "the beatles", "type": "ORGANIZATION"},
            {"name": "", "type": "PERSON"},
            {"name": "Liverpool", "type": "LOCATION"},
        ],
        "quadruples": [
            {"subject": "The Beatles", "relation": "formed in", "object": "Liverpool", "proposition": "P1."},
            {"subject": "the Beatles", "relation": "Formed  in", "object": "liverpool", "proposition": "P2."},
            {"subject": "The Beatles", "relation": " ", "object": "Liverpool", "proposition": "P3."},
            {"subject": "The Beatles", "relation": "formed in", "object": "Liverpool"},
            {"subject": "The Beatles", "relation": "were formed in", "object": "1960", "proposition": "P4."},
        ],
    }
    graph = parse_output(json.dumps(data), ChunkGraph)
    assert graph.entities == [
        ExtractedEntity(name="The Beatles", type="ORGANIZATION"),  # first name, the known type
        ExtractedEntity(name="Liverpool", type="LOCATION"),
    ]
    assert [q.proposition for q in graph.quadruples] == ["P1.", "P4."]


def test_normalize_matches_parsing() -> None:
    graph = ChunkGraph(
        entities=[ExtractedEntity(name="A "), ExtractedEntity(name="a", type="X")],
        quadruples=[Quadruple(subject="A", relation="r", object="B", proposition=" p ")] * 2,
    )
    assert normalize(graph) == parse_output(graph.model_dump_json(), ChunkGraph)
    assert normalize(graph).quadruples == [Quadruple(subject="A", relation="r", object="B", proposition="p")]


# --- rejections ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("I cannot help with that.", "no_json"),
        ('{"entities": [{"name": "A", "type": "X"},]}', "invalid_json"),
        ("{'entities': []}", "invalid_json"),
        ('{"entities": "A, B"}', "schema"),
        ('{"entities": ["A", "B"]}', "schema"),
        ('{"entities": [{"name": 5}]}', "schema"),
        ('{"entities": [{"name": "A", "type": "X"}], "quadruples": [{"subject": "A"', "truncated"),
        ('```json\n{"entities": [{"name": "A"', "truncated"),
        ('{"entities": [{"name": "A", "type": "X"}}', "invalid_json"),
        ("[1, 2, 3]", "no_json"),
    ],
)
def test_rejections_have_reasons(text: str, reason: str) -> None:
    assert reason_of(text) == reason


def test_prose_with_a_stray_brace_is_no_json_not_truncated() -> None:
    # The backend finished on its own; nothing was cut off, so a bigger budget would not help.
    assert reason_of("Sure! The set { A, B and so on is all I found.") == "no_json"
    assert reason_of("Sure! The set { A, B", finish_reason="length") == "truncated"
    assert reason_of('Here: {"entities": [{"name": "A"') == "truncated"  # JSON that stops early


def test_missing_final_brackets_are_added_when_the_model_stopped() -> None:
    # Seen from Qwen2.5-0.5B: a complete answer without its last "}".
    text = json.dumps(GRAPH)[:-1]
    assert parse_output(text, ChunkGraph) == ChunkGraph.model_validate(GRAPH)
    assert parse_output("```json\n" + text + "\n```", ChunkGraph) == ChunkGraph.model_validate(GRAPH)
    # Not when the answer was cut at max_tokens, nor when it stops inside an item.
    assert reason_of(text, finish_reason="length") == "truncated"
    assert reason_of(json.dumps(GRAPH)[:-30]) == "truncated"


def test_unbalanced_quotes_in_a_complete_looking_answer_are_invalid_json() -> None:
    text = '{"entities": [{"name": "Mr. Patriot" Cappelletti", "type": "PERSON"}]}'
    with pytest.raises(ParseError) as info:
        parse_output(text, EntityList)
    assert info.value.reason == "invalid_json" and "escape double quotes" in info.value.detail


def test_finish_reason_length_means_truncated() -> None:
    assert reason_of('{"entities": [{"name": "A", "type": "X"}]', finish_reason="length") == "truncated"
    # A complete, valid answer that happened to end at the limit is still fine.
    assert parse_output(json.dumps(GRAPH), ChunkGraph, finish_reason="length").entities


def test_schema_error_detail_names_the_field() -> None:
    with pytest.raises(ParseError) as info:
        parse_output(
            '{"quadruples": [{"subject": "A", "relation": 3, "object": "B", "proposition": "p"}]}', ChunkGraph
        )
    assert info.value.reason == "schema"
    assert "quadruples.0.relation" in info.value.detail


def test_required_list_must_be_present() -> None:
    assert reason_of('{"quadruples": []}', EntityList) == "schema"
    assert parse_output('{"quadruples": []}', QuadrupleList).quadruples == []


# --- repetition ---------------------------------------------------------------------------------


def test_looping_items_are_repetition() -> None:
    item = '{"name": "New England Revolution", "type": "ORGANIZATION"}'
    looping = '{"entities": [' + ", ".join([item] * 30)  # runs into max_tokens
    assert reason_of(looping, EntityList, finish_reason="length") == "repetition"
    closed = '{"entities": [' + ", ".join([item] * 8) + "]}"
    assert reason_of(closed, EntityList) == "repetition"


def test_looping_sentences_and_words_are_repetition() -> None:
    sentence = "The Los Angeles Galaxy won the cup. "
    assert reason_of(json.dumps({"text": "Intro. " + sentence * 6}), DecontextualizedText) == "repetition"
    words = "and the team and the team " * 12
    assert find_repetition(words) is not None


def test_a_few_repeats_are_not_a_loop() -> None:
    sentence = "The Los Angeles Galaxy won the cup. "
    assert find_repetition(sentence * 3) is None
    items = [{"name": f"Player {i}", "type": "PERSON"} for i in range(40)]
    assert find_repetition(json.dumps({"entities": items})) is None
    # One proposition shared by several quadruples is normal.
    prop = "Marie Curie and Pierre Curie shared the 1903 Nobel Prize in Physics with Henri Becquerel."
    quads = [
        {"subject": s, "relation": "shared", "object": o, "proposition": prop}
        for s, o in [
            ("Marie Curie", "Nobel Prize"),
            ("Pierre Curie", "Nobel Prize"),
            ("Marie Curie", "Henri Becquerel"),
            ("Pierre Curie", "Henri Becquerel"),
            ("Henri Becquerel", "Nobel Prize"),
        ]
    ]
    assert parse_output(json.dumps({"quadruples": quads}), QuadrupleList).quadruples


# --- properties ---------------------------------------------------------------------------------

WORDS = st.sampled_from(
    [
        "Ada",
        "Lovelace",
        "London",
        "1843",
        "engine",
        "was",
        "born",
        "in",
        "the",
        "Société",
        "東京",
        "O'Brien",
        "x",
    ]
)
phrases = st.lists(WORDS, min_size=1, max_size=6).map(" ".join)
sentences = st.lists(WORDS, min_size=1, max_size=10).map(lambda ws: " ".join(ws) + ".")
entities = st.builds(ExtractedEntity, name=phrases, type=st.sampled_from(["", "PERSON", "LOCATION", "OTHER"]))
quadruples = st.builds(Quadruple, subject=phrases, relation=phrases, object=phrases, proposition=sentences)
graphs = st.builds(
    ChunkGraph,
    entities=st.lists(entities, max_size=8, unique_by=lambda e: normalize_name(e.name)),
    quadruples=st.lists(
        quadruples,
        max_size=8,
        unique_by=lambda q: (normalize_name(q.subject), q.relation.casefold(), normalize_name(q.object)),
    ),
)
prose = st.text(alphabet=st.characters(blacklist_characters="{}[]`"), max_size=40)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs, before=prose, after=prose, fenced=st.booleans(), indent=st.sampled_from([None, 2]))
def test_any_graph_round_trips(
    graph: ChunkGraph, before: str, after: str, fenced: bool, indent: int | None
) -> None:
    body = json.dumps(graph.model_dump(), indent=indent, ensure_ascii=False)
    if fenced:
        body = f"```json\n{body}\n```"
    assert parse_output(before + body + after, ChunkGraph) == normalize(graph)


@settings(max_examples=300)
@given(graph=graphs, copies=st.integers(0, 8))
def test_duplicated_items_parse_to_the_deduplicated_graph(graph: ChunkGraph, copies: int) -> None:
    # At most two copies of an item: four in a row would be a loop (test_looping_items_are_repetition).
    noisy = graph.model_copy(update={"quadruples": graph.quadruples + graph.quadruples[:copies]})
    assert parse_output(noisy.model_dump_json(), ChunkGraph) == normalize(graph)


json_fragments = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        '"',
        "\\",
        ":",
        ",",
        "```",
        "```json\n",
        '"entities"',
        '"quadruples"',
        '"name"',
        "null",
        '"text"',
        '{"entities": [',
        '{"name": "A", "type": "B"}',
        "1e999",
        "\n",
        " ",
        "x",
    ]
)
messy = st.one_of(st.text(max_size=200), st.lists(json_fragments, max_size=60).map("".join))


@settings(max_examples=500)
@given(
    text=messy,
    model=st.sampled_from([ChunkGraph, EntityList, QuadrupleList, DecontextualizedText]),
    finish_reason=st.sampled_from(["stop", "length"]),
)
def test_arbitrary_text_raises_only_parse_error(text: str, model: type, finish_reason: str) -> None:
    try:
        result = parse_output(text, model, finish_reason=finish_reason)
    except ParseError as error:
        assert error.reason in {"empty", "no_json", "invalid_json", "truncated", "repetition", "schema"}
    else:
        assert isinstance(result, model)


def test_deeply_nested_input_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_output('{"entities": ' + "[" * 100_000 + "]" * 100_000 + "}", EntityList)


no_fence = st.text(alphabet=st.characters(blacklist_characters="`"), max_size=12)  # a ``` inside is a fence
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | no_fence,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(no_fence, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300)
@given(
    reply=st.dictionaries(no_fence, json_values, max_size=5),
    before=prose, after=prose, fenced=st.booleans(),
)
def test_a_reader_reply_object_is_found_in_prose_or_a_fence(
    reply: dict, before: str, after: str, fenced: bool
) -> None:
    body = json.dumps(reply, ensure_ascii=False)
    if fenced:
        body = f"```json\n{body}\n```"
    assert parse_json_object(before + body + after) == reply


def test_reader_reply_edge_cases() -> None:
    assert parse_json_object('{"bad": } then {"answer": {"nested": 1}}') == {"answer": {"nested": 1}}
    assert parse_json_object('{"answer": "x", "citations": [1]') == {"answer": "x", "citations": [1]}
    assert parse_json_object("[1, 2]") is None and parse_json_object("no json here") is None
    assert parse_numbers([1, "2", "[3, 1]", 2.0, True, "none"]) == [1, 2, 3]
    assert parse_numbers("1, 3") == [1, 3]
