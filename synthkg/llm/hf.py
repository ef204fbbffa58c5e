"""A transformers causal LM on the CPU, optionally with a peft LoRA adapter: the distilled student.

torch, transformers and peft are an optional extra (`synthkg[train]`) and are imported on first use.
A GGUF file is dequantized to fp32 on load; a directory is a regular transformers model folder."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from synthkg.llm.base import ChatResult, LLMError, Message, with_json_instruction
from synthkg.llm.batching import BatchRequest
from synthkg.llm.local_models import (
    LOCAL_MODELS,
    adapter_fingerprint,
    default_threads,
    resolve_model_path,
)


class LoopStop:
    """A per-row stopping criterion: a row whose last tokens repeat one period (`min_period` to
    `max_period` tokens) three times over is looping and is stopped, so one looping member does not
    hold a whole GPU batch to its token budget. Checked every `every` steps; `looped` marks the rows it
    stopped (finished rows, all padding, are not counted) so their answers are reported as truncated."""

    def __init__(
        self, prompt_width: int, pad_id: int, min_period: int = 20, max_period: int = 128, every: int = 8
    ) -> None:
        self.prompt_width, self.pad_id = prompt_width, pad_id
        self.min_period, self.max_period, self.every = min_period, max_period, every
        self.looped: set[int] = set()
        self._steps = 0

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        self._steps += 1
        stop = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        generated = input_ids[:, self.prompt_width :]
        if self._steps % self.every:
            return stop
        for period in range(self.min_period, min(self.max_period, generated.shape[1] // 3) + 1):
            last = generated[:, -period:]
            same = (last == generated[:, -2 * period : -period]).all(dim=1)
            repeated = same & (last == generated[:, -3 * period : -2 * period]).all(dim=1)
            self.looped.update(torch.nonzero(repeated & (last != self.pad_id).any(dim=1)).flatten().tolist())
            stop |= repeated
        return stop


class HFBackend:
    """Greedy decoding unless a temperature above 0 is asked for. JSON is requested in the prompt, not
    enforced. Calls are serialized: generation already uses all `threads`."""

    name = "hf"

    def __init__(
        self,
        model_dir_or_gguf: str | Path,
        adapter: str | Path | None = None,
        threads: int | None = None,
        cache_dir: Path | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        repeat_penalty: float = 1.1,
        device: str = "cpu",
    ) -> None:
        """`device` "cuda" loads the model in bfloat16 on the GPU (fp32 on the CPU)."""
        self.source = str(model_dir_or_gguf)
        self.device = device
        self.adapter = Path(adapter) if adapter is not None else None
        # The adapter changes the outputs, so it is part of the model's identity in cache keys.
        self.model = self.source + (f"+{adapter_fingerprint(self.adapter)}" if self.adapter else "")
        self.threads = threads or default_threads()
        self.cache_dir = cache_dir
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.repeat_penalty = repeat_penalty
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def _location(self) -> tuple[Path, str | None]:
        """(folder, gguf file name or None) of the model to load."""
        if self.source in LOCAL_MODELS:
            if self.cache_dir is None:
                raise LLMError(f"HFBackend needs a cache_dir to use the local model {self.source!r}")
            path = resolve_model_path(self.source, self.cache_dir)
        else:
            path = Path(self.source).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise LLMError(f"model file not found: {path}")
            return path.parent, path.name
        if not (path / "config.json").is_file():
            raise LLMError(f"not a transformers model folder (no config.json): {path}")
        return path, None

    def _load(self) -> tuple[Any, Any]:
        # Called with the lock held.
        if self._loaded is not None:
            return self._loaded
        folder, gguf_file = self._location()
        # Everything is local; never let transformers try the model hub (read when it is imported).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise LLMError(
                f"the hf backend needs torch and transformers: pip install 'synthkg[train]' ({exc})"
            ) from exc
        torch.set_num_threads(self.threads)
        dtype = torch.float32 if self.device == "cpu" else torch.bfloat16
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=dtype)
            model.to(self.device)
            if self.adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(self.adapter))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:  # missing, corrupt or mismatched
            raise LLMError(
                f"could not load {folder / (gguf_file or '')} (adapter {self.adapter}): {exc}"
            ) from exc
        model.eval()
        self._loaded = (tokenizer, model)
        return self._loaded

    def chat(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        return self.generate_batch([BatchRequest(messages, json_schema, max_tokens, temperature)])[0]

    def generate_batch(self, requests: list[BatchRequest]) -> list[ChatResult]:
        """Generate for several requests at once (left-padded; what `BatchingBackend` calls on a GPU).
        Requests are grouped by temperature; a group runs to its largest token budget."""
        groups: dict[float, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(self.temperature if r.temperature is None else r.temperature, []).append(i)
        results: dict[int, ChatResult] = {}
        with self._lock:
            tokenizer, model = self._load()
            for temp, indexes in groups.items():
                batch = [requests[i] for i in indexes]
                results.update(zip(indexes, self._generate(tokenizer, model, batch, temp), strict=True))
        return [results[i] for i in range(len(requests))]

    def _generate(
        self, tokenizer: Any, model: Any, requests: list[BatchRequest], temp: float
    ) -> list[ChatResult]:
        import torch  # present: _load succeeded

        conversations = [
            with_json_instruction(r.messages, r.json_schema) if r.json_schema is not None else r.messages
            for r in requests
        ]
        budgets = [self.max_tokens if r.max_tokens is None else r.max_tokens for r in requests]
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temp} if temp > 0 else {"do_sample": False}
        )
        pad_id = tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id
        tokenizer.padding_side = "left"
        prompts = [
            tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
            for c in conversations
        ]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            model.device
        )
        loop = LoopStop(inputs["input_ids"].shape[1], pad_id)
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                output = model.generate(
                    **inputs,
                    max_new_tokens=max(budgets),
                    repetition_penalty=self.repeat_penalty,
                    pad_token_id=pad_id,
                    stopping_criteria=[loop],
                    **sampling,
                )
        except torch.OutOfMemoryError:
            if len(requests) == 1:
                raise
            # A batch too large for the GPU's free memory: run it in halves.
            del inputs
            torch.cuda.empty_cache()
            half = len(requests) // 2
            return self._generate(tokenizer, model, requests[:half], temp) + self._generate(
                tokenizer, model, requests[half:], temp
            )
        seconds = time.perf_counter() - start
        stops = model.generation_config.eos_token_id
        stops = set(stops if isinstance(stops, list) else [stops]) | {pad_id}
        width = inputs["input_ids"].shape[1]
        results = []
        for row, budget in enumerate(budgets):
            new_tokens = output[row, width:].tolist()[:budget]
            end = next((j for j, t in enumerate(new_tokens) if t in stops), None)
            results.append(
                ChatResult(
                    text=tokenizer.decode(new_tokens[:end], skip_special_tokens=True),
                    prompt_tokens=int(inputs["attention_mask"][row].sum()),
                    completion_tokens=len(new_tokens[:end]),
                    finish_reason=(
                        "length"
                        if row in loop.looped or (end is None and len(new_tokens) >= budget)
                        else "stop"
                    ),
                    seconds=seconds / len(budgets),
                )
            )
        return results
