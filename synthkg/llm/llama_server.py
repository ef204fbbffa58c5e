"""llama.cpp's own server as the local engine: several sequences decoded together (parallel slots with
continuous batching), the shared system prompt's KV reused per slot, grammar sampling in C++, and answers
streamed so that a looping one is stopped as soon as it loops.

Measured on the project's 2-core machine with the shipped 0.5B student (JSON, grammar-constrained, 16
MuSiQue chunks): 31.9 completion tokens/s through this server against 16.8 through llama-cpp-python in
process (whose Python-side sampler walks the 152k-token vocabulary at every step), and 38.5 tokens/s with 4
slots. eval/benchmarks/throughput_bench.py has the full table.

The binary is built once from the llama.cpp sources that the installed llama-cpp-python release vendors
(the same llama.cpp as the in-process engine; its sdist comes from PyPI), with the portable CPU flags that
work on machines without AMX:

    python -m synthkg.llm.llama_server build      # ~6 min on 2 cores; scripts/setup.sh runs it
    python -m synthkg.llm.llama_server path       # where it is (or why it is not there)

`LlamaServer` runs one server process for one model (+ adapter) on a free loopback port, started on first
use and stopped with the backend (or at interpreter exit); `LlamaServerBackend` is the ChatBackend over it.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from filelock import FileLock

from synthkg.config import default_cache_dir
from synthkg.llm.base import ChatResult, LLMError, Message
from synthkg.llm.local_models import adapter_fingerprint, default_threads, resolve_model_path

log = logging.getLogger(__name__)

SERVER_ENV = "SYNTHKG_LLAMA_SERVER"  # a llama-server binary to use instead of the built one
# llama.cpp's default CPU build detects features (AMX, AVX512-FP16) that some kernels do not expose and
# crashes at the first token; these build a portable AVX2 binary (see ../shared/docs/environment.md).
PORTABLE_FLAGS = (
    "-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
    "-DGGML_BMI2=ON",
)
_BUILD_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
)
Stop = Callable[[str], bool]


class ServerError(LLMError):
    """The server binary is missing, does not build, or does not start."""


# --- the binary ---------------------------------------------------------------------------------------


def _llama_cpp_python_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        raise ServerError(
            "building llama-server takes the llama.cpp sources of llama-cpp-python, which is not installed: "
            "pip install 'synthkg[local]'"
        ) from None


def built_server_path(cache_dir: Path) -> Path:
    """Where `build_server` puts the binary for the installed llama-cpp-python release."""
    release = f"llama-cpp-python-{_llama_cpp_python_version()}"
    return Path(cache_dir) / "llama-server" / release / "llama-server"


def server_binary(cache_dir: Path, explicit: str | Path | None = None) -> Path:
    """The llama-server to run: `explicit`, else $SYNTHKG_LLAMA_SERVER, else the one `build_server` made.
    Raises ServerError saying how to get one."""
    chosen = explicit or os.environ.get(SERVER_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ServerError(f"llama-server binary {path} is not an executable file")
        return path
    path = built_server_path(cache_dir)
    # The binary belongs to the installed llama-cpp-python, not to one cache: a run with its own cache
    # directory (a test, a second project) uses the one setup built in the default place.
    fallback = built_server_path(default_cache_dir())
    if not path.is_file() and fallback.is_file():
        return fallback
    if not path.is_file():
        raise ServerError(
            f"llama-server is not built ({path} is missing): run `python -m synthkg.llm.llama_server build` "
            "(or scripts/setup.sh), point $SYNTHKG_LLAMA_SERVER at a llama-server binary, or use the "
            "in-process engine (--engine python)"
        )
    return path


def build_server(
    cache_dir: Path, *, jobs: int | None = None, source: Path | None = None, cuda_arch: str | None = None
) -> Path:
    """Build llama-server unless already built; returns the binary. From `source` (a llama-cpp-python
    sdist, or a llama.cpp source folder or .tar.gz: no network needed), else from the installed
    llama-cpp-python release's sdist, downloaded from PyPI with pip. `cuda_arch` (e.g. "90" for Hopper)
    builds for NVIDIA GPUs with that architecture (needs nvcc) as `llama-server-cuda`: run it with
    [llm] gpu_layers. The compiler's output goes to `<binary>.build.log`, whose tail a failure quotes.
    Safe to run from several processes at once."""
    if source is None:
        target = built_server_path(cache_dir)
    else:
        release = source.name.removesuffix(".gz").removesuffix(".tar").removesuffix(".tgz")
        target = Path(cache_dir) / "llama-server" / release / "llama-server"
    if cuda_arch:
        target = target.with_name("llama-server-cuda")
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_file():
            return target
        for tool in ("cmake", "c++", *(("nvcc",) if cuda_arch else ())):
            if shutil.which(tool) is None:
                raise ServerError(f"building llama-server needs {tool} (apt-get install cmake g++; nvcc)")
        log_path = target.with_suffix(".build.log")
        log.info("building %s (~6 min on 2 cores); log: %s", target, log_path)
        with tempfile.TemporaryDirectory(prefix="llama-server-build-") as tmp, log_path.open("wb") as out:
            work = Path(tmp)
            if source is None:
                version = _llama_cpp_python_version()
                _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
                      f"llama-cpp-python=={version}", "-d", str(work / "sdist")], "download", out, log_path)
                (sdist,) = (work / "sdist").glob("llama_cpp_python-*.tar.gz")
                tree = _extract_llama_cpp(sdist, work / "src")
            else:
                tree = _source_tree(source, work / "src")
            build = work / "build"
            # No flash-attention kernels (their ~100 template instances are most of a CUDA build's time; a
            # small model decodes fast without them) and no NCCL (one GPU).
            gpu = (
                ("-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={cuda_arch}", "-DGGML_CUDA_FA=OFF",
                 "-DGGML_CUDA_NCCL=OFF")
                if cuda_arch else ()
            )
            configure = ["cmake", "-S", str(tree), "-B", str(build), *_BUILD_FLAGS, *PORTABLE_FLAGS, *gpu]
            _run(configure, "configure", out, log_path)
            parallel = str(jobs or os.cpu_count() or 2)
            _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", parallel], "build", out,
                 log_path)
            staged = target.with_suffix(".tmp")
            shutil.copy2(build / "bin" / "llama-server", staged)
            staged.replace(target)  # a binary at `target` is always a complete one
        check = subprocess.run([str(target), "--version"], capture_output=True, text=True, timeout=60)
        if check.returncode != 0:
            target.unlink(missing_ok=True)
            raise ServerError(f"the built llama-server does not run: {check.stderr.strip()[-500:]}")
        return target


def _run(command: Sequence[str], what: str, out: Any, log_path: Path) -> None:
    try:
        subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT)
    except (OSError, subprocess.CalledProcessError) as exc:
        out.flush()
        tail = " ".join(log_path.read_text(encoding="utf-8", errors="replace")[-1200:].split())
        raise ServerError(
            f"building llama-server failed at the {what} step ({exc}); {log_path} ends: {tail}"
        ) from exc


def _source_tree(source: Path, into: Path) -> Path:
    """The llama.cpp tree of `source`: the folder itself, the vendored tree of a llama-cpp-python sdist,
    or the one top folder of a source archive (read once: a gzipped sdist is ~75 MB)."""
    if source.is_dir():
        return source
    if not source.is_file():
        raise ServerError(f"llama.cpp source {source} does not exist")
    with tarfile.open(source) as archive:
        members = archive.getmembers()
        vendored = _vendored(members)
        archive.extractall(into, members=vendored or members, filter="data")
    if vendored:
        return _vendored_root(into)
    roots = [p for p in into.iterdir() if (p / "CMakeLists.txt").is_file()]
    if len(roots) != 1:
        raise ServerError(f"{source} holds no single llama.cpp folder (one top folder with CMakeLists.txt)")
    return roots[0]


def _extract_llama_cpp(sdist: Path, into: Path) -> Path:
    """The vendored llama.cpp tree of a llama-cpp-python sdist, extracted under `into`."""
    with tarfile.open(sdist) as archive:
        members = _vendored(archive.getmembers())
        if not members:
            raise ServerError(f"{sdist.name} vendors no llama.cpp sources")
        archive.extractall(into, members=members, filter="data")
    return _vendored_root(into)


def _vendored(members: list[tarfile.TarInfo]) -> list[tarfile.TarInfo]:
    return [m for m in members if "/vendor/llama.cpp/" in m.name + "/"]


def _vendored_root(into: Path) -> Path:
    (root,) = into.iterdir()
    return root / "vendor" / "llama.cpp"


# --- the process ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """One llama-server process for `model` (+ `lora`), started by `start()` (or the first request) on a
    free loopback port and stopped by `stop()`, the context manager, or interpreter exit. `slots`
    sequences are decoded together; each gets `context_per_slot` tokens of KV cache."""

    def __init__(
        self,
        binary: Path,
        model: Path,
        *,
        lora: Path | None = None,
        slots: int = 4,
        threads: int | None = None,
        context_per_slot: int = 4096,
        extra_args: Sequence[str] = (),
        start_timeout_s: float = 120.0,
        log_file: Path | None = None,
    ) -> None:
        self.binary, self.model, self.lora = Path(binary), Path(model), lora
        self.slots, self.threads = slots, threads or default_threads()
        self.context_per_slot, self.extra_args = context_per_slot, tuple(extra_args)
        self.start_timeout_s = start_timeout_s
        self.log_file = log_file
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, port: int) -> list[str]:
        command = [
            str(self.binary), "--model", str(self.model), "--host", "127.0.0.1", "--port", str(port),
            "--threads", str(self.threads), "--threads-batch", str(self.threads),
            "--parallel", str(self.slots), "--ctx-size", str(self.slots * self.context_per_slot),
            "--no-webui", "--no-kv-unified",
            # No RAM cache of whole prompts: extraction never asks the same prompt twice, and the cache
            # would grow to its 8 GiB default. Each slot still reuses the KV of the prefix it shares with
            # its last prompt (the system prompt), which is what pays here.
            "--cache-ram", "0",
        ]
        if self.lora is not None:
            command += ["--lora", str(self.lora)]
        return command + list(self.extra_args)

    def start(self) -> LlamaServer:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return self
            for path, what in ((self.model, "model"), (self.lora, "adapter")):
                if path is not None and not Path(path).is_file():
                    raise ServerError(f"llama-server: the {what} file {path} does not exist")
            self.port = _free_port()
            # The server's log stays open for the life of the process (its tail explains a failed start).
            if self.log_file is not None:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
                self._log = self.log_file.open("ab+")
            else:
                self._log = tempfile.TemporaryFile()  # noqa: SIM115
            try:
                self._process = subprocess.Popen(
                    self.command(self.port), stdout=self._log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            except OSError as exc:
                raise ServerError(f"llama-server {self.binary} did not start: {exc}") from exc
            atexit.register(self.stop)
            self._wait_ready()
            log.info("llama-server on %s: %s (%d slots, %d threads)", self.url, self.model.name, self.slots,
                     self.threads)
            return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        assert self._process is not None
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise ServerError(f"llama-server exited with code {code} while loading {self.model.name}: "
                                  f"{self._log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise ServerError(
            f"llama-server did not get ready within {self.start_timeout_s:.0f} s: {self._log_tail()}"
        )

    def _log_tail(self, chars: int = 1500) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            self._log.seek(0)
            text = self._log.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return " ".join(text[-chars:].split())

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        with self._lock:
            process, self._process = self._process, None
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if self._log is not None:
                with contextlib.suppress(OSError):
                    self._log.close()
                self._log = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class ServerSpec:
    """What a server runs: a local model name or .gguf `model`, optionally with a peft LoRA `adapter`
    folder (exported once for llama.cpp), and how. Resolving it (assembling a local model, exporting the
    adapter) waits until the first request. `servers` > 1 splits the slots and threads between that many
    processes: one server samples all its slots in one loop, which bounds a GPU's throughput (seen on an
    H200 with 128 slots: the GPU busy 0-49% of the time while the server used 3 cores)."""

    binary: Path
    model: str
    cache_dir: Path
    adapter: Path | None = None
    slots: int = 4
    threads: int | None = None
    context_per_slot: int = 4096
    extra_args: tuple[str, ...] = ()
    servers: int = 1

    @property
    def identity(self) -> str:
        """The model's name in cache keys and run records, as the in-process engine names it."""
        return self.model + (f"+{adapter_fingerprint(self.adapter)}" if self.adapter is not None else "")


