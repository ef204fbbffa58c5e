"""OpenAICompatBackend against a tiny real HTTP server on loopback that speaks /v1/chat/completions
and answers from a script of (status, body) replies."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from synthkg.llm.base import LLMError
from synthkg.llm.openai_compat import OpenAICompatBackend

SECRET = "sk-test-DO-NOT-PRINT-1234"


def completion(text: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "tiny",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


class Server:
    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, Any] | bytes]] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[Any] = []  # http.client.HTTPMessage: case-insensitive
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, **body})
                server.headers.append(self.headers)
                status, reply = server.script.pop(0) if server.script else (200, completion("default"))
                raw = isinstance(reply, bytes)  # a body that is not JSON, e.g. a proxy's HTML page
                data = reply if raw else json.dumps(reply).encode()
                claimed_json = raw and data.startswith(b"JSON:")  # ... even when it says it is JSON
                data = data.removeprefix(b"JSON:")
                self.send_response(status)
                html = raw and not claimed_json
                self.send_header("Content-Type", "text/html" if html else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def backend(self, **kwargs: Any) -> OpenAICompatBackend:
        options: dict[str, Any] = {"api_key": SECRET, "timeout_s": 5, "backoff_s": 0.01, **kwargs}
        return OpenAICompatBackend(self.base_url, "tiny", **options)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": message, "type": "error", "code": status}}


def test_plain_call(server: Server) -> None:
    server.script = [(200, completion("Paris", finish="length"))]
    result = server.backend(max_tokens=50).chat([{"role": "user", "content": "Capital of France?"}])
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("Paris", 12, 3)
    assert result.finish_reason == "length"
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["model"] == "tiny" and request["max_tokens"] == 50 and request["temperature"] == 0.0
    assert request["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert "response_format" not in request
    assert server.headers[0]["Authorization"] == f"Bearer {SECRET}"


def test_schema_falls_back_to_json_object_and_remembers(server: Server) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    server.script = [error(400, "response_format json_schema unsupported"), (200, completion('{"a": 1}'))]
    backend = server.backend()
    first = backend.chat([{"role": "user", "content": "x"}], json_schema=schema)
    second = backend.chat([{"role": "user", "content": "y"}], json_schema=schema)
    assert first.text == '{"a": 1}'
    formats = [r["response_format"]["type"] for r in server.requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert server.requests[0]["response_format"]["json_schema"]["schema"] == schema
    assert second.extra["response_format"] == "json_object"


def test_a_400_for_every_format_is_raised_and_forgets_nothing(server: Server) -> None:
    schema = {"type": "object"}
    server.script = [error(400, "prompt too long")] * 3 + [(200, completion("{}"))]
    backend = server.backend()
    with pytest.raises(LLMError, match=r"HTTP 400.*prompt too long"):
        backend.chat([{"role": "user", "content": "x" * 100}], json_schema=schema)
    assert [r.get("response_format", {}).get("type") for r in server.requests] == [
        "json_schema",
        "json_object",
        None,
    ]
    assert backend.chat([{"role": "user", "content": "x"}], json_schema=schema).extra["response_format"] == (
        "json_schema"
    )


def test_500_then_200_is_retried(server: Server) -> None:
    server.script = [error(500, "overloaded"), error(429, "slow down"), (200, completion("ok"))]
    result = server.backend(max_retries=3).chat([{"role": "user", "content": "x"}])
    assert result.text == "ok"
    assert len(server.requests) == 3


def test_persistent_500_gives_up_after_bounded_retries(server: Server) -> None:
    server.script = [error(503, "down")] * 5
    with pytest.raises(LLMError) as info:
        server.backend(max_retries=2).chat([{"role": "user", "content": "x"}])
    message = str(info.value)
    assert server.base_url in message and "HTTP 503" in message and "3 attempts" in message
    assert SECRET not in message
    assert len(server.requests) == 3


def test_rejected_key_is_not_retried_nor_printed(server: Server) -> None:
    server.script = [error(401, "invalid api key")]
    with pytest.raises(LLMError, match="rejected the API key") as info:
        server.backend().chat([{"role": "user", "content": "x"}])
    assert SECRET not in str(info.value)
    assert len(server.requests) == 1


def test_unreachable_url_names_the_endpoint() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    backend = OpenAICompatBackend(
        base_url, "tiny", api_key=SECRET, timeout_s=2, max_retries=1, backoff_s=0.01
    )
    with pytest.raises(LLMError, match="unreachable after 2 attempts") as info:
        backend.chat([{"role": "user", "content": "x"}])
    assert base_url in str(info.value) and SECRET not in str(info.value)


HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def test_a_body_that_is_not_json_is_retried_then_an_error_naming_the_endpoint(server: Server) -> None:
    server.script = [(200, HTML), (200, b"JSON:" + HTML), (200, completion("recovered"))]
    backend = server.backend(max_retries=2)
    assert backend.chat([{"role": "user", "content": "hi"}]).text == "recovered"  # retried like a 5xx
    server.script = [(200, HTML)] * 3
    with pytest.raises(LLMError) as error:
        backend.chat([{"role": "user", "content": "hi"}])
    message = str(error.value)
    assert server.base_url in message and "not JSON" in message and "3 attempts" in message
    assert SECRET not in message
