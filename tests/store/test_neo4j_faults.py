"""Neo4jStore against a real Bolt server (ArcadeDB) when things go wrong: the server dies in the middle
of an ingest, is unreachable or refuses the password, writers race on the same keys, and names or
predicates are made of Cypher syntax."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from neo4j import GraphDatabase
from neo4j.exceptions import Neo4jError

from eval.benchmarks.store_bench import expected_counts, synthetic_batches
from eval.bolt_server import ArcadeDBServer, free_port
from synthkg.config import StoreSettings
from synthkg.model import Chunk, Document, Entity, GraphBatch, Proposition, Relation, StoreCounts
from synthkg.store import open_store
from synthkg.store.base import StoreError, StoreUnavailableError
from synthkg.store.neo4j import Neo4jStore, is_retryable

pytestmark = pytest.mark.neo4j

# Per label / relationship type: how many there are, and how many distinct keys they have.
DUPLICATE_CHECKS = {
    label: f"MATCH (n:{label}) RETURN count(n) AS n, count(DISTINCT n.id) AS d"
    for label in ("Document", "Chunk", "Proposition", "Entity")
} | {
    "RELATED": "MATCH ()-[r:RELATED]->() RETURN count(r) AS n, count(DISTINCT r.id) AS d",
    **{
        rel: f"MATCH (a)-[:{rel}]->(b) RETURN count(*) AS n, count(DISTINCT a.id + '|' + b.id) AS d"
        for rel in ("HAS_CHUNK", "HAS_PROPOSITION", "MENTIONS")
    },
}


def graph_census(uri: str, user: str, password: str, database: str) -> dict[str, tuple[int, int]]:
    """{label or type: (count, distinct keys)}, read with a driver of its own."""
    with GraphDatabase.driver(uri, auth=(user, password)) as driver:
        return {
            name: (records[0]["n"], records[0]["d"])
            for name, query in DUPLICATE_CHECKS.items()
            for records in [driver.execute_query(query, database_=database).records]
        }


def kill_once_writes_land(server: ArcadeDBServer, killed: threading.Event, stop: threading.Event) -> None:
    """SIGKILL the server as soon as the first transaction of the ingest has committed."""
    with GraphDatabase.driver(server.uri, auth=(server.username, server.password)) as driver:
        while not stop.is_set():
            try:
                records, _, _ = driver.execute_query(
                    "MATCH (p:Proposition) RETURN count(p) AS n", database_=server.database
                )
            except Neo4jError:
                records = []
            if records and records[0]["n"] > 0:
                server.kill()
                killed.set()
                return
            time.sleep(0.02)


def test_server_killed_mid_ingest_then_rerun_leaves_no_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "arcadedb"
    password = "fault-" + secrets.token_hex(12)
    batches = list(synthetic_batches(3_000, batch_relations=500, seed=7))
    expected = expected_counts(batches)
    mentions = sum(len(p.entity_ids) for b in batches for p in b.propositions)
    first = ArcadeDBServer(root=root, password=password, heap="512m")
    second = ArcadeDBServer(root=root, password=password, heap="512m")
    try:
        first.start()
        killed, stop = threading.Event(), threading.Event()
        killer = threading.Thread(target=kill_once_writes_land, args=(first, killed, stop), daemon=True)
        store = Neo4jStore(first.uri, first.username, password, first.database,
                           batch_size=200, max_retries=2, retry_wait=0.05)
        killer.start()
        try:
            with pytest.raises(StoreUnavailableError) as caught:
                for batch in batches:
                    store.write(batch)
        finally:
            stop.set()
            killer.join(timeout=30)
            store.close()
        assert killed.is_set()
        message = str(caught.value)
        assert first.uri in message
        assert "unavailable after 3 attempt(s)" in message
        assert password not in message and password not in repr(caught.value)

        # The same root after a crash: the committed part of the ingest is there, and rerunning the
        # whole ingest completes it without duplicating anything.
        second.start()
        store = Neo4jStore(second.uri, second.username, password, second.database, batch_size=200)
        try:
            partial = store.counts()
            assert 0 < partial.propositions < expected.propositions
            for batch in batches:
                store.write(batch)
            assert store.counts() == expected
        finally:
            store.close()
        census = graph_census(second.uri, second.username, password, second.database)
        assert {name: n for name, (n, _) in census.items()} == {
            "Document": expected.documents,
            "Chunk": expected.chunks,
            "Proposition": expected.propositions,
            "Entity": expected.entities,
            "RELATED": expected.relations,
            "HAS_CHUNK": expected.chunks,
            "HAS_PROPOSITION": expected.propositions,
            "MENTIONS": mentions,
        }
        assert all(n == distinct for n, distinct in census.values()), census
    finally:
        first.stop()
        second.stop()


def test_which_server_errors_are_retried() -> None:
    """The races of concurrent writers of the same ids are retried; errors of the query itself are not.
    (`_hydrate_neo4j` is how the driver builds the error of a server's FAILURE message.)"""

    def failure(code: str, message: str) -> Neo4jError:
        return Neo4jError._hydrate_neo4j(code=code, message=message)

    retried = [
        failure("Neo.TransientError.Transaction.DeadlockDetected", "concurrent modification on page 3"),
        failure("Neo.ClientError.Schema.ConstraintValidationFailed", "Duplicated key [abc] found on index"),
        failure("Neo.ClientError.Statement.EntityNotFound", "Record #12:7 not found"),
        failure("Neo.ClientError.Statement.ExecutionFailed", "Duplicated key [abc] on index 'Entity[id]'"),
    ]
    not_retried = [
        failure("Neo.ClientError.Statement.SyntaxError", "Invalid input 'MERGEE'"),
        failure("Neo.ClientError.Statement.ParameterMissing", "Expected parameter(s): rows"),
        failure("Neo.ClientError.Security.Unauthorized", "wrong password"),
    ]
    assert all(is_retryable(e) for e in retried)
    assert not any(is_retryable(e) for e in not_retried)
    assert not is_retryable(ValueError("not a server error"))


def test_unreachable_server_fails_fast_with_a_clear_error() -> None:
    uri = f"bolt://127.0.0.1:{free_port()}"
    password = "never-shown-" + secrets.token_hex(8)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=f"cannot reach Neo4j at {uri}") as caught:
        Neo4jStore(uri, "neo4j", password, "neo4j")
    assert time.monotonic() - started < 10
    assert password not in str(caught.value)


