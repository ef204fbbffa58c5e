"""LangChainBackend with langchain_core's fake chat models."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import Field

from synthkg.llm.base import ChatBackend, LLMError
from synthkg.llm.langchain_backend import LangChainBackend


class RecordingFake(FakeListChatModel):
    """Keeps the messages it was given."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def _call(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> str:
        self.seen.append(messages)
        return super()._call(messages, *args, **kwargs)


def test_maps_roles_and_text() -> None:
    model = RecordingFake(responses=["Paris"])
    backend = LangChainBackend(model, name="fake")
    assert isinstance(backend, ChatBackend)
    result = backend.chat(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Which France?"},
            {"role": "user", "content": "The country."},
        ]
    )
    assert result.text == "Paris" and result.finish_reason == "stop"
    [seen] = model.seen
    assert [type(m) for m in seen] == [SystemMessage, HumanMessage, AIMessage, HumanMessage]
    assert seen[1].content == "Capital of France?"
    assert backend.name == "fake" and backend.model == "RecordingFake"


def test_usage_metadata_and_length_finish() -> None:
    reply = AIMessage(
        content=[{"type": "text", "text": '{"a":'}, {"type": "text", "text": " 1}"}],
        usage_metadata={"input_tokens": 21, "output_tokens": 4, "total_tokens": 25},
        response_metadata={"stop_reason": "max_tokens"},
    )
    result = LangChainBackend(GenericFakeChatModel(messages=iter([reply]))).chat(
        [{"role": "user", "content": "x"}]
    )
    assert result.text == '{"a": 1}'
    assert (result.prompt_tokens, result.completion_tokens) == (21, 4)
    assert result.finish_reason == "length"


def test_schema_is_requested_in_the_system_message() -> None:
    model = RecordingFake(responses=['{"a": 1}'])
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    result = LangChainBackend(model).chat(
        [{"role": "system", "content": "Extract."}, {"role": "user", "content": "x"}], json_schema=schema
    )
    assert result.text == '{"a": 1}'
    system = model.seen[0][0]
    assert isinstance(system, SystemMessage)
    assert system.content.startswith("Extract.") and '"required":["a"]' in system.content
    assert len(model.seen[0]) == 2


def test_provider_errors_become_llm_errors() -> None:
    class Broken(FakeListChatModel):
        def _call(self, *args: Any, **kwargs: Any) -> str:
            raise ConnectionError("provider unreachable")

    with pytest.raises(LLMError, match=r"LangChain chat model broken.*provider unreachable"):
        LangChainBackend(Broken(responses=["x"]), name="broken").chat([{"role": "user", "content": "x"}])