_SERVERS: dict[ServerSpec, list[LlamaServer]] = {}
_SERVERS_LOCK = threading.Lock()


def shared_servers(spec: ServerSpec) -> list[LlamaServer]:
    """The running servers of this process for `spec` (started on first use, stopped at exit): every
    backend over the same model shares their slots instead of starting processes of its own."""
    with _SERVERS_LOCK:
        servers = _SERVERS.get(spec)
        if servers is None:
            # Deferred: resolving the model may assemble it from its packages (once).
            from synthkg.llm.llamacpp import exported_adapter

            model = resolve_model_path(spec.model, spec.cache_dir)
            lora = exported_adapter(spec.adapter, model, spec.cache_dir) if spec.adapter is not None else None
            count = max(1, spec.servers)
            threads = max(1, (spec.threads or default_threads()) // count)
            servers = [
                LlamaServer(
                    spec.binary, model, lora=lora, slots=-(-spec.slots // count), threads=threads,
                    context_per_slot=spec.context_per_slot, extra_args=spec.extra_args,
                )
                for _ in range(count)
            ]
            _SERVERS[spec] = servers
    return [server.start() for server in servers]


def stop_servers() -> None:
    """Stop every shared server of this process (they also stop at interpreter exit)."""
    with _SERVERS_LOCK:
        servers = [server for group in _SERVERS.values() for server in group]
        _SERVERS.clear()
    for server in servers:
        server.stop()


# --- the backend --------------------------------------------------------------------------------------


class LlamaServerBackend:
    """A ChatBackend over a llama-server: greedy by default, JSON schema or GBNF grammar constrained in
    the server, answers streamed and cut when `stop_when` (called on the growing answer) says it loops
    (finish_reason "loop"). Thread-safe: calls from several threads run in the server's slots at once.

    `server` is a running `LlamaServer` or a `ServerSpec` (its shared servers start on the first call;
    each call goes to the one with the fewest calls in flight).
    `model` (the identity in cache keys and run records; default: the spec's) names the model and adapter
    the same way the in-process llama.cpp backend does, so both engines share cached calls."""

    name = "llamacpp"

    def __init__(
        self,
        server: LlamaServer | ServerSpec,
        model: str | None = None,
        *,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        repeat_penalty: float = 1.1,
        seed: int = 0,
        timeout_s: float = 1800.0,
    ) -> None:
        self._spec = server if isinstance(server, ServerSpec) else None
        self._servers: list[LlamaServer] | None = [server] if isinstance(server, LlamaServer) else None
        self._in_flight: dict[int, int] = {}  # calls in flight per server (by its place in the list)
        self._pick_lock = threading.Lock()
        if model is None and self._spec is None:
            raise ValueError("name the model of a running server")
        self.model = model if model is not None else self._spec.identity  # type: ignore[union-attr]
        self.temperature, self.max_tokens = temperature, max_tokens
        self.repeat_penalty, self.seed = repeat_penalty, seed
        self.timeout_s = timeout_s
        self.parallel = server.slots  # requests worth keeping in flight
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10.0))

    @property
    def servers(self) -> list[LlamaServer]:
        """The servers (the given one, or the spec's shared ones, started on first use)."""
        if self._servers is None:
            assert self._spec is not None
            self._servers = shared_servers(self._spec)
        return self._servers

    @property
    def server(self) -> LlamaServer:
        """The first server, running (restarted if it died)."""
        return self.servers[0].start()

    @contextlib.contextmanager
    def _slot(self) -> Iterator[LlamaServer]:
        """The running server with the fewest calls in flight, held for one call."""
        servers = self.servers
        with self._pick_lock:
            index = min(range(len(servers)), key=lambda i: self._in_flight.get(i, 0))
            self._in_flight[index] = self._in_flight.get(index, 0) + 1
        try:
            yield servers[index].start()  # restarted if it died
        finally:
            with self._pick_lock:
                self._in_flight[index] -= 1

    def chat(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        grammar: str | None = None,
        stop_when: Stop | None = None,
    ) -> ChatResult:
        body: dict[str, Any] = {
            "messages": messages,
            "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
            "temperature": self.temperature if temperature is None else temperature,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed,
            "stream": True,
            "stream_options": {"include_usage": True},
            "cache_prompt": True,
        }
        if grammar is not None:
            body["grammar"] = grammar
        elif json_schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {"schema": json_schema}}
        start = time.perf_counter()
        try:
            with self._slot() as server:
                text, finish, usage, pieces = self._stream(server, body, stop_when)
        except httpx.HTTPError as exc:
            raise LLMError(self._describe(exc)) from exc
        seconds = time.perf_counter() - start
        completion = int(usage.get("completion_tokens", pieces))
        prompt = int(usage.get("prompt_tokens", 0)) or self._count_prompt(messages)
        extra = {"engine": "llama-server", "prompt_tokens_reused": usage.get("prompt_tokens_reused")}
        return ChatResult(text=text, prompt_tokens=prompt, completion_tokens=completion, finish_reason=finish,
                          seconds=seconds, extra=extra)

    def _stream(
        self, server: LlamaServer, body: dict[str, Any], stop_when: Stop | None
    ) -> tuple[str, str, dict[str, Any], int]:
        parts: list[str] = []
        finish, usage, pieces, unchecked = "stop", {}, 0, 0
        timings: dict[str, Any] = {}
        with self._client.stream("POST", server.url + "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                detail = response.read().decode("utf-8", "replace")[:500]
                raise LLMError(f"llama-server ({self.model}) answered HTTP {response.status_code}: {detail}")
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:].strip()
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if event.get("usage"):
                    usage = event["usage"]
                if event.get("timings"):
                    timings = event["timings"]
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        parts.append(piece)
                        pieces += 1
                        unchecked += len(piece)
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                # Checking every ~40 characters keeps the guard's cost negligible next to decoding.
                if stop_when is not None and unchecked >= 40:
                    unchecked = 0
                    if stop_when("".join(parts)):
                        finish = "loop"
                        break  # leaving the block closes the connection: the server drops the sequence
        if timings.get("cache_n") is not None:
            usage = {**usage, "prompt_tokens_reused": timings["cache_n"]}
        return "".join(parts), finish, usage, pieces

    def _count_prompt(self, messages: list[Message]) -> int:
        """Prompt tokens of a stopped stream (the server reports usage only at the end)."""
        try:
            prompt = self._client.post(self.server.url + "/apply-template", json={"messages": messages})
            content = {"content": prompt.json()["prompt"]}
            tokens = self._client.post(self.server.url + "/tokenize", json=content)
            return len(tokens.json()["tokens"])
        except (httpx.HTTPError, KeyError, ValueError):
            return 0

    def _describe(self, exc: BaseException) -> str:
        if not self._servers:
            return f"llama-server ({self.model}, not started) failed: {exc}"
        where = "; ".join(f"{s.url}, {'running' if s.alive() else 'stopped'}" for s in self._servers)
        return f"llama-server ({self.model}, {where}) failed: {exc}"

    def close(self) -> None:
        """Close the HTTP client; a server this backend was given is stopped, shared ones keep running
        for other backends (see `stop_servers`)."""
        self._client.close()
        if self._spec is None and self._servers:
            self._servers[0].stop()


# --- command line ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m synthkg.llm.llama_server",
        description="Build or locate the llama-server binary synthkg runs local models with.",
    )
    parser.add_argument("command", choices=("build", "path"),
                        help="build: compile it (once; ~6 min on 2 cores); path: print where it is")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: synthkg's cache directory")
    parser.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: all cores)")
    parser.add_argument("--source", type=Path, default=None,
                        help="build from this llama-cpp-python sdist or llama.cpp folder/.tar.gz (offline) "
                        "instead of downloading the installed release's sdist")
    parser.add_argument("--cuda-arch", default=None,
                        help="build for NVIDIA GPUs of this architecture (e.g. 90 for H100/H200; needs "
                        "nvcc), as llama-server-cuda; run models on it with [llm] gpu_layers")
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir or default_cache_dir()
    try:
        if args.command == "build":
            logging.basicConfig(level=logging.INFO, format="%(message)s")
            print(build_server(cache_dir, jobs=args.jobs, source=args.source, cuda_arch=args.cuda_arch))
        else:
            print(server_binary(cache_dir))
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