def test_wrong_password_is_a_store_error_without_the_password(bolt_server: Any) -> None:
    password = "wrong-" + secrets.token_hex(8)
    with pytest.raises(StoreError, match="rejected the credentials of user 'root'") as caught:
        Neo4jStore(bolt_server.uri, bolt_server.username, password, bolt_server.database)
    assert not isinstance(caught.value, StoreUnavailableError)
    assert password not in str(caught.value)


def test_invalid_uri_is_a_store_error() -> None:
    for uri in ("http://127.0.0.1:7474", "127.0.0.1:7687", "bolt://127.0.0.1:notaport"):
        with pytest.raises(StoreError, match="invalid Neo4j URI"):
            Neo4jStore(uri, "neo4j", "password", "neo4j")


def test_open_store_from_settings(bolt_server: Any) -> None:
    settings = StoreSettings(
        backend="neo4j",
        neo4j_uri=bolt_server.uri,
        neo4j_username=bolt_server.username,
        neo4j_password=bolt_server.password,
        neo4j_database=bolt_server.database,
        batch_size=7,
        max_retries=1,
    )
    with open_store(settings) as store:
        assert isinstance(store, Neo4jStore)
        assert (store.batch_size, store.max_retries) == (7, 1)
        assert bolt_server.password not in repr(store)
        store.clear()
        # more rows than one statement takes: the write is split and still complete
        entities = [Entity.create(f"settings entity {i}") for i in range(30)]
        store.upsert_entities(entities)
        assert store.counts().entities == 30
        store.clear()


def test_concurrent_writers_of_the_same_keys_retry_and_never_duplicate(bolt_server: Any) -> None:
    """ArcadeDB reports two MERGEs racing on one unique id as a constraint error; the store retries."""
    stores = [
        Neo4jStore(bolt_server.uri, bolt_server.username, bolt_server.password, bolt_server.database,
                   batch_size=100, max_retries=10, retry_wait=0.05)
        for _ in range(4)
    ]
    stores[0].clear()
    batch = next(synthetic_batches(300, batch_relations=300, seed=3))
    errors: list[BaseException] = []

    def ingest(store: Neo4jStore, reverse: bool) -> None:
        ordered = GraphBatch(
            documents=batch.documents,
            chunks=batch.chunks,
            entities=batch.entities[::-1] if reverse else batch.entities,
            propositions=batch.propositions,
            relations=batch.relations[::-1] if reverse else batch.relations,
        )
        try:
            for _ in range(2):
                store.write(ordered)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(s, i % 2 == 1)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, "\n".join(str(e) for e in errors)  # whole messages: which error was not retried
        assert stores[0].counts() == expected_counts([batch])
        census = graph_census(
            bolt_server.uri, bolt_server.username, bolt_server.password, bolt_server.database
        )
        assert all(n == distinct for n, distinct in census.values()), census
    finally:
        stores[0].clear()
        for s in stores:
            s.close()


