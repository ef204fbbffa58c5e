"""Local GGUF models through llama.cpp (llama-cpp-python), with JSON-schema constrained decoding and,
for the distilled student, a LoRA adapter applied at load time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

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
        target = self.cache_dir / "adapters" / f"{self._adapter_id}.gguf"
        if target.is_file():
            return target
        try:
            from training.errors import TrainingError
            from training.gguf_adapter import export_lora_gguf
        except ImportError as exc:
            raise LLMError(
                f"exporting the adapter {adapter} for llama.cpp needs gguf and safetensors: "
                f"pip install 'synthkg[train]' ({exc})"
            ) from exc
        try:
            return export_lora_gguf(adapter, base, target)
        except (TrainingError, OSError, ValueError, KeyError) as exc:
            raise LLMError(f"could not export the adapter {adapter} for llama.cpp: {exc}") from exc

    def chat(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        kwargs: dict[str, Any] = {
            "messages": messages,
            "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
            "temperature": self.temperature if temperature is None else temperature,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed,
        }
        if json_schema is not None:
            # llama-cpp-python compiles the schema into a grammar: the output is always schema-valid JSON
            # (unless cut at max_tokens).
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
        with self._lock:
            llm = self._load()
            start = time.perf_counter()
            try:
                out = llm.create_chat_completion(**kwargs)
            except (ValueError, RuntimeError) as exc:  # e.g. the prompt exceeds the context window
                raise LLMError(f"llama.cpp ({self.model}) failed: {exc}") from exc
            seconds = time.perf_counter() - start
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return ChatResult(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason") or "stop",
            seconds=seconds,
        )
