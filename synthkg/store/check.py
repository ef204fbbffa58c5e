"""`synthkg check`: the embedded store's fsck. It reads every file of the store leniently (the opens in
embedded.py refuse at the first damage) and reports, file by file, what verifies and what does not:

    meta.json        ok / missing / damaged
    snapshot.jsonl   N blocks ok / damaged at line k (byte b): why; what each damaged block held
    wal-N.log        M operations ok, torn tail of B bytes, corrupt from line k (byte b): why
    other files      logs and snapshot.jsonl.tmp that an interrupted compaction leaves (harmless: the next
                     writer removes them) or that nothing leaves (damage)

then the records the intact part holds, the references to missing records (a proposition naming an
entity that is not there...), and what is lost. The store is healthy when no file is damaged and no
reference dangles.

`repair_store` (`synthkg check --repair`) keeps everything intact: the snapshot blocks that verify, and
the operations of the snapshot's log up to its first corruption (a log renamed to another generation is
recognized by its first sequence number and used). It writes them as a fresh snapshot with an empty log
after it, in this order: new snapshot aside, empty log, the old snapshot hard-linked into
`<store>/damaged-<time>/`, the new snapshot renamed into place (the atomic step: before it the store is
as it was, after it the repaired store is complete), then meta.json rewritten and the old logs moved
into `damaged-<time>/` too. Nothing is deleted. A crash during a repair leaves either the old store or
the repaired one plus stray old logs, which a second repair moves aside. Records that point at lost ones
are kept and reported with their documents, to re-ingest (`synthkg ingest --force`).

Both hold the store's writer lock, so they never race a writer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from synthkg.model import StoreCounts
from synthkg.store.base import StoreError, StoreLockedError
from synthkg.store.embedded import (
    _META_TMP,
    _OP_CLEAR,
    _OP_DELETE,
    _OP_WRITE,
    _SNAPSHOT_TMP,
    FORMAT,
    FORMAT_VERSION,
    LOCK_FILE,
    META_FILE,
    SNAPSHOT_FILE,
    LogScan,
    SnapshotScan,
    _fsync_dir,
    _leftover_log_problem,
    _MemoryGraph,
    _newer_error,
    _parse_log_line,
    log_file_name,
    log_generation,
    read_snapshot_header,
    read_snapshot_records,
    repair_hint,
    scan_log,
    write_meta,
    write_snapshot_file,
)

DAMAGED_DIR_PREFIX = "damaged-"
# Ids that damaged bytes may still show: which documents the lost records belonged to (unverified).
_REFERENCE = re.compile(rb'"(id|document_id|chunk_id|proposition_id)":\s*"([^"\\]{1,200})"')
_SHOWN = 10  # damaged places and dangling references listed one by one; the rest are counted


@dataclass
class CheckReport:
    """What `check` found. `mem` and `seq` are the intact part, which `--repair` keeps."""

    path: Path
    files: list[str] = field(default_factory=list)  # "name: state", one line per store file
    problems: list[str] = field(default_factory=list)  # damage; empty when the files are healthy
    lost: list[str] = field(default_factory=list)  # what the intact part lacks
    dangling: list[tuple[str, str, str]] = field(default_factory=list)  # (record id, field, missing id)
    affected: list[str] = field(default_factory=list)  # documents whose records dangle
    counts: StoreCounts = field(default_factory=StoreCounts)
    seq: int = 0  # the last operation the intact part holds
    mem: _MemoryGraph = field(default_factory=_MemoryGraph, repr=False)
    meta_ok: bool = False  # meta.json is there, readable and of the current format

    @property
    def healthy(self) -> bool:
        return not self.problems and not self.dangling

    def lines(self, status: bool = True) -> list[str]:
        out = [f"store {self.path}"]
        out += [f"  {line}" for line in self.files]
        c = self.counts
        out.append(
            f"records{'' if not self.problems else ' intact'}: {c.documents} documents, {c.chunks} chunks, "
            f"{c.entities} entities, {c.propositions} propositions, {c.relations} relations"
        )
        if self.dangling:
            out.append(f"dangling references: {len(self.dangling)} (records that point at missing ones)")
            out += [f"  {rid} {name} -> {missing} (missing)" for rid, name, missing in self.dangling[:_SHOWN]]
            if len(self.dangling) > _SHOWN:
                out.append(f"  ... and {len(self.dangling) - _SHOWN} more")
        else:
            out.append("dangling references: none")
        if self.lost:
            out.append("lost:")
            out += [f"  {line}" for line in self.lost]
        if self.affected:
            named = [f"{d} ({doc.source})" if (doc := self.mem.documents.get(d)) is not None and doc.source
                     else d for d in self.affected]
            out.append("documents to re-ingest (`synthkg ingest --force <their files>`) to restore what "
                       f"they lost: {_listed(named)}")
        if not status:
            return out
        if self.healthy:
            out.append("status: healthy")
        elif self.problems:
            out.append(f"status: damaged: {'; '.join(self.problems)}")
            out.append(f"  repair: `synthkg --store-path {self.path} check --repair` keeps every intact "
                       "record, moves the damaged files aside (never deleting them) and writes a fresh "
                       "snapshot")
        else:
            out.append("status: damaged: records point at missing ones (re-ingest the documents affected)")
        return out


@dataclass
class RepairReport:
    """What `check --repair` found, did, and the store's state afterwards."""

    before: CheckReport
    actions: list[str]
    after: CheckReport

    @property
    def healthy(self) -> bool:
        return self.after.healthy

    def lines(self) -> list[str]:
        out = self.before.lines(status=not self.before.problems)
        if not self.before.problems:
            return [*out, "repair: no file is damaged; nothing to do"]
        out.append("repair:")
        out += [f"  {line}" for line in self.actions]
        if not self.before.lost:
            out.append("  lost: nothing")
        out.append("after the repair:")
        out += [f"  {line}" for line in self.after.lines()]
        return out


