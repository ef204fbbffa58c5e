"""A deterministic rule-based stand-in for the extraction LLM, for testing ingestion's control flow
(caching, resumption, replacement, failures), never extraction quality.

It answers the SynthKG prompts by their JSON schema: decontextualization returns the passage unchanged,
entities are the capitalized word runs of the passage, quadruples link the first entity to each other.
A passage containing POISON gets unparseable output."""

from __future__ import annotations

import json
import re
from typing import Any

from synthkg.llm.base import ChatResult, Message
from tests.fakes import RecordedCall, ScriptedChatModel

POISON = "POISON"
_NAME = re.compile(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)*")


def _section(text: str, header: str) -> str:
    """The block after `header:` up to the next blank-line-separated header (or the end)."""
    match = re.search(rf"{header}:\n(.*?)(?:\n\n[A-Z][a-z ]+:\n|\Z)", text, re.DOTALL)
    return match.group(1).strip() if match else ""


def rule_reply(messages: list[Message], json_schema: dict[str, Any] | None, temperature: float | None) -> str:
    # A re-ask appends the problem after the original request: read the last message with a passage.
    user = next(
        (m["content"] for m in reversed(messages) if m["role"] == "user" and "Passage" in m["content"]),
        messages[-1]["content"],
    )
    passage = _section(user, "Passage to rewrite") or _section(user, "Passage")
    if POISON in passage and not temperature:
        return "I cannot answer that. {not json"
    properties = (json_schema or {}).get("properties", {})
    if "quadruples" in properties:
        names = re.findall(r"^- (.+?)(?: \(\w+\))?$", _section(user, "Entities"), re.MULTILINE)
        quads = [
            {
                "subject": names[0],
                "relation": "appears with",
                "object": other,
                "proposition": f"{names[0]} appears with {other}.",
            }
            for other in names[1:]
        ]
        return json.dumps({"quadruples": quads})
    if "entities" in properties:
        names = list(dict.fromkeys(n for n in _NAME.findall(passage) if n != POISON))
        return json.dumps({"entities": [{"name": n, "type": "OTHER"} for n in names]})
    return json.dumps({"text": passage})


class RuleBasedLLM(ScriptedChatModel):
    def __init__(self) -> None:
        super().__init__(lambda call: self._reply(call))

    @staticmethod
    def _reply(call: RecordedCall) -> ChatResult:
        return ChatResult(
            text=rule_reply(call.messages, call.json_schema, call.temperature),
            prompt_tokens=10,
            completion_tokens=5,
        )
