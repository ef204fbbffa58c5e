"""The embedded store: the whole graph in memory (dicts, secondary indexes and a networkx graph over
entities), made durable in one directory by a snapshot plus an append-only write-ahead log.

On disk, in the store directory:
- `meta.json`       {"format": "synthkg-embedded", "format_version": 2}. Creating a store writes the empty
                    snapshot and `wal-0.log` first and meta.json last, so a store with a meta.json has a
                    snapshot; a directory holding only the first two is finished by the next writer
- `snapshot.jsonl`  a header line {"format", "format_version", "seq": N} (N: the last operation it holds),
                    record blocks `kind<TAB>crc32<TAB>[records]` (the checksum covers the JSON array), and
                    a footer `end<TAB>record count<TAB>crc32` whose checksum covers the header line and each
                    block's `kind<TAB>crc32<TAB>` (so a lost, added or reordered line shows); replaced
                    atomically by compaction. Format 1 snapshots (blocks `kind<TAB>[records]`, footer
                    `end<TAB>count`, no checksums) still load; a writer rewrites them in format 2 when it
                    closes, and only then does meta.json say 2
- `wal-N.log`       the operations after N, one line each: `crc32<TAB>seq<TAB>op<TAB>json`, fsynced before
                    the operation is applied; sequence numbers run N+1, N+2, ... without a gap
- `lock`            flock held by the one writer for the store's lifetime

Damage is never passed over in silence. There are two kinds:
- A torn tail: the log's last line has no newline. That is what a crash during an append leaves (the
  append was never acknowledged: its fsync had not returned), or a truncated file. The partial operation
  is ignored with a warning naming the file and the bytes, and a writer cuts it off before appending.
  This is the only damage that an open gets past by itself. (A log cut exactly between two lines cannot
  be told from one that saw fewer writes: no file records how many there were, a limit of any such log.)
- Corruption: a complete log line whose checksum fails (the last line too), a sequence gap, an unreadable
  operation; a snapshot line that fails its checksum or does not parse, a missing or wrong footer; a
  missing snapshot (format 2), a missing log of the snapshot's generation, a missing meta.json next to
  store files; a log of another generation that no interrupted compaction leaves (below). Every open,
  reader or writer, then refuses with a StoreError that names the file, line and byte offset, changes
  nothing, and points at `synthkg check` (synthkg/store/check.py): it reports what is intact and what
  is lost, and `synthkg check --repair` keeps every intact record (snapshot blocks that verify, log
  operations up to the first corruption), moves the damaged files into `damaged-<time>/` (never deleting
  them) and writes a fresh snapshot.

Compaction writes a new snapshot aside (snapshot.jsonl.tmp), creates its empty log, renames the snapshot
into place (the atomic step) and then deletes the old log: a crash at any point leaves a snapshot whose
log exists and holds exactly the operations after it, and a reader that opened both files of one pair
keeps a consistent view. A writer that opens after such a crash deletes only what the crash provably
left: a snapshot.jsonl.tmp that holds nothing beyond the store, an empty log, and an older log whose
every operation (checked line by line) the snapshot holds. Any other log is reported and left alone (the
writer refuses to open). Compaction warns when the graph holds references to missing records (a
proposition naming an entity that does not exist...); `synthkg check` lists them.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import re
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
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

logger = logging.getLogger(__name__)

FORMAT = "synthkg-embedded"
FORMAT_VERSION = 2  # 2: checksummed snapshots; 1 (no snapshot checksums) is still read
META_FILE = "meta.json"
_META_TMP = META_FILE + ".tmp"
SNAPSHOT_FILE = "snapshot.jsonl"
_SNAPSHOT_TMP = SNAPSHOT_FILE + ".tmp"
_LOG_NAME = re.compile(r"wal-(\d+)\.log")
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
_CRC_FIELD = re.compile(rb"[0-9a-f]{8}")
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
            entity = old.merged_with(entity)
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

    def dangling(self) -> list[tuple[str, str, str]]:
        """(record id, field, missing id) for every reference to a record the graph does not hold. Set
        differences of the indexes' keys, so it costs little even on a large graph."""
        found: list[tuple[str, str, str]] = []
        for index, name, table in (
            (self.doc_chunks, "document_id", self.documents),
            (self.chunk_props, "chunk_id", self.chunks),
            (self.entity_props, "entity_ids", self.entities),
            (self.prop_rels, "proposition_id", self.propositions),
        ):
            for missing in sorted(index.keys() - table.keys()):
                found.extend((rid, name, missing) for rid in sorted(index[missing]))
        for missing in sorted(set(self.graph) - self.entities.keys()):  # relation ends; nodes of relations
            for rid in sorted(rid for keys in self.graph.adj[missing].values() for rid in keys):
                r = self.relations[rid]
                ends = (("subject_id", r.subject_id), ("object_id", r.object_id))
                found.extend((rid, name, missing) for name, end in ends if end == missing)
        return found


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