def check_store(path: str | Path) -> CheckReport:
    """Read the whole store and report its health; changes nothing (it may create the lock file)."""
    path = Path(path)
    with _exclusive(path, repairing=False):
        return inspect_store(path)


def repair_store(path: str | Path) -> RepairReport:
    """Keep every intact record of a damaged store, move the damaged files aside, write a fresh snapshot."""
    path = Path(path)
    with _exclusive(path, repairing=True):
        before = inspect_store(path)
        if not before.problems:
            return RepairReport(before, [], before)
        actions = _repair(path, before)
        return RepairReport(before, actions, inspect_store(path))


# --- reading ----------------------------------------------------------------------------------------
def _listed(items: list[str], limit: int = _SHOWN) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _is_store_dir(path: Path) -> bool:
    if not path.is_dir():
        return False
    names = os.listdir(path)
    return any(n in (META_FILE, SNAPSHOT_FILE) or log_generation(n) is not None for n in names)


@contextlib.contextmanager
def _exclusive(path: Path, repairing: bool) -> Iterator[None]:
    """Hold the store's writer lock. A check without repair goes on without it where the lock file cannot
    be created (read-only media)."""
    if not _is_store_dir(path):
        raise StoreError(f"no synthkg embedded store at {path} (no {META_FILE}, snapshot or log there)")
    lock = FileLock(str(path / LOCK_FILE))
    try:
        lock.acquire(blocking=False)
    except Timeout:
        raise StoreLockedError(
            f"store {path} is being written by another process (lock file {path / LOCK_FILE}); "
            "check it when the writer has finished"
        ) from None
    except OSError as exc:
        if repairing:
            raise StoreError(f"cannot lock {path} for the repair: {exc.strerror or exc}") from None
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None


