"""Backends from settings, and bounded-concurrency batches of calls."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthkg.config import LLMSettings
from synthkg.llm.adapters import adapter_config, shipped_student_path
from synthkg.llm.base import ChatBackend, ChatResult, LLMError, Message
from synthkg.llm.batching import BatchingBackend
from synthkg.llm.hf import HFBackend
from synthkg.llm.local_models import LOCAL_MODELS


def make_backend(settings: LLMSettings, cache_dir: Path) -> ChatBackend:
    """The backend the settings name (not cached: wrap it in `CachedBackend` for that). Local models
    load on the first call, so this is cheap and fails only on settings errors."""
    if settings.backend == "llamacpp":
        return make_llamacpp_backend(settings, cache_dir, settings.model)
    if settings.backend == "openai":
        from synthkg.llm.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(
            base_url=settings.base_url,
            model=settings.model,
            api_key=settings.api_key.get_secret_value(),
            timeout_s=settings.timeout_s,
            max_retries=settings.max_retries,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
        )
    if settings.backend == "hf":
        return make_hf_backend(settings, cache_dir, settings.model)
    raise LLMError(f"unknown LLM backend {settings.backend!r}: use llamacpp, openai or hf")


# A GPU batch runs for many seconds, so waiting up to 20x this for more requests to join it is cheap, and
# lets hundreds of workers (still splitting their documents into chunks) land in the same batch.
GPU_BATCH_WAIT_S = 0.5


def make_hf_backend(
    settings: LLMSettings,
    cache_dir: Path,
    model: str | Path,
    adapter: Path | None = None,
    *,
    wait_s: float = GPU_BATCH_WAIT_S,
    deadline: float | None = None,
) -> ChatBackend:
    """`model` (+ a peft `adapter`) in transformers on the settings' device. On a GPU the calls of all
    workers are gathered into batched generations of up to `settings.max_batch` (a `BatchingBackend`
    whose `parallel` says how many workers keep it full; `wait_s` and `deadline` as there); on the CPU
    calls run one at a time."""
    hf = HFBackend(
        model,
        adapter=adapter,
        threads=settings.threads,
        cache_dir=cache_dir,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        repeat_penalty=settings.repeat_penalty,
        device=settings.device,
    )
    if settings.device == "cpu":
        return hf
    return BatchingBackend(
        hf.generate_batch, name=hf.name, model=hf.model, max_batch=settings.max_batch, wait_s=wait_s,
        deadline=deadline,
    )


def make_llamacpp_backend(
    settings: LLMSettings, cache_dir: Path, model: str, adapter: Path | None = None
) -> ChatBackend:
    """A local GGUF `model` (+ a peft LoRA `adapter` folder) on the engine the settings choose: llama.cpp's
    server (shared per model within the process; its binary must exist: checked here, before any work)
    or llama-cpp-python in process."""
    if settings.engine == "python":
        from synthkg.llm.llamacpp import LlamaCppBackend

        return LlamaCppBackend(
            model=model,
            cache_dir=cache_dir,
            context_size=settings.context_size,
            threads=settings.threads,
            repeat_penalty=settings.repeat_penalty,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            adapter=adapter,
        )
    from synthkg.llm.llama_server import LlamaServerBackend, ServerSpec, server_binary

    spec = ServerSpec(
        binary=server_binary(cache_dir, settings.server_binary),
        model=model,
        cache_dir=Path(cache_dir),
        adapter=adapter,
        slots=settings.slots,
        servers=settings.servers,
        threads=settings.threads,
        context_per_slot=settings.context_size,
        extra_args=server_args(settings),
    )
    return LlamaServerBackend(
        spec,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        repeat_penalty=settings.repeat_penalty,
    )


def server_args(settings: LLMSettings) -> tuple[str, ...]:
    """llama-server options the settings ask for beyond the model and slots: GPU offload, speculation."""
    args: tuple[str, ...] = ()
    if settings.gpu_layers:
        args += ("--n-gpu-layers", str(settings.gpu_layers))
    if settings.speculative != "none":
        args += ("--spec-type", settings.speculative, "--spec-draft-n-max", str(settings.speculative_max))
    return args


DEFAULT_STUDENT = "synthkg-student"


def student_path(settings: LLMSettings) -> Path:
    """The student folder `settings.model` names: "synthkg-student" (also used when the setting names a
    local teacher model, i.e. no student was named) is the shipped adapter."""
    path = Path(settings.model).expanduser()
    if settings.model == DEFAULT_STUDENT or (settings.model in LOCAL_MODELS and not path.exists()):
        return shipped_student_path()
    return path


def make_student_backend(settings: LLMSettings, cache_dir: Path) -> ChatBackend:
    """The distilled student named by `settings.model`: an adapter folder written by `synthkg train`
    (its base is read from adapter_config.json), a merged transformers model folder, or
    "synthkg-student" (also used when the setting names a local teacher model): the shipped adapter.

    An adapter over a GGUF base (a local model name or a .gguf file) runs on llama.cpp (the settings'
    engine) unless the hf backend is asked for: the same weights (its greedy tokens agree with
    transformers' on 99% of positions) at about 4x the speed on a CPU. Merged folders and folder bases run
    on transformers."""
    path = student_path(settings)
    # The student decodes greedily whatever the settings' temperature (which is for the teacher).
    greedy = settings.model_copy(update={"temperature": 0.0})
    if (path / "adapter_config.json").is_file():
        base = adapter_config(path).get("base_model_name_or_path")
        if not base:
            raise LLMError(f"{path / 'adapter_config.json'} names no base model (base_model_name_or_path)")
        if settings.backend != "hf" and (base in LOCAL_MODELS or str(base).endswith(".gguf")):
            return make_llamacpp_backend(settings, cache_dir, base, adapter=path)
        return make_hf_backend(greedy, cache_dir, base, adapter=path)
    if (path / "config.json").is_file():
        return make_hf_backend(greedy, cache_dir, path)
    raise LLMError(
        f"the distilled extractor needs --model pointing at a trained student: an adapter folder from "
        f"`synthkg train` or a merged model folder; {path} is neither"
    )


@dataclass
class ChatRequest:
    messages: list[Message]
    json_schema: dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    # Further keyword arguments for the backend, e.g. `prompt_version` and `stage` for a CachedBackend.
    options: dict[str, Any] = field(default_factory=dict)


def map_chat(
    backend: ChatBackend,
    requests: Sequence[ChatRequest],
    concurrency: int = 1,
    *,
    return_exceptions: bool = False,
) -> list[ChatResult | LLMError]:
    """The results of `requests`, in order, with at most `concurrency` calls in flight (useful for remote
    backends; local ones serialize their calls anyway). A failed call raises its LLMError (calls not
    yet started are dropped) or, with `return_exceptions`, takes its place in the list."""

    def call(request: ChatRequest) -> ChatResult | LLMError:
        try:
            return backend.chat(
                request.messages,
                json_schema=request.json_schema,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                **request.options,
            )
        except LLMError as exc:
            if return_exceptions:
                return exc
            raise

    if concurrency <= 1 or len(requests) <= 1:
        return [call(r) for r in requests]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llm") as pool:
        futures = [pool.submit(call, r) for r in requests]
        try:
            return [f.result() for f in futures]
        except BaseException:  # an LLMError or Ctrl-C: do not start the queued calls
            for f in futures:
                f.cancel()
            raise
