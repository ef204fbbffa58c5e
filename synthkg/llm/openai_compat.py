"""Any OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, vLLM, llama.cpp's server, LM Studio...)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import openai
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from synthkg.config import redact_url
from synthkg.llm.base import ChatResult, LLMError, Message


class NotJSONError(RuntimeError):
    """An HTTP 200 reply whose body is not a chat completion (a proxy's HTML error page, say)."""


def _transient(exc: BaseException) -> bool:
    """Worth retrying: the endpoint was unreachable or slow, overloaded (5xx) or rate-limiting (429), or
    answered with a body that is not JSON (typically a proxy or gateway in trouble)."""
    if isinstance(exc, openai.APIConnectionError | NotJSONError):  # includes APITimeoutError
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code == 429 or exc.status_code >= 500)


class OpenAICompatBackend:
    name = "openai"

    def __init__(
        self,
        base_url: str | None,
        model: str,
        api_key: str = "",
        timeout_s: float = 300.0,
        max_retries: int = 3,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        backoff_s: float = 1.0,
    ) -> None:
        self.base_url = base_url or "https://api.openai.com/v1"
        self.endpoint = self.base_url  # keys the call cache: another server is another model
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        # Local servers ignore the key, but the client insists on one.
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=0
        )
        # Response formats this server accepts, best first; one it rejects is dropped for later calls.
        self._formats = ["json_schema", "json_object", "none"]
        self._formats_lock = threading.Lock()

    def _response_format(self, kind: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        if kind == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
        if kind == "json_object":
            return {"type": "json_object"}
        return None

    def _create(self, request: dict[str, Any]) -> Any:
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_random_exponential(multiplier=self.backoff_s, max=30 * self.backoff_s),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        return retrying(self._create_once, request)

    def _create_once(self, request: dict[str, Any]) -> Any:
        try:
            response = self._client.chat.completions.create(**request)
        except (json.JSONDecodeError, openai.APIResponseValidationError) as exc:
            raise NotJSONError(f"the reply body is not JSON ({exc})") from exc
        if not hasattr(response, "choices"):  # the client hands back the raw text of a non-JSON body
            start = " ".join(str(response).split())[:80]
            raise NotJSONError(f"the reply body is not JSON: {start!r}")
        return response

    def chat(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
            "temperature": self.temperature if temperature is None else temperature,
        }
        kinds = list(self._formats) if json_schema is not None else ["none"]
        start = time.perf_counter()
        try:
            for i, kind in enumerate(kinds):
                fmt = self._response_format(kind, json_schema or {})
                try:
                    response = self._create({**request, "response_format": fmt} if fmt else request)
                    break
                except (openai.BadRequestError, openai.UnprocessableEntityError):
                    # A server without structured outputs rejects the format: try the next weaker one.
                    if i == len(kinds) - 1:
                        raise
            # Forget the formats rejected before one that worked (a 400 for another reason, such as an
            # overlong prompt, fails with every format and so forgets nothing).
            with self._formats_lock:
                for rejected in kinds[:i]:
                    if rejected in self._formats:
                        self._formats.remove(rejected)
        except (openai.OpenAIError, NotJSONError) as exc:
            raise LLMError(self._describe(exc)) from exc
        seconds = time.perf_counter() - start
        if not response.choices:
            raise LLMError(f"OpenAI-compatible endpoint {redact_url(self.base_url)} returned no choices")
        choice = response.choices[0]
        usage = response.usage
        return ChatResult(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason or "stop",
            seconds=seconds,
            extra={"response_format": kind},
        )

    def _describe(self, exc: BaseException) -> str:
        # The openai client's messages never contain the key; the server's own text may be long.
        where = f"OpenAI-compatible endpoint {redact_url(self.base_url)} (model {self.model!r})"
        if isinstance(exc, openai.AuthenticationError):
            return f"{where} rejected the API key (HTTP 401); set llm.api_key or OPENAI_API_KEY"
        if isinstance(exc, openai.APIConnectionError):
            return f"{where} is unreachable after {self.max_retries + 1} attempts: {exc}"
        if isinstance(exc, NotJSONError):
            return f"{where} failed after {self.max_retries + 1} attempts: {exc}"
        if isinstance(exc, openai.APIStatusError):
            detail = str(exc)[:500]
            attempts = f" after {self.max_retries + 1} attempts" if _transient(exc) else ""
            return f"{where} failed{attempts} with HTTP {exc.status_code}: {detail}"
        return f"{where} failed: {exc}"