def inspect_store(path: Path) -> CheckReport:
    """The report, without taking the lock (check_store and repair_store take it)."""
    r = CheckReport(path=path)
    names = sorted(os.listdir(path))
    logs = {g: path / n for n in names if (g := log_generation(n)) is not None}
    data = {g: _read(p) for g, p in logs.items()}
    meta_version = _check_meta(path, r)

    # The snapshot: the intact blocks go into r.mem.
    scan: SnapshotScan | None = None
    if SNAPSHOT_FILE in names:
        scan = _check_snapshot(path / SNAPSHOT_FILE, r)
    elif meta_version == 1 and set(logs) <= {0}:
        r.files.append(f"{SNAPSHOT_FILE}: none yet (a format 1 store that was never compacted)")
    else:
        r.files.append(f"{SNAPSHOT_FILE}: missing")
        r.problems.append(f"{SNAPSHOT_FILE} is missing")

    # Which log follows the snapshot: wal-N.log, else a log whose first operation is N+1 (renamed).
    snap_seq = scan.seq if scan is not None else None
    current: int | None = None
    start = snap_seq or 0
    if snap_seq is not None:
        if snap_seq in logs:
            current = snap_seq
        else:
            renamed = [g for g in logs if _first_seq(data[g]) == snap_seq + 1]
            expected = log_file_name(snap_seq)
            if renamed:
                current = renamed[0]
                r.problems.append(f"{expected} is missing, but {log_file_name(current)} holds its operations "
                                  "(renamed?); the repair uses it")
            else:
                r.problems.append(f"{expected} (the operations after {snap_seq}) is missing")
                r.lost.append(f"whatever operations followed {snap_seq}: {expected} is missing")
    elif logs:  # no snapshot, or its header is unreadable: take the newest log
        current = max(logs)
        first = _first_seq(data[current])
        start = first - 1 if first is not None else current
        if scan is not None:
            r.problems.append(
                f"the snapshot's header is unreadable; {log_file_name(current)} is taken to follow it"
            )
    if scan is None and r.problems:
        if current is None:
            r.lost.append("whatever the store held: neither a snapshot nor a log is left")
        elif start > 0:
            r.lost.append(f"the snapshot: every record written up to operation {start} that the log does not "
                          "write again (which ones cannot be known)")

    r.seq = start
    if current is not None:
        renamed = snap_seq is not None and current != snap_seq
        r.seq = _check_current_log(path / log_file_name(current), data[current], start, r, renamed)
    for g in sorted(logs):
        if g != current:
            _check_other_log(logs[g], g, data[g], snap_seq, r)
    if _SNAPSHOT_TMP in names:
        _check_tmp_snapshot(path / _SNAPSHOT_TMP, r)
    if _META_TMP in names:
        r.files.append(f"{_META_TMP}: left by an interrupted write of {META_FILE} (harmless)")
    r.files += [f"{n}/: moved aside by an earlier repair" for n in names
                if n.startswith(DAMAGED_DIR_PREFIX) and (path / n).is_dir()]

    if scan is not None and scan.lost_blocks:
        named = set().union(*(_documents_named(data, r.mem) for _, data in scan.lost_blocks))
        if named:
            r.lost.append(f"{SNAPSHOT_FILE}: the damaged blocks name documents {_listed(sorted(named))} "
                          "(unverified)")
        r.affected.extend(sorted(named))
    r.counts = r.mem.counts()
    r.dangling = r.mem.dangling()
    r.affected = sorted({*r.affected, *_affected_documents(r.mem, r.dangling)})
    return r


def _check_meta(path: Path, r: CheckReport) -> int | None:
    meta_path = path / META_FILE
    try:
        raw = meta_path.read_bytes()
    except FileNotFoundError:
        r.files.append(f"{META_FILE}: missing")
        r.problems.append(f"{META_FILE} is missing")
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {meta_path}: {exc.strerror or exc}") from None
    why = ""
    try:
        meta = json.loads(raw)
    except ValueError:
        meta, why = None, "not valid JSON"
    if not why and (not isinstance(meta, dict) or meta.get("format") != FORMAT):
        why = "it names another format"
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not why and (type(version) is not int or version < 1):
        why = f"invalid format_version {version!r}"
    if why:
        r.files.append(f"{META_FILE}: damaged ({why}): {raw[:80]!r}")
        r.problems.append(f"{META_FILE} is damaged")
        return None
    assert isinstance(version, int)
    if version > FORMAT_VERSION:
        raise _newer_error(path, version)
    r.meta_ok = version == FORMAT_VERSION
    older = "" if r.meta_ok else "; an older format, which the next writer upgrades"
    r.files.append(f"{META_FILE}: ok (format version {version}{older})")
    return version


def _check_snapshot(snapshot: Path, r: CheckReport) -> SnapshotScan:
    scan = SnapshotScan()
    try:
        with open(snapshot, "rb") as f:
            crc, offset = read_snapshot_header(f, snapshot, scan, strict=False)
            read_snapshot_records(f, r.mem, snapshot, scan, crc, offset, strict=False)
    except OSError as exc:
        raise StoreError(f"cannot read {snapshot}: {exc.strerror or exc}") from None
    holds = f"{scan.blocks} blocks ok ({scan.records} records)"
    upto = f", operations up to {scan.seq}" if scan.seq is not None else ""
    if not scan.damaged:
        state = f"ok: {holds}{upto}"
        if scan.version is not None and scan.version < FORMAT_VERSION:
            state += (f" (format {scan.version}: no checksums, so damage inside a block cannot be seen; the "
                      "next writer rewrites it with checksums)")
        r.files.append(f"{SNAPSHOT_FILE}: {state}")
        return scan
    where = "; ".join(str(d) for d in scan.damaged[:_SHOWN])
    more = f"; and {len(scan.damaged) - _SHOWN} more" if len(scan.damaged) > _SHOWN else ""
    r.files.append(f"{SNAPSHOT_FILE}: damaged at {where}{more}; {holds}{upto}")
    r.problems.append(f"{SNAPSHOT_FILE} is damaged")
    lost = [_describe_block(tag, data) for tag, data in scan.lost_blocks]
    if scan.footer_count is not None and scan.footer_count > scan.records:
        lost.append(f"{scan.footer_count - scan.records} of the {scan.footer_count} records it holds")
    elif scan.footer_count is None and scan.lost_blocks:
        lost.append("whatever followed the cut (the file is truncated; blocks come in the order document, "
                    "chunk, entity, proposition, relation)")
    if lost:
        r.lost.append(f"{SNAPSHOT_FILE}: " + "; ".join(lost))
    return scan


