"""The ArcadeDB Bolt server that the neo4j tests run against: started as a separate Java process,
answering through the official driver, and stopped by PID without leaving a process behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from neo4j import GraphDatabase
from neo4j.exceptions import ServiceUnavailable

from eval.bolt_server import ArcadeDBServer, BoltServerError, pid_alive

pytestmark = pytest.mark.neo4j

REPO = Path(__file__).resolve().parents[2]


def return_one(uri: str, user: str, password: str, database: str) -> int:
    with (
        GraphDatabase.driver(uri, auth=(user, password), connection_timeout=5) as driver,
        driver.session(database=database) as session,
    ):
        record = session.run("RETURN 1 AS ok").single(strict=True)
    return int(record["ok"])


def java_processes_on(root: Path) -> list[int]:
    """PIDs of live ArcadeDB servers whose root is `root`, read from /proc."""
    marker = f"-Darcadedb.server.rootPath={root.resolve()}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in args and pid_alive(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def test_session_server_answers_return_1(bolt_server: Any) -> None:
    assert bolt_server.uri.startswith("bolt://127.0.0.1:")
    assert return_one(bolt_server.uri, bolt_server.username, bolt_server.password, bolt_server.database) == 1


def test_start_and_stop_by_pid(tmp_path: Path) -> None:
    root = tmp_path / "adb"
    with ArcadeDBServer(root=root, heap="512m") as server:
        pid = server.pid
        assert pid is not None and pid != os.getpid()
        assert java_processes_on(root) == [pid]
        assert (root / "arcadedb.pid").read_text().strip() == str(pid)
        assert server.uri == f"bolt://127.0.0.1:{server.bolt_port}"
        assert return_one(server.uri, "root", server.password, "graph") == 1
        # the password reaches the server through a private file, never its command line
        assert server.password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert (root / ".root-password").stat().st_mode & 0o077 == 0
        uri, password = server.uri, server.password
    assert not pid_alive(pid)
    assert java_processes_on(root) == []
    assert not (root / "arcadedb.pid").exists()
    assert server.pid is None
    with pytest.raises(ServiceUnavailable):
        return_one(uri, "root", password, "graph")
    server.stop()  # stopping twice is harmless


def test_restart_on_same_root_keeps_data_and_password(tmp_path: Path) -> None:
    root = tmp_path / "adb"
    password = "restart-test-password"
    with (
        ArcadeDBServer(root=root, password=password, heap="512m") as server,
        GraphDatabase.driver(server.uri, auth=("root", password)) as driver,
    ):
        driver.execute_query("CREATE (:Marker {v: 42})", database_="graph")
    wrong = ArcadeDBServer(root=root, password="another-password-123", heap="512m")
    with pytest.raises(BoltServerError, match="refused the root password"):
        wrong.start()
    assert java_processes_on(root) == []
    with (
        ArcadeDBServer(root=root, password=password, heap="512m") as server,
        GraphDatabase.driver(server.uri, auth=("root", password)) as driver,
    ):
        records, _, _ = driver.execute_query("MATCH (m:Marker) RETURN m.v AS v", database_="graph")
        assert [r["v"] for r in records] == [42]


def test_failed_start_reports_the_log_and_leaves_no_process(tmp_path: Path) -> None:
    root = tmp_path / "adb"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = ArcadeDBServer(root=root, bolt_port=busy.getsockname()[1], heap="512m")
        with pytest.raises(BoltServerError) as caught:
            server.start(timeout=60)
    message = str(caught.value)
    assert "Unable to listen for BOLT connections" in message  # the tail of server.log
    assert str(root / "server.log") in message
    assert server.pid is None
    assert java_processes_on(root) == []


def test_short_password_is_refused_before_starting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 8 characters"):
        ArcadeDBServer(root=tmp_path, password="short")


def test_shell_script_starts_in_background_and_stops_by_pid(tmp_path: Path) -> None:
    root = tmp_path / "adb"
    env = {**os.environ, "SYNTHKG_BOLT_ROOT": str(root), "PYTHON": sys.executable}
    script = str(REPO / "scripts" / "bolt-server.sh")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([script, *args], env=env, capture_output=True, text=True, timeout=120)

    password = "script-test-password"
    try:
        started = run("start", "--password", password, "--print-port", "--heap", "512m")
        assert started.returncode == 0, started.stderr
        port = int(started.stdout.strip())
        assert f"bolt://127.0.0.1:{port}" in started.stderr
        pid = int((root / "arcadedb.pid").read_text())
        assert java_processes_on(root) == [pid]
        assert run("status").returncode == 0
        assert return_one(f"bolt://127.0.0.1:{port}", "root", password, "graph") == 1
        assert run("start").returncode == 1  # already running: refuses a second server on ROOT

        stopped = run("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert not pid_alive(pid)
        assert not (root / "arcadedb.pid").exists()
        assert run("status").returncode == 3
        assert run("stop").returncode == 0  # nothing to stop is not an error
    finally:
        for pid in java_processes_on(root):
            os.kill(pid, 9)
    assert run("bogus").returncode == 2
