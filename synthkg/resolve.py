"""Cross-document entity resolution.

Entities whose names normalize alike already share an id (see `synthkg.model.normalize_name`). The
resolver goes further for entities new to the store, in this order:

1. alias match: the name is a known alias of a stored entity (or the stored name is one of the new
   entity's aliases);
2. embedding match: the name's embedding is within `threshold` cosine of a stored entity of the same
   type, with guards against the classic false merges of embedding similarity (numbers and dates,
   names that share no token).

Every merge is recorded (`MergeLog`, a JSONL file) so a user can list it, and blocked (`MergeLog.block`)
so that re-ingesting the document undoes it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from synthkg.model import Entity, GraphBatch, Proposition, Relation, normalize_name

if TYPE_CHECKING:
    from synthkg.embeddings import Embedder
    from synthkg.store.base import GraphStore

log = logging.getLogger(__name__)

# Stored entities already embedded: their ids, the texts embedded (their names) and the vectors, row-aligned.
KnownVectors = tuple[list[str], list[str], np.ndarray]

_DIGIT = re.compile(r"\d")
_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Merge:
    name: str
    type: str
    into_id: str
    into_name: str
    method: Literal["alias", "embedding"]
    score: float
    document_id: str
    at: str = ""


class MergeLog:
    """Append-only record of merges plus the set of (name, target) pairs a user has undone."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "merges.jsonl"
        self.blocklist_path = directory / "merge_blocklist.json"
        self._lock = threading.Lock()

    def append(self, merges: Iterable[Merge]) -> None:
        rows = [json.dumps(asdict(m), ensure_ascii=False) for m in merges]
        if not rows:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write("\n".join(rows) + "\n")

    def read(self) -> list[Merge]:
        if not self.path.exists():
            return []
        merges = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                merges.append(Merge(**json.loads(line)))
        return merges

    def blocked(self) -> set[tuple[str, str]]:
        if not self.blocklist_path.exists():
            return set()
        return {(n, t) for n, t in json.loads(self.blocklist_path.read_text(encoding="utf-8"))}

    def block(self, merge: Merge) -> None:
        """Never merge this name into this entity again (takes effect on the next ingest)."""
        pairs = self.blocked() | {(normalize_name(merge.name), merge.into_id)}
        self.blocklist_path.parent.mkdir(parents=True, exist_ok=True)
        self.blocklist_path.write_text(json.dumps(sorted(pairs), ensure_ascii=False), encoding="utf-8")


def _embedding_merge_allowed(a: str, b: str) -> bool:
    # Embeddings put "1998" next to "1999" and "John Smith" next to "John Brown": merge only names
    # without digits that share at least one word.
    if _DIGIT.search(a) or _DIGIT.search(b):
        return False
    return bool(set(_TOKEN.findall(a.casefold())) & set(_TOKEN.findall(b.casefold())))


