"""A scripted fake ChatBackend for unit tests of parsing and control flow (never of model quality).

    fake = ScriptedChatModel(['{"entities": []}', ChatResult(text="...", finish_reason="length")])
    fake = ScriptedChatModel(lambda call: '{"text": "..."}' if call.stage == "decontextualize" else ...)

Every call is recorded in `fake.calls`. `ScriptedChatModel` has the plain ChatBackend signature;
`StagedScriptedChatModel` also takes `prompt_version` and `stage`, like CachedBackend;
`StreamingScriptedChatModel` takes `grammar` and `stop_when` like the llama.cpp backends, and "streams"
each scripted answer through `stop_when`, cutting it where that says stop (finish_reason "loop")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthkg.llm.base import ChatResult, Message

Reply = str | ChatResult


@dataclass(frozen=True)
class RecordedCall:
    messages: list[Message]
    json_schema: dict[str, Any] | None
    max_tokens: int | None
    temperature: float | None
    prompt_version: str | None = None  # only a StagedScriptedChatModel receives these
    stage: str | None = None
    grammar: str | None = None  # only a StreamingScriptedChatModel receives these
    stop_when: Callable[[str], bool] | None = None

    @property
    def last_user(self) -> str:
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


class ScriptedChatModel:
    """Answers from a list (in order; running out fails the test) or from a function of the call."""

    name = "scripted"
    model = "fake"

    def __init__(self, responses: Sequence[Reply] | Callable[[RecordedCall], Reply]) -> None:
        self._respond = responses if callable(responses) else None
        self._script = list(responses) if not callable(responses) else []
        self.calls: list[RecordedCall] = []

    def chat(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        return self._answer(RecordedCall(list(messages), json_schema, max_tokens, temperature))

    def _answer(self, call: RecordedCall) -> ChatResult:
        self.calls.append(call)
        if self._respond is not None:
            reply = self._respond(call)
        elif len(self.calls) <= len(self._script):
            reply = self._script[len(self.calls) - 1]
        else:
            raise AssertionError(f"ScriptedChatModel: call {len(self.calls)} has no scripted answer")
        if isinstance(reply, ChatResult):
            return reply
        return ChatResult(text=reply, prompt_tokens=10, completion_tokens=max(1, len(reply) // 4))


class StagedScriptedChatModel(ScriptedChatModel):
    def chat(  # type: ignore[override]
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        prompt_version: str = "",
        stage: str = "default",
    ) -> ChatResult:
        call = RecordedCall(list(messages), json_schema, max_tokens, temperature, prompt_version, stage)
        return self._answer(call)


class StreamingScriptedChatModel(ScriptedChatModel):
    name = "llamacpp"

    def chat(  # type: ignore[override]
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        grammar: str | None = None,
        stop_when: Callable[[str], bool] | None = None,
    ) -> ChatResult:
        call = RecordedCall(list(messages), json_schema, max_tokens, temperature, grammar=grammar,
                            stop_when=stop_when)
        result = self._answer(call)
        if stop_when is None:
            return result
        for end in range(40, len(result.text) + 40, 40):  # as a streaming backend checks it
            if stop_when(result.text[:end]):
                return ChatResult(text=result.text[:end], prompt_tokens=result.prompt_tokens,
                                  completion_tokens=max(1, end // 4), finish_reason="loop")
        return result


def write_corpus(folder: Path, documents: dict[str, str]) -> Path:
    """`folder` holding one text file per (file name, text) item."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in documents.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder
