"""Any LangChain chat model (langchain_core `BaseChatModel`) as a ChatBackend.

Generation settings (max tokens, temperature) belong to the chat model as the user configured it:
LangChain has no per-call parameter that every provider accepts, so the per-call values are not
forwarded. JSON is requested in the prompt, not enforced; the caller's parser validates it."""

from __future__ import annotations

import time
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from synthkg.llm.base import ChatResult, LLMError, Message, with_json_instruction

_ROLES: dict[str, type[BaseMessage]] = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
_LENGTH_REASONS = {"length", "max_tokens"}  # OpenAI's and Anthropic's names for a cut-off answer


def _text(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in message.content
        if isinstance(part, str) or part.get("type") == "text"
    )


class LangChainBackend:
    def __init__(self, chat_model: BaseChatModel, name: str = "langchain") -> None:
        self.chat_model = chat_model
        self.name = name
        self.model = str(
            getattr(chat_model, "model_name", None)
            or getattr(chat_model, "model", None)
            or type(chat_model).__name__
        )

    def chat(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        if json_schema is not None:
            messages = with_json_instruction(messages, json_schema)
        lc_messages = [_ROLES[m["role"]](content=m["content"]) for m in messages]
        start = time.perf_counter()
        try:
            reply = self.chat_model.invoke(lc_messages)
        except Exception as exc:  # providers raise their own error types
            raise LLMError(f"LangChain chat model {self.name} ({self.model}) failed: {exc}") from exc
        seconds = time.perf_counter() - start
        usage = getattr(reply, "usage_metadata", None) or {}
        meta = reply.response_metadata or {}
        reason = str(meta.get("finish_reason") or meta.get("stop_reason") or "stop").lower()
        return ChatResult(
            text=_text(reply),
            prompt_tokens=int(usage.get("input_tokens", 0)),
            completion_tokens=int(usage.get("output_tokens", 0)),
            finish_reason="length" if reason in _LENGTH_REASONS else reason,
            seconds=seconds,
        )
