"""Corruption drill for the embedded store: each of its files (snapshot, write-ahead log, meta.json) is
truncated, cut short by a few bytes, has a byte flipped in its middle or in its last line, is deleted, or
(the log) renamed to another generation. For every case: an open (read-only or writer) either refuses with
a StoreError that names the damage and the repair, or holds exactly the intact records; no open deletes a
file; `synthkg check` reports the damage (exit 1); `synthkg check --repair` keeps every intact record,
moves the damaged files aside and says what was lost; the repaired store opens and takes writes."""

from __future__ import annotations

import functools
import json
import logging
import shutil
import zlib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from synthkg.cli import app
from synthkg.model import Document, Entity, GraphBatch, Proposition
from synthkg.store.base import StoreError
from synthkg.store.check import check_store
from synthkg.store.embedded import LOCK_FILE, META_FILE, SNAPSHOT_FILE, EmbeddedStore
from tests.store.corpus import snapshot
from tests.store.crash_writer import make_batch

SNAPSHOT_DOCS, TOTAL_DOCS = 10, 20  # batches 0-9 are in the snapshot, 10-19 in the log
LOG = f"wal-{SNAPSHOT_DOCS}.log"  # one operation per batch, so the snapshot holds operations up to 10
KINDS = ("documents", "chunks", "entities", "propositions", "relations")
BLOCK_KIND = {"document": "documents", "chunk": "chunks", "entity": "entities",
              "proposition": "propositions", "relation": "relations"}
DAMAGES = ("truncate-half", "truncate-few", "flip-middle", "flip-last-line", "delete")
CASES = [(f, d) for f in (SNAPSHOT_FILE, LOG, META_FILE) for d in DAMAGES] + [
    (LOG, "rename-older"), (LOG, "rename-newer")
]
runner = CliRunner()
Records = dict[str, dict[str, Any]]


@functools.cache
def batch(i: int) -> GraphBatch:
    return make_batch(i, size=2 + i % 4)  # log lines of several lengths: half a log is not a whole line


