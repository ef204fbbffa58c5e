"""`synthkg ingest` SIGKILLed mid-run, then rerun: it finishes without repeating a finished LLM call and
without duplicating anything. The LLM is a real HTTP endpoint (OpenAI-compatible, on loopback) that
answers by rules, so the CLI runs exactly as it would against vLLM or llama.cpp's server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from synthkg.store.embedded import EmbeddedStore
from tests.rule_llm import rule_reply

pytestmark = pytest.mark.slow


class RuleServer:
    """/v1/chat/completions answered by `rule_reply`, slowly, counting every request body."""

    def __init__(self, delay_s: float) -> None:
        self.bodies: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                time.sleep(delay_s)
                schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema")
                text = rule_reply(body["messages"], schema, body.get("temperature"))
                reply = {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                server.bodies.append(hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest())

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


def stored_documents(path: Path) -> int:
    if not (path / "meta.json").exists():
        return 0
    with EmbeddedStore(path, read_only=True) as store:
        return store.counts().documents


@pytest.fixture
def server() -> Iterator[RuleServer]:
    s = RuleServer(delay_s=0.3)
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.mark.parametrize("concurrency", [1, 4])
def test_sigkilled_ingest_resumes_without_repeats(
    tmp_path: Path, server: RuleServer, concurrency: int
) -> None:
    """With several documents in flight (as on the server engine's slots) too: killed in the middle of a
    parallel batch, the rerun loses and duplicates nothing."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    people = [
        "Ada Lovelace",
        "Alan Turing",
        "Grace Hopper",
        "Edsger Dijkstra",
        "Barbara Liskov",
        "Donald Knuth",
        "Margaret Hamilton",
        "John Backus",
    ]
    for i, person in enumerate(people):
        (corpus / f"{i}.txt").write_text(f"{person} worked in London with Charles Babbage.", encoding="utf-8")
    env = {
        **os.environ,
        "SYNTHKG_STORE__PATH": str(tmp_path / "store"),
        "SYNTHKG_CACHE_DIR": str(tmp_path / "cache"),
        "SYNTHKG_DATA_DIR": str(tmp_path / "data"),
        "SYNTHKG_LLM__BACKEND": "openai",
        "SYNTHKG_LLM__BASE_URL": server.base_url,
        "SYNTHKG_LLM__MODEL": "rules",
        "OPENAI_API_KEY": "sk-test",
    }
    command = [sys.executable, "-m", "synthkg.cli", "ingest", str(corpus), "--no-progress",
               "--concurrency", str(concurrency)]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while stored_documents(tmp_path / "store") < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    proc.kill()  # SIGKILL, mid-run: some documents written, some calls finished for unwritten ones
    proc.wait()
    assert 2 <= stored_documents(tmp_path / "store") < len(people)

    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    repeats = [body for body, n in Counter(server.bodies).items() if n > 1]
    assert len(repeats) <= concurrency  # at most the calls in flight when the process died
    assert len(server.bodies) <= 2 * len(people) + concurrency

    with EmbeddedStore(tmp_path / "store", read_only=True) as store:
        counts = store.counts()
        assert counts.documents == len(people)
        assert counts.relations == len(people) * 2  # person-London and person-Babbage, once each
        ids = [r.id for r in store.iter_relations()]
        assert len(ids) == len(set(ids))
        assert len(store.find_entities("Charles Babbage")) == 1
