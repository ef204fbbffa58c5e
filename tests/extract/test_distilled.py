"""The distilled extractor: one call, the training-time prompt, repair on bad output, failure reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthkg.extract.distilled import (
    STUDENT_PROMPT_FILE,
    DistilledExtractor,
    StudentPrompt,
    load_student_prompt,
)
from synthkg.extract.lines import GRAMMAR
from synthkg.prompts import load_prompt
from tests.fakes import ScriptedChatModel, StreamingScriptedChatModel
from training.dataset import chat_messages

GRAPH = {
    "entities": [{"name": "Frida Kahlo", "type": "PERSON"}],
    "quadruples": [
        {
            "subject": "Frida Kahlo",
            "relation": "was born in",
            "object": "Coyoacan",
            "proposition": "Frida Kahlo was born in Coyoacan.",
        }
    ],
}


def test_one_call_with_the_training_prompt() -> None:
    fake = ScriptedChatModel([json.dumps(GRAPH)])
    result = DistilledExtractor(fake).extract("Frida Kahlo was born in Coyoacan.")
    assert result.ok and len(fake.calls) == 1
    prompt = load_prompt("one_call")
    assert fake.calls[0].messages == chat_messages(
        prompt.system, prompt.user, "Frida Kahlo was born in Coyoacan."
    )
    assert fake.calls[0].json_schema is None  # free generation first, as trained
    # The literal object becomes an entity so the relation has both ends.
    assert {e.name for e in result.graph.entities} == {"Frida Kahlo", "Coyoacan"}


def test_bad_output_is_repaired_then_reported() -> None:
    fake = ScriptedChatModel(["not json at all", json.dumps(GRAPH)])
    result = DistilledExtractor(fake).extract("Frida Kahlo was born in Coyoacan.")
    assert result.ok and len(fake.calls) == 2
    assert fake.calls[1].json_schema is not None  # the re-ask requests the schema

    fake = ScriptedChatModel(["nope", "still nope"])
    failed = DistilledExtractor(fake).extract("Frida Kahlo was born in Coyoacan.")
    assert failed.failure is not None and failed.failure.startswith("one_call:")
    assert failed.graph.quadruples == [] and len(failed.issues) == 2


def test_on_llama_cpp_every_call_is_grammar_constrained_with_the_training_prompt() -> None:
    fake = ScriptedChatModel([json.dumps(GRAPH)])
    fake.name = "llamacpp"  # its json_schema is a grammar: the prompt stays the trained one
    result = DistilledExtractor(fake).extract("Frida Kahlo was born in Coyoacan.")
    assert result.ok and fake.calls[0].json_schema is not None
    prompt = load_prompt("one_call")
    assert fake.calls[0].messages == chat_messages(
        prompt.system, prompt.user, "Frida Kahlo was born in Coyoacan."
    )


def test_a_student_trained_on_another_prompt_is_asked_with_it(tmp_path: Path) -> None:
    own = StudentPrompt(system_prompt="Graph it.", user_template="Text: $chunk", prompt="custom")
    (tmp_path / STUDENT_PROMPT_FILE).write_text(own.model_dump_json(), encoding="utf-8")
    loaded = load_student_prompt(tmp_path)
    fake = ScriptedChatModel([json.dumps(GRAPH)])
    assert DistilledExtractor(fake, prompt=loaded).extract("Frida Kahlo was born in Coyoacan.").ok
    text = "Frida Kahlo was born in Coyoacan."
    assert fake.calls[0].messages == chat_messages("Graph it.", "Text: $chunk", text)
    assert load_student_prompt(tmp_path / "none") is None
    (tmp_path / STUDENT_PROMPT_FILE).write_text("{broken", encoding="utf-8")
    with pytest.raises(ValueError, match="unreadable student prompt"):
        load_student_prompt(tmp_path)


def test_the_shipped_student_records_the_prompt_it_was_trained_on() -> None:
    from synthkg.llm.adapters import shipped_student_path

    recorded = load_student_prompt(shipped_student_path())
    assert recorded is not None
    prompt = load_prompt(recorded.prompt.partition("@")[0])  # e.g. "one_call_lines@v1"
    assert recorded.prompt == prompt.version_tag
    assert (recorded.system_prompt, recorded.user_template) == (prompt.system, prompt.user)


LINES_ANSWER = (
    "PERSON: Frida Kahlo\n> Frida Kahlo was born in Coyoacan.\nFrida Kahlo | was born in | Coyoacan\n"
)


def _lines_student() -> StudentPrompt:
    prompt = load_prompt("one_call_lines")
    return StudentPrompt(system_prompt=prompt.system, user_template=prompt.user, prompt=prompt.version_tag,
                         output_format="lines")


def test_a_lines_student_is_asked_with_its_grammar_loop_guard_and_a_budget_sized_to_the_chunk() -> None:
    fake = StreamingScriptedChatModel([LINES_ANSWER])
    extractor = DistilledExtractor(fake, prompt=_lines_student())
    result = extractor.extract("Frida Kahlo was born in Coyoacan.")
    assert result.ok and result.issues == ()
    assert [(q.subject, q.object) for q in result.graph.quadruples] == [("Frida Kahlo", "Coyoacan")]
    (call,) = fake.calls
    assert call.grammar == GRAMMAR and call.json_schema is None and call.stop_when is not None
    assert call.max_tokens == extractor.budget("Frida Kahlo was born in Coyoacan.") < 400
    assert extractor.budget("word " * 2000) == load_prompt("one_call_lines").max_tokens  # the ceiling
    assert extractor.prompt_versions == {"one_call": "one_call_lines@v1"}


def test_a_looping_lines_answer_is_stopped_and_keeps_its_facts() -> None:
    looping = LINES_ANSWER * 40
    fake = StreamingScriptedChatModel([looping])
    result = DistilledExtractor(fake, prompt=_lines_student()).extract("Frida Kahlo was born in Coyoacan.")
    assert result.ok and len(fake.calls) == 1  # no re-ask: the facts before the loop are the answer
    assert len(result.graph.quadruples) == 1
    assert any("loop" in issue for issue in result.issues)


def test_a_lines_answer_without_facts_is_re_asked_then_fails() -> None:
    fake = StreamingScriptedChatModel(["Sorry, I cannot.", "Still no."])
    result = DistilledExtractor(fake, prompt=_lines_student()).extract("Frida Kahlo was born in Coyoacan.")
    assert result.failure == "one_call:schema" and len(fake.calls) == 2
    assert "Sorry, I cannot." in fake.calls[1].messages[-2]["content"]  # shown its answer and the problem


def test_a_lines_answer_that_loops_before_its_first_fact_is_re_asked() -> None:
    # Seen on the line student: an entity line running on ("great-great-great-...") until the guard
    # stopped it; its entities alone would have passed as a chunk without facts.
    runaway = "PERSON: Frida Kahlo\nOTHER: daughter; daughter's great-" + "great-" * 400
    fake = StreamingScriptedChatModel([runaway, LINES_ANSWER])
    result = DistilledExtractor(fake, prompt=_lines_student()).extract("Frida Kahlo was born in Coyoacan.")
    assert result.ok and len(fake.calls) == 2 and len(result.graph.quadruples) == 1
    assert result.issues[0].startswith("one_call:repetition")
    re_ask = fake.calls[1].messages[-1]["content"]
    assert "before its first fact" in re_ask and "the entity, proposition and triple lines" in re_ask
    assert "JSON" not in re_ask and runaway[:60] not in re_ask  # a loop is not shown back