def repair_hint(store: Path) -> str:
    """What to tell the user when the store is damaged (every refusal ends with it)."""
    return (
        f"nothing was changed. Run `synthkg --store-path {store} check` for a report, and `synthkg "
        f"--store-path {store} check --repair` to keep every intact record (damaged files are moved "
        "aside, never deleted)"
    )


# --- the file formats, for the store and for `synthkg check` ------------------------------------------
@dataclass
class Damage:
    """One damaged place in a file: its line (counted from 1), the byte offset where that line starts,
    and what is wrong with it."""

    line: int
    offset: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line} (byte {self.offset}): {self.what}"


@dataclass
class SnapshotScan:
    """What reading a snapshot found."""

    seq: int | None = None  # the last operation it holds; None when the header is unreadable
    version: int | None = None
    blocks: int = 0  # record blocks that verified, and were loaded
    records: int = 0  # records in them
    footer_count: int | None = None  # the record count the footer states, when it can be read
    damaged: list[Damage] = field(default_factory=list)
    lost_blocks: list[tuple[bytes, bytes]] = field(default_factory=list)  # (kind, bytes) of damaged blocks


@dataclass
class LogScan:
    """What reading a write-ahead log found."""

    start: int  # the operation the log follows
    last: int  # the last operation accepted (== start when none)
    ops: int = 0  # operations accepted
    end: int = 0  # byte offset where the accepted part ends
    size: int = 0
    torn: int = 0  # bytes of an incomplete last line
    corrupt: Damage | None = None  # the first corrupt line; nothing from it on was accepted
    after: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # (seq, op, payload) of lines
    # after the corrupt one that pass their checksum (not applied: they follow a hole)
    after_bad: int = 0  # complete lines after the corrupt one that fail their checksum


def _newer_error(path: Path, version: int) -> StoreError:
    return StoreError(
        f"store {path} was written by a newer synthkg (format version {version}; this version reads up to "
        f"{FORMAT_VERSION}); upgrade synthkg to open it"
    )


def _snapshot_damage(path: Path, scan: SnapshotScan, damage: Damage, strict: bool) -> None:
    if strict:
        raise StoreError(f"snapshot {path} is damaged at {damage}; {repair_hint(path.parent)}")
    scan.damaged.append(damage)


def read_snapshot_header(f: BinaryIO, path: Path, scan: SnapshotScan, *, strict: bool) -> tuple[int, int]:
    """Read the header line into `scan`. Returns the footer checksum's start and the byte offset after the
    header. `strict` raises StoreError on damage; otherwise it is recorded in `scan`."""
    try:
        line = f.readline()
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {_os_reason(exc)}") from None
    version = seq = None
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        header = json.loads(line)
        if header.get("format") == FORMAT and line.endswith(b"\n"):
            version, seq = header["format_version"], header["seq"]
    if type(version) is int and version > FORMAT_VERSION:
        raise _newer_error(path.parent, version)
    if type(version) is not int or version < 1 or type(seq) is not int or seq < 0:
        _snapshot_damage(path, scan, Damage(1, 0, "the header is unreadable"), strict)
    else:
        scan.seq, scan.version = seq, version
    return zlib.crc32(line), len(line)


