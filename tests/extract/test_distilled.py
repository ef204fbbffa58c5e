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
from synthkg.prompts import load_prompt
from tests.fakes import ScriptedChatModel
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
    from synthkg.llm.factory import shipped_student_path

    recorded = load_student_prompt(shipped_student_path())
    prompt = load_prompt("one_call")
    assert recorded is not None
    assert (recorded.system_prompt, recorded.user_template) == (prompt.system, prompt.user)
