"""GraphStore over the official `neo4j` driver: Neo4j 5, or any Bolt server that speaks its Cypher
(ArcadeDB is the one the tests run against).

Portable Cypher only: no APOC, no dynamic labels, no fulltext/vector index DDL; every node gets its one
label when it is created. Everything that came from a document or an LLM travels as a query parameter;
the only value formatted into a query is the validated hop count of a variable-length path.

Writes are UNWIND + MERGE on the content-hash ids, `batch_size` rows per statement. A `write()` is one
transaction while it needs at most `TX_BATCHES` statements; a larger one commits every TX_BATCHES
statements, which is safe because every statement is idempotent (rerunning a failed write completes
it and duplicates nothing). Transient failures are retried with exponential backoff, then reported as
StoreUnavailableError naming the server, never the password.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, LiteralString, TypeVar, cast
from urllib.parse import urlsplit

from neo4j import Driver, GraphDatabase, Query, Record, Transaction
from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConfigurationError,
    ConstraintError,
    DriverError,
    IncompleteCommit,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from synthkg.config import redact_url
from synthkg.model import (
    Chunk,
    Document,
    Entity,
    GraphBatch,
    Proposition,
    Relation,
    StoreCounts,
    Subgraph,
    normalize_name,
)
from synthkg.store.base import GraphStore, StoreError, StoreUnavailableError

if TYPE_CHECKING:
    from synthkg.config import StoreSettings

T = TypeVar("T")
Row = Record | Mapping[str, Any]  # a result record with the columns a converter below reads

MAX_HOPS = 5
TX_BATCHES = 10  # statements of `batch_size` rows per transaction (see the module docstring)

SCHEMA: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT synthkg_document_id IF NOT EXISTS FOR (n:Document) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT synthkg_chunk_id IF NOT EXISTS FOR (n:Chunk) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT synthkg_proposition_id IF NOT EXISTS FOR (n:Proposition) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT synthkg_entity_id IF NOT EXISTS FOR (n:Entity) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX synthkg_entity_name IF NOT EXISTS FOR (n:Entity) ON (n.normalized_name)",
    "CREATE INDEX synthkg_chunk_document IF NOT EXISTS FOR (n:Chunk) ON (n.document_id)",
    "CREATE INDEX synthkg_proposition_chunk IF NOT EXISTS FOR (n:Proposition) ON (n.chunk_id)",
    "CREATE INDEX synthkg_related_id IF NOT EXISTS FOR ()-[r:RELATED]-() ON (r.id)",
    "CREATE INDEX synthkg_related_proposition IF NOT EXISTS FOR ()-[r:RELATED]-() ON (r.proposition_id)",
)

# --- writes: one UNWIND statement per record kind, MERGE on id ------------------------------------
UPSERT_DOCUMENTS: LiteralString = """
UNWIND $rows AS row
MERGE (d:Document {id: row.id})
SET d.title = row.title, d.text = row.text, d.source = row.source, d.content_hash = row.content_hash,
    d.metadata_json = row.metadata_json
"""

# The HAS_CHUNK edge needs the document; the chunk itself is written (and findable by its
# document_id property) even when the document is not there yet.
UPSERT_CHUNKS: LiteralString = """
UNWIND $rows AS row
MERGE (c:Chunk {id: row.id})
SET c.document_id = row.document_id, c.index = row.index, c.text = row.text,
    c.original_text = row.original_text, c.decontextualized = row.decontextualized
WITH c, row
MATCH (d:Document {id: row.document_id})
MERGE (d)-[:HAS_CHUNK]->(c)
"""

# Aliases are a union; a non-empty type/description replaces, an empty one keeps what is there.
UPSERT_ENTITIES: LiteralString = """
UNWIND $rows AS row
MERGE (e:Entity {id: row.id})
SET e.name = row.name, e.normalized_name = row.normalized_name,
    e.type = CASE WHEN row.type = '' THEN coalesce(e.type, '') ELSE row.type END,
    e.description = CASE WHEN row.description = '' THEN coalesce(e.description, '') ELSE row.description END,
    e.aliases = coalesce(e.aliases, []) + [a IN row.aliases WHERE NOT a IN coalesce(e.aliases, [])],
    e.alias_keys = coalesce(e.alias_keys, [])
        + [k IN row.alias_keys WHERE NOT k IN coalesce(e.alias_keys, [])]