def read_snapshot_records(
    f: BinaryIO, mem: _MemoryGraph, path: Path, scan: SnapshotScan, crc: int, offset: int, *, strict: bool
) -> None:
    """Read the record blocks and the footer after the header into `mem`. A damaged block is never applied
    in part. `crc` and `offset` come from read_snapshot_header."""
    upserts = {tag: upsert for tag, _, upsert in mem.tables()}
    lineno = 1
    try:
        for line in f:
            lineno += 1
            start, offset = offset, offset + len(line)
            if not line.endswith(b"\n"):
                tag, _, rest = line.partition(b"\t")
                if tag == b"end":
                    what = "the footer is cut short (the file is truncated)"
                else:
                    what = "the file ends inside this line, before the footer (it is truncated)"
                    scan.lost_blocks.append((tag, rest))
                _snapshot_damage(path, scan, Damage(lineno, start, what), strict)
                return
            tag, _, rest = line[:-1].partition(b"\t")
            if tag == b"end":
                _read_footer(f, path, scan, rest, crc, Damage(lineno, start, ""), strict)
                return
            # Format 2 lines carry a checksum; when the header is unreadable, tell by the line's shape.
            checked = scan.version >= 2 if scan.version is not None else bool(_CRC_FIELD.match(rest))
            what = ""
            data = rest
            if checked:
                crc_field, _, data = rest.partition(b"\t")
                if not _CRC_FIELD.fullmatch(crc_field) or int(crc_field, 16) != zlib.crc32(data):
                    what = "its checksum fails"
                crc = zlib.crc32(line[: len(tag) + len(crc_field) + 2], crc)
            adapter = _BLOCK_ADAPTERS.get(tag)
            if adapter is None:
                what = what or "it is no record block"
            elif not what:
                try:
                    records = adapter.validate_json(data)
                except ValueError:
                    what = "its records do not parse"
            if what:
                _snapshot_damage(path, scan, Damage(lineno, start, what), strict)
                scan.lost_blocks.append((tag, rest))
                continue
            upsert = upserts[tag]
            for record in records:
                upsert(record)
            scan.blocks += 1
            scan.records += len(records)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {_os_reason(exc)}") from None
    _snapshot_damage(path, scan, Damage(lineno + 1, offset, "the footer is missing (the file is truncated)"),
                     strict)


def _read_footer(
    f: BinaryIO, path: Path, scan: SnapshotScan, rest: bytes, crc: int, at: Damage, strict: bool
) -> None:
    count_field, _, crc_field = rest.partition(b"\t")
    checked = scan.version >= 2 if scan.version is not None else bool(crc_field)
    with contextlib.suppress(ValueError):
        scan.footer_count = int(count_field)
    problem = ""
    if scan.footer_count is None or (crc_field and not checked):
        problem = "the footer is unreadable"
    elif not scan.damaged:  # with a damaged block, the footer cannot match; that block is the news
        if checked and (not _CRC_FIELD.fullmatch(crc_field) or int(crc_field, 16) != crc):
            problem = "the footer's checksum fails (a line was lost, added or changed)"
        elif scan.footer_count != scan.records:
            problem = f"the footer counts {scan.footer_count} records, the blocks hold {scan.records}"
    if problem:
        _snapshot_damage(path, scan, Damage(at.line, at.offset, problem), strict)
    trailing = f.read()
    if trailing:
        _snapshot_damage(path, scan, Damage(at.line + 1, at.offset + len(rest) + 5,
                                            f"{len(trailing)} bytes follow the footer"), strict)