CYPHER_SPECIAL = [
    "'}) DETACH DELETE n //",
    '"}) MATCH (n) DETACH DELETE n //',
    "`Entity`) DETACH DELETE n //",
    "x`]->() DELETE r //",
    "$x",
    "{id: $id}",
    "line one\nline two\r\n// comment",
    "*/ MATCH (n) DELETE n /*",
    "RELATED*1..5",
]


def test_cypher_special_names_and_predicates_round_trip_and_delete_nothing(bolt_server: Any) -> None:
    server = bolt_server
    with Neo4jStore(server.uri, server.username, server.password, server.database) as store:
        store.clear()  # type: ignore[attr-defined]
        canary = Entity.create("Canary")
        bystander = Entity.create("Bystander")  # in no document: no delete may touch it
        store.upsert_entities([canary, bystander])
        doc = Document.create("hostile", key="hostile")
        chunk = Chunk.create(doc.id, 0, "hostile")
        entities = [Entity.create(name, type=name, aliases=[name + " alias"]) for name in CYPHER_SPECIAL]
        props = [Proposition.create(chunk.id, f"fact {i}: {name}", [e.id, canary.id])
                 for i, (name, e) in enumerate(zip(CYPHER_SPECIAL, entities, strict=True))]
        rels = [Relation.create(e.id, name, canary.id, p.id)
                for name, e, p in zip(CYPHER_SPECIAL, entities, props, strict=True)]
        store.write(GraphBatch(documents=[doc], chunks=[chunk], entities=entities, propositions=props,
                               relations=rels))

        n = len(CYPHER_SPECIAL)
        written = StoreCounts(documents=1, chunks=1, entities=n + 2, propositions=n, relations=n)
        assert store.counts() == written
        for name, entity, rel in zip(CYPHER_SPECIAL, entities, rels, strict=True):
            assert store.get_entity(entity.id) == entity
            assert [e.id for e in store.find_entities(name)] == [entity.id]
            assert [e.id for e in store.find_entities(name + " alias")] == [entity.id]
            assert store.get_relation(rel.id) == rel
        assert {r.predicate for r in store.iter_relations()} == {r.predicate for r in rels}
        assert {e.id for e in store.neighbors([canary.id], hops=2)} == {e.id for e in entities}

        # the hop count is the one value formatted into a query: anything but an int is refused
        for hops in ("1]-() DETACH DELETE n //", 1.5, True, -1):
            with pytest.raises(ValueError, match="hops"):
                store.neighbors([canary.id], hops=hops)  # type: ignore[arg-type]
        assert store.counts().entities == n + 2

        # deleting the document takes its records and the entities only it mentioned (the canary too)
        removed = store.delete_document(doc.id)
        assert removed == StoreCounts(documents=1, chunks=1, entities=n + 1, propositions=n, relations=n)
        assert store.counts() == StoreCounts(entities=1)
        assert store.get_entity(bystander.id) == bystander


def test_relation_to_a_missing_entity_is_refused_and_rolled_back(bolt_server: Any) -> None:
    server = bolt_server
    with Neo4jStore(server.uri, server.username, server.password, server.database) as store:
        store.clear()  # type: ignore[attr-defined]
        known = Entity.create("Known")
        ghost = Entity.create("Ghost")
        relation = Relation.create(known.id, "haunts", ghost.id, "prop:none")
        with pytest.raises(StoreError, match=f"1 relation.*{relation.id}.*write the entities first"):
            store.write(GraphBatch(entities=[known], relations=[relation]))
        assert store.counts() == StoreCounts()  # the batch fitted one transaction: nothing was kept
        store.write(GraphBatch(entities=[known, ghost], relations=[relation]))
        assert store.get_relation(relation.id) == relation
