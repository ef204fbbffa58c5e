"""Shared fixtures. `graph_store` runs every conformance test against both stores: the embedded store
in a temp dir and the Neo4j store against a real ArcadeDB Bolt server started for the session.

Set SYNTHKG_SKIP_BOLT=1 to skip the Bolt-server tests locally; CI never sets it, and there a Bolt server
that fails to start is an error, not a skip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from synthkg.store.base import GraphStore


@dataclass(frozen=True)
class ExternalBoltServer:
    uri: str
    username: str
    password: str
    database: str


@pytest.fixture(scope="session")
def bolt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real ArcadeDB server (Bolt on loopback), started from the arcadedb-embedded wheel and
    stopped by PID at the end of the session."""
    if os.environ.get("SYNTHKG_SKIP_BOLT") == "1":
        if os.environ.get("CI"):
            pytest.fail("SYNTHKG_SKIP_BOLT=1 is not allowed in CI: the Bolt-server tests must run")
        pytest.skip("SYNTHKG_SKIP_BOLT=1")
    if os.environ.get("SYNTHKG_TEST_BOLT_URI"):
        # A server started by scripts/test.sh (stopped there by PID).
        yield ExternalBoltServer(
            uri=os.environ["SYNTHKG_TEST_BOLT_URI"],
            username=os.environ.get("SYNTHKG_TEST_BOLT_USER", "root"),
            password=os.environ["SYNTHKG_TEST_BOLT_PASSWORD"],
            database=os.environ.get("SYNTHKG_TEST_BOLT_DATABASE", "graph"),
        )
        return
    from eval.bolt_server import ArcadeDBServer

    server = ArcadeDBServer(root=tmp_path_factory.mktemp("arcadedb"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def graph_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """A fresh, empty store of each kind."""
    if request.param == "embedded":
        from synthkg.store.embedded import EmbeddedStore

        store: GraphStore = EmbeddedStore(tmp_path / "store")
    else:
        from synthkg.store.neo4j import Neo4jStore

        server = request.getfixturevalue("bolt_server")
        store = Neo4jStore(
            uri=server.uri, username=server.username, password=server.password, database=server.database
        )
        store.clear()  # type: ignore[attr-defined]
    try:
        yield store
    finally:
        store.close()
