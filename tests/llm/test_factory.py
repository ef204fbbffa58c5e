"""make_backend from settings and map_chat's bounded concurrency."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from synthkg.config import LLMSettings
from synthkg.llm.base import ChatResult, LLMError, Message
from synthkg.llm.batching import BatchingBackend
from synthkg.llm.cache import CachedBackend
from synthkg.llm.factory import (
    ChatRequest,
    make_backend,
    make_student_backend,
    map_chat,
    shipped_student_path,
)
from synthkg.llm.hf import HFBackend
from synthkg.llm.llama_server import LlamaServerBackend
from synthkg.llm.llamacpp import LlamaCppBackend
from synthkg.llm.openai_compat import OpenAICompatBackend


@pytest.fixture
def server_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An executable standing in for llama-server (these tests never start it)."""
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)
    monkeypatch.setenv("SYNTHKG_LLAMA_SERVER", str(binary))
    return binary


def test_make_backend_from_settings(tmp_path: Path, server_binary: Path) -> None:
    settings = LLMSettings(model="qwen2.5-coder-0.5b", threads=2, max_tokens=99, slots=3)
    served = make_backend(settings, tmp_path)
    assert isinstance(served, LlamaServerBackend) and served.parallel == 3
    assert (served.model, served.max_tokens, served.repeat_penalty) == ("qwen2.5-coder-0.5b", 99, 1.1)
    settings = LLMSettings(model="qwen2.5-coder-0.5b", threads=2, max_tokens=99, engine="python")
    llama = make_backend(settings, tmp_path)
    assert isinstance(llama, LlamaCppBackend)
    assert (llama.model, llama.threads, llama.max_tokens, llama.repeat_penalty) == (
        "qwen2.5-coder-0.5b",
        2,
        99,
        1.1,
    )
    remote = make_backend(
        LLMSettings(backend="openai", model="gpt-x", base_url="http://127.0.0.1:1/v1", api_key="k"), tmp_path
    )
    assert isinstance(remote, OpenAICompatBackend) and remote.base_url == "http://127.0.0.1:1/v1"
    hf = make_backend(LLMSettings(backend="hf", model="/models/student"), tmp_path)
    assert isinstance(hf, HFBackend) and hf.model == "/models/student"


@pytest.mark.parametrize("engine", ["server", "python"])
def test_local_model_errors_surface_on_first_call(tmp_path: Path, server_binary: Path, engine: str) -> None:
    backend = make_backend(LLMSettings(model=str(tmp_path / "absent.gguf"), engine=engine), tmp_path)
    with pytest.raises(LLMError, match="model file not found"):
        backend.chat([{"role": "user", "content": "x"}])


class SlowBackend:
    name = "slow"
    model = "m"

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()

    def chat(self, messages: list[Message], **kwargs: Any) -> ChatResult:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(0.05)
        with self._lock:
            self.in_flight -= 1
        if messages[0]["content"] == "bad":
            raise LLMError("bad request")
        return ChatResult(text=messages[0]["content"].upper(), completion_tokens=1)


def requests(*texts: str) -> list[ChatRequest]:
    return [ChatRequest(messages=[{"role": "user", "content": t}]) for t in texts]


def test_map_chat_keeps_order_and_bounds_concurrency() -> None:
    backend = SlowBackend()
    texts = [f"q{i}" for i in range(12)]
    results = map_chat(backend, requests(*texts), concurrency=3)
    assert [r.text for r in results if isinstance(r, ChatResult)] == [t.upper() for t in texts]
    assert backend.peak == 3


def test_map_chat_errors() -> None:
    results = map_chat(SlowBackend(), requests("a", "bad", "c"), concurrency=2, return_exceptions=True)
    assert isinstance(results[1], LLMError) and [r.text for r in (results[0], results[2])] == ["A", "C"]
    with pytest.raises(LLMError, match="bad request"):
        map_chat(SlowBackend(), requests("a", "bad", "c"), concurrency=2)