def scan_log(
    data: bytes, start: int, mem: _MemoryGraph | None, path: Path, *, strict: bool
) -> tuple[_MemoryGraph | None, LogScan]:
    """Read a log that follows operation `start`, applying its operations to `mem` (unless None: then the
    lines are only checked). Returns the graph after them (a new one after `clear`) and what was found.
    `strict` raises StoreError at the first corrupt line; a torn tail never raises."""
    scan = LogScan(start=start, last=start, size=len(data))
    pos = lineno = 0
    while pos < len(data):
        lineno += 1
        end = data.find(b"\n", pos)
        if end < 0:
            scan.torn = len(data) - pos  # the last line is incomplete: a torn append
            break
        parsed = _parse_log_line(data[pos:end])
        what = ""
        if parsed is None:
            what = "its checksum fails"
        elif parsed[0] != scan.last + 1:
            what = f"it holds operation {parsed[0]} where operation {scan.last + 1} must follow"
        elif mem is not None:
            try:
                mem = _apply_op(mem, parsed[1], parsed[2])
            except ValueError:
                what = f"operation {parsed[0]} is unreadable"
        if what:
            scan.corrupt = Damage(lineno, pos, what)
            if strict:
                raise StoreError(
                    f"write-ahead log {path} is corrupt at {scan.corrupt}; the {scan.ops} operations before "
                    f"it (up to {scan.last}) are intact; {repair_hint(path.parent)}"
                )
            for line in data[end + 1 :].split(b"\n")[:-1]:
                later = _parse_log_line(line)
                if later is None:
                    scan.after_bad += 1
                else:
                    scan.after.append(later)
            break
        assert parsed is not None
        scan.last = parsed[0]
        scan.ops += 1
        pos = end + 1
    scan.end = pos
    return mem, scan


def _snapshot_pieces(mem: _MemoryGraph, seq: int) -> Iterator[bytes]:
    header = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "seq": seq}).encode() + b"\n"
    crc = zlib.crc32(header)
    yield header
    n = 0
    for tag, table, _ in mem.tables():
        records = list(table.values())
        for i in range(0, len(records), _SNAPSHOT_BLOCK):
            block = records[i : i + _SNAPSHOT_BLOCK]
            data = _BLOCK_ADAPTERS[tag].dump_json(block)
            prefix = b"%s\t%08x\t" % (tag, zlib.crc32(data))
            crc = zlib.crc32(prefix, crc)
            yield prefix
            yield data
            yield b"\n"
            n += len(block)
    yield b"end\t%d\t%08x\n" % (n, crc)


def write_snapshot_file(path: Path, mem: _MemoryGraph, seq: int) -> None:
    """Write (and fsync) a snapshot of `mem` holding the operations up to `seq`. Raises OSError."""
    with open(path, "wb") as f:
        for piece in _snapshot_pieces(mem, seq):
            f.write(piece)
        f.flush()
        os.fsync(f.fileno())


def _empty_snapshot() -> bytes:
    return b"".join(_snapshot_pieces(_MemoryGraph(), 0))


def write_meta(store: Path) -> None:
    """Write meta.json (atomically) for the current format."""
    meta = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION}).encode()
    tmp = store / _META_TMP
    try:
        with open(tmp, "wb") as f:
            f.write(meta)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, store / META_FILE)
        _fsync_dir(store)
    except OSError as exc:
        raise StoreError(f"cannot write {store / META_FILE}: {_os_reason(exc)}") from None


