"""An on-disk cache of LLM calls and per-stage usage accounting.

Each finished call is one SQLite row, committed before `chat` returns, so a run that crashed or was
interrupted repeats no finished call when restarted. The key covers everything that determines the
answer: backend, model, the endpoint (for backends that name one: the same model name on two servers may
be two models), the caller's prompt version, messages, schema or grammar, max tokens and temperature.
A streamed answer stopped because it looped is stored like any other: it is what that call produces.
Retries of failed answers pass `refresh` and are never served from the cache."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from synthkg.llm.base import ChatBackend, ChatResult, Message, accepts

CACHE_FILE = "llm_calls.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL
)
"""


@dataclass
class StageUsage:
    """What one stage spent. Tokens and seconds count only calls made in this run; `cached_*` holds
    what the cache hits originally cost."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    cached_seconds: float = 0.0
    cut_at_budget: int = 0  # answers that ran to max_tokens (finish_reason "length")
    stopped_looping: int = 0  # streamed answers stopped because they looped (finish_reason "loop")

    def add(self, result: ChatResult) -> None:
        self.calls += 1
        self.cut_at_budget += result.finish_reason == "length"
        self.stopped_looping += result.finish_reason == "loop"
        self.seconds += result.seconds
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        if result.cached:
            self.cached_calls += 1
            self.cached_prompt_tokens += int(result.extra.get("cached_prompt_tokens", 0))
            self.cached_completion_tokens += int(result.extra.get("cached_completion_tokens", 0))
            self.cached_seconds += float(result.extra.get("cached_seconds", 0.0))

    def merge(self, other: StageUsage) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


class Usage:
    """Thread-safe call and token counters per stage (e.g. "entities", "relations", "answer")."""

    def __init__(self) -> None:
        self._stages: dict[str, StageUsage] = {}
        self._lock = threading.Lock()

    def record(self, stage: str, result: ChatResult) -> None:
        with self._lock:
            self._stages.setdefault(stage, StageUsage()).add(result)

    def stages(self) -> dict[str, StageUsage]:
        """A copy of the counters, by stage."""
        with self._lock:
            return {name: StageUsage(**asdict(s)) for name, s in self._stages.items()}

    def total(self) -> StageUsage:
        total = StageUsage()
        for stage in self.stages().values():
            total.merge(stage)
        return total

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain data for run records: one entry per stage plus "total"."""
        data = {name: asdict(s) for name, s in self.stages().items()}
        data["total"] = asdict(self.total())
        return data


def cache_key(
    backend: str,
    model: str,
    prompt_version: str,
    messages: list[Message],
    json_schema: dict[str, Any] | None,
    max_tokens: int | None,
    temperature: float | None,
    grammar: str | None = None,
    endpoint: str | None = None,
) -> str:
    payload: list[Any] = [backend, model, prompt_version, messages, json_schema, max_tokens, temperature]
    # Appended only when set, so that the keys of calls without them stay what they were.
    if grammar is not None:
        payload.append(grammar)
    if endpoint:
        payload.append({"endpoint": endpoint})
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CachedBackend:
    """Wraps any ChatBackend with the on-disk cache and usage counters. Safe to call from many threads:
    concurrent calls with the same key make one backend call, the others wait and read its row."""

    def __init__(self, backend: ChatBackend, cache_dir: Path, usage: Usage | None = None) -> None:
        self.backend = backend
        self.name = backend.name
        self.model = backend.model
        # Where a remote backend sends its calls: part of a call's identity (see the module docstring).
        self.endpoint: str | None = getattr(backend, "endpoint", None)
        self.usage = usage or Usage()
        self.path = Path(cache_dir) / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by all threads behind a lock: lookups and inserts take microseconds
        # next to an LLM call. WAL lets other processes read while one writes.
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        self._db_lock = threading.Lock()
        with self._db_lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        self._inflight: dict[str, list[Any]] = {}  # key -> [lock, waiters]
        self._inflight_lock = threading.Lock()

    def _lookup(self, key: str) -> tuple[str, int, int, str, float] | None:
        with self._db_lock:
            return self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, finish_reason, seconds"
                " FROM calls WHERE key=?",
                (key,),
            ).fetchone()

    def _store(self, key: str, prompt_version: str, result: ChatResult) -> None:
        row = (
            key,
            self.name,
            self.model,
            prompt_version,
            result.text,
            result.prompt_tokens,
            result.completion_tokens,
            result.finish_reason,
            result.seconds,
            time.time(),
        )
        with self._db_lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO calls VALUES (?,?,?,?,?,?,?,?,?,?)", row)

    def _key_lock(self, key: str, acquire: bool) -> threading.Lock:
        with self._inflight_lock:
            entry = self._inflight.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1 if acquire else -1
            if entry[1] == 0:
                del self._inflight[key]
            return entry[0]

    def chat(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        grammar: str | None = None,
        stop_when: Callable[[str], bool] | None = None,
        prompt_version: str = "",
        stage: str = "default",
        refresh: bool = False,
    ) -> ChatResult:
        """The cached answer for this call, or a new one (then stored). `refresh`: always ask the
        backend and replace what was stored: a retry of a failed answer must never be served that
        answer again (it would fail the same way, however healthy the endpoint is now)."""
        # Unset values resolve to the backend's defaults, so changing a default changes the key.
        if max_tokens is None:
            max_tokens = getattr(self.backend, "max_tokens", None)
        if temperature is None:
            temperature = getattr(self.backend, "temperature", None)
        options: dict[str, Any] = {}
        if grammar is not None and accepts(self.backend, "grammar"):
            options["grammar"] = grammar
        else:
            grammar = None  # not applied, so not part of what determines the answer
        if stop_when is not None and accepts(self.backend, "stop_when"):
            options["stop_when"] = stop_when
        key = cache_key(
            self.name, self.model, prompt_version, messages, json_schema, max_tokens, temperature, grammar,
            self.endpoint,
        )
        lock = self._key_lock(key, acquire=True)
        try:
            with lock:
                start = time.perf_counter()
                row = None if refresh else self._lookup(key)
                if row is not None:
                    text, prompt_tokens, completion_tokens, finish_reason, seconds = row
                    result = ChatResult(
                        text=text,
                        finish_reason=finish_reason,
                        cached=True,
                        seconds=time.perf_counter() - start,
                        extra={
                            "cache_key": key,
                            "cached_prompt_tokens": prompt_tokens,
                            "cached_completion_tokens": completion_tokens,
                            "cached_seconds": seconds,
                        },
                    )
                else:
                    result = self.backend.chat(
                        messages, json_schema=json_schema, max_tokens=max_tokens, temperature=temperature,
                        **options,
                    )
                    self._store(key, prompt_version, result)
        finally:
            self._key_lock(key, acquire=False)
        self.usage.record(stage, result)
        return result

    def close(self) -> None:
        with self._db_lock:
            self._db.close()

    def __enter__(self) -> CachedBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