"""

UPSERT_PROPOSITIONS: LiteralString = """
UNWIND $rows AS row
MERGE (p:Proposition {id: row.id})
SET p.chunk_id = row.chunk_id, p.text = row.text, p.entity_ids = row.entity_ids
WITH p, row
OPTIONAL MATCH (p)-[m:MENTIONS]->(old:Entity)
WHERE NOT old.id IN row.entity_ids
DELETE m
WITH DISTINCT p, row
MATCH (c:Chunk {id: row.chunk_id})
MERGE (c)-[:HAS_PROPOSITION]->(p)
"""

UPSERT_MENTIONS: LiteralString = """
UNWIND $rows AS row
MATCH (p:Proposition {id: row.proposition_id})
MATCH (e:Entity {id: row.entity_id})
MERGE (p)-[:MENTIONS]->(e)
"""

# An edge needs both entities: a row whose subject or object is missing matches nothing, and the caller
# refuses the write (see _run_all).
UPSERT_RELATIONS: LiteralString = """
UNWIND $rows AS row
MATCH (s:Entity {id: row.subject_id})
MATCH (o:Entity {id: row.object_id})
MERGE (s)-[r:RELATED {id: row.id}]->(o)
SET r.predicate = row.predicate, r.proposition_id = row.proposition_id
RETURN collect(row.id) AS written
"""

# --- reads ----------------------------------------------------------------------------------------
def _columns(*fields: LiteralString) -> LiteralString:
    """`n.f AS f, ...` for the node bound to `n`: plain values hydrate about twice as fast as whole
    nodes (measured on ArcadeDB), and the records read like the property dicts."""
    return ", ".join("n." + f + " AS `" + f + "`" for f in fields)  # quoted: `index` is a keyword


DOCUMENT_COLUMNS = _columns("id", "title", "text", "source", "content_hash", "metadata_json")
CHUNK_COLUMNS = _columns("id", "document_id", "index", "text", "original_text", "decontextualized")
ENTITY_COLUMNS = _columns("id", "name", "normalized_name", "type", "aliases", "description")
PROPOSITION_COLUMNS = _columns("id", "chunk_id", "text", "entity_ids")
RELATION_FIELDS: LiteralString = (
    "r.id AS id, s.id AS subject_id, r.predicate AS predicate, o.id AS object_id, "
    "r.proposition_id AS proposition_id"
)
GET_RELATIONS: LiteralString = (
    "MATCH (s:Entity)-[r:RELATED]->(o:Entity) WHERE r.id IN $ids RETURN " + RELATION_FIELDS
)
FIND_ENTITIES: LiteralString = (
    "MATCH (n:Entity) WHERE n.normalized_name = $key RETURN " + ENTITY_COLUMNS
    + " UNION MATCH (n:Entity) WHERE $key IN n.alias_keys RETURN " + ENTITY_COLUMNS
)
PROPOSITIONS_OF_ENTITY: LiteralString = (
    "MATCH (n:Proposition)-[:MENTIONS]->(:Entity {id: $id}) RETURN " + PROPOSITION_COLUMNS + " ORDER BY id"
)
CHUNKS_OF_DOCUMENT: LiteralString = (
    "MATCH (n:Chunk) WHERE n.document_id = $id RETURN " + CHUNK_COLUMNS + " ORDER BY `index`, id"
)
PROPOSITIONS_OF_CHUNKS: LiteralString = (
    "MATCH (n:Proposition) WHERE n.chunk_id IN $ids RETURN " + PROPOSITION_COLUMNS + " ORDER BY id"
)
RELATIONS_OF_PROPOSITIONS: LiteralString = (
    "MATCH (s:Entity)-[r:RELATED]->(o:Entity) WHERE r.proposition_id IN $ids RETURN "
    + RELATION_FIELDS
    + " ORDER BY r.id"
)
ENTITIES_BY_ID: LiteralString = (
    "MATCH (n:Entity) WHERE n.id IN $ids RETURN " + ENTITY_COLUMNS + " ORDER BY id"
)
RELATIONS_AMONG: LiteralString = (
    "MATCH (s:Entity)-[r:RELATED]->(o:Entity) WHERE s.id IN $ids AND o.id IN $ids RETURN "
    + RELATION_FIELDS
    + " ORDER BY r.id"
)
COUNT_QUERIES: dict[str, LiteralString] = {
    "documents": "MATCH (n:Document) RETURN count(n) AS n",
    "chunks": "MATCH (n:Chunk) RETURN count(n) AS n",
    "entities": "MATCH (n:Entity) RETURN count(n) AS n",
    "propositions": "MATCH (n:Proposition) RETURN count(n) AS n",
    "relations": "MATCH (:Entity)-[r:RELATED]->(:Entity) RETURN count(r) AS n",
}

# --- delete_document, in one transaction ----------------------------------------------------------
DOCUMENT_PARTS: LiteralString = """
OPTIONAL MATCH (c:Chunk) WHERE c.document_id = $id
WITH collect(c.id) AS chunk_ids
OPTIONAL MATCH (p:Proposition) WHERE p.chunk_id IN chunk_ids
RETURN chunk_ids, collect(p.id) AS proposition_ids
"""
# Entities the deleted propositions mention or their relations touch: the candidates for removal.
AFFECTED_ENTITIES: LiteralString = """
OPTIONAL MATCH (p:Proposition)-[:MENTIONS]->(m:Entity) WHERE p.id IN $pids
WITH collect(DISTINCT m.id) AS mentioned
OPTIONAL MATCH (s:Entity)-[r:RELATED]->(o:Entity) WHERE r.proposition_id IN $pids
RETURN mentioned, collect(DISTINCT s.id) + collect(DISTINCT o.id) AS endpoints
"""
DELETE_RELATIONS: LiteralString = """
MATCH (:Entity)-[r:RELATED]->(:Entity) WHERE r.proposition_id IN $pids DELETE r RETURN count(r) AS n
"""
DELETE_NODES: dict[str, LiteralString] = {
    "propositions": "MATCH (n:Proposition) WHERE n.id IN $ids DETACH DELETE n RETURN count(n) AS n",
    "chunks": "MATCH (n:Chunk) WHERE n.id IN $ids DETACH DELETE n RETURN count(n) AS n",
    "documents": "MATCH (n:Document) WHERE n.id IN $ids DETACH DELETE n RETURN count(n) AS n",
}
ORPHAN_ENTITIES: LiteralString = """
MATCH (e:Entity) WHERE e.id IN $ids
OPTIONAL MATCH (e)<-[m:MENTIONS]-(:Proposition)
WITH e, count(m) AS mentions WHERE mentions = 0
RETURN collect(e.id) AS ids
"""
RELATIONS_TOUCHING: LiteralString = """
MATCH (s:Entity)-[r:RELATED]-(o:Entity) WHERE s.id IN $ids RETURN count(DISTINCT r) AS n
"""
DELETE_ENTITIES: LiteralString = "MATCH (e:Entity) WHERE e.id IN $ids DETACH DELETE e RETURN count(e) AS n"

CLEAR: LiteralString = """
MATCH (n) WHERE n:Document OR n:Chunk OR n:Proposition OR n:Entity
WITH n LIMIT $limit
DETACH DELETE n
RETURN count(n) AS n
"""

URI_SCHEMES = frozenset({"bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"})
RETRYABLE = (ServiceUnavailable, SessionExpired, TransientError, IncompleteCommit)
ENTITY_NOT_FOUND = "Neo.ClientError.Statement.EntityNotFound"


def is_retryable(exc: BaseException) -> bool:
    """Connection loss, transient server errors, and ArcadeDB's races between concurrent writers of the
    same ids (ids are content hashes, so a retry MERGEs onto the winner's node)."""
    if isinstance(exc, RETRYABLE):
        return True
    if isinstance(exc, Neo4jError) and exc.is_retryable():
        return True
    if isinstance(exc, ConstraintError):
        return True  # every write MERGEs on the constrained id: a violation can only be that race
    if not isinstance(exc, ClientError):
        return False
    # ArcadeDB may report the race as a plain ClientError ("Duplicated key ... found on index"), or
    # report a record that a concurrent writer of the same ids deleted or replaced under this one
    # (seen once in CI: four writers MERGEing one batch) as EntityNotFound; writes are idempotent MERGEs.
    return "duplicat" in str(exc.message).casefold() or exc.code == ENTITY_NOT_FOUND


class Neo4jStore(GraphStore):
    """The knowledge graph in a Neo4j 5 (or Bolt-compatible) database."""

    def __init__(
        self,
        uri: str,
        username: str,
        password: str,
        database: str = "neo4j",
        batch_size: int = 1000,
        max_retries: int = 5,
        *,
        retry_wait: float = 0.5,
        connection_timeout: float = 10.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must be at least 0")
        self.uri = uri
        self.database = database
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.retry_wait = retry_wait
        self._username = username
        self._password = password
        scheme = uri.partition("://")[0] if "://" in uri else ""
        if scheme not in URI_SCHEMES:
            raise StoreError(
                f"invalid Neo4j URI {redact_url(uri)!r}: use bolt://HOST:PORT or neo4j://HOST:PORT"
            )
        try:
            self._driver: Driver = GraphDatabase.driver(
                uri,
                auth=(username, password),
                connection_timeout=connection_timeout,
                connection_acquisition_timeout=connection_timeout * 3,
            )
        except (ValueError, ConfigurationError) as exc:
            raise StoreError(f"invalid Neo4j URI {redact_url(uri)!r}: {self._scrub(str(exc))}") from None
        try:
            try:  # one try, no retries: a wrong address or password should fail fast
                with self._driver.session(database=database) as session:
                    session.run("RETURN 1").consume()
            except ValueError as exc:  # the driver resolves the address only now
                raise StoreError(f"invalid Neo4j URI {redact_url(uri)!r}: {self._scrub(str(exc))}") from None
            except (Neo4jError, DriverError, OSError) as exc:
                raise self._translate(exc, 1) from exc
            self._ensure_schema()
        except BaseException:
            self._driver.close()
            raise

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> Neo4jStore:
        return cls(
            uri=settings.neo4j_uri,
            username=settings.neo4j_username,
            password=settings.neo4j_password.get_secret_value(),
            database=settings.neo4j_database,
            batch_size=settings.batch_size,
            max_retries=settings.max_retries,
        )

    # --- error handling -------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """`text` without the password, given apart or written inside the URI (the driver's own messages
        may quote either)."""
        secrets = [self._password, urlsplit(self.uri).password if "://" in self.uri else None]
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def _describe(self, exc: BaseException) -> str:
        return self._scrub(f"{type(exc).__name__}: {exc}")

    def _translate(self, exc: BaseException, attempts: int) -> StoreError:
        """The user-facing error for a driver exception (the cause chain is kept for debugging)."""
        where = f"Neo4j at {redact_url(self.uri)} (database '{self.database}')"
        if isinstance(exc, AuthError):
            return StoreError(f"{where} rejected the credentials of user '{self._username}'")
        if isinstance(exc, ServiceUnavailable) and attempts <= 1:
            where = redact_url(self.uri)
            return StoreUnavailableError(f"cannot reach Neo4j at {where}: {self._describe(exc)}")
        if isinstance(exc, ServiceUnavailable | SessionExpired | OSError):  # the connection, not the query
            return StoreUnavailableError(
                f"{where} is unavailable after {attempts} attempt(s): {self._describe(exc)}"
            )
        if is_retryable(exc):  # transient server errors and constraint races that did not clear
            return StoreUnavailableError(
                f"{where} still failed after {attempts} attempt(s): {self._describe(exc)}"
            )
        return StoreError(f"{where} failed: {self._describe(exc)}")

    def _retrying(self, work: Callable[[], T]) -> T:
        """Run `work` with bounded retries and backoff; translate what finally escapes."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_exponential(multiplier=self.retry_wait, max=max(self.retry_wait, 8.0)),
            retry=retry_if_exception(is_retryable),
            reraise=False,
        )
        try:
            return retrying(work)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            assert last is not None
            raise self._translate(last, exc.last_attempt.attempt_number) from last
        except (Neo4jError, DriverError, OSError) as exc:
            raise self._translate(exc, 1) from exc

    def _write_tx(self, fn: Callable[[Transaction], T]) -> T:
        """One explicit transaction per attempt (the driver's own managed retries would wait up to
        30 s unbounded by max_retries)."""

        def attempt() -> T:
            with self._driver.session(database=self.database) as session, session.begin_transaction() as tx:
                result = fn(tx)
                tx.commit()
                return result

        return self._retrying(attempt)

    def _read(self, query: LiteralString, **params: Any) -> list[Record]:
        def attempt() -> list[Record]:
            with self._driver.session(database=self.database, default_access_mode="READ") as session:
                return list(session.run(Query(query), params))

        return self._retrying(attempt)

    def _ensure_schema(self) -> None:
        for statement in SCHEMA:
            self._write_tx(lambda tx, s=statement: tx.run(s).consume())

    # --- writes ---------------------------------------------------------------------------------
    def write(self, batch: GraphBatch) -> None:
        propositions = _last_by_id(batch.propositions)
        mentions = [{"proposition_id": p.id, "entity_id": e} for p in propositions for e in p.entity_ids]
        work: list[tuple[LiteralString, list[dict[str, Any]]]] = [
            (UPSERT_DOCUMENTS, [_document_row(d) for d in _last_by_id(batch.documents)]),
            (UPSERT_CHUNKS, [c.model_dump() for c in _last_by_id(batch.chunks)]),
            (UPSERT_ENTITIES, [_entity_row(e) for e in _merge_entities(batch.entities)]),
            (UPSERT_PROPOSITIONS, [_proposition_row(p) for p in propositions]),
            (UPSERT_MENTIONS, mentions),
            (UPSERT_RELATIONS, [r.model_dump() for r in _last_by_id(batch.relations)]),
        ]
        # Statements of `batch_size` rows, grouped into transactions of TX_BATCHES statements.
        statements = [
            (query, rows[i : i + self.batch_size])
            for query, rows in work
            for i in range(0, len(rows), self.batch_size)
        ]
        for start in range(0, len(statements), TX_BATCHES):
            group = tuple(statements[start : start + TX_BATCHES])
            self._write_tx(lambda tx, g=group: _run_all(tx, g))

    def delete_document(self, document_id: str) -> StoreCounts:
        return self._write_tx(lambda tx: _delete_document(tx, document_id))

    def clear(self) -> None:
        """Delete every Document, Chunk, Proposition and Entity (and their relationships), in
        transactions of 10 batches; the schema stays."""
        limit = self.batch_size * TX_BATCHES
        while self._write_tx(lambda tx: tx.run(CLEAR, limit=limit).single(strict=True)["n"]) > 0:
            pass

    # --- point reads ----------------------------------------------------------------------------
    def _one(self, query: LiteralString, record_id: str, convert: Callable[[Row], T]) -> T | None:
        records = self._read(query, id=record_id)
        return convert(records[0]) if records else None

    def get_document(self, document_id: str) -> Document | None:
        return self._one("MATCH (n:Document {id: $id}) RETURN " + DOCUMENT_COLUMNS, document_id, _document)

    def get_chunk(self, chunk_id: str) -> Chunk | None:
        return self._one("MATCH (n:Chunk {id: $id}) RETURN " + CHUNK_COLUMNS, chunk_id, _chunk)

    def get_entity(self, entity_id: str) -> Entity | None:
        return self._one("MATCH (n:Entity {id: $id}) RETURN " + ENTITY_COLUMNS, entity_id, _entity)

    def get_proposition(self, proposition_id: str) -> Proposition | None:
        return self._one(
            "MATCH (n:Proposition {id: $id}) RETURN " + PROPOSITION_COLUMNS, proposition_id, _proposition
        )

    def get_relation(self, relation_id: str) -> Relation | None:
        records = self._read(GET_RELATIONS, ids=[relation_id])
        return _relation(records[0]) if records else None

    def find_entities(self, name: str) -> list[Entity]:
        records = self._read(FIND_ENTITIES, key=normalize_name(name))
        return sorted((_entity(r) for r in records), key=lambda e: e.id)

    # --- graph reads ----------------------------------------------------------------------------
    def neighbors(self, entity_ids: Iterable[str], hops: int = 1) -> list[Entity]:
        """Nearest first, then by id. One variable-length query per MAX_HOPS hops: a deeper walk
        continues from the entities at the last depth reached, skipping those already found."""
        remaining = _validate_hops(hops)
        frontier = list(dict.fromkeys(entity_ids))
        seen = set(frontier)
        found: list[Entity] = []
        while frontier and remaining > 0:
            step = min(remaining, MAX_HOPS)
            records = self._read(_neighbors_query(step), ids=frontier, seen=list(seen))
            found += (_entity(r) for r in records)
            seen.update(r["id"] for r in records)
            frontier = [r["id"] for r in records if r["distance"] == step]
            remaining -= step
        return found

    def subgraph(self, entity_ids: Iterable[str], hops: int = 1) -> Subgraph:
        ids = list(dict.fromkeys(entity_ids))
        if not ids:
            return Subgraph()
        starts = [_entity(r) for r in self._read(ENTITIES_BY_ID, ids=ids)]
        entities = starts + self.neighbors(ids, hops)
        relations = self._read(RELATIONS_AMONG, ids=[e.id for e in entities])
        return Subgraph(entities=entities, relations=[_relation(r) for r in relations])

    def propositions_of_entity(self, entity_id: str) -> list[Proposition]:
        return [_proposition(r) for r in self._read(PROPOSITIONS_OF_ENTITY, id=entity_id)]

    def chunks_of_document(self, document_id: str) -> list[Chunk]:
        return [_chunk(r) for r in self._read(CHUNKS_OF_DOCUMENT, id=document_id)]

    def propositions_of_chunks(self, chunk_ids: Iterable[str]) -> list[Proposition]:
        ids = list(dict.fromkeys(chunk_ids))
        return [_proposition(r) for r in self._read(PROPOSITIONS_OF_CHUNKS, ids=ids)] if ids else []

    def relations_of_propositions(self, proposition_ids: Iterable[str]) -> list[Relation]:
        ids = list(dict.fromkeys(proposition_ids))
        return [_relation(r) for r in self._read(RELATIONS_OF_PROPOSITIONS, ids=ids)] if ids else []

    # --- bulk reads -----------------------------------------------------------------------------
    def _stream(self, query: LiteralString, convert: Callable[[Record], T]) -> Iterator[T]:
        """Records as the server sends them, `batch_size` at a time. Not retried: a half-read
        stream cannot be resumed, so a failure surfaces as StoreUnavailableError."""
        try:
            with self._driver.session(
                database=self.database, default_access_mode="READ", fetch_size=self.batch_size
            ) as session:
                for record in session.run(Query(query)):
                    yield convert(record)
        except (Neo4jError, DriverError, OSError) as exc:
            raise self._translate(exc, 1) from exc

    def iter_documents(self) -> Iterator[Document]:
        return self._stream("MATCH (n:Document) RETURN " + DOCUMENT_COLUMNS + " ORDER BY id", _document)

    def iter_chunks(self) -> Iterator[Chunk]:
        return self._stream("MATCH (n:Chunk) RETURN " + CHUNK_COLUMNS + " ORDER BY id", _chunk)

    def iter_entities(self) -> Iterator[Entity]:
        return self._stream("MATCH (n:Entity) RETURN " + ENTITY_COLUMNS + " ORDER BY id", _entity)

    def iter_propositions(self) -> Iterator[Proposition]:
        query = "MATCH (n:Proposition) RETURN " + PROPOSITION_COLUMNS + " ORDER BY id"
        return self._stream(query, _proposition)

    def iter_relations(self) -> Iterator[Relation]:
        return self._stream(
            "MATCH (s:Entity)-[r:RELATED]->(o:Entity) RETURN " + RELATION_FIELDS + " ORDER BY r.id",
            _relation,
        )

    def counts(self) -> StoreCounts:
        return StoreCounts(**{kind: self._read(q)[0]["n"] for kind, q in COUNT_QUERIES.items()})

    # --- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self._driver.close()

    def __repr__(self) -> str:
        return f"Neo4jStore(uri={redact_url(self.uri)!r}, database={self.database!r})"


