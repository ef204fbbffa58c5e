"""The on-disk call cache and usage accounting, around a counting fake backend (the backend's output
is irrelevant here; what is tested is the cache's own control flow and persistence)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from synthkg.llm.base import ChatBackend, ChatResult, LLMError, Message
from synthkg.llm.cache import CACHE_FILE, CachedBackend, Usage


class CountingBackend:
    name = "fake"
    model = "counting-1"
    max_tokens = 64
    temperature = 0.0

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self.fail = fail
        self._lock = threading.Lock()

    def chat(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        with self._lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.delay_s)
        if self.fail:
            raise LLMError("endpoint down")
        return ChatResult(
            text=f"answer {n} to {messages[-1]['content']} (max {max_tokens})",
            prompt_tokens=10,
            completion_tokens=5,
            finish_reason="stop",
            seconds=0.5,
        )


def msgs(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


def test_fake_is_a_chat_backend() -> None:
    assert isinstance(CountingBackend(), ChatBackend)


def test_miss_then_hit_returns_the_stored_answer(tmp_path: Path) -> None:
    inner = CountingBackend()
    cached = CachedBackend(inner, tmp_path)
    first = cached.chat(msgs("q"), prompt_version="v1")
    second = cached.chat(msgs("q"), prompt_version="v1")
    assert inner.calls == 1
    assert not first.cached and second.cached
    assert second.text == first.text
    assert (second.prompt_tokens, second.completion_tokens) == (0, 0)
    assert second.extra["cached_prompt_tokens"] == 10
    assert second.extra["cached_completion_tokens"] == 5
    assert second.extra["cached_seconds"] == pytest.approx(0.5)


def test_backend_default_max_tokens_is_resolved_into_the_call(tmp_path: Path) -> None:
    inner = CountingBackend()
    result = CachedBackend(inner, tmp_path).chat(msgs("q"))
    assert "(max 64)" in result.text


@pytest.mark.parametrize(
    "change",
    [
        {"prompt_version": "v2"},
        {"json_schema": {"type": "object"}},
        {"max_tokens": 32},
        {"temperature": 0.7},
    ],
)
def test_key_changes_with_each_input(tmp_path: Path, change: dict[str, Any]) -> None:
    inner = CountingBackend()
    cached = CachedBackend(inner, tmp_path)
    cached.chat(msgs("q"), prompt_version="v1")
    result = cached.chat(msgs("q"), **{"prompt_version": "v1", **change})
    assert not result.cached
    assert inner.calls == 2


def test_key_changes_with_messages_and_model(tmp_path: Path) -> None:
    inner = CountingBackend()
    cached = CachedBackend(inner, tmp_path)
    cached.chat(msgs("q"))
    assert not cached.chat(msgs("other")).cached
    assert not cached.chat([{"role": "system", "content": "s"}, *msgs("q")]).cached
    other_model = CountingBackend()
    other_model.model = "counting-2"
    assert not CachedBackend(other_model, tmp_path).chat(msgs("q")).cached


def test_persists_across_instances(tmp_path: Path) -> None:
    with CachedBackend(CountingBackend(), tmp_path) as first:
        original = first.chat(msgs("q"), prompt_version="v1")
    inner = CountingBackend()
    with CachedBackend(inner, tmp_path) as second:
        again = second.chat(msgs("q"), prompt_version="v1")
    assert inner.calls == 0
    assert again.cached and again.text == original.text
    with sqlite3.connect(tmp_path / CACHE_FILE) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row = db.execute("SELECT backend, model, prompt_version, completion_tokens FROM calls").fetchone()
    assert row == ("fake", "counting-1", "v1", 5)


def test_failed_calls_are_not_cached(tmp_path: Path) -> None:
    cached = CachedBackend(CountingBackend(fail=True), tmp_path)
    with pytest.raises(LLMError):
        cached.chat(msgs("q"))
    inner = CountingBackend()
    assert not CachedBackend(inner, tmp_path).chat(msgs("q")).cached
    assert inner.calls == 1
    assert cached.usage.total().calls == 0


def test_threads_share_one_call_per_key(tmp_path: Path) -> None:
    inner = CountingBackend(delay_s=0.05)
    cached = CachedBackend(inner, tmp_path)
    results: list[ChatResult] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            results.append(cached.chat(msgs(f"q{i % 4}"), stage=f"s{i % 2}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert inner.calls == 4  # 4 distinct questions, 24 calls
    assert sum(not r.cached for r in results) == 4
    total = cached.usage.total()
    assert (total.calls, total.cached_calls) == (24, 20)
    assert (total.prompt_tokens, total.cached_prompt_tokens) == (40, 200)
    assert set(cached.usage.stages()) == {"s0", "s1"}
    assert not cached._inflight  # no per-key locks left behind


def test_usage_counts_per_stage_and_exports_plain_data(tmp_path: Path) -> None:
    usage = Usage()
    cached = CachedBackend(CountingBackend(), tmp_path, usage=usage)
    cached.chat(msgs("a"), stage="entities")
    cached.chat(msgs("a"), stage="entities")
    cached.chat(msgs("b"), stage="relations")
    data = usage.to_dict()
    assert data["entities"]["calls"] == 2 and data["entities"]["cached_calls"] == 1
    assert data["entities"]["completion_tokens"] == 5
    assert data["entities"]["cached_completion_tokens"] == 5
    assert data["relations"]["prompt_tokens"] == 10
    assert data["total"]["calls"] == 3
    assert data["total"]["seconds"] == pytest.approx(1.0, abs=0.05)


class GrammarBackend(CountingBackend):
    """Takes a grammar and a stop callback like the llama.cpp backends; answers as told."""

    def __init__(self, finish_reason: str = "stop") -> None:
        super().__init__()
        self.finish_reason = finish_reason
        self.seen: list[tuple[str | None, Any]] = []

    def chat(  # type: ignore[override]
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        grammar: str | None = None,
        stop_when: Any = None,
    ) -> ChatResult:
        self.seen.append((grammar, stop_when))
        result = super().chat(messages, json_schema=json_schema, max_tokens=max_tokens)
        return ChatResult(text=result.text, completion_tokens=5, finish_reason=self.finish_reason)


def test_grammar_keys_the_call_and_reaches_backends_that_take_one(tmp_path: Path) -> None:
    inner = GrammarBackend()
    cached = CachedBackend(inner, tmp_path)
    guard = lambda text: False  # noqa: E731
    first = cached.chat(msgs("q"), grammar="root ::= [a-z]+", stop_when=guard)
    assert inner.seen == [("root ::= [a-z]+", guard)]
    assert cached.chat(msgs("q"), grammar="root ::= [a-z]+").cached
    other = cached.chat(msgs("q"), grammar="root ::= [0-9]+")  # another grammar, another answer
    plain = cached.chat(msgs("q"))
    assert not other.cached and not plain.cached and first.text != other.text != plain.text
    assert inner.calls == 3


def test_a_grammar_the_backend_cannot_apply_is_neither_sent_nor_keyed(tmp_path: Path) -> None:
    inner = CountingBackend()  # no grammar parameter: it would fail if given one
    cached = CachedBackend(inner, tmp_path)
    cached.chat(msgs("q"), grammar="root ::= [a-z]+", stop_when=lambda text: False)
    assert cached.chat(msgs("q")).cached  # the free answer it gave is the answer to both
    assert inner.calls == 1


def test_usage_counts_answers_cut_at_the_budget_and_stopped_looping(tmp_path: Path) -> None:
    usage = Usage()
    CachedBackend(GrammarBackend("loop"), tmp_path / "a", usage=usage).chat(msgs("a"), stage="x")
    CachedBackend(GrammarBackend("length"), tmp_path / "b", usage=usage).chat(msgs("b"), stage="x")
    CachedBackend(GrammarBackend("stop"), tmp_path / "c", usage=usage).chat(msgs("c"), stage="x")
    stage = usage.stages()["x"]
    assert (stage.calls, stage.stopped_looping, stage.cut_at_budget) == (3, 1, 1)


def test_the_endpoint_is_part_of_a_calls_identity(tmp_path: Path) -> None:
    """Issue 15: a run pointed at a dead endpoint 'succeeded' from answers another endpoint gave."""
    first, second = CountingBackend(), CountingBackend()
    first.endpoint, second.endpoint = "http://a:8000/v1", "http://b:8000/v1"  # type: ignore[attr-defined]
    CachedBackend(first, tmp_path).chat(msgs("q"))
    assert not CachedBackend(second, tmp_path).chat(msgs("q")).cached and second.calls == 1
    assert CachedBackend(first, tmp_path).chat(msgs("q")).cached
