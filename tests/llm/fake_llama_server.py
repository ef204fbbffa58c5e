#!/usr/bin/env python3
"""A stand-in for llama.cpp's llama-server, for tests of the client and the process handling (never of
generation): takes the same command line, serves /health, streams scripted chat answers as server-sent
events, and writes each request body to $FAKE_SERVER_REQUESTS (one JSON line each).

The answer is the last user message after "say:" (streamed in 5-character pieces), or, for the message
"loop", "abc " repeated until the client hangs up. $FAKE_SERVER_FAIL makes it exit at start with that
message; $FAKE_SERVER_STATUS answers every chat request with that HTTP status."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUESTS = os.environ.get("FAKE_SERVER_REQUESTS")
LOCK = threading.Lock()


def event(data: dict) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/apply-template":
            self._json(200, {"prompt": " ".join(m["content"] for m in body["messages"])})
            return
        if self.path == "/tokenize":
            self._json(200, {"tokens": list(range(len(body["content"].split())))})
            return
        if REQUESTS:
            with LOCK, open(REQUESTS, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(body) + "\n")
        status = int(os.environ.get("FAKE_SERVER_STATUS", "200"))
        if status != 200:
            self._json(status, {"error": {"message": "scripted failure"}})
            return
        message = body["messages"][-1]["content"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            if message == "loop":
                piece = event({"choices": [{"delta": {"content": "abc "}, "finish_reason": None}]})
                while True:
                    self.wfile.write(piece)
                    self.wfile.flush()
                    time.sleep(0.001)
            text = message.removeprefix("say:")
            pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
            for piece in pieces:
                self.wfile.write(event({"choices": [{"delta": {"content": piece}, "finish_reason": None}]}))
            self.wfile.write(event({"choices": [{"delta": {}, "finish_reason": "stop"}]}))
            usage = {"prompt_tokens": 7, "completion_tokens": len(pieces)}
            self.wfile.write(event({"choices": [], "usage": usage}))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped the stream
        self.close_connection = True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args, _ = parser.parse_known_args()
    if os.environ.get("FAKE_SERVER_FAIL"):
        print(os.environ["FAKE_SERVER_FAIL"], flush=True)
        sys.exit(3)
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