def test_map_chat_passes_options_to_a_cached_backend(tmp_path: Path) -> None:
    cached = CachedBackend(SlowBackend(), tmp_path)
    batch = [
        ChatRequest(
            messages=[{"role": "user", "content": t}], options={"stage": "answer", "prompt_version": "v3"}
        )
        for t in ("a", "b", "a")
    ]
    map_chat(cached, batch, concurrency=3)
    stage = cached.usage.stages()["answer"]
    assert (stage.calls, stage.cached_calls) == (3, 1)


def test_student_backend_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="neither"):
        make_student_backend(LLMSettings(backend="hf", model=str(tmp_path)), tmp_path)
    (tmp_path / "adapter_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(LLMError, match="unreadable adapter config"):
        make_student_backend(LLMSettings(backend="hf", model=str(tmp_path)), tmp_path)
    (tmp_path / "adapter_config.json").write_text('{"r": 8}', encoding="utf-8")
    with pytest.raises(LLMError, match="names no base model"):
        make_student_backend(LLMSettings(backend="hf", model=str(tmp_path)), tmp_path)
    config = '{"base_model_name_or_path": "smollm2-135m"}'
    (tmp_path / "adapter_config.json").write_text(config, encoding="utf-8")
    backend = make_student_backend(LLMSettings(backend="hf", model=str(tmp_path)), tmp_path)
    assert backend.model.startswith("smollm2-135m+")  # the adapter is part of the model's identity
    # ... including its contents: retraining into the same folder must not reuse cached answers.
    (tmp_path / "adapter_model.safetensors").write_bytes(b"retrained")
    retrained = make_student_backend(LLMSettings(backend="hf", model=str(tmp_path)), tmp_path)
    assert retrained.model.startswith(f"smollm2-135m+{tmp_path.name}-") and retrained.model != backend.model


def test_the_shipped_student_is_the_default_distilled_extractor(tmp_path: Path, server_binary: Path) -> None:
    shipped = shipped_student_path()
    assert (shipped / "adapter_config.json").is_file() and (shipped / "adapter_model.safetensors").is_file()
    for model in ("synthkg-student", "qwen2.5-coder-1.5b"):  # a teacher name: no student was named
        backend = make_student_backend(LLMSettings(backend="hf", model=model), tmp_path)
        assert isinstance(backend, HFBackend)
        assert backend.adapter == shipped and backend.source == "qwen2.5-coder-0.5b"
        # Over a GGUF base, the default (llamacpp) runs the same adapter on llama.cpp: in process ...
        fast = make_student_backend(LLMSettings(model=model, threads=2, engine="python"), tmp_path)
        assert isinstance(fast, LlamaCppBackend)
        assert (fast.adapter, fast.source, fast.threads) == (shipped, "qwen2.5-coder-0.5b", 2)
        assert fast.model == backend.model  # same identity; the backend name tells them apart
        # ... or, by default, in llama-server.
        served = make_student_backend(LLMSettings(model=model, threads=2), tmp_path)
        assert isinstance(served, LlamaServerBackend) and served.model == backend.model


def test_hf_on_a_gpu_gathers_calls_into_batches(tmp_path: Path) -> None:
    """On a GPU the student's calls go through a BatchingBackend sized by max_batch (the extract CLI's
    default workers); on the CPU it is the plain backend. Nothing loads until a call."""
    on_gpu = LLMSettings(backend="hf", model="synthkg-student", device="cuda", max_batch=512, temperature=0.7)
    batched = make_student_backend(on_gpu, tmp_path)
    assert isinstance(batched, BatchingBackend) and batched.parallel == 512 and batched.name == "hf"
    hf = batched._generate.__self__  # the HFBackend behind it
    assert isinstance(hf, HFBackend) and (hf.device, hf.temperature) == ("cuda", 0.0)  # the student is greedy
    assert batched.model == hf.model and hf.adapter == shipped_student_path()
    batched.close()
    teacher = make_backend(LLMSettings(backend="hf", model="/models/teacher", device="cuda:1"), tmp_path)
    assert isinstance(teacher, BatchingBackend) and teacher.parallel == 256
    teacher.close()
    on_cpu = make_student_backend(LLMSettings(backend="hf", model="synthkg-student"), tmp_path)
    assert isinstance(on_cpu, HFBackend) and on_cpu.device == "cpu"