def _describe_block(tag: bytes, data: bytes) -> str:
    kind = tag.decode(errors="replace") if tag in _BLOCK_KINDS else "record"
    try:
        size = f" of {len(json.loads(data))} records"
    except (ValueError, TypeError):
        size = ""
    return f"a {kind} block{size}"


_BLOCK_KINDS = (b"document", b"chunk", b"entity", b"proposition", b"relation")


def _documents_named(raw: bytes, mem: _MemoryGraph) -> set[str]:
    """The documents that damaged bytes of records or operations seem to belong to (unverified): their
    ids, and those of the chunks and propositions they name, where the intact part knows them."""
    docs: set[str] = set()
    for _, value in _REFERENCE.findall(raw):
        rid = value.decode(errors="replace")
        if rid.startswith("doc:"):
            docs.add(rid)
        elif (p := mem.propositions.get(rid)) is not None:
            rid = p.chunk_id
        if (c := mem.chunks.get(rid)) is not None:
            docs.add(c.document_id)
    return docs


def _first_seq(data: bytes) -> int | None:
    end = data.find(b"\n")
    parsed = _parse_log_line(data[:end]) if end >= 0 else None
    return parsed[0] if parsed is not None else None


def _operation_in_words(op: bytes, payload: bytes, docs: set[str]) -> str:
    """What one logged operation did, for the report of what was lost; adds the documents it wrote."""
    try:
        if op == _OP_WRITE:
            written = [d["id"] for d in json.loads(payload).get("documents", [])]
            docs.update(written)
            return f"wrote {', '.join(written)}" if written else "wrote records of earlier documents"
        if op == _OP_DELETE:
            return f"deleted {json.loads(payload)}"
    except (ValueError, TypeError, KeyError, AttributeError):
        return "unreadable"
    return "cleared the store" if op == _OP_CLEAR else "unreadable"


def _lost_operations(log: Path, data: bytes, scan: LogScan, r: CheckReport) -> None:
    assert scan.corrupt is not None
    first = scan.last + 1
    last = max((seq for seq, _, _ in scan.after), default=first)
    docs: set[str] = set()
    what: list[str] = []
    # The corrupt line itself: what it still shows of the documents it wrote (unverified).
    line = data[scan.corrupt.offset :].split(b"\n", 1)[0]
    named = _documents_named(line, r.mem)
    docs |= named
    shows = f"names {', '.join(sorted(named))}, unverified" if named else "unreadable"
    what.append(f"line {scan.corrupt.line} ({shows})")
    what += [f"operation {seq} ({_operation_in_words(op, payload, docs)})" for seq, op, payload in scan.after]
    span = f"operation {first}" if last == first else f"operations {first}-{last}"
    unread = f"; {scan.after_bad} more lines fail their checksum" if scan.after_bad else ""
    r.lost.append(f"{log.name}: WAL {span}, from line {scan.corrupt.line} on ({scan.corrupt.what}{unread}): "
                  f"{_listed(what)}")
    r.affected.extend(sorted(docs))


def _check_current_log(log: Path, data: bytes, start: int, r: CheckReport, renamed: bool) -> int:
    mem, scan = scan_log(data, start, r.mem, log, strict=False)
    assert mem is not None
    r.mem = mem
    state = f"{scan.ops} operations ok" + (f" ({start + 1}-{scan.last})" if scan.ops else f" (after {start})")
    if renamed:
        state += f"; it holds the operations after {start}: the snapshot's log under another name"
    if scan.torn:
        state += f"; torn tail of {scan.torn} bytes at byte {scan.end}"
        r.problems.append(f"{log.name} ends in an incomplete operation (a crash during an append, or a "
                          "cut file)")
        r.lost.append(f"{log.name}: the incomplete operation at its end ({scan.torn} bytes from byte "
                      f"{scan.end}): a write that was never acknowledged, or what remains of a truncated log")
    if scan.corrupt is not None:
        state += f"; corrupt from {scan.corrupt}"
        r.problems.append(f"{log.name} is corrupt")
        _lost_operations(log, data, scan, r)
    r.files.append(f"{log.name}: {state}")
    return scan.last