# --- helpers --------------------------------------------------------------------------------------
def _validate_hops(hops: int) -> int:
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
        raise ValueError(f"hops must be a non-negative integer, got {hops!r}")
    return hops


def _neighbors_query(hops: int) -> LiteralString:
    """Entities 1..hops steps from $ids that are not in $seen, with their distance. The hop count is
    the only thing formatted into Cypher (variable-length bounds cannot be parameters): an int checked
    to be in 1..MAX_HOPS, which also bounds the number of paths the server enumerates."""
    if isinstance(hops, bool) or not isinstance(hops, int) or not 1 <= hops <= MAX_HOPS:
        raise ValueError(f"a single path query spans 1 to {MAX_HOPS} hops, got {hops!r}")
    bound = cast(LiteralString, str(hops))
    # The shortest trail to a node is as long as its breadth-first distance.
    return (
        "MATCH (s:Entity) WHERE s.id IN $ids "
        "MATCH path = (s)-[:RELATED*1.." + bound + "]-(n:Entity) WHERE NOT n.id IN $seen "
        "WITH n, min(length(path)) AS distance "
        "RETURN " + ENTITY_COLUMNS + ", distance ORDER BY distance, id"
    )


def _run_all(tx: Transaction, statements: Sequence[tuple[LiteralString, list[dict[str, Any]]]]) -> None:
    for query, rows in statements:
        result = tx.run(query, rows=rows)
        if query is not UPSERT_RELATIONS:
            result.consume()
            continue
        written = set(result.single(strict=True)["written"])
        missing = [row for row in rows if row["id"] not in written]
        if missing:  # raising rolls the transaction back
            first = missing[0]
            raise StoreError(
                f"{len(missing)} relation(s) name an entity that is not in the store, e.g. {first['id']} "
                f"({first['subject_id']} -> {first['object_id']}); write the entities first"
            )


