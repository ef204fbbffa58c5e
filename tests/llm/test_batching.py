"""BatchingBackend: concurrent callers are served by batched generations, results go to the right
caller, and a failing generation reaches every caller of its batch as an LLMError."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from synthkg.llm.base import ChatResult, LLMError
from synthkg.llm.batching import BatchingBackend, BatchRequest


def echo_batch(requests: list[BatchRequest]) -> list[ChatResult]:
    return [
        ChatResult(text=r.messages[-1]["content"].upper(), completion_tokens=len(requests)) for r in requests
    ]


def test_concurrent_calls_are_batched_and_answered_in_place() -> None:
    backend = BatchingBackend(echo_batch, name="fake", model="m", max_batch=8, wait_s=0.2)
    barrier = threading.Barrier(8)

    def ask(i: int) -> ChatResult:
        barrier.wait()
        return backend.chat([{"role": "user", "content": f"q{i}"}])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ask, range(8)))
    backend.close()
    assert [r.text for r in results] == [f"Q{i}" for i in range(8)]
    assert sum(backend.batches) == 8
    assert max(backend.batches) > 1  # at least some calls shared a generation
    assert all(b <= 8 for b in backend.batches)


def test_generation_failure_reaches_every_caller() -> None:
    def broken(requests: list[BatchRequest]) -> list[ChatResult]:
        raise RuntimeError("CUDA out of memory")

    backend = BatchingBackend(broken, name="fake", model="m", wait_s=0.01)
    with pytest.raises(LLMError, match="out of memory"):
        backend.chat([{"role": "user", "content": "x"}])
    backend.close()


def test_wrong_result_count_is_an_error() -> None:
    backend = BatchingBackend(lambda reqs: [], name="fake", model="m", wait_s=0.01)
    with pytest.raises(LLMError, match="0 results for 1"):
        backend.chat([{"role": "user", "content": "x"}])
    backend.close()
