"""Dynamic batching: many threads call `chat()` one request at a time; a worker gathers the requests
that arrive together and runs them as one batched generation. This lets the unchanged per-chunk
extractor (three dependent calls per chunk) fill a GPU: run hundreds of chunks in threads and each
extraction stage of all of them lands in the same few batches."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from synthkg.llm.base import ChatResult, LLMError, Message


@dataclass
class BatchRequest:
    messages: list[Message]
    json_schema: dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    future: Future[ChatResult] = field(default_factory=Future)


GenerateBatch = Callable[[list[BatchRequest]], list[ChatResult]]


class BatchingBackend:
    """A ChatBackend over a batch generator. `max_batch` caps a batch; the worker keeps gathering while
    requests arrive less than `wait_s` apart (at most 20 * `wait_s` after the first one)."""

    def __init__(
        self,
        generate_batch: GenerateBatch,
        *,
        name: str,
        model: str,
        max_batch: int = 256,
        wait_s: float = 0.05,
        deadline: float | None = None,
    ) -> None:
        """`deadline` (a time.monotonic() value): batches gathered after it fail with LLMError, so a
        time-boxed run ends within one batch of it."""
        self.name, self.model = name, model
        self.deadline = deadline
        self._generate = generate_batch
        self.max_batch, self.wait_s = max_batch, wait_s
        self._queue: queue.Queue[BatchRequest | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._worker.start()
        self.batches: list[int] = []  # sizes of the batches run, for reporting

    @property
    def parallel(self) -> int:
        """Workers that keep a batch full: callers default their concurrency to this."""
        return self.max_batch

    def chat(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        request = BatchRequest(messages, json_schema, max_tokens, temperature)
        self._queue.put(request)
        return request.future.result()

    def _gather(self, first: BatchRequest) -> list[BatchRequest]:
        # Wait until no request has arrived for wait_s (requests trickle in while hundreds of threads
        # chunk their documents), but never more than 20 * wait_s in all.
        batch = [first]
        cap = time.monotonic() + 20 * self.wait_s
        while len(batch) < self.max_batch:
            timeout = min(self.wait_s, cap - time.monotonic())
            if timeout <= 0:
                break
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                break
            if item is None:  # close(): finish this batch, then stop
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._gather(first)
            self.batches.append(len(batch))
            try:
                if self.deadline is not None and time.monotonic() > self.deadline:
                    raise LLMError("deadline passed: batch not started")
                results = self._generate(batch)
                if len(results) != len(batch):
                    raise LLMError(f"batch generator returned {len(results)} results for {len(batch)}")
            except BaseException as exc:  # hand the failure to every waiting caller
                for request in batch:
                    request.future.set_exception(exc if isinstance(exc, LLMError) else LLMError(str(exc)))
                continue
            for request, result in zip(batch, results, strict=True):
                request.future.set_result(result)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=60)