def _delete_document(tx: Transaction, document_id: str) -> StoreCounts:
    parts = tx.run(DOCUMENT_PARTS, id=document_id).single(strict=True)
    chunk_ids, pids = list(parts["chunk_ids"]), list(parts["proposition_ids"])
    affected = tx.run(AFFECTED_ENTITIES, pids=pids).single(strict=True)
    candidates = sorted(set(affected["mentioned"]) | set(affected["endpoints"]))
    relations = tx.run(DELETE_RELATIONS, pids=pids).single(strict=True)["n"]
    propositions = tx.run(DELETE_NODES["propositions"], ids=pids).single(strict=True)["n"]
    chunks = tx.run(DELETE_NODES["chunks"], ids=chunk_ids).single(strict=True)["n"]
    documents = tx.run(DELETE_NODES["documents"], ids=[document_id]).single(strict=True)["n"]
    orphans = list(tx.run(ORPHAN_ENTITIES, ids=candidates).single(strict=True)["ids"]) if candidates else []
    entities = 0
    if orphans:
        # Relations of other documents that still touch an orphan go with it (DETACH).
        relations += tx.run(RELATIONS_TOUCHING, ids=orphans).single(strict=True)["n"]
        entities = tx.run(DELETE_ENTITIES, ids=orphans).single(strict=True)["n"]
    return StoreCounts(
        documents=documents, chunks=chunks, entities=entities, propositions=propositions, relations=relations
    )