def log_generation(name: str) -> int | None:
    """N for a file named wal-N.log, else None."""
    m = _LOG_NAME.fullmatch(name)
    return int(m.group(1)) if m else None


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
        self._meta_version = FORMAT_VERSION
        self._snapshot_version: int | None = None  # None: no snapshot (a format 1 store never compacted)
        self._closed = False

        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"store path {self.path} is a file, not a store directory")
        meta_version = self._check_meta()
        if read_only:
            if meta_version is None:
                raise self._no_meta_error()
            self._meta_version = meta_version
            self._load()
        else:
            self._open_writer(meta_version)

    # --- opening ------------------------------------------------------------------------------
    def _check_meta(self) -> int | None:
        """The store's format version; None when the directory holds no meta.json. Raises if it holds one
        we cannot read."""
        meta_path = self.path / META_FILE
        try:
            raw = meta_path.read_bytes()
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None  # a parent of `path` is a file; opening for writing reports it
        except OSError as exc:
            raise StoreError(f"cannot read {meta_path}: {_os_reason(exc)}") from None
        damaged = (
            f"nothing was changed; if it is one, `synthkg --store-path {self.path} check` reports its state "
            f"and `synthkg --store-path {self.path} check --repair` writes a new {META_FILE}"
        )
        try:
            meta = json.loads(raw)
        except ValueError:
            raise StoreError(
                f"{meta_path} is not valid JSON; is {self.path} a synthkg store? {damaged}"
            ) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise StoreError(
                f"{self.path} is not a synthkg embedded store ({meta_path} has another format); {damaged}"
            )
        version = meta.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise StoreError(f"{meta_path} has an invalid format_version: {version!r}; {damaged}")
        if version > FORMAT_VERSION:
            raise _newer_error(self.path, version)
        return version

    def _store_files(self) -> list[str]:
        """The names of snapshot and log files in the directory."""
        try:
            names = sorted(p.name for p in self.path.iterdir())
        except OSError:
            return []
        return [n for n in names if n in (SNAPSHOT_FILE, _SNAPSHOT_TMP) or _LOG_NAME.fullmatch(n)]

    def _interrupted_creation(self) -> bool:
        """Whether the directory holds nothing but what creating a store writes before its meta.json (the
        empty snapshot or a part of it, an empty wal-0.log, temporary files): then a writer creates it."""
        try:
            entries = {p.name: p for p in self.path.iterdir()}
            if not entries.keys() <= {LOCK_FILE, SNAPSHOT_FILE, _SNAPSHOT_TMP, _META_TMP, log_file_name(0)}:
                return False
            if log_file_name(0) in entries and entries[log_file_name(0)].stat().st_size:
                return False
            return SNAPSHOT_FILE not in entries or _empty_snapshot().startswith(
                entries[SNAPSHOT_FILE].read_bytes()
            )
        except OSError:
            return False

    def _no_meta_error(self) -> StoreError:
        files = self._store_files()
        if files and not self._interrupted_creation():
            return StoreError(
                f"{self.path / META_FILE} is missing, but {self.path} holds store files "
                f"({', '.join(files)}); {repair_hint(self.path)}"
            )
        return StoreError(f"no store at {self.path}; run `synthkg ingest` first")

    def _open_writer(self, meta_version: int | None) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store directory {self.path}: {_os_reason(exc)}") from None
        if meta_version is None and not self._interrupted_creation():
            if self._store_files():
                raise self._no_meta_error()
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
            if meta_version is None:  # look again under the lock: another writer may have created it
                meta_version = self._check_meta()
            if meta_version is None:
                if not self._interrupted_creation():
                    raise self._no_meta_error()
                self._create()
                meta_version = FORMAT_VERSION
            self._meta_version = meta_version
            log_end = self._load()
            self._remove_leftovers()
            self._open_log(log_end)
        except BaseException:
            self._release()
            raise

    def _create(self) -> None:
        """Write an empty snapshot and wal-0.log, then meta.json: the store exists once meta.json does."""
        log_path = self._log_path(0)
        try:
            with open(self.path / SNAPSHOT_FILE, "wb") as f:
                f.write(_empty_snapshot())
                f.flush()
                os.fsync(f.fileno())
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(self.path)
        except OSError as exc:
            raise StoreError(f"cannot create a store in {self.path}: {_os_reason(exc)}") from None
        write_meta(self.path)

    def _write_meta(self) -> None:
        write_meta(self.path)

    def _log_path(self, seq: int) -> Path:
        return self.path / log_file_name(seq)

    def _other_logs(self, seq: int) -> list[Path]:
        """The logs other than wal-`seq`.log, by generation."""
        try:
            paths = [p for p in self.path.iterdir() if _LOG_NAME.fullmatch(p.name)]
        except OSError as exc:
            raise StoreError(f"cannot list {self.path}: {_os_reason(exc)}") from None
        others = (p for p in paths if p.name != log_file_name(seq))
        return sorted(others, key=lambda p: log_generation(p.name) or 0)

    def _remove_leftovers(self) -> None:
        """Delete what a crash during compaction provably left, and nothing else: a snapshot.jsonl.tmp that
        holds no operation beyond the store, an empty log, an older log whose every operation the snapshot
        holds. Anything else makes the writer refuse to open, untouched."""
        removable: list[Path] = []
        unexpected: list[str] = []
        tmp = self.path / _SNAPSHOT_TMP
        if tmp.exists():
            scan = SnapshotScan()
            try:
                with open(tmp, "rb") as f:
                    read_snapshot_header(f, tmp, scan, strict=False)
            except OSError as exc:
                raise StoreError(f"cannot read {tmp}: {_os_reason(exc)}") from None
            if scan.seq is not None and scan.seq > self._seq:
                unexpected.append(f"{tmp.name} holds operations up to {scan.seq}, the store only up to "
                                  f"{self._seq}")
            else:
                removable.append(tmp)  # a compaction's unfinished copy of what the store holds
        for log in self._other_logs(self._log_seq):
            problem = _leftover_log_problem(log, log_generation(log.name) or 0, self._log_seq)
            if problem:
                unexpected.append(problem)
            else:
                removable.append(log)
        if unexpected:
            raise StoreError(
                f"store {self.path} holds files that no interrupted compaction leaves: "
                f"{'; '.join(unexpected)}; {repair_hint(self.path)}"
            )
        try:
            for p in removable:
                logger.info("%s: removing %s, left by an interrupted compaction", self.path, p.name)
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
        snapshot's log is gone) opens them again. Any damage but a torn tail raises StoreError."""
        snapshot_path = self.path / SNAPSHOT_FILE
        for _ in range(_LOAD_ATTEMPTS):
            with contextlib.ExitStack() as files:
                snapshot = _open_if_exists(snapshot_path, files)
                scan = SnapshotScan()
                crc = offset = 0
                if snapshot is not None:
                    crc, offset = read_snapshot_header(snapshot, snapshot_path, scan, strict=True)
                elif self._meta_version >= 2:
                    found = ", ".join(p.name for p in self._other_logs(-1)) or "no log either"
                    raise StoreError(
                        f"the snapshot {snapshot_path} is missing (found: {found}); without it the records "
                        f"written before its last operation are lost; {repair_hint(self.path)}"
                    )
                seq = scan.seq or 0
                log_path = self._log_path(seq)
                log = _open_if_exists(log_path, files)
                if log is None:
                    if self._snapshot_replaced(snapshot):
                        continue
                    others = [p.name for p in self._other_logs(seq)]
                    if snapshot is not None or others:  # else: a format 1 store that was never written
                        holds = (f"the snapshot holds the operations up to {seq}" if snapshot is not None
                                 else "there is no snapshot")
                        raise StoreError(
                            f"the write-ahead log {log_path} is missing ({holds}; other logs found: "
                            f"{', '.join(others) or 'none'}); {repair_hint(self.path)}"
                        )
                mem: _MemoryGraph | None = _MemoryGraph()
                assert mem is not None
                with _gc_paused():
                    if snapshot is not None:
                        read_snapshot_records(snapshot, mem, snapshot_path, scan, crc, offset, strict=True)
                    mem, log_scan = scan_log(_read_all(log, log_path), seq, mem, log_path, strict=True)
                assert mem is not None
                if self.read_only:
                    stray = [p for p in self._other_logs(seq) if (log_generation(p.name) or 0) > seq
                             and _size(p)]
                    if stray and self._snapshot_replaced(snapshot):
                        continue
                    if stray:
                        raise StoreError(
                            f"{stray[0]} holds operations after {log_generation(stray[0].name)}, but the "
                            f"snapshot only goes up to {seq}; {repair_hint(self.path)}"
                        )
                self._mem, self._seq, self._log_seq = mem, log_scan.last, seq
                self._snapshot_version = scan.version
                if log_scan.torn:
                    logger.warning(
                        "%s ends in an incomplete operation (%d bytes from byte %d): an append cut short by "
                        "a crash (never acknowledged) or a truncated file. It is ignored%s; the store holds "
                        "the operations up to %d. `synthkg --store-path %s check` reports the store's state",
                        log_path, log_scan.torn, log_scan.end,
                        "" if self.read_only else " and cut off before this writer appends", log_scan.last,
                        self.path,
                    )
                return log_scan.end
        raise StoreError(f"store {self.path} kept changing while it was being read; try again")

    def _snapshot_replaced(self, opened: BinaryIO | None) -> bool:
        try:
            now = os.stat(self.path / SNAPSHOT_FILE)
        except FileNotFoundError:
            return opened is not None
        return opened is None or not os.path.samestat(os.fstat(opened.fileno()), now)

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
        deleted, so a reader that opened the old snapshot can still open the old log. A store of format 1
        is rewritten in format 2 (and its meta.json updated) even when nothing was logged."""
        with self._lock:
            self._check_writable()
            upgrade = self._meta_version < FORMAT_VERSION or self._snapshot_version != FORMAT_VERSION
            if self._seq == self._log_seq and not upgrade:
                return  # nothing logged since the snapshot
            self._warn_dangling()
            snapshot, tmp = self.path / SNAPSHOT_FILE, self.path / _SNAPSHOT_TMP
            old_log, new_log = self._log_path(self._log_seq), self._log_path(self._seq)
            fd = None  # a new log; none when the log stays (an upgrade with nothing logged)
            try:
                write_snapshot_file(tmp, self._mem, self._seq)
                if new_log != old_log:
                    fd = os.open(new_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            except OSError as exc:
                raise StoreError(f"cannot write snapshot {tmp}: {_os_reason(exc)}") from None
            try:
                if fd is not None:
                    os.fsync(fd)
                _fsync_dir(self.path)
                os.replace(tmp, snapshot)
            except OSError as exc:
                if fd is not None:
                    os.close(fd)
                raise StoreError(f"cannot replace snapshot {snapshot}: {_os_reason(exc)}") from None
            self._snapshot_version = FORMAT_VERSION
            if fd is not None:
                assert self._log_fd is not None
                os.close(self._log_fd)
                self._log_fd, self._log_seq, self._log_size = fd, self._seq, 0
            try:
                _fsync_dir(self.path)
                if self._meta_version < FORMAT_VERSION:
                    self._write_meta()
                    self._meta_version = FORMAT_VERSION
                if fd is not None:
                    os.unlink(old_log)
            except OSError as exc:
                raise StoreError(f"cannot finish compacting {self.path}: {_os_reason(exc)}") from None

    def _warn_dangling(self) -> None:
        dangling = self._mem.dangling()
        if dangling:
            rid, name, missing = dangling[0]
            logger.warning(
                "%s: the snapshot keeps %d references to records the store does not hold (e.g. %s.%s -> %s); "
                "`synthkg --store-path %s check` lists them",
                self.path, len(dangling), rid, name, missing, self.path,
            )

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

    def propositions_of_chunks(self, chunk_ids: Iterable[str]) -> list[Proposition]:
        with self._lock:
            ids = {pid for cid in chunk_ids for pid in self._mem.chunk_props.get(cid, ())}
            return [self._mem.propositions[pid] for pid in sorted(ids)]

    def relations_of_propositions(self, proposition_ids: Iterable[str]) -> list[Relation]:
        with self._lock:
            ids = {rid for pid in proposition_ids for rid in self._mem.prop_rels.get(pid, ())}
            return [self._mem.relations[rid] for rid in sorted(ids)]

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


def _read_all(log: BinaryIO | None, path: Path) -> bytes:
    try:
        return b"" if log is None else log.read()
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {_os_reason(exc)}") from None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _leftover_log_problem(log: Path, generation: int, seq: int) -> str:
    """Why the log `log` (of `generation`) is not what a compaction up to `seq` leaves; "" when it is: an
    empty log, or an older one whose operations run from generation + 1 exactly to `seq`."""
    try:
        data = log.read_bytes()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise StoreError(f"cannot read {log}: {_os_reason(exc)}") from None
    if not data:
        return ""
    if generation > seq:
        return (f"{log.name} holds {len(data)} bytes of operations after {generation}, but the snapshot "
                f"only goes up to {seq}")
    _, scan = scan_log(data, generation, None, log, strict=False)
    if scan.corrupt is None and scan.last == seq:
        return ""
    damage = " and damage" if scan.corrupt else ""
    return (f"{log.name} holds operations {generation + 1}-{scan.last}{damage}, not the "
            f"{generation + 1}-{seq} that the snapshot holds")
