"""The embedded store: the whole graph in memory (dicts, secondary indexes and a networkx graph over
entities), made durable in one directory by a snapshot plus an append-only write-ahead log.

On disk, in the store directory:
- `meta.json`       {"format": "synthkg-embedded", "format_version": 1}
- `snapshot.jsonl`  a header line with N, the number of the last operation it holds, `kind<TAB>[records]`
                    lines, and an `end<TAB>record count` footer; replaced atomically by compaction
- `wal-N.log`       the operations after N, one line each: `crc32<TAB>seq<TAB>op<TAB>json`, fsynced before
                    the operation is applied; a torn last line (a crash mid-append) fails its checksum and is
                    ignored, so each operation is either entirely present or absent
- `lock`            flock held by the one writer for the store's lifetime

Compaction writes a new snapshot aside, creates its empty log, renames the snapshot into place and then
deletes the old log: a crash at any point leaves a snapshot whose log exists and holds exactly the
operations after it, and a reader that opened both files of one pair keeps a consistent view.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import networkx as nx
from filelock import FileLock, Timeout
from pydantic import TypeAdapter

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
from synthkg.store.base import GraphStore, StoreError, StoreLockedError

FORMAT = "synthkg-embedded"
FORMAT_VERSION = 1
META_FILE = "meta.json"
SNAPSHOT_FILE = "snapshot.jsonl"
_SNAPSHOT_TMP = SNAPSHOT_FILE + ".tmp"
_LOG_NAME = re.compile(r"wal-\d+\.log")
LOCK_FILE = "lock"
DEFAULT_COMPACT_BYTES = 64 * 1024 * 1024

# The snapshot stores records in blocks, one JSON array per line: a list validates much faster than
# the same records one by one.
_SNAPSHOT_BLOCK = 1000
_BLOCK_ADAPTERS: dict[bytes, TypeAdapter[list[Any]]] = {
    b"document": TypeAdapter(list[Document]),
    b"chunk": TypeAdapter(list[Chunk]),
    b"entity": TypeAdapter(list[Entity]),
    b"proposition": TypeAdapter(list[Proposition]),
    b"relation": TypeAdapter(list[Relation]),
}
_OP_WRITE, _OP_DELETE, _OP_CLEAR = b"write", b"delete_document", b"clear"
# Opening the snapshot and its log races a compaction only in the microseconds between the two opens.
_LOAD_ATTEMPTS = 20


def _unlink(index: defaultdict[str, set[str]], key: str, value: str) -> None:
    """Remove one index entry, and the key once it indexes nothing (membership tests rely on it)."""
    bucket = index.get(key)
    if bucket is not None:
        bucket.discard(value)
        if not bucket:
            del index[key]


def _name_keys(entity: Entity) -> set[str]:
    return {entity.normalized_name, *(normalize_name(a) for a in entity.aliases)}


def _adds_nothing(old: Entity, new: Entity) -> bool:
    """Whether merging `new` into `old` would leave `old` unchanged (the common re-mention)."""
    return (
        new.name == old.name
        and new.type in ("", old.type)
        and new.description in ("", old.description)
        and set(new.aliases).issubset(old.aliases)
    )


def _merge_entity(old: Entity, new: Entity) -> Entity:
    """`new` wins, except that aliases are united and an empty type/description keeps the old one."""
    name = new.name
    return Entity(
        id=new.id,
        name=name,
        normalized_name=new.normalized_name,
        type=new.type or old.type,
        aliases=tuple(sorted((set(old.aliases) | set(new.aliases)) - {name})),
        description=new.description or old.description,
    )


class _MemoryGraph:
    """The graph in memory with the indexes that keep every read from scanning. Knows nothing of disk."""

    def __init__(self) -> None:
        self.documents: dict[str, Document] = {}
        self.chunks: dict[str, Chunk] = {}
        self.entities: dict[str, Entity] = {}
        self.propositions: dict[str, Proposition] = {}
        self.relations: dict[str, Relation] = {}
        # Secondary indexes; read them with .get so that a lookup never adds a key.
        self.by_name: defaultdict[str, set[str]] = defaultdict(set)  # normalized name or alias -> ids
        self.doc_chunks: defaultdict[str, set[str]] = defaultdict(set)
        self.chunk_props: defaultdict[str, set[str]] = defaultdict(set)
        self.entity_props: defaultdict[str, set[str]] = defaultdict(set)  # propositions mentioning it
        self.prop_rels: defaultdict[str, set[str]] = defaultdict(set)
        # Undirected: neighbours are reachable in either direction. One edge per relation, keyed by its id.
        self.graph: nx.MultiGraph = nx.MultiGraph()

    # --- writes -------------------------------------------------------------------------------
    def apply(self, batch: GraphBatch) -> None:
        for d in batch.documents:
            self.put_document(d)
        for c in batch.chunks:
            self.put_chunk(c)
        for e in batch.entities:
            self.put_entity(e)
        for p in batch.propositions:
            self.put_proposition(p)
        for r in batch.relations:
            self.put_relation(r)

    def put_document(self, document: Document) -> None:
        self.documents[document.id] = document

    def put_chunk(self, chunk: Chunk) -> None:
        old = self.chunks.get(chunk.id)
        if old is not None:
            if old == chunk:
                return
            _unlink(self.doc_chunks, old.document_id, old.id)
        self.chunks[chunk.id] = chunk
        self.doc_chunks[chunk.document_id].add(chunk.id)

    def put_entity(self, entity: Entity) -> None:
        old = self.entities.get(entity.id)
        if old is None:
            self.graph.add_node(entity.id)
        else:
            if _adds_nothing(old, entity):
                return
            entity = _merge_entity(old, entity)
            for key in _name_keys(old):
                _unlink(self.by_name, key, old.id)
        self.entities[entity.id] = entity
        for key in _name_keys(entity):
            self.by_name[key].add(entity.id)

    def put_proposition(self, proposition: Proposition) -> None:
        old = self.propositions.get(proposition.id)
        if old is not None:
            if old == proposition:
                return
            self._unindex_proposition(old)
        self.propositions[proposition.id] = proposition
        self.chunk_props[proposition.chunk_id].add(proposition.id)
        for eid in proposition.entity_ids:
            self.entity_props[eid].add(proposition.id)

    def put_relation(self, relation: Relation) -> None:
        old = self.relations.get(relation.id)
        if old is not None:
            if old == relation:
                return
            self.drop_relation(old.id)
        self.relations[relation.id] = relation
        self.prop_rels[relation.proposition_id].add(relation.id)
        self.graph.add_edge(relation.subject_id, relation.object_id, key=relation.id)

    def _unindex_proposition(self, proposition: Proposition) -> None:
        _unlink(self.chunk_props, proposition.chunk_id, proposition.id)
        for eid in proposition.entity_ids:
            _unlink(self.entity_props, eid, proposition.id)

    def drop_relation(self, relation_id: str) -> None:
        r = self.relations.pop(relation_id)
        _unlink(self.prop_rels, r.proposition_id, r.id)
        self.graph.remove_edge(r.subject_id, r.object_id, key=r.id)

    def drop_entity(self, entity_id: str) -> int:
        """Remove the entity and (like DETACH DELETE) any relation still attached; returns how many."""
        entity = self.entities.pop(entity_id)
        for key in _name_keys(entity):
            _unlink(self.by_name, key, entity_id)
        attached = {rid for keys in self.graph.adj[entity_id].values() for rid in keys}
        for rid in attached:
            self.drop_relation(rid)
        self.graph.remove_node(entity_id)
        return len(attached)

    def delete_document(self, document_id: str) -> StoreCounts:
        removed = StoreCounts()
        if self.documents.pop(document_id, None) is not None:
            removed.documents = 1
        candidates: set[str] = set()  # entities that may have lost their last mention
        for cid in self.doc_chunks.pop(document_id, set()):
            for pid in self.chunk_props.pop(cid, set()):
                for rid in self.prop_rels.get(pid, set()).copy():
                    r = self.relations[rid]
                    candidates.update((r.subject_id, r.object_id))
                    self.drop_relation(rid)
                    removed.relations += 1
                p = self.propositions.pop(pid)
                self._unindex_proposition(p)
                candidates.update(p.entity_ids)
                removed.propositions += 1
            del self.chunks[cid]
            removed.chunks += 1
        for eid in sorted(candidates):
            if eid in self.entities and eid not in self.entity_props:
                removed.relations += self.drop_entity(eid)
                removed.entities += 1
        return removed

    # --- reads --------------------------------------------------------------------------------
    def layers(self, entity_ids: Iterable[str], hops: int) -> list[list[str]]:
        """Breadth-first layers from the start entities: layer 0 is the starts, layer k is at k hops."""
        if hops < 0:
            raise ValueError(f"hops must be >= 0, got {hops}")
        starts = [eid for eid in dict.fromkeys(entity_ids) if eid in self.graph]
        if not starts:
            return []
        layers: list[list[str]] = []
        for layer in nx.bfs_layers(self.graph, starts):
            layers.append(layer)
            if len(layers) > hops:
                break
        return layers

    def relations_among(self, entity_ids: set[str]) -> list[Relation]:
        rel_ids: set[str] = set()
        adj = self.graph.adj
        for u in entity_ids:
            for v, keys in adj[u].items():
                if v in entity_ids:
                    rel_ids.update(keys)
        return [self.relations[rid] for rid in sorted(rel_ids)]

    def counts(self) -> StoreCounts:
        return StoreCounts(
            documents=len(self.documents),
            chunks=len(self.chunks),
            entities=len(self.entities),
            propositions=len(self.propositions),
            relations=len(self.relations),
        )

    def tables(self) -> list[tuple[bytes, dict[str, Any], Callable[[Any], None]]]:
        """(tag, records by id, upsert) per record kind, in the order a load must apply them."""
        return [
            (b"document", self.documents, self.put_document),
            (b"chunk", self.chunks, self.put_chunk),
            (b"entity", self.entities, self.put_entity),
            (b"proposition", self.propositions, self.put_proposition),
            (b"relation", self.relations, self.put_relation),
        ]


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. Loading and writing allocate many small records that are never
    garbage; the collector would rescan them again and again (measured: loads 3x, writes 2x slower)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class EmbeddedStore(GraphStore):
    """Graph store in a local directory. One writer at a time (held by a lock file); any number of
    read-only openers, each of which sees the store as it was when it opened."""

    def __init__(
        self, path: str | Path, read_only: bool = False, *, compact_bytes: int = DEFAULT_COMPACT_BYTES
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._compact_bytes = compact_bytes
        self._mem = _MemoryGraph()
        self._lock = threading.RLock()
        self._file_lock: FileLock | None = None
        self._log_fd: int | None = None
        self._log_size = 0
        self._log_seq = 0  # the log holds the operations after this one (the snapshot's last)
        self._seq = 0  # sequence number of the last operation applied
        self._closed = False

        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"store path {self.path} is a file, not a store directory")
        meta_exists = self._check_meta()
        if read_only:
            if not meta_exists:
                raise StoreError(f"no store at {self.path}; run `synthkg ingest` first")
            self._load()
        else:
            self._open_writer(meta_exists)

    # --- opening ------------------------------------------------------------------------------
    def _check_meta(self) -> bool:
        """Whether the directory holds a store; raises if it holds one we cannot read."""
        meta_path = self.path / META_FILE
        try:
            raw = meta_path.read_bytes()
        except FileNotFoundError:
            return False
        except NotADirectoryError:
            return False  # a parent of `path` is a file; opening for writing reports it
        except OSError as exc:
            raise StoreError(f"cannot read {meta_path}: {_os_reason(exc)}") from None
        try:
            meta = json.loads(raw)
        except ValueError:
            raise StoreError(f"{meta_path} is not valid JSON; is {self.path} a synthkg store?") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise StoreError(f"{self.path} is not a synthkg embedded store ({meta_path} has another format)")
        version = meta.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise StoreError(f"{meta_path} has an invalid format_version: {version!r}")
        if version > FORMAT_VERSION:
            raise StoreError(
                f"store {self.path} was written by a newer synthkg (format version {version}; this version "
                f"reads up to {FORMAT_VERSION}); upgrade synthkg to open it"
            )
        return True

    def _open_writer(self, meta_exists: bool) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store directory {self.path}: {_os_reason(exc)}") from None
        if not meta_exists and any(p.name != LOCK_FILE for p in self.path.iterdir()):
            raise StoreError(
                f"{self.path} is not empty and holds no synthkg store ({META_FILE} is missing); "
                "choose another store path"
            )
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise StoreError(f"store directory {self.path} is not writable")
        lock_path = self.path / LOCK_FILE
        file_lock = FileLock(str(lock_path))
        try:
            file_lock.acquire(blocking=False)
        except Timeout:
            raise StoreLockedError(
                f"store {self.path} is being written by another process (lock file {lock_path}); "
                "wait for it to finish, or open the store read-only"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot create lock file {lock_path}: {_os_reason(exc)}") from None
        self._file_lock = file_lock
        try:
            if not meta_exists:
                self._write_meta()
            log_end = self._load()
            self._remove_leftovers()
            self._open_log(log_end)
        except BaseException:
            self._release()
            raise

    def _write_meta(self) -> None:
        meta = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION}).encode()
        tmp = self.path / (META_FILE + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(meta)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path / META_FILE)
            _fsync_dir(self.path)
        except OSError as exc:
            raise StoreError(f"cannot write {self.path / META_FILE}: {_os_reason(exc)}") from None

    def _log_path(self, seq: int) -> Path:
        return self.path / log_file_name(seq)

    def _remove_leftovers(self) -> None:
        """Delete what a crash during compaction can leave: a half-written snapshot, and a log other than
        the snapshot's (an old one whose operations the snapshot holds, or a new empty one)."""
        current = log_file_name(self._log_seq)
        try:
            for p in self.path.iterdir():
                if p.name == _SNAPSHOT_TMP or (_LOG_NAME.fullmatch(p.name) and p.name != current):
                    p.unlink()
        except OSError as exc:
            raise StoreError(f"cannot clean up {self.path}: {_os_reason(exc)}") from None

    def _open_log(self, valid_end: int) -> None:
        log_path = self._log_path(self._log_seq)
        try:
            created = not log_path.exists()
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._log_fd = fd
            if os.fstat(fd).st_size > valid_end:  # drop a torn tail before appending after it
                os.ftruncate(fd, valid_end)
                os.fsync(fd)
            if created:
                _fsync_dir(self.path)
        except OSError as exc:
            raise StoreError(f"cannot open {log_path} for writing: {_os_reason(exc)}") from None
        self._log_size = valid_end

    def _load(self) -> int:
        """Read the snapshot and replay its log; returns where the log's valid part ends. Both files are
        opened before either is read; a reader that raced a compaction between the two opens (the
        snapshot's log is gone) opens them again."""
        for _ in range(_LOAD_ATTEMPTS):
            with contextlib.ExitStack() as files:
                snapshot = _open_if_exists(self.path / SNAPSHOT_FILE, files)
                seq = 0 if snapshot is None else self._read_snapshot_header(snapshot)
                log = _open_if_exists(self._log_path(seq), files)
                if log is None and self._snapshot_replaced(snapshot):
                    continue
                mem = _MemoryGraph()
                with _gc_paused():
                    if snapshot is not None:
                        self._read_snapshot_records(snapshot, mem)
                    self._mem, self._seq, log_end = self._replay_log(log, mem, seq)
                self._log_seq = seq
                return log_end
        raise StoreError(f"store {self.path} kept changing while it was being read; try again")

    def _snapshot_replaced(self, opened: BinaryIO | None) -> bool:
        try:
            now = os.stat(self.path / SNAPSHOT_FILE)
        except FileNotFoundError:
            return opened is not None
        return opened is None or not os.path.samestat(os.fstat(opened.fileno()), now)

    def _snapshot_damaged(self) -> StoreError:
        return StoreError(
            f"snapshot {self.path / SNAPSHOT_FILE} is damaged (truncated or edited); "
            "restore the store from a backup"
        )

    def _read_snapshot_header(self, f: BinaryIO) -> int:
        try:
            header = json.loads(f.readline())
            if header.get("format_version") != FORMAT_VERSION:
                raise self._snapshot_damaged()
            return int(header["seq"])
        except OSError as exc:
            raise StoreError(f"cannot read {self.path / SNAPSHOT_FILE}: {_os_reason(exc)}") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise self._snapshot_damaged() from None

    def _read_snapshot_records(self, f: BinaryIO, mem: _MemoryGraph) -> None:
        upserts = {tag: upsert for tag, _, upsert in mem.tables()}
        n = 0
        try:
            for line in f:
                tag, _, data = line.rstrip(b"\n").partition(b"\t")
                if tag == b"end":
                    if int(data) != n:
                        raise self._snapshot_damaged()
                    return
                upsert = upserts[tag]
                for record in _BLOCK_ADAPTERS[tag].validate_json(data):
                    upsert(record)
                    n += 1
        except OSError as exc:
            raise StoreError(f"cannot read {self.path / SNAPSHOT_FILE}: {_os_reason(exc)}") from None
        except (ValueError, KeyError, TypeError):
            raise self._snapshot_damaged() from None
        raise self._snapshot_damaged()  # no footer

    def _replay_log(self, log: BinaryIO | None, mem: _MemoryGraph, seq: int) -> tuple[_MemoryGraph, int, int]:
        """Apply the operations of the snapshot's log to `mem`. Returns the resulting graph, the last
        sequence number applied and the offset where the valid log ends (after it: a torn append)."""
        path = self._log_path(seq)
        try:
            data = b"" if log is None else log.read()
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {_os_reason(exc)}") from None
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:
                break  # torn last line
            parsed = _parse_log_line(data[pos:end])
            if parsed is None:
                if _has_valid_line(data, end + 1):
                    raise StoreError(
                        f"{path} is corrupt at byte {pos} (a checksum failed before later valid "
                        "operations); the store is damaged"
                    )
                break  # torn tail
            line_seq, op, payload = parsed
            if line_seq != seq + 1:
                raise StoreError(f"{path} skips from operation {seq} to {line_seq}; the store is damaged")
            try:
                mem = _apply_op(mem, op, payload)
            except ValueError:
                raise StoreError(f"{path} holds an unreadable operation at byte {pos}") from None
            seq = line_seq
            pos = end + 1
        return mem, seq, pos

    # --- writes -------------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"store {self.path} was opened read-only; open it without read_only to write")
        if self._closed:
            raise StoreError(f"store {self.path} is closed")

    def _append(self, op: bytes, payload: bytes) -> None:
        """Durably append one operation to the log (fsynced before returning)."""
        assert self._log_fd is not None
        seq = self._seq + 1
        body = b"%d\t%s\t%s" % (seq, op, payload)
        line = b"%08x\t%s\n" % (zlib.crc32(body), body)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._log_fd, view) :]
            os.fdatasync(self._log_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # leave no partial line for the next append to follow
                os.ftruncate(self._log_fd, self._log_size)
            log_path = self._log_path(self._log_seq)
            raise StoreError(f"cannot write to {log_path}: {_os_reason(exc)}") from None
        self._seq = seq
        self._log_size += len(line)

    def write(self, batch: GraphBatch) -> None:
        if not len(batch):
            return
        payload = batch.model_dump_json().encode()
        with self._lock:
            self._check_writable()
            self._append(_OP_WRITE, payload)
            with _gc_paused():
                self._mem.apply(batch)
            if self._log_size >= self._compact_bytes:
                self.compact()

    def delete_document(self, document_id: str) -> StoreCounts:
        with self._lock:
            self._check_writable()
            if document_id not in self._mem.documents and document_id not in self._mem.doc_chunks:
                return StoreCounts()
            self._append(_OP_DELETE, json.dumps(document_id).encode())
            return self._mem.delete_document(document_id)

    def clear(self) -> None:
        """Delete everything in the store."""
        with self._lock:
            self._check_writable()
            self._append(_OP_CLEAR, b"null")
            self._mem = _MemoryGraph()
            self.compact()

    def compact(self) -> None:
        """Fold the log into a new snapshot. The snapshot is written aside, an empty log named after it is
        created, the snapshot is renamed into place (the atomic step), and only then is the old log
        deleted, so a reader that opened the old snapshot can still open the old log."""
        with self._lock:
            self._check_writable()
            if self._seq == self._log_seq:
                return  # nothing logged since the snapshot
            snapshot, tmp = self.path / SNAPSHOT_FILE, self.path / _SNAPSHOT_TMP
            old_log, new_log = self._log_path(self._log_seq), self._log_path(self._seq)
            try:
                self._write_snapshot(tmp)
                fd = os.open(new_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            except OSError as exc:
                raise StoreError(f"cannot write snapshot {tmp}: {_os_reason(exc)}") from None
            try:
                os.fsync(fd)
                _fsync_dir(self.path)
                os.replace(tmp, snapshot)
            except OSError as exc:
                os.close(fd)
                raise StoreError(f"cannot replace snapshot {snapshot}: {_os_reason(exc)}") from None
            assert self._log_fd is not None
            os.close(self._log_fd)
            self._log_fd, self._log_seq, self._log_size = fd, self._seq, 0
            try:
                _fsync_dir(self.path)
                os.unlink(old_log)
            except OSError as exc:
                raise StoreError(f"cannot finish compacting {self.path}: {_os_reason(exc)}") from None

    def _write_snapshot(self, path: Path) -> None:
        header = {"format": FORMAT, "format_version": FORMAT_VERSION, "seq": self._seq}
        with open(path, "wb") as f:
            f.write(json.dumps(header).encode() + b"\n")
            n = 0
            for tag, table, _ in self._mem.tables():
                records = list(table.values())
                for i in range(0, len(records), _SNAPSHOT_BLOCK):
                    block = records[i : i + _SNAPSHOT_BLOCK]
                    f.write(tag + b"\t" + _BLOCK_ADAPTERS[tag].dump_json(block) + b"\n")
                    n += len(block)
            f.write(b"end\t%d\n" % n)
            f.flush()
            os.fsync(f.fileno())

    # --- point reads --------------------------------------------------------------------------
    def get_document(self, document_id: str) -> Document | None:
        return self._mem.documents.get(document_id)

    def get_chunk(self, chunk_id: str) -> Chunk | None:
        return self._mem.chunks.get(chunk_id)

    def get_entity(self, entity_id: str) -> Entity | None:
        return self._mem.entities.get(entity_id)

    def get_proposition(self, proposition_id: str) -> Proposition | None:
        return self._mem.propositions.get(proposition_id)

    def get_relation(self, relation_id: str) -> Relation | None:
        return self._mem.relations.get(relation_id)

    def find_entities(self, name: str) -> list[Entity]:
        with self._lock:
            ids = self._mem.by_name.get(normalize_name(name), ())
            return [self._mem.entities[eid] for eid in sorted(ids)]

    # --- graph reads --------------------------------------------------------------------------
    def neighbors(self, entity_ids: Iterable[str], hops: int = 1) -> list[Entity]:
        """Nearest first; within one distance, by id."""
        with self._lock:
            entities = self._mem.entities
            return [
                entities[eid]
                for layer in self._mem.layers(entity_ids, hops)[1:]
                for eid in sorted(layer)
                if eid in entities
            ]

    def subgraph(self, entity_ids: Iterable[str], hops: int = 1) -> Subgraph:
        with self._lock:
            entities = self._mem.entities
            found = [
                entities[eid]
                for layer in self._mem.layers(entity_ids, hops)
                for eid in sorted(layer)
                if eid in entities
            ]
            return Subgraph(entities=found, relations=self._mem.relations_among({e.id for e in found}))

    def propositions_of_entity(self, entity_id: str) -> list[Proposition]:
        with self._lock:
            ids = self._mem.entity_props.get(entity_id, ())
            return [self._mem.propositions[pid] for pid in sorted(ids)]

    def chunks_of_document(self, document_id: str) -> list[Chunk]:
        with self._lock:
            chunks = [self._mem.chunks[cid] for cid in self._mem.doc_chunks.get(document_id, ())]
        return sorted(chunks, key=lambda c: (c.index, c.id))

    # --- bulk reads ---------------------------------------------------------------------------
    # Each iterator walks a copy, so writing while iterating is safe.
    def iter_documents(self) -> Iterator[Document]:
        with self._lock:
            return iter(list(self._mem.documents.values()))

    def iter_chunks(self) -> Iterator[Chunk]:
        with self._lock:
            return iter(list(self._mem.chunks.values()))

    def iter_entities(self) -> Iterator[Entity]:
        with self._lock:
            return iter(list(self._mem.entities.values()))

    def iter_propositions(self) -> Iterator[Proposition]:
        with self._lock:
            return iter(list(self._mem.propositions.values()))

    def iter_relations(self) -> Iterator[Relation]:
        with self._lock:
            return iter(list(self._mem.relations.values()))

    def counts(self) -> StoreCounts:
        with self._lock:
            return self._mem.counts()

    # --- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """A writer folds its log into the snapshot and releases the lock. Idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                if self._log_fd is not None:
                    self.compact()
            finally:
                self._closed = True
                self._release()

    def _release(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None


def log_file_name(seq: int) -> str:
    """The log that holds the operations after operation `seq` (the snapshot's last)."""
    return f"wal-{seq}.log"


def _open_if_exists(path: Path, files: contextlib.ExitStack) -> BinaryIO | None:
    try:
        return files.enter_context(open(path, "rb"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {_os_reason(exc)}") from None


def _parse_log_line(line: bytes) -> tuple[int, bytes, bytes] | None:
    """(seq, op, payload) of an intact log line, None when its checksum fails."""
    crc, sep, body = line.partition(b"\t")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        seq, op, payload = body.split(b"\t", 2)
        return int(seq), op, payload
    except ValueError:
        return None


def _has_valid_line(data: bytes, pos: int) -> bool:
    return any(_parse_log_line(line) is not None for line in data[pos:].split(b"\n")[:-1])


def _apply_op(mem: _MemoryGraph, op: bytes, payload: bytes) -> _MemoryGraph:
    """Replay one logged operation; returns the graph after it (a new one after `clear`)."""
    if op == _OP_WRITE:
        mem.apply(GraphBatch.model_validate_json(payload))
    elif op == _OP_DELETE:
        mem.delete_document(json.loads(payload))
    elif op == _OP_CLEAR:
        return _MemoryGraph()
    else:
        raise ValueError(f"unknown operation {op!r}")
    return mem