_Keyed = TypeVar("_Keyed", Document, Chunk, Proposition, Relation)


def _last_by_id(records: Iterable[_Keyed]) -> list[_Keyed]:
    """One row per id (the last one wins), so a statement never MERGEs the same key twice."""
    return list({r.id: r for r in records}.values())


def _merge_entities(entities: Iterable[Entity]) -> list[Entity]:
    """Fold repeated ids within one batch by the model's rule (Entity.merged_with), which
    UPSERT_ENTITIES applies across batches (aliases read back sorted, without the name)."""
    merged: dict[str, Entity] = {}
    for e in entities:
        old = merged.get(e.id)
        merged[e.id] = e if old is None else old.merged_with(e)
    return list(merged.values())


def _document_row(d: Document) -> dict[str, Any]:
    row = d.model_dump(exclude={"metadata"})
    # Neo4j properties cannot hold maps: metadata travels as JSON text.
    row["metadata_json"] = json.dumps(d.metadata, ensure_ascii=False, sort_keys=True)
    return row


def _entity_row(e: Entity) -> dict[str, Any]:
    row = e.model_dump()
    row["aliases"] = list(e.aliases)
    row["alias_keys"] = sorted({normalize_name(a) for a in e.aliases})
    return row


def _proposition_row(p: Proposition) -> dict[str, Any]:
    return {"id": p.id, "chunk_id": p.chunk_id, "text": p.text, "entity_ids": list(p.entity_ids)}


