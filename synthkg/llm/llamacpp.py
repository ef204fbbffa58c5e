"""Local GGUF models through llama.cpp (llama-cpp-python), with JSON-schema constrained decoding and,
for the distilled student, a LoRA adapter applied at load time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthkg.llm.adapters import AdapterError, export_lora_gguf
from synthkg.llm.base import ChatResult, LLMError, Message
from synthkg.llm.local_models import adapter_fingerprint, default_threads, resolve_model_path


class LlamaCppBackend:
    """One llama.cpp model, loaded on first use. Calls are serialized by a lock: a llama.cpp context
    is not thread-safe, and on a CPU parallel calls would only share the same cores anyway.

    `adapter` is a peft LoRA folder (from `synthkg train`) for this base: it is exported once to a
    llama.cpp adapter under `<cache_dir>/adapters/` and applied unmerged over the quantized base."""

    name = "llamacpp"

    def __init__(
        self,
        model: str,
        cache_dir: Path,
        context_size: int = 4096,
        threads: int | None = None,
        repeat_penalty: float = 1.1,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        seed: int = 0,
        adapter: Path | None = None,
    ) -> None:
        self.source = model
        self.adapter = Path(adapter) if adapter is not None else None
        self._adapter_id = adapter_fingerprint(self.adapter) if self.adapter is not None else None
        # The adapter changes the outputs, so it is part of the model's identity in cache keys.
        self.model = model + (f"+{self._adapter_id}" if self._adapter_id else "")
        self.cache_dir = Path(cache_dir)
        self.context_size = context_size
        self.threads = threads or default_threads()
        self.repeat_penalty = repeat_penalty
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self._llm: Any = None
        self._lock = threading.Lock()
        self._grammar_text: str | None = None
        self._compiled_grammar: Any = None

    def _load(self) -> Any:
        # Called with the lock held.
        if self._llm is None:
            path = resolve_model_path(self.source, self.cache_dir)
            lora = self._exported_adapter(self.adapter, path) if self.adapter is not None else None
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise LLMError(
                    "the llamacpp backend needs llama-cpp-python: pip install 'synthkg[local]' "
                    f"(see scripts/setup.sh for the CPU build flags) ({exc})"
                ) from exc
            try:
                self._llm = Llama(
                    model_path=str(path),
                    n_ctx=self.context_size,
                    n_threads=self.threads,
                    n_threads_batch=self.threads,
                    seed=self.seed,
                    lora_path=None if lora is None else str(lora),
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"llama.cpp could not load {path} (adapter {lora}): {exc}") from exc
        return self._llm

    def _exported_adapter(self, adapter: Path, base: Path) -> Path:
        return exported_adapter(adapter, base, self.cache_dir)

    def _grammar(self, text: str) -> Any:
        # Called with the lock held. Parsing a grammar costs milliseconds; extraction reuses one.
        if self._grammar_text != text:
            from llama_cpp import LlamaGrammar

            try:
                self._compiled_grammar = LlamaGrammar.from_string(text, verbose=False)
            except ValueError as exc:
                raise LLMError(f"llama.cpp rejected the grammar: {exc}") from exc
            self._grammar_text = text
        return self._compiled_grammar

    def chat(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        grammar: str | None = None,
        stop_when: Callable[[str], bool] | None = None,
    ) -> ChatResult:
        """`grammar` (GBNF) constrains the answer and takes precedence over `json_schema`; `stop_when`,
        called on the growing answer, stops a looping one early (finish_reason "loop")."""
        kwargs: dict[str, Any] = {
            "messages": messages,
            "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
            "temperature": self.temperature if temperature is None else temperature,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed,
        }
        if json_schema is not None and grammar is None:
            # llama-cpp-python compiles the schema into a grammar: the output is always schema-valid JSON
            # (unless cut at max_tokens).
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
        with self._lock:
            llm = self._load()
            if grammar is not None:
                kwargs["grammar"] = self._grammar(grammar)
            start = time.perf_counter()
            try:
                if stop_when is None:
                    out = llm.create_chat_completion(**kwargs)
                    choice = out["choices"][0]
                    text, finish = choice["message"].get("content") or "", choice.get("finish_reason")
                    usage = out.get("usage") or {}
                    prompt_tokens, completion_tokens = usage.get("prompt_tokens", 0), usage.get(
                        "completion_tokens", 0
                    )
                else:
                    text, finish, completion_tokens = self._stream(llm, kwargs, stop_when)
                    # Streamed events report no usage; the context holds the prompt and the answer.
                    prompt_tokens = max(0, llm.n_tokens - completion_tokens)
            except (ValueError, RuntimeError) as exc:  # e.g. the prompt exceeds the context window
                raise LLMError(f"llama.cpp ({self.model}) failed: {exc}") from exc
            seconds = time.perf_counter() - start
        return ChatResult(
            text=text,
            prompt_tokens=int(prompt_tokens),
            completion_tokens=int(completion_tokens),
            finish_reason=finish or "stop",
            seconds=seconds,
        )

    @staticmethod
    def _stream(llm: Any, kwargs: dict[str, Any], stop_when: Callable[[str], bool]) -> tuple[str, str, int]:
        parts: list[str] = []
        finish, pieces, unchecked = "stop", 0, 0
        stream = llm.create_chat_completion(**kwargs, stream=True)
        try:
            for event in stream:
                choice = event["choices"][0]
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    parts.append(piece)
                    pieces += 1
                    unchecked += len(piece)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if unchecked >= 40:
                    unchecked = 0
                    if stop_when("".join(parts)):
                        finish = "loop"
                        break
        finally:
            stream.close()  # stops the generation where it is
        return "".join(parts), finish, pieces



def exported_adapter(adapter: Path, base: Path, cache_dir: Path) -> Path:
    """The peft LoRA folder `adapter` as a llama.cpp adapter GGUF for `base`, exported once under
    `<cache_dir>/adapters/` (named by the adapter's content fingerprint)."""
    target = Path(cache_dir) / "adapters" / f"{adapter_fingerprint(adapter)}.gguf"
    if target.is_file():
        return target
    try:
        return export_lora_gguf(adapter, base, target)
    except (OSError, ValueError, KeyError) as exc:
        raise AdapterError(f"could not export the adapter {adapter} for llama.cpp: {exc}") from exc