def _check_other_log(log: Path, generation: int, data: bytes, snap_seq: int | None, r: CheckReport) -> None:
    if not data:
        r.files.append(f"{log.name}: empty (left by an interrupted compaction; harmless)")
        return
    superseded = snap_seq is not None and generation < snap_seq
    if superseded and not _leftover_log_problem(log, generation, snap_seq or 0):
        r.files.append(f"{log.name}: operations {generation + 1}-{snap_seq}, all in the snapshot (left by an "
                       "interrupted compaction; harmless, the next writer removes it)")
        return
    first = _first_seq(data)
    _, scan = scan_log(data, first - 1 if first is not None else generation, None, log, strict=False)
    holds = f"operations {scan.start + 1}-{scan.last}" if scan.ops else "no readable operation"
    r.files.append(f"{log.name}: not part of the store: it holds {holds}")
    r.problems.append(f"{log.name} is a log that the store does not use")


def _check_tmp_snapshot(tmp: Path, r: CheckReport) -> None:
    scan = SnapshotScan()
    try:
        with open(tmp, "rb") as f:
            read_snapshot_header(f, tmp, scan, strict=False)
    except OSError as exc:
        raise StoreError(f"cannot read {tmp}: {exc.strerror or exc}") from None
    if scan.seq is None or scan.seq <= r.seq:
        r.files.append(f"{_SNAPSHOT_TMP}: left by an interrupted compaction (harmless, the next writer "
                       "removes it)")
    else:
        r.files.append(f"{_SNAPSHOT_TMP}: holds operations up to {scan.seq}, beyond the store's {r.seq}")
        r.problems.append(f"{_SNAPSHOT_TMP} holds operations the store does not")


def _affected_documents(mem: _MemoryGraph, dangling: list[tuple[str, str, str]]) -> list[str]:
    docs: set[str] = set()
    for rid, _, _ in dangling:
        if (c := mem.chunks.get(rid)) is not None:
            docs.add(c.document_id)
        if (r := mem.relations.get(rid)) is not None:
            rid = r.proposition_id
        if (p := mem.propositions.get(rid)) is not None and (c := mem.chunks.get(p.chunk_id)) is not None:
            docs.add(c.document_id)
    return sorted(docs)


# --- repairing --------------------------------------------------------------------------------------
def _aside_dir(path: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        aside = path / f"{DAMAGED_DIR_PREFIX}{stamp}{f'-{n}' if n else ''}"
        with contextlib.suppress(FileExistsError):
            aside.mkdir()
            return aside
    raise StoreError(f"cannot find a free name for a {DAMAGED_DIR_PREFIX}* folder in {path}")


def _repair(path: Path, report: CheckReport) -> list[str]:
    aside = _aside_dir(path)
    moved: list[str] = []

    def move(name: str, keep: bool = False) -> None:
        if (path / name).exists():
            (os.link if keep else os.replace)(path / name, aside / name)
            moved.append(name)

    new_log = log_file_name(report.seq)
    try:
        move(_SNAPSHOT_TMP)
        move(_META_TMP)
        write_snapshot_file(path / _SNAPSHOT_TMP, report.mem, report.seq)
        move(new_log)  # a log holding no intact operation after report.seq: the fresh one takes its name
        fd = os.open(path / new_log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        move(SNAPSHOT_FILE, keep=True)
        _fsync_dir(aside)
        _fsync_dir(path)
        os.replace(path / _SNAPSHOT_TMP, path / SNAPSHOT_FILE)  # the repaired store is in place
        _fsync_dir(path)
        if not report.meta_ok:
            move(META_FILE, keep=True)
            write_meta(path)
        for name in sorted(os.listdir(path)):
            if log_generation(name) is not None and name != new_log:
                move(name)
        _fsync_dir(aside)
        _fsync_dir(path)
    except OSError as exc:
        raise StoreError(
            f"the repair of {path} failed: {exc.strerror or exc} ({exc.filename}); what it moved is in "
            f"{aside}. {repair_hint(path)}"
        ) from None
    c = report.counts
    return [
        f"moved aside into {aside}: {', '.join(dict.fromkeys(moved)) or 'nothing'}",
        f"wrote a fresh snapshot (operations up to {report.seq}: {c.documents} documents, {c.chunks} "
        f"chunks, {c.entities} entities, {c.propositions} propositions, {c.relations} relations) and an "
        f"empty {new_log}" + ("" if report.meta_ok else f", and a new {META_FILE}"),
    ]
