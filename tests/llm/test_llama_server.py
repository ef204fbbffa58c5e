"""The llama-server engine: locating the binary, running the process, and the streaming client.

Fast tests run the client and the process handling against tests/llm/fake_llama_server.py (a stand-in
with llama-server's command line and endpoints); the slow ones run the real binary that setup builds,
with a real model: generation, grammar, parallel slots, a loop stopped mid-stream."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from synthkg.config import LLMSettings, default_cache_dir
from synthkg.extract.lines import GRAMMAR, LoopGuard, parse_lines
from synthkg.llm.base import LLMError, Message
from synthkg.llm.factory import make_backend
from synthkg.llm.llama_server import (
    SERVER_ENV,
    LlamaServer,
    LlamaServerBackend,
    ServerError,
    ServerSpec,
    built_server_path,
    server_binary,
    stop_servers,
)
from synthkg.llm.llamacpp import LlamaCppBackend

FAKE = Path(__file__).with_name("fake_llama_server.py")


@pytest.fixture
def fake_binary(tmp_path: Path) -> Path:
    """The stand-in as an executable, run by this interpreter."""
    script = tmp_path / "llama-server"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


def say(text: str) -> list[Message]:
    return [{"role": "system", "content": "sys"}, {"role": "user", "content": f"say:{text}"}]


def test_missing_binary_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVER_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # no binary in the default place either
    with pytest.raises(ServerError, match=r"llama_server build.*--engine python"):
        server_binary(tmp_path)
    with pytest.raises(ServerError, match="not an executable file"):
        server_binary(tmp_path, tmp_path / "nope")
    # The server engine checks this when the backend is made, before any work.
    with pytest.raises(ServerError, match="not built"):
        make_backend(LLMSettings(engine="server"), tmp_path)
    assert isinstance(make_backend(LLMSettings(engine="python"), tmp_path), LlamaCppBackend)


def test_a_run_with_its_own_cache_uses_the_binary_built_in_the_default_place(
    fake_binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SERVER_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    built = built_server_path(tmp_path / "xdg" / "synthkg")
    built.parent.mkdir(parents=True)
    built.write_bytes(fake_binary.read_bytes())
    built.chmod(0o755)
    assert server_binary(tmp_path / "own-cache") == built
    own = built_server_path(tmp_path / "own-cache")  # a binary in the run's own cache comes first
    own.parent.mkdir(parents=True)
    own.write_bytes(fake_binary.read_bytes())
    assert server_binary(tmp_path / "own-cache") == own


def test_the_binary_from_the_environment_wins(fake_binary: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVER_ENV, str(fake_binary))
    assert server_binary(tmp_path) == fake_binary
    assert built_server_path(tmp_path).parent.name.startswith("llama-cpp-python-")


def test_both_engines_name_a_model_and_adapter_alike(tmp_path: Path) -> None:
    adapter = Path(__file__).resolve().parents[2] / "training" / "adapters" / "qwen2.5-coder-0.5b-synthkg"
    spec = ServerSpec(binary=tmp_path, model="qwen2.5-coder-0.5b", cache_dir=tmp_path, adapter=adapter)
    in_process = LlamaCppBackend("qwen2.5-coder-0.5b", tmp_path, adapter=adapter)
    assert spec.identity == in_process.model  # so both engines share the call cache
    assert LlamaServerBackend(spec).model == in_process.model


def test_stream_text_usage_and_constraints_reach_the_server(
    fake_binary: Path, model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = tmp_path / "requests.jsonl"
    monkeypatch.setenv("FAKE_SERVER_REQUESTS", str(requests))
    with LlamaServer(fake_binary, model_file, slots=3, threads=1) as server:
        backend = LlamaServerBackend(server, "m")
        result = backend.chat(say("Hello, streaming world."), max_tokens=50, grammar="root ::= x")
        assert result.text == "Hello, streaming world." and result.finish_reason == "stop"
        assert (result.prompt_tokens, result.completion_tokens) == (7, 5)
        backend.chat(say("{}"), json_schema={"type": "object"})
        sent = [json.loads(line) for line in requests.read_text().splitlines()]
        assert sent[0]["grammar"] == "root ::= x" and sent[0]["max_tokens"] == 50 and sent[0]["stream"]
        assert "response_format" not in sent[0]
        assert sent[1]["response_format"]["json_schema"]["schema"] == {"type": "object"}
        command = server.command(1)
        assert command[command.index("--parallel") + 1] == "3"
        assert backend.parallel == 3


def test_a_looping_stream_is_stopped_and_the_prompt_counted(
    fake_binary: Path, model_file: Path
) -> None:
    with LlamaServer(fake_binary, model_file) as server:
        backend = LlamaServerBackend(server, "m")
        started = time.monotonic()
        result = backend.chat([{"role": "user", "content": "loop"}], stop_when=lambda text: len(text) > 400)
        assert result.finish_reason == "loop" and 400 < len(result.text) < 600
        assert result.prompt_tokens == 1  # counted through /apply-template + /tokenize
        assert time.monotonic() - started < 10
        # The server is still there for the next call.
        assert backend.chat(say("again")).text == "again"


def say_together(backend: LlamaServerBackend, count: int) -> list[str]:
    """The answers to `count` calls made from as many threads at once."""
    texts: list[str] = []
    threads = [threading.Thread(target=lambda i=i: texts.append(backend.chat(say(f"n{i}")).text))
               for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return texts


def test_concurrent_calls_share_the_server(fake_binary: Path, model_file: Path) -> None:
    with LlamaServer(fake_binary, model_file, slots=4) as server:
        backend = LlamaServerBackend(server, "m")
        assert sorted(say_together(backend, 8)) == sorted(f"n{i}" for i in range(8))


def test_a_spec_with_two_servers_splits_the_slots_and_spreads_the_calls(
    fake_binary: Path, model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ServerSpec(binary=fake_binary, model=str(model_file), cache_dir=tmp_path, slots=4, threads=2,
                      servers=2)
    backend = LlamaServerBackend(spec)
    ports: list[int | None] = []
    overlap = threading.Barrier(2, timeout=30)
    stream = backend._stream

    def in_flight_together(server: LlamaServer, body: dict, stop_when: object) -> object:
        ports.append(server.port)
        overlap.wait()  # the second call is picked while the first is still in flight
        return stream(server, body, stop_when)  # type: ignore[arg-type]

    monkeypatch.setattr(backend, "_stream", in_flight_together)
    try:
        assert sorted(say_together(backend, 2)) == ["n0", "n1"] and len(set(ports)) == 2
        assert backend.parallel == 4
        for server in backend.servers:
            command = server.command(1)
            assert command[command.index("--parallel") + 1] == "2"
            assert command[command.index("--threads") + 1] == "1"
    finally:
        stop_servers()

def test_http_errors_and_a_dead_server_are_llm_errors(
    fake_binary: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SERVER_STATUS", "500")
    with LlamaServer(fake_binary, model_file) as server:
        backend = LlamaServerBackend(server, "m")
        with pytest.raises(LLMError, match=r"HTTP 500.*scripted failure"):
            backend.chat(say("x"))
    monkeypatch.delenv("FAKE_SERVER_STATUS")
    server = LlamaServer(fake_binary, model_file).start()
    backend = LlamaServerBackend(server, "m")
    assert backend.chat(say("up")).text == "up"
    assert server._process is not None
    server._process.kill()  # gone mid-run, as after an OOM kill: the backend starts it again
    server._process.wait()
    assert backend.chat(say("back")).text == "back"
    server.stop()
    assert not server.alive()


def test_a_server_that_exits_at_start_fails_with_its_own_words(
    fake_binary: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SERVER_FAIL", "error: unknown model architecture 'xyz'")
    with pytest.raises(ServerError, match=r"exited with code 3.*unknown model architecture"):
        LlamaServer(fake_binary, model_file).start()
    with pytest.raises(ServerError, match=r"adapter file .* does not exist"):
        LlamaServer(fake_binary, model_file, lora=model_file.with_name("missing.gguf")).start()


# --- the real binary ----------------------------------------------------------------------------------


def _real_binary() -> Path:
    try:
        return server_binary(default_cache_dir())
    except ServerError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the llama-server that setup builds: {exc}")
        pytest.skip(str(exc))


@pytest.mark.slow
def _every_complete_line_readable(text: str) -> bool:
    """Whether each complete line of `text` is in the line format (the last one may be cut at the budget;
    the base model, not a student, may not reach a fact within it)."""
    complete = text[: text.rfind("\n") + 1]
    assert complete, f"no complete line in {text!r}"
    graph, report = parse_lines(complete)
    return bool(graph.entities or graph.quadruples) and not report.skipped


def test_real_server_generates_follows_the_line_grammar_and_stops_a_loop() -> None:
    spec = ServerSpec(binary=_real_binary(), model="qwen2.5-coder-0.5b", cache_dir=default_cache_dir(),
                      slots=2, threads=2, context_per_slot=1024)
    backend = LlamaServerBackend(spec, max_tokens=160)
    passage = "Marie Curie was born in Warsaw in 1867. She won the Nobel Prize in Physics in 1903."
    messages: list[Message] = [
        {"role": "system", "content": "Extract the knowledge graph of the passage: a line 'PERSON: names', "
         "then '> ' and a sentence, then triples 'subject | relation | object'."},
        {"role": "user", "content": passage},
    ]
    result = backend.chat(messages, grammar=GRAMMAR)
    assert result.completion_tokens > 5 and result.prompt_tokens > 20
    assert _every_complete_line_readable(result.text)  # the grammar makes every line readable
    # Two calls at once run in the two slots.
    with_slots: list[str] = []
    def ask() -> None:
        with_slots.append(backend.chat(messages, grammar=GRAMMAR).text)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Both answered under the grammar. (Not necessarily the sequential answer token for token: a batch of
    # two sums in another order than a batch of one, and greedy decoding can tip on that.)
    assert len(with_slots) == 2
    for text in with_slots:
        assert _every_complete_line_readable(text)
    # A guard that finds a "loop" at once stops the generation early.
    guard = LoopGuard(max_line_chars=10)
    stopped = backend.chat(messages, grammar=GRAMMAR, max_tokens=160, stop_when=guard)
    assert stopped.finish_reason == "loop" and stopped.completion_tokens < 40