def _document(row: Row) -> Document:
    return Document(
        id=row["id"],
        title=row["title"] or "",
        text=row["text"] or "",
        source=row["source"] or "",
        content_hash=row["content_hash"] or "",
        metadata=json.loads(row["metadata_json"] or "{}"),
    )


def _chunk(row: Row) -> Chunk:
    return Chunk(
        id=row["id"],
        document_id=row["document_id"],
        index=row["index"],
        text=row["text"],
        original_text=row["original_text"],
        decontextualized=bool(row["decontextualized"]),
    )


def _entity(row: Row) -> Entity:
    name = row["name"]
    return Entity(
        id=row["id"],
        name=name,
        normalized_name=row["normalized_name"],
        type=row["type"] or "",
        aliases=tuple(sorted(set(row["aliases"] or ()) - {name})),
        description=row["description"] or "",
    )


def _proposition(row: Row) -> Proposition:
    return Proposition(
        id=row["id"], chunk_id=row["chunk_id"], text=row["text"], entity_ids=tuple(row["entity_ids"] or ())
    )


def _relation(row: Row) -> Relation:
    return Relation(
        id=row["id"],
        subject_id=row["subject_id"],
        predicate=row["predicate"],
        object_id=row["object_id"],
        proposition_id=row["proposition_id"],
    )


__all__ = ["MAX_HOPS", "Neo4jStore", "is_retryable"]
