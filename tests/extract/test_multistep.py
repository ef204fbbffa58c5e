"""Control flow of the multi-step extractor against a scripted fake model (no model quality here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthkg.extract.base import ExtractionResult, Extractor, accepts_call_metadata
from synthkg.extract.entity_types import normalize_type
from synthkg.extract.multistep import MultiStepExtractor, rouge1_f1
from synthkg.extract.schema import ExtractedEntity, Quadruple
from synthkg.llm.base import ChatResult, LLMError
from synthkg.llm.cache import CachedBackend
from synthkg.prompts import load_prompt
from tests.fakes import RecordedCall, ScriptedChatModel, StagedScriptedChatModel

PREVIOUS = "Ada Lovelace was an English mathematician. She was born in London in 1815."
CHUNK = "She worked with Charles Babbage on the Analytical Engine in London."
REWRITE = "Ada Lovelace worked with Charles Babbage on the Analytical Engine in London."

ENTITIES = json.dumps(
    {
        "entities": [
            {"name": "Ada Lovelace", "type": "PERSON"},
            {"name": "Charles Babbage", "type": "person"},
            {"name": "London", "type": "GPE"},
        ]
    }
)
QUADS = json.dumps(
    {
        "quadruples": [
            {
                "subject": "Ada Lovelace",
                "relation": "worked with",
                "object": "Charles Babbage",
                "proposition": "Ada Lovelace worked with Charles Babbage on the Analytical Engine.",
            },
            {
                "subject": "Analytical Engine",  # not in the entity list: added as OTHER
                "relation": "was built in",
                "object": "London",
                "proposition": "The Analytical Engine was built in London.",
            },
        ]
    }
)


def decontext(text: str) -> str:
    return json.dumps({"text": text})


def test_is_an_extractor() -> None:
    assert isinstance(MultiStepExtractor(ScriptedChatModel([])), Extractor)


def test_first_chunk_skips_decontextualization() -> None:
    fake = ScriptedChatModel([ENTITIES, QUADS])
    result = MultiStepExtractor(fake).extract(CHUNK, previous_chunk=None)
    assert result.ok and result.issues == ()
    assert (result.text, result.decontextualized, result.rouge1_f1) == (CHUNK, False, None)
    assert len(fake.calls) == 2
    assert result.graph.entities == [
        ExtractedEntity(name="Ada Lovelace", type="PERSON"),
        ExtractedEntity(name="Charles Babbage", type="PERSON"),
        ExtractedEntity(name="London", type="LOCATION"),
        ExtractedEntity(name="Analytical Engine", type="OTHER"),
    ]
    assert [q.relation for q in result.graph.quadruples] == ["worked with", "was built in"]
    # Step 3 sees step 2's entity names.
    assert "- Charles Babbage\n- London" in fake.calls[1].last_user
    assert CHUNK in fake.calls[1].last_user


def test_calls_carry_stage_and_prompt_version_where_the_backend_takes_them() -> None:
    staged = StagedScriptedChatModel([decontext(REWRITE), ENTITIES, QUADS])
    assert accepts_call_metadata(staged) and not accepts_call_metadata(ScriptedChatModel([]))
    MultiStepExtractor(staged).extract(CHUNK, previous_chunk=PREVIOUS)
    assert [c.stage for c in staged.calls] == ["decontextualize", "entities", "quadruples"]
    assert [c.prompt_version for c in staged.calls] == [
        load_prompt(s).version_tag for s in ("decontextualize", "entities", "quadruples")
    ]
    for call, stage in zip(staged.calls, ("decontextualize", "entities", "quadruples"), strict=True):
        assert call.json_schema == load_prompt(stage).schema
        assert call.max_tokens == load_prompt(stage).max_tokens


def test_decontextualization_kept_when_rouge_is_high() -> None:
    fake = ScriptedChatModel([decontext(REWRITE), ENTITIES, QUADS])
    result = MultiStepExtractor(fake).extract(CHUNK, previous_chunk=PREVIOUS)
    assert result.ok and result.decontextualized
    assert result.text == REWRITE and result.original_text == CHUNK
    assert result.rouge1_f1 == pytest.approx(rouge1_f1(CHUNK, REWRITE)) and result.rouge1_f1 >= 0.7
    assert PREVIOUS in fake.calls[0].last_user and CHUNK in fake.calls[0].last_user
    assert REWRITE in fake.calls[1].last_user and REWRITE in fake.calls[2].last_user


def test_decontextualization_rejected_when_rouge_is_low() -> None:
    drifted = "Ada Lovelace, daughter of Lord Byron, is widely regarded as the first computer programmer."
    fake = ScriptedChatModel([decontext(drifted), ENTITIES, QUADS])
    result = MultiStepExtractor(fake).extract(CHUNK, previous_chunk=PREVIOUS)
    assert result.ok and not result.decontextualized
    assert result.text == CHUNK and result.rouge1_f1 is not None and result.rouge1_f1 < 0.7
    assert CHUNK in fake.calls[1].last_user


def test_rouge_threshold_is_configurable() -> None:
    fake = ScriptedChatModel([decontext(REWRITE), ENTITIES, QUADS])
    result = MultiStepExtractor(fake, rouge_threshold=0.99).extract(CHUNK, previous_chunk=PREVIOUS)
    assert not result.decontextualized and result.text == CHUNK


def test_unusable_rewrite_falls_back_to_the_original() -> None:
    fake = ScriptedChatModel(["no idea", "still no idea", ENTITIES, QUADS])
    result = MultiStepExtractor(fake).extract(CHUNK, previous_chunk=PREVIOUS)
    assert result.ok and result.text == CHUNK and result.rouge1_f1 is None
    assert [i.split(":")[:2] for i in result.issues] == [["decontextualize", "no_json"]] * 2


def test_malformed_answer_is_repaired_on_retry() -> None:
    bad = '{"entities": [{"name": "Ada Lovelace", "type": "PERSON"},]}'
    fake = ScriptedChatModel([bad, ENTITIES, QUADS])
    result = MultiStepExtractor(fake).extract(CHUNK)
    assert result.ok and len(result.graph.entities) == 4
    assert len(result.issues) == 1 and result.issues[0].startswith(
        "entities:invalid_json: invalid JSON at line 1"
    )
    retry = fake.calls[1]
    # The retry shows the bad answer and says what was wrong: a different request, never a cache hit.
    assert retry.messages[-2] == {"role": "assistant", "content": bad}
    assert "could not be used: invalid JSON" in retry.last_user and "trailing commas" in retry.last_user
    assert retry.messages[:-2] == fake.calls[0].messages


def test_failure_after_max_attempts_has_a_reason() -> None:
    fake = ScriptedChatModel(['{"entities": "Ada, Charles"}'] * 3)
    result = MultiStepExtractor(fake, max_attempts=3).extract(CHUNK)
    assert not result.ok and result.failure == "entities:schema"
    assert len(fake.calls) == 3  # no quadruples call after a failed entities stage
    assert result.graph.entities == [] and len(result.issues) == 3


def test_quadruple_failure_keeps_entities_and_reports_the_stage() -> None:
    fake = ScriptedChatModel([ENTITIES, "", ""])
    result = MultiStepExtractor(fake).extract(CHUNK)
    assert result.failure == "quadruples:empty"
    assert [e.name for e in result.graph.entities] == ["Ada Lovelace", "Charles Babbage", "London"]
    assert result.graph.quadruples == []


def test_looping_output_is_retried_without_echoing_the_loop() -> None:
    item = json.dumps(
        {"subject": "Ada Lovelace", "relation": "worked with", "object": "Charles", "proposition": "A."}
    )
    loop = ChatResult(text='{"quadruples": [' + ", ".join([item] * 20), finish_reason="length")
    fake = ScriptedChatModel([ENTITIES, loop, loop])
    result = MultiStepExtractor(fake).extract(CHUNK)
    assert result.failure == "quadruples:repetition"
    retry = fake.calls[2]
    assert len(retry.messages) == len(fake.calls[1].messages)
    assert all(item not in m["content"] for m in retry.messages)
    assert "Write every item only once" in retry.last_user and CHUNK in retry.last_user


def test_truncated_answer_is_retried_with_a_larger_budget() -> None:
    cut = ChatResult(text='{"quadruples": [{"subject": "Ada', finish_reason="length")
    fake = ScriptedChatModel([ENTITIES, cut, QUADS])
    result = MultiStepExtractor(fake, max_tokens={"quadruples": 300}).extract(CHUNK)
    assert result.ok and result.issues[0].startswith("quadruples:truncated")
    assert [c.max_tokens for c in fake.calls[1:]] == [300, 600]


def test_constrain_on_retry_only() -> None:
    fake = ScriptedChatModel(["Entities: Ada Lovelace", ENTITIES, QUADS])
    result = MultiStepExtractor(fake, constrain="retry").extract(CHUNK)
    assert result.ok
    schema = load_prompt("entities").schema
    assert [c.json_schema for c in fake.calls] == [None, schema, None]


def test_degenerate_quadruples_are_dropped() -> None:
    copied = {"subject": "Ada Lovelace", "relation": "is", "object": "Ada Lovelace was born in London."}
    self_loop = {"subject": "London", "relation": "is the location", "object": "london", "proposition": "L."}
    quads = json.loads(QUADS)["quadruples"] + [{**copied, "proposition": "Ada Lovelace was born in London"}]
    quads.append(self_loop)
    leaked = {"subject": "Ada Lovelace", "relation": "won", "object": "Lovelace Medal", "proposition": "X."}
    quads.append(leaked)  # from the worked example, not from this chunk
    fake = ScriptedChatModel([ENTITIES, json.dumps({"quadruples": quads})])
    result = MultiStepExtractor(fake).extract(CHUNK)
    assert [q.relation for q in result.graph.quadruples] == ["worked with", "was built in"]
    assert all("born" not in e.name and e.name != "Lovelace Medal" for e in result.graph.entities)


def test_no_entities_means_no_quadruples_call() -> None:
    fake = ScriptedChatModel(['{"entities": []}'])
    result = MultiStepExtractor(fake).extract("Nothing named here.")
    assert result.ok and result.graph.entities == [] and len(fake.calls) == 1


def test_backend_errors_propagate() -> None:
    def unreachable(call: RecordedCall) -> str:
        raise LLMError("endpoint unreachable")

    with pytest.raises(LLMError):
        MultiStepExtractor(ScriptedChatModel(unreachable)).extract(CHUNK)


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        MultiStepExtractor(ScriptedChatModel([]), max_attempts=0)
    with pytest.raises(ValueError, match="unknown stage"):
        MultiStepExtractor(ScriptedChatModel([]), max_tokens={"relations": 10})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("PERSON", "PERSON"),
        ("org", "ORGANIZATION"),
        ("Work of Art", "WORK"),
        ("gpe", "LOCATION"),
        ("Fish", "OTHER"),
    ],
)
def test_normalize_type(raw: str, expected: str) -> None:
    assert normalize_type(raw) == expected


def test_through_the_call_cache(tmp_path: Path) -> None:
    """With CachedBackend: usage per stage, and a rerun answered from the cache."""

    def respond(call: RecordedCall) -> str:
        return {"decontextualize": decontext(REWRITE), "entities": ENTITIES, "quadruples": QUADS}[
            "decontextualize"
            if "Passage to rewrite" in call.last_user
            else "quadruples"
            if "Entities:" in call.last_user
            else "entities"
        ]

    fake = ScriptedChatModel(respond)
    with CachedBackend(fake, tmp_path) as cached:
        first = MultiStepExtractor(cached).extract(CHUNK, previous_chunk=PREVIOUS)
        second = MultiStepExtractor(cached).extract(CHUNK, previous_chunk=PREVIOUS)
        stages = cached.usage.stages()
    assert first == second and first.decontextualized
    assert len(fake.calls) == 3
    assert {name: (s.calls, s.cached_calls) for name, s in stages.items()} == {
        "decontextualize": (2, 1),
        "entities": (2, 1),
        "quadruples": (2, 1),
    }


def test_result_serializes() -> None:
    result = ExtractionResult(
        original_text="a",
        text="a",
        graph={"quadruples": [Quadruple(subject="A", relation="r", object="B", proposition="p")]},
    )
    assert ExtractionResult.model_validate_json(result.model_dump_json()) == result
