"""The distilled extractor: one call, the training-time prompt, repair on bad output, failure reported."""

from __future__ import annotations

import json

from synthkg.extract.distilled import DistilledExtractor
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
