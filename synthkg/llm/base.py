"""The one interface every LLM backend implements: chat messages in, text and token usage out."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class ChatResult:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "length" means the output was cut at max_tokens
    cached: bool = False
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# Backends whose `json_schema` constrains decoding with a grammar and leaves the prompt as it is (the
# others add a schema instruction to the messages, which changes what a fine-tuned student was shown).
GRAMMAR_BACKENDS = frozenset({"llamacpp"})


class LLMError(RuntimeError):
    """A backend failed after its bounded retries (unreachable endpoint, model file missing...)."""


def as_sentence(message: object) -> str:
    """`message` (an exception's text) as one sentence ending in exactly one period, for joining into a
    longer message: many wrapped messages end in a period already ("Request timed out.")."""
    return str(message).rstrip().rstrip(".") + "."


@runtime_checkable
class ChatBackend(Protocol):
    """`name` and `model` identify the backend in cache keys and run records."""

    name: str
    model: str

    def chat(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        """One completion. With `json_schema` the backend constrains or at least requests JSON
        matching it, where it can."""
        ...


def accepts(backend: Any, keyword: str) -> bool:
    """Whether `backend.chat` takes the optional keyword `keyword`: "grammar" (a llama.cpp GBNF grammar the
    answer must follow), "stop_when" (a callable given the growing answer of a streamed call; True stops
    it with finish_reason "loop"), or the call metadata a CachedBackend keys on. Backends that do not take
    one are called without it. A wrapper whose `chat` takes **kwargs answers for the `backend` it wraps."""
    try:
        params = inspect.signature(backend.chat).parameters
    except (TypeError, ValueError):
        return False
    if keyword in params:
        return True
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        # A pass-through wrapper: what reaches the end of the chain must take the keyword. One that does
        # not say what it wraps gets no optional keyword (it may hand its **kwargs to a backend that fails).
        inner = getattr(backend, "backend", None)
        return inner is not None and accepts(inner, keyword)
    return False


def with_json_instruction(messages: list[Message], json_schema: dict[str, Any]) -> list[Message]:
    """The messages plus a system instruction to answer with JSON matching `json_schema`, for backends
    that cannot constrain decoding (the caller's parser validates the answer)."""
    instruction = (
        "Answer with one JSON object and nothing else. It must match this JSON schema:\n"
        + json.dumps(json_schema, separators=(",", ":"))
    )
    if messages and messages[0]["role"] == "system":
        first: Message = {"role": "system", "content": messages[0]["content"] + "\n\n" + instruction}
        return [first, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]
