"""The embedded store on disk: durability across crashes (real SIGKILLs of a writing process), the writer
lock, and refusing paths it must not touch."""

from __future__ import annotations

import functools
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthkg.model import Chunk, Document, Entity, GraphBatch, Proposition, Relation, StoreCounts
from synthkg.store.base import GraphStore, StoreError, StoreLockedError
from synthkg.store.embedded import LOCK_FILE, META_FILE, SNAPSHOT_FILE, EmbeddedStore
from tests.store.corpus import CORPUS_COUNTS, make_corpus, snapshot
from tests.store.crash_writer import make_batch

CRASH_WRITER = Path(__file__).with_name("crash_writer.py")
BATCH_BYTES = len(make_batch(0).model_dump_json())


# --- helpers ----------------------------------------------------------------------------------------
def start_writer(
    store: Path, first: int = 0, compact_bytes: int = 1 << 40, crash_point: str = "none", stop: int = -1
) -> subprocess.Popen[str]:
    args = [str(store), str(first), str(compact_bytes), crash_point] + ([str(stop)] if stop >= 0 else [])
    return subprocess.Popen(
        [sys.executable, str(CRASH_WRITER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def committed(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith("committed ")]


def run_until_killed(
    store: Path, kill_after: str, count: int, delay_s: float, compact_bytes: int = 1 << 40
) -> list[str]:
    """Start the writer, SIGKILL it `delay_s` after its `count`-th line starting with `kill_after`;
    returns every line it printed."""
    proc = start_writer(store, compact_bytes=compact_bytes)
    assert proc.stdout is not None
    lines: list[str] = []
    seen = 0
    deadline = time.monotonic() + 60
    while seen < count:
        line = proc.stdout.readline()
        assert line, f"writer died early: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, "writer made no progress"
        lines.append(line.strip())
        seen += line.startswith(kill_after)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return lines + out.splitlines()


def run_to_crash_point(
    store: Path, crash_point: str, first: int = 0, compact_bytes: int = 1 << 40
) -> list[str]:
    proc = start_writer(store, first=first, compact_bytes=compact_bytes, crash_point=crash_point)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    return out.splitlines()


@functools.cache
def expected_batch(i: int) -> GraphBatch:
    return make_batch(i)


def batches_present(store: GraphStore, upto: int) -> int:
    """How many of batches 0..upto-1 the store holds, checking that each is entirely present or absent,
    that the present ones are a prefix, and that nothing else is in the store."""
    present = []
    for i in range(upto):
        batch = expected_batch(i)
        found = (
            [store.get_document(r.id) == r for r in batch.documents]
            + [store.get_chunk(r.id) == r for r in batch.chunks]
            + [store.get_entity(r.id) == r for r in batch.entities]
            + [store.get_proposition(r.id) == r for r in batch.propositions]
            + [store.get_relation(r.id) == r for r in batch.relations]
        )
        assert all(found) or not any(found), f"batch {i} is partly present"
        if all(found):
            present.append(i)
    assert present == list(range(len(present))), f"not a prefix: {present}"
    one = expected_batch(0)
    n = len(present)
    assert store.counts() == StoreCounts(
        documents=n * len(one.documents),
        chunks=n * len(one.chunks),
        entities=n * len(one.entities),
        propositions=n * len(one.propositions),
        relations=n * len(one.relations),
    )
    return n


def check_prefix_after_crash(store_dir: Path, lines: list[str]) -> int:
    """Reopen after a crash: every batch the writer reported is there, at most one more, never a part."""
    done = committed(lines)
    reported = max(done) + 1 if done else 0
    with EmbeddedStore(store_dir, read_only=True) as reader:
        n = batches_present(reader, reported + 5)
    assert reported <= n <= reported + 1, (reported, n)
    # A new writer (the lock died with the process) drops any torn tail and appends after the prefix.
    with EmbeddedStore(store_dir) as writer:
        assert batches_present(writer, reported + 5) == n
        writer.write(make_batch(n))
    with EmbeddedStore(store_dir, read_only=True) as reader:
        assert batches_present(reader, reported + 5) == n + 1
    return n


def log_files(store_dir: Path) -> list[Path]:
    return sorted(store_dir.glob("wal-*.log"))


def current_log(store_dir: Path) -> Path:
    """The one write-ahead log a store has outside a compaction."""
    (log,) = log_files(store_dir)
    return log


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- durability -------------------------------------------------------------------------------------
def test_contents_survive_close_and_reopen(tmp_path: Path) -> None:
    corpus = make_corpus()
    with EmbeddedStore(tmp_path / "s") as store:
        store.write(corpus.batch())
        before = snapshot(store)
    assert current_log(tmp_path / "s").stat().st_size == 0  # close folded the log into the snapshot
    with EmbeddedStore(tmp_path / "s", read_only=True) as reader:
        assert snapshot(reader) == before
        assert reader.counts() == CORPUS_COUNTS
        assert [e.id for e in reader.find_entities("Turing")] == [corpus.a.id]
        assert {e.id for e in reader.neighbors([corpus.a.id], hops=2)} == {corpus.b.id, corpus.c.id}


def test_log_alone_is_replayed_after_a_crash_image(tmp_path: Path) -> None:
    """Copying the files while a writer is open gives what a crash at that moment leaves behind."""
    corpus = make_corpus()
    with EmbeddedStore(tmp_path / "s") as store:
        store.write(corpus.batch())
        store.delete_document(corpus.doc1.id)
        expected = snapshot(store)
        shutil.copytree(tmp_path / "s", tmp_path / "image")
    assert b'"seq": 0}' in (tmp_path / "image" / SNAPSHOT_FILE).read_bytes()  # the empty one from creation
    with EmbeddedStore(tmp_path / "image", read_only=True) as reader:
        assert snapshot(reader) == expected


def test_old_log_next_to_a_new_snapshot_is_not_replayed(tmp_path: Path) -> None:
    """A crash between renaming a new snapshot and deleting the old log leaves operations in both.
    Replaying them twice would differ here: alias `a` went with doc1, a second replay would bring it back."""
    doc1, doc2 = Document.create("one", key="one"), Document.create("two", key="two")
    c1, c2 = Chunk.create(doc1.id, 0, "one"), Chunk.create(doc2.id, 0, "two")
    with_a = Entity.create("Shared", aliases=["a"])
    with_b = Entity.create("Shared", aliases=["b"])
    with EmbeddedStore(tmp_path / "s") as store:
        store.write(GraphBatch(documents=[doc1], chunks=[c1], entities=[with_a],
                               propositions=[Proposition.create(c1.id, "one", [with_a.id])]))
        store.delete_document(doc1.id)
        store.write(GraphBatch(documents=[doc2], chunks=[c2], entities=[with_b],
                               propositions=[Proposition.create(c2.id, "two", [with_b.id])]))
        expected = snapshot(store)
        assert store.get_entity(with_b.id) == with_b
        shutil.copytree(tmp_path / "s", tmp_path / "image")  # a log of three operations, no snapshot
        store.compact()
        for new in (SNAPSHOT_FILE, current_log(tmp_path / "s").name):
            shutil.copy(tmp_path / "s" / new, tmp_path / "image" / new)
    assert len(log_files(tmp_path / "image")) == 2
    with EmbeddedStore(tmp_path / "image", read_only=True) as reader:
        assert snapshot(reader) == expected
    with EmbeddedStore(tmp_path / "image") as writer:  # a writer removes the old log
        assert snapshot(writer) == expected
        assert len(log_files(tmp_path / "image")) == 1


def test_clear_persists(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s") as store:
        store.write(make_corpus().batch())
        store.clear()
        store.write(make_batch(0))
    with EmbeddedStore(tmp_path / "s", read_only=True) as reader:
        assert batches_present(reader, 3) == 1


def test_torn_log_tail_is_ignored_then_truncated(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s") as store:
        for i in range(3):
            store.write(make_batch(i))
        shutil.copytree(tmp_path / "s", tmp_path / "image")
    log = current_log(tmp_path / "image")
    full = log.read_bytes()
    line_ends = [i + 1 for i, byte in enumerate(full) if byte == ord("\n")]
    assert len(line_ends) == 3
    rng = random.Random(7)
    for cut in [line_ends[1] + 1, line_ends[1] + 30, rng.randrange(line_ends[1] + 1, line_ends[2] - 1),
                line_ends[2] - 1]:
        log.write_bytes(full[:cut])
        with EmbeddedStore(tmp_path / "image", read_only=True) as reader:
            assert batches_present(reader, 4) == 2
        assert log.read_bytes() == full[:cut]  # a reader changes nothing
    # garbage after the last complete line (e.g. zeroed blocks after a power cut) is a torn tail too
    log.write_bytes(full[: line_ends[1]] + b"\0" * 4096)
    with EmbeddedStore(tmp_path / "image") as writer:
        assert batches_present(writer, 4) == 2
        writer.write(make_batch(2))
        assert log.read_bytes().startswith(full[: line_ends[1]]) and b"\0" not in log.read_bytes()
    with EmbeddedStore(tmp_path / "image", read_only=True) as reader:
        assert batches_present(reader, 4) == 3


def test_corruption_before_valid_operations_is_an_error(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s") as store:
        for i in range(3):
            store.write(make_batch(i))
        shutil.copytree(tmp_path / "s", tmp_path / "image")
    log = current_log(tmp_path / "image")
    data = bytearray(log.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the second line; the third is intact
    log.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=rf"{log.name} is corrupt at line 2 \(byte \d+\): its checksum"):
        EmbeddedStore(tmp_path / "image", read_only=True)


def test_damaged_snapshot_is_an_error(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s") as store:
        store.write(make_batch(0))
    snap = tmp_path / "s" / SNAPSHOT_FILE
    snap.write_bytes(snap.read_bytes()[:-40])  # loses the footer and part of a record block
    with pytest.raises(StoreError, match=r"snapshot .* is damaged"):
        EmbeddedStore(tmp_path / "s", read_only=True)


@pytest.mark.parametrize("delay_ms", [0, 3, 11, 29])
def test_sigkill_while_writing_leaves_a_prefix_of_batches(tmp_path: Path, delay_ms: int) -> None:
    store = tmp_path / "s"
    lines = run_until_killed(store, "committed", count=2 + delay_ms % 5, delay_s=delay_ms / 1000)
    check_prefix_after_crash(store, lines)


@pytest.mark.parametrize(("nth", "delay_ms"), [(1, 0), (2, 5), (3, 20), (2, 60)])
def test_sigkill_during_compaction_leaves_a_prefix_of_batches(
    tmp_path: Path, nth: int, delay_ms: int
) -> None:
    store = tmp_path / "s"
    lines = run_until_killed(store, "compacting", count=nth, delay_s=delay_ms / 1000,
                             compact_bytes=2 * BATCH_BYTES)
    n = check_prefix_after_crash(store, lines)
    assert n >= 2 * nth  # the nth compaction starts once batch 2*nth - 1 is durable


@pytest.mark.parametrize("crash_point", ["torn-append", "before-snapshot-replace", "before-old-log-removal"])
def test_crash_at_exact_points_leaves_a_prefix_of_batches(tmp_path: Path, crash_point: str) -> None:
    store = tmp_path / "s"
    lines = run_to_crash_point(store, crash_point, compact_bytes=2 * BATCH_BYTES)
    if crash_point == "torn-append":
        assert committed(lines) == [0, 1]
        assert not current_log(store).read_bytes().endswith(b"\n")
    else:
        assert "compacting" in lines
        assert [p.stat().st_size > 0 for p in log_files(store)] == [True, False]  # old log, new empty one
    if crash_point == "before-snapshot-replace":
        assert (store / (SNAPSHOT_FILE + ".tmp")).exists()
        assert b'"seq": 0}' in (store / SNAPSHOT_FILE).read_bytes()  # still the empty one from creation
    if crash_point == "before-old-log-removal":
        assert (store / SNAPSHOT_FILE).exists() and not (store / (SNAPSHOT_FILE + ".tmp")).exists()
    n = check_prefix_after_crash(store, lines)
    assert len(log_files(store)) == 1 and not (store / (SNAPSHOT_FILE + ".tmp")).exists()  # cleaned up
    # crash the same way again, now on a store that has been crashed, repaired and compacted
    lines = run_to_crash_point(store, crash_point, first=n + 1, compact_bytes=2 * BATCH_BYTES)
    reported = max(committed(lines), default=n) + 1
    with EmbeddedStore(store, read_only=True) as reader:
        assert batches_present(reader, reported + 5) in (reported, reported + 1)


# --- the writer lock --------------------------------------------------------------------------------
def test_second_writer_in_process_is_refused(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s"):
        with pytest.raises(StoreLockedError) as err:
            EmbeddedStore(tmp_path / "s")
        message = str(err.value)
        assert str(tmp_path / "s") in message
        assert "being written by another process" in message
        assert str(tmp_path / "s" / LOCK_FILE) in message
    with EmbeddedStore(tmp_path / "s") as again:  # released on close
        assert again.counts() == StoreCounts()


def test_second_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from synthkg.store.embedded import EmbeddedStore\n"
        "from synthkg.store.base import StoreLockedError\n"
        "try:\n"
        "    EmbeddedStore(sys.argv[1])\n"
        "except StoreLockedError as e:\n"
        "    print('locked:', e)\n"
    )
    with EmbeddedStore(tmp_path / "s"):
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True, timeout=60
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("locked: store ") and "lock file" in out.stdout


def test_reader_while_writer_is_open(tmp_path: Path) -> None:
    corpus = make_corpus()
    with EmbeddedStore(tmp_path / "s") as writer:
        writer.write(corpus.batch())
        with EmbeddedStore(tmp_path / "s", read_only=True) as reader:
            assert reader.counts() == CORPUS_COUNTS
            assert snapshot(reader) == snapshot(writer)
            with pytest.raises(StoreError, match="read-only"):
                reader.write(make_batch(0))
            with pytest.raises(StoreError, match="read-only"):
                reader.delete_document(corpus.doc1.id)
            with pytest.raises(StoreError, match="read-only"):
                reader.clear()
        writer.write(make_batch(0))  # the reader did not disturb the writer
    with EmbeddedStore(tmp_path / "s", read_only=True) as reader:
        assert reader.counts().documents == CORPUS_COUNTS.documents + 1


def test_readers_see_a_prefix_while_another_process_writes_and_compacts(tmp_path: Path) -> None:
    store, total = tmp_path / "s", 60
    proc = start_writer(store, compact_bytes=2 * BATCH_BYTES, stop=total)  # compacts every 2 batches
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().startswith("committed 0")
        seen = []
        while proc.poll() is None:
            with EmbeddedStore(store, read_only=True) as reader:
                seen.append(batches_present(reader, total))
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert seen == sorted(seen), seen  # each view a prefix, never going back
    with EmbeddedStore(store, read_only=True) as reader:
        assert batches_present(reader, total) == total


def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "s")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.write(make_batch(0))


# --- paths the store must refuse without touching them ----------------------------------------------
def test_reader_of_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no store at .*missing; run `synthkg ingest` first"):
        EmbeddedStore(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("read_only", [False, True])
def test_path_is_a_file(tmp_path: Path, read_only: bool) -> None:
    target = tmp_path / "store"
    target.write_bytes(b"not a store\n")
    with pytest.raises(StoreError, match=f"{target} is a file"):
        EmbeddedStore(target, read_only=read_only)
    assert target.read_bytes() == b"not a store\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_parent_is_a_file(tmp_path: Path) -> None:
    parent = tmp_path / "file"
    parent.write_bytes(b"x")
    with pytest.raises(StoreError, match=f"cannot create store directory {parent / 'store'}"):
        EmbeddedStore(parent / "store")
    with pytest.raises(StoreError, match="no store at"):
        EmbeddedStore(parent / "store", read_only=True)
    assert parent.read_bytes() == b"x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory(tmp_path: Path) -> None:
    target = tmp_path / "store"
    target.mkdir()
    target.chmod(0o500)
    try:
        with pytest.raises(StoreError, match=f"store directory {target} is not writable"):
            EmbeddedStore(target)
        assert list(target.iterdir()) == []
    finally:
        target.chmod(0o700)


def test_newer_format_version_is_refused_untouched(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s") as store:
        store.write(make_corpus().batch())
        store.write(make_batch(0))  # leaves a log behind in the image below
        shutil.copytree(tmp_path / "s", tmp_path / "image")
    image = tmp_path / "image"
    (image / LOCK_FILE).unlink()
    (image / META_FILE).write_text('{"format": "synthkg-embedded", "format_version": 3}')
    before = tree_bytes(image)
    for read_only in (False, True):
        with pytest.raises(StoreError, match=r"newer synthkg \(format version 3"):
            EmbeddedStore(image, read_only=read_only)
    assert tree_bytes(image) == before  # no lock file, no truncation, nothing


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"format": "something-else", "format_version": 1}', "is not a synthkg embedded store"),
        ('{"format": "synthkg-embedded", "format_version": "1"}', "invalid format_version"),
    ],
)
def test_unreadable_meta_is_refused_untouched(tmp_path: Path, meta: str, message: str) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / META_FILE).write_text(meta)
    before = tree_bytes(tmp_path)
    with pytest.raises(StoreError, match=message):
        EmbeddedStore(tmp_path / "s")
    assert tree_bytes(tmp_path) == before


def test_foreign_non_empty_directory_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    before = tree_bytes(tmp_path)
    with pytest.raises(StoreError, match="is not empty and holds no synthkg store"):
        EmbeddedStore(tmp_path / "s")
    assert tree_bytes(tmp_path) == before
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["notes.txt"]


def test_new_store_layout(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "a" / "b" / "s") as store:  # missing parents are created for writers
        store.write(GraphBatch(documents=[Document.create("x")]))
    root = tmp_path / "a" / "b" / "s"
    assert (root / META_FILE).read_text() == '{"format": "synthkg-embedded", "format_version": 2}'
    assert {p.name for p in root.iterdir()} == {META_FILE, SNAPSHOT_FILE, "wal-1.log", LOCK_FILE}


def test_many_small_writes_compact_and_reload(tmp_path: Path) -> None:
    """Compaction under a tiny threshold keeps the store equal to what was written."""
    entities = [Entity.create(f"node {i}") for i in range(60)]
    doc = Document.create("chain", key="chain")
    chunk = Chunk.create(doc.id, 0, "chain")
    with EmbeddedStore(tmp_path / "s", compact_bytes=2000) as store:
        store.write(GraphBatch(documents=[doc], chunks=[chunk], entities=entities))
        for a, b in itertools.pairwise(entities):
            prop = Proposition.create(chunk.id, f"{a.name} links {b.name}", [a.id, b.id])
            relation = Relation.create(a.id, "links", b.id, prop.id)
            store.write(GraphBatch(propositions=[prop], relations=[relation]))
        assert current_log(tmp_path / "s").stat().st_size < 2000
        expected = snapshot(store)
    with EmbeddedStore(tmp_path / "s", read_only=True) as reader:
        assert snapshot(reader) == expected
        assert len(reader.neighbors([entities[0].id], hops=5)) == 5