class EntityResolver:
    """Maps the entities of a batch onto entities already in the store."""

    def __init__(
        self,
        store: GraphStore,
        embedder: Embedder | None = None,
        *,
        threshold: float = 0.92,
        blocked: set[tuple[str, str]] | None = None,
        known: Callable[[], KnownVectors] | None = None,
    ) -> None:
        """`known` gives vectors of stored entity names already embedded with the same `embedder` (the
        search index's entity section): those are reused, so a run embeds only names it has not seen."""
        self.store = store
        self._known = known
        self.embedder = embedder
        self.threshold = threshold
        self.blocked = blocked or set()
        self._index_ids: list[str] = []
        self._index_entities: list[Entity] = []
        self._index_vectors: np.ndarray | None = None
        self._indexed: set[str] = set()

    # --- the embedding index of stored entity names, built lazily and grown as we write ----------
    def _ensure_index(self) -> None:
        if self._index_vectors is None and self.embedder is not None:
            self._index_vectors = np.zeros((0, self.embedder.dim), dtype=np.float32)
            stored = list(self.store.iter_entities())
            if self._known is not None:
                ids, texts, vectors = self._known()
                row = {rid: r for r, rid in enumerate(ids)}
                # Reused only where the vector is of the name as it is now.
                have = [e for e in stored if e.id in row and texts[row[e.id]] == e.name]
                if have:
                    self._index_vectors = np.asarray(vectors[[row[e.id] for e in have]], dtype=np.float32)
                    self._index_ids = [e.id for e in have]
                    self._index_entities = have
                    self._indexed = set(self._index_ids)
            self.add_to_index(stored)

    def add_to_index(self, entities: Iterable[Entity]) -> None:
        """Make written entities candidates for later merges."""
        if self.embedder is None or self._index_vectors is None:
            return
        new = [e for e in entities if e.id not in self._indexed]
        if not new:
            return
        vectors = self.embedder.embed([e.name for e in new])
        self._index_vectors = np.vstack([self._index_vectors, vectors])
        self._index_ids.extend(e.id for e in new)
        self._index_entities.extend(new)
        self._indexed.update(e.id for e in new)

    def _allowed(self, entity: Entity, target_id: str) -> bool:
        return target_id != entity.id and (entity.normalized_name, target_id) not in self.blocked

    def _alias_match(self, entity: Entity) -> Entity | None:
        candidates = [c for c in self.store.find_entities(entity.name) if self._allowed(entity, c.id)]
        for alias in entity.aliases:
            candidates += [c for c in self.store.find_entities(alias) if self._allowed(entity, c.id)]
        if not candidates:
            return None
        same_type = [c for c in candidates if not entity.type or not c.type or c.type == entity.type]
        return (same_type or candidates)[0]

    def _embedding_matches(self, entities: list[Entity]) -> dict[str, tuple[Entity, float]]:
        self._ensure_index()
        if self.embedder is None or self._index_vectors is None or not len(self._index_ids) or not entities:
            return {}
        scores = self.embedder.embed([e.name for e in entities]) @ self._index_vectors.T
        found: dict[str, tuple[Entity, float]] = {}
        for row, entity in enumerate(entities):
            for col in np.argsort(-scores[row])[:5]:
                score = float(scores[row, col])
                if score < self.threshold:
                    break
                target = self._index_entities[col]
                same_type = not entity.type or not target.type or target.type == entity.type
                if same_type and self._allowed(entity, target.id) and _embedding_merge_allowed(
                    entity.name, target.name
                ):
                    found[entity.id] = (target, score)
                    break
        return found

    def resolve(self, batch: GraphBatch, document_id: str = "") -> tuple[GraphBatch, list[Merge]]:
        """The batch with entity ids rewritten onto stored entities, and the merges made."""
        unknown = [e for e in batch.entities if self.store.get_entity(e.id) is None]
        mapping: dict[str, tuple[Entity, str, float]] = {}
        for entity in unknown:
            target = self._alias_match(entity)
            if target is not None:
                mapping[entity.id] = (target, "alias", 1.0)
        remaining = [e for e in unknown if e.id not in mapping]
        for entity_id, (target, score) in self._embedding_matches(remaining).items():
            mapping[entity_id] = (target, "embedding", score)
        if not mapping:
            return batch, []

        now = datetime.now(UTC).isoformat(timespec="seconds")
        by_id = {e.id: e for e in batch.entities}
        merges = [
            Merge(by_id[src].name, by_id[src].type, t.id, t.name, method, round(score, 4), document_id, now)  # type: ignore[arg-type]
            for src, (t, method, score) in mapping.items()
        ]
        for m in merges:
            log.info("merged entity %r into %r (%s, %.3f)", m.name, m.into_name, m.method, m.score)

        def new_id(eid: str) -> str:
            return mapping[eid][0].id if eid in mapping else eid

        entities: dict[str, Entity] = {}
        for e in batch.entities:
            if e.id in mapping:
                target = mapping[e.id][0]
                # The merged entity keeps the stored name; the variant survives as an alias.
                e = Entity.create(target.name, target.type or e.type, (*e.aliases, e.name), e.description)
            if e.id in entities:
                prev = entities[e.id]
                e = Entity.create(prev.name, prev.type or e.type, (*prev.aliases, *e.aliases),
                                  prev.description or e.description)
            entities[e.id] = e
        propositions = [
            Proposition(id=p.id, chunk_id=p.chunk_id, text=p.text,
                        entity_ids=tuple(dict.fromkeys(new_id(x) for x in p.entity_ids)))
            for p in batch.propositions
        ]
        relations = [
            Relation.create(new_id(r.subject_id), r.predicate, new_id(r.object_id), r.proposition_id)
            for r in batch.relations
        ]
        resolved = batch.model_copy(
            update={"entities": list(entities.values()), "propositions": propositions, "relations": relations}
        )
        return resolved, merges