def ids_of(b: GraphBatch) -> dict[str, set[str]]:
    return {kind: {r.id for r in getattr(b, kind)} for kind in KINDS}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crash image (files copied while the writer is open) of a store of 20 documents: 10 in the
    snapshot, 10 in the log, one operation each."""
    root = tmp_path_factory.mktemp("drill")
    with EmbeddedStore(root / "s") as store:
        for i in range(SNAPSHOT_DOCS):
            store.write(batch(i))
        store.compact()
        for i in range(SNAPSHOT_DOCS, TOTAL_DOCS):
            store.write(batch(i))
        shutil.copytree(root / "s", root / "image")
    image = root / "image"
    assert sorted(p.name for p in image.iterdir()) == [LOCK_FILE, META_FILE, SNAPSHOT_FILE, LOG]
    log = (image / LOG).read_bytes()
    assert log[len(log) // 2 - 1] != ord("\n")  # the drill's cut is inside a line (see the boundary test)
    return image


@pytest.fixture(scope="module")
def full(base: Path) -> Records:
    with EmbeddedStore(base, read_only=True) as store:
        return snapshot(store)


@pytest.fixture(autouse=True)
def _plain_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no synthkg.toml
    monkeypatch.delenv("SYNTHKG_CONFIG", raising=False)


def cli_check(store: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--store", "embedded", "--store-path", str(store), "check", *args])
    return result.exit_code, result.output


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- the damage, and what stays intact ------------------------------------------------------------------
def damage(store: Path, name: str, kind: str) -> int:
    """Damage file `name`; returns the position involved (the new length, or the flipped byte)."""
    path = store / name
    data = bytearray(path.read_bytes())
    if kind == "delete":
        path.unlink()
        return 0
    if kind.startswith("rename"):
        path.rename(store / ("wal-3.log" if kind == "rename-older" else "wal-99.log"))
        return 0
    if kind.startswith("truncate"):
        cut = len(data) // 2 if kind == "truncate-half" else len(data) - 5
        path.write_bytes(data[:cut])
        return cut
    at = len(data) // 2 if kind == "flip-middle" else len(data) - 3  # inside the last line
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    return at


def intact_lines(original: bytes, kind: str, at: int) -> list[bool]:
    """For each line of the original file: whether it is still there unchanged (its newline included)."""
    flags, start = [], 0
    for line in original.splitlines(keepends=True):
        end = start + len(line)
        if kind == "delete":
            flags.append(False)
        elif kind.startswith("truncate"):
            flags.append(end <= at)
        elif kind.startswith("flip"):
            flags.append(not start <= at < end)
        else:
            flags.append(True)
        start = end
    return flags


def expected_ids(base: Path, name: str, kind: str, at: int) -> dict[str, set[str]]:
    """The records a careful recovery keeps: the snapshot blocks that are unchanged, plus the log's
    operations up to the first changed or missing line."""
    expected: dict[str, set[str]] = {k: set() for k in KINDS}
    snap = (base / SNAPSHOT_FILE).read_bytes()
    snap_ok = intact_lines(snap, kind, at) if name == SNAPSHOT_FILE else [True] * len(snap.splitlines())
    assert snap_ok[0] or kind == "delete", "the drill never hits the header"
    for ok, line in zip(snap_ok[1:-1], snap.splitlines()[1:-1], strict=True):
        tag, _, data = line.split(b"\t", 2)
        if ok:
            expected[BLOCK_KIND[tag.decode()]] |= {r["id"] for r in json.loads(data)}
    log = (base / LOG).read_bytes()
    log_ok = intact_lines(log, kind, at) if name == LOG else [True] * SNAPSHOT_DOCS
    for j, ok in enumerate(log_ok):
        if not ok:
            break
        for k, ids in ids_of(batch(SNAPSHOT_DOCS + j)).items():
            expected[k] |= ids
    return expected


def records_of(store: EmbeddedStore) -> dict[str, set[str]]:
    return {k: set(v) for k, v in snapshot(store).items()}


def assert_holds(store: EmbeddedStore, expected: dict[str, set[str]], full: Records) -> None:
    got = snapshot(store)
    assert {k: set(v) for k, v in got.items()} == expected
    for k in KINDS:  # and each record is the one that was written
        assert all(full[k][rid] == record for rid, record in got[k].items())


def dangles(expected: dict[str, set[str]], full: Records) -> bool:
    e = expected
    return (
        any(full["chunks"][c].document_id not in e["documents"] for c in e["chunks"])
        or any(full["propositions"][p].chunk_id not in e["chunks"]
               or not set(full["propositions"][p].entity_ids) <= e["entities"] for p in e["propositions"])
        or any({full["relations"][r].subject_id, full["relations"][r].object_id} - e["entities"]
               or full["relations"][r].proposition_id not in e["propositions"] for r in e["relations"])
    )


def open_outcome(store: Path, read_only: bool) -> EmbeddedStore | StoreError:
    try:
        return EmbeddedStore(store, read_only=read_only)
    except StoreError as exc:
        return exc


# --- the drill ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "kind"), CASES)
def test_drill(base: Path, full: Records, tmp_path: Path, name: str, kind: str,
               caplog: pytest.LogCaptureFixture) -> None:
    image = tmp_path / "store"
    shutil.copytree(base, image)
    at = damage(image, name, kind)
    expected = expected_ids(base, name, kind, at)
    before = tree_bytes(image)
    torn = name == LOG and kind.startswith("truncate")  # a cut log ends in a torn append: opens get past it

    # A reader: refuses, naming the damage and the repair, or holds exactly the intact records (and
    # warns about the torn tail). It changes nothing.
    with caplog.at_level(logging.WARNING, logger="synthkg.store.embedded"):
        reader = open_outcome(image, read_only=True)
    if isinstance(reader, StoreError):
        assert not torn
        message = str(reader)
        assert (name if kind not in ("rename-older", "rename-newer") else LOG) in message
        assert "check --repair" in message and "nothing was changed" in message
    else:
        assert torn, f"{name} {kind} opened"
        assert_holds(reader, expected, full)
        reader.close()
        assert f"{LOG} ends in an incomplete operation" in caplog.text
    assert tree_bytes(image) == before

    # A writer on a copy: the same outcome; the open deletes no file (its close may then delete the
    # log its own compaction superseded).
    copy = tmp_path / "copy"
    shutil.copytree(image, copy)
    writer = open_outcome(copy, read_only=False)
    if isinstance(writer, StoreError):
        assert not torn
        assert tree_bytes(copy) == before
    else:
        assert torn
        assert set(before) <= set(tree_bytes(copy))
        assert_holds(writer, expected, full)
        writer.close()

    # check: reports the damaged file, exit code 1, changes nothing.
    code, out = cli_check(image)
    assert code == 1, out
    assert "status: damaged" in out and "check --repair" in out
    assert (LOG if kind.startswith("rename") else name) in out
    assert tree_bytes(image) == before

    # check --repair: keeps every intact record, says what was lost, moves the damaged files aside.
    code, out = cli_check(image, "--repair")
    assert "repair:" in out and "moved aside into" in out and "lost:" in out, out
    assert code == (1 if dangles(expected, full) else 0), out
    (aside,) = image.glob("damaged-*")
    kept = {**tree_bytes(image), **{str(p.relative_to(aside)): p.read_bytes() for p in aside.iterdir()}}
    for damaged_name, data in before.items():  # every file that was there is kept, in place or aside
        if damaged_name not in (LOCK_FILE, META_FILE) or name == META_FILE:
            assert kept.get(damaged_name) == data, damaged_name
    with EmbeddedStore(image, read_only=True) as repaired:
        assert_holds(repaired, expected, full)
    code, out = cli_check(image)
    assert code == (1 if dangles(expected, full) else 0), out
    assert ("dangling references: none" in out) != dangles(expected, full)

    # The repaired store takes writes and keeps them.
    with EmbeddedStore(image) as writer2:
        writer2.write(batch(99))
    with EmbeddedStore(image, read_only=True) as reader2:
        got = records_of(reader2)
        assert all(got[k] == expected[k] | ids_of(batch(99))[k] for k in KINDS)


def test_drill_lost_report_names_the_operations_and_documents(base: Path, tmp_path: Path) -> None:
    image = tmp_path / "store"
    shutil.copytree(base, image)
    lines = (image / LOG).read_bytes().splitlines(keepends=True)
    bad = bytearray(lines[3])
    bad[40] ^= 0x01
    (image / LOG).write_bytes(b"".join([*lines[:3], bytes(bad), *lines[4:]]))
    code, out = cli_check(image, "--repair")
    docs = [batch(i).documents[0].id for i in range(SNAPSHOT_DOCS + 3, TOTAL_DOCS)]
    assert code == 0, out
    assert f"{LOG}: 3 operations ok (11-13); corrupt from line 4" in out
    assert "WAL operations 14-20" in out and all(d in out for d in docs[1:])
    assert "wrote a fresh snapshot (operations up to 13: 13 documents" in out


# --- the rules one by one -------------------------------------------------------------------------------
def test_healthy_store_checks_clean(base: Path, tmp_path: Path) -> None:
    code, out = cli_check(base)
    assert code == 0, out
    assert f"{LOG}: 10 operations ok (11-20)" in out and "status: healthy" in out
    assert "records: 20 documents" in out
    with EmbeddedStore(tmp_path / "closed") as store:
        store.write(batch(0))
    code, out = cli_check(tmp_path / "closed", "--repair")
    assert code == 0 and "nothing to do" in out, out
    assert not list((tmp_path / "closed").glob("damaged-*"))


def test_torn_tail_is_told_apart_from_a_corrupt_last_line(base: Path, tmp_path: Path) -> None:
    image = tmp_path / "store"
    shutil.copytree(base, image)
    log = image / LOG
    full_log = log.read_bytes()
    last = full_log.rstrip(b"\n").rfind(b"\n") + 1
    log.write_bytes(full_log[: last + 30])  # an append cut short: no newline
    with EmbeddedStore(image, read_only=True) as reader:
        assert reader.counts().documents == TOTAL_DOCS - 1
    body = bytearray(full_log)
    body[last + 30] ^= 0x01  # the same line complete, with one bit changed: corruption
    log.write_bytes(bytes(body))
    for read_only in (True, False):
        with pytest.raises(StoreError, match=rf"{LOG} is corrupt at line 10 \(byte {last}\): its checksum"):
            EmbeddedStore(image, read_only=read_only)
    assert log.read_bytes() == bytes(body)  # the writer did not cut it off


def test_log_cut_between_two_lines_looks_like_fewer_writes(base: Path, tmp_path: Path) -> None:
    """A known limit of any write-ahead log: cut exactly between two records, the log is what it was
    before the later writes, and nothing on disk says otherwise. The store then holds that prefix."""
    image = tmp_path / "store"
    shutil.copytree(base, image)
    lines = (image / LOG).read_bytes().splitlines(keepends=True)
    (image / LOG).write_bytes(b"".join(lines[:4]))
    with EmbeddedStore(image, read_only=True) as reader:
        assert reader.counts().documents == SNAPSHOT_DOCS + 4
    code, out = cli_check(image)
    assert code == 0 and f"{LOG}: 4 operations ok (11-14)" in out, out


def test_sequence_gap_is_corruption(base: Path, tmp_path: Path) -> None:
    image = tmp_path / "store"
    shutil.copytree(base, image)
    lines = (image / LOG).read_bytes().splitlines(keepends=True)
    _, seq, op, payload = lines[5].rstrip(b"\n").split(b"\t", 3)
    body = b"%d\t%s\t%s" % (int(seq) + 1, op, payload)  # a valid checksum, the wrong number
    lines[5] = b"%08x\t%s\n" % (zlib.crc32(body), body)
    (image / LOG).write_bytes(b"".join(lines))
    with pytest.raises(StoreError, match="it holds operation 17 where operation 16 must follow"):
        EmbeddedStore(image, read_only=True)


def test_edited_snapshot_value_is_caught(base: Path, tmp_path: Path) -> None:
    """The old format accepted an edited entity id in a proposition (a dangling reference after it)."""
    image = tmp_path / "store"
    shutil.copytree(base, image)
    snap = image / SNAPSHOT_FILE
    data = snap.read_bytes()
    entity_id = batch(0).entities[0].id
    at = data.index(entity_id.encode(), data.index(b"proposition\t"))
    snap.write_bytes(data[:at] + entity_id[:-1].encode() + b"0" + data[at + len(entity_id):])
    with pytest.raises(StoreError, match=r"snapshot .* is damaged at line 5 \(byte \d+\): its checksum"):
        EmbeddedStore(image, read_only=True)


def test_snapshot_missing_never_costs_the_log(base: Path, tmp_path: Path) -> None:
    image = tmp_path / "store"
    shutil.copytree(base, image)
    (image / SNAPSHOT_FILE).unlink()
    log = (image / LOG).read_bytes()
    with pytest.raises(StoreError, match=rf"the snapshot {image / SNAPSHOT_FILE} is missing \(found: {LOG}"):
        EmbeddedStore(image)
    assert (image / LOG).read_bytes() == log
    code, out = cli_check(image, "--repair")
    assert code == 0 and "every record written up to operation 10 that the log does not write" in out, out
    with EmbeddedStore(image, read_only=True) as store:
        assert store.counts().documents == TOTAL_DOCS - SNAPSHOT_DOCS


@pytest.mark.parametrize("stray", ["wal-99.log", "wal-3.log"])
def test_log_of_another_generation_is_reported_not_deleted(base: Path, tmp_path: Path, stray: str) -> None:
    image = tmp_path / "store"
    shutil.copytree(base, image)
    shutil.copy(image / LOG, image / stray)
    before = tree_bytes(image)
    with pytest.raises(StoreError, match=f"{stray} holds .*; nothing was changed"):
        EmbeddedStore(image)
    assert tree_bytes(image) == before
    if stray == "wal-99.log":  # newer than the snapshot: a reader refuses too
        with pytest.raises(StoreError, match=r"wal-99\.log holds operations after 99"):
            EmbeddedStore(image, read_only=True)
    code, out = cli_check(image)
    assert code == 1 and f"{stray}: not part of the store: it holds operations 11-20" in out, out
    code, out = cli_check(image, "--repair")
    assert code == 0, out
    with EmbeddedStore(image) as store:  # the repair moved it aside; everything else is intact
        assert store.counts().documents == TOTAL_DOCS
    assert not (image / stray).exists()
    assert (next(image.glob("damaged-*")) / stray).read_bytes() == before[stray]


def test_missing_meta_next_to_store_files_is_refused(base: Path, tmp_path: Path) -> None:
    image = tmp_path / "store"
    shutil.copytree(base, image)
    (image / META_FILE).unlink()
    before = tree_bytes(image)
    for read_only in (True, False):
        with pytest.raises(StoreError, match=f"{META_FILE} is missing, but .* holds store files"):
            EmbeddedStore(image, read_only=read_only)
    assert tree_bytes(image) == before


def test_interrupted_creation_is_finished(tmp_path: Path) -> None:
    """Creation writes the empty snapshot and wal-0.log before meta.json; a crash in between is no store
    yet, and the next writer creates it."""
    with EmbeddedStore(tmp_path / "made"):
        pass
    empty = (tmp_path / "made" / SNAPSHOT_FILE).read_bytes()
    for cut in (len(empty), 10):
        target = tmp_path / f"crashed-{cut}"
        target.mkdir()
        (target / SNAPSHOT_FILE).write_bytes(empty[:cut])
        (target / "wal-0.log").write_bytes(b"")
        with pytest.raises(StoreError, match="no store at"):
            EmbeddedStore(target, read_only=True)
        with EmbeddedStore(target) as store:
            store.write(batch(0))
        with EmbeddedStore(target, read_only=True) as store:
            assert store.counts().documents == 1


def v1_store(path: Path, records: GraphBatch, logged: GraphBatch | None) -> None:
    """A store as synthkg wrote it before snapshot checksums (format 1)."""
    path.mkdir()
    (path / META_FILE).write_text('{"format": "synthkg-embedded", "format_version": 1}')
    lines = [json.dumps({"format": "synthkg-embedded", "format_version": 1, "seq": 1}).encode()]
    for tag, kind in BLOCK_KIND.items():
        rows = getattr(records, kind)
        if rows:
            rows_json = json.dumps([r.model_dump(mode="json") for r in rows]).encode()
            lines.append(tag.encode() + b"\t" + rows_json)
    lines.append(b"end\t%d" % len(records))
    (path / SNAPSHOT_FILE).write_bytes(b"\n".join(lines) + b"\n")
    log = b""
    if logged is not None:
        body = b"2\twrite\t" + logged.model_dump_json().encode()
        log = b"%08x\t%s\n" % (zlib.crc32(body), body)
    (path / "wal-1.log").write_bytes(log)


def test_format_1_store_loads_and_is_rewritten_with_checksums(tmp_path: Path, full: Records) -> None:
    store_dir = tmp_path / "old"
    v1_store(store_dir, batch(0), batch(1))
    code, out = cli_check(store_dir)
    assert code == 0 and "format 1: no checksums" in out and "an older format" in out, out
    with EmbeddedStore(store_dir, read_only=True) as reader:
        assert reader.counts().documents == 2
    with EmbeddedStore(store_dir) as writer:  # closing rewrites it, although nothing was written
        assert records_of(writer) == {k: ids_of(batch(0))[k] | ids_of(batch(1))[k] for k in KINDS}
    assert json.loads((store_dir / META_FILE).read_text())["format_version"] == 2
    snap = (store_dir / SNAPSHOT_FILE).read_bytes()
    assert b'"format_version": 2' in snap and snap.splitlines()[1].split(b"\t")[1].isalnum()
    with EmbeddedStore(store_dir, read_only=True) as reader:
        assert reader.counts().documents == 2
    code, out = cli_check(store_dir)
    assert code == 0 and "format version 2" in out, out


def test_format_1_store_never_compacted_opens_as_empty_or_from_its_log(tmp_path: Path) -> None:
    store_dir = tmp_path / "old"
    store_dir.mkdir()
    (store_dir / META_FILE).write_text('{"format": "synthkg-embedded", "format_version": 1}')
    with EmbeddedStore(store_dir, read_only=True) as reader:
        assert reader.counts().documents == 0
    with EmbeddedStore(store_dir) as writer:
        writer.write(batch(0))
    with EmbeddedStore(store_dir, read_only=True) as reader:
        assert reader.counts().documents == 1


def test_dangling_references_are_reported_by_check_and_compaction(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    doc = Document.create("x", key="x")
    ghost = Entity.create("nobody")
    prop = Proposition.create("chunk:missing", "nobody did it", [ghost.id])
    with caplog.at_level(logging.WARNING, logger="synthkg.store.embedded"):
        store = EmbeddedStore(tmp_path / "s")
        store.write(GraphBatch(documents=[doc], propositions=[prop]))
        store.close()
    assert "the snapshot keeps 2 references to records the store does not hold" in caplog.text
    code, out = cli_check(tmp_path / "s")
    assert code == 1, out
    assert f"{prop.id} chunk_id -> chunk:missing (missing)" in out
    assert f"{prop.id} entity_ids -> {ghost.id} (missing)" in out
    assert "status: damaged: records point at missing ones" in out


def test_check_refuses_while_a_writer_holds_the_store(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s") as store:
        store.write(batch(0))
        code, out = cli_check(tmp_path / "s")
        assert code == 2 and "being written by another process" in out, out
    assert check_store(tmp_path / "s").healthy


def test_check_of_no_store_and_of_neo4j(tmp_path: Path) -> None:
    code, out = cli_check(tmp_path / "nothing")
    assert code == 2 and "no synthkg embedded store" in out, out
    assert not (tmp_path / "nothing").exists()
    result = runner.invoke(app, ["--store", "neo4j", "check"])
    assert result.exit_code == 2 and "applies to the embedded store only" in result.output
