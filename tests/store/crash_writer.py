"""Child process of the crash tests: opens an embedded store and writes numbered batches, printing
`committed N` once write N has returned (it is durable then), until it is killed, or up to batch STOP - 1
when STOP is given (it then closes the store and exits).

    python crash_writer.py STORE_DIR FIRST_BATCH COMPACT_BYTES CRASH_POINT [STOP]

CRASH_POINT makes the process SIGKILL itself at one exact moment instead of waiting for the parent:
  none                     run until killed from outside
  torn-append              during the 3rd log append, after writing half of the line
  before-snapshot-replace  in the first compaction: new snapshot and new log written, snapshot not renamed
  before-old-log-removal   in the first compaction: snapshot renamed, the old log not yet deleted
Compaction prints `compacting` when it starts, so the parent can kill inside it.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from synthkg.model import Chunk, Document, Entity, GraphBatch, Proposition, Relation
from synthkg.store.embedded import SNAPSHOT_FILE, EmbeddedStore

PAD = "padding to make every batch large " * 6


def make_batch(i: int, size: int = 150) -> GraphBatch:
    """Batch `i`: every record in it names `i`, so a reader can tell which batches made it to disk."""
    doc = Document.create(f"batch {i} text", key=f"batch-{i}")
    chunk = Chunk.create(doc.id, 0, f"chunk of batch {i}")
    entities = [Entity.create(f"batch {i} entity {j}", "marker") for j in range(size + 1)]
    props = [
        Proposition.create(chunk.id, f"batch {i} fact {j}: {PAD}", [entities[j].id, entities[j + 1].id])
        for j in range(size)
    ]
    relations = [
        Relation.create(entities[j].id, "precedes", entities[j + 1].id, props[j].id) for j in range(size)
    ]
    return GraphBatch(
        documents=[doc], chunks=[chunk], entities=entities, propositions=props, relations=relations
    )


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(crash_point: str) -> None:
    """Wrap the OS calls the store makes so the process dies at `crash_point`."""
    real_write, real_replace, real_unlink = os.write, os.replace, os.unlink
    real_compact = EmbeddedStore.compact
    state = {"appends": 0, "compacting": False}

    def write(fd: int, data: bytes) -> int:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith("wal-"):
            state["appends"] += 1
        if crash_point == "torn-append" and state["appends"] == 3:
            real_write(fd, bytes(data[: len(data) // 2]))
            os.fsync(fd)
            _die()
        return real_write(fd, data)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if crash_point == "before-snapshot-replace" and Path(dst).name == SNAPSHOT_FILE:
            _die()
        real_replace(src, dst)

    def unlink(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> None:
        if crash_point == "before-old-log-removal" and state["compacting"]:
            _die()
        real_unlink(path, dir_fd=dir_fd)

    def compact(self: EmbeddedStore) -> None:
        print("compacting", flush=True)
        state["compacting"] = True
        real_compact(self)
        state["compacting"] = False

    os.write, os.replace, os.unlink = write, replace, unlink  # type: ignore[assignment]
    EmbeddedStore.compact = compact  # type: ignore[method-assign]


def main() -> None:
    path, first, compact_bytes, crash_point = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    stop = int(sys.argv[5]) if len(sys.argv) > 5 else None
    _arm(crash_point)
    with EmbeddedStore(path, compact_bytes=compact_bytes) as store:
        i = first
        while stop is None or i < stop:
            store.write(make_batch(i))
            print(f"committed {i}", flush=True)
            i += 1


if __name__ == "__main__":
    main()
