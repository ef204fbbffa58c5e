"""The search index kept next to a graph store: dense vectors for propositions, entities and chunks, and
BM25 over propositions and chunks.

On disk, in the index directory:
- `manifest.json`       format, embedding model name and dim, and per section its generation and row count
- `<section>.<gen>.npy`  (rows, dim) float32 L2-normalized vectors
- `<section>.<gen>.json` {"ids": [...], "texts": [...]} in row order (entities also carry "aliases")
- `lock`                held while an update writes

Every data file is written to a temp file and renamed into place under a new generation number; replacing
the manifest commits the update, then older generations are removed. A crash at any point leaves the
previous index readable. BM25 is not stored: it is rebuilt from the texts on load (milliseconds).
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from filelock import FileLock
from rank_bm25 import BM25Okapi
from tqdm.auto import tqdm

from synthkg.embeddings import Embedder
from synthkg.model import normalize_name
from synthkg.store.base import GraphStore

FORMAT = "synthkg-index"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "lock"
_LOAD_ATTEMPTS = 3

Section = Literal["propositions", "entities", "chunks"]
SECTIONS: tuple[Section, ...] = ("propositions", "entities", "chunks")
BM25_SECTIONS: tuple[Section, ...] = ("propositions", "chunks")

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# A short English stopword list: enough to keep BM25 from matching on function words, small enough to keep
# words like "born" or "film" that carry meaning in questions.
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me
    more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


# Texts embedded per call: a large document's thousands of chunks show progress and keep memory bounded.
EMBED_BLOCK = 1024


class SearchIndexError(RuntimeError):
    """The index directory cannot be read or written; the message says what and where."""


class IndexMismatchError(SearchIndexError):
    """The index was built with another embedding model than the one configured."""


def tokenize(text: str) -> list[str]:
    """BM25 tokens: lowercase words without stopwords."""
    return [w for w in _WORD.findall(text.casefold()) if w not in STOPWORDS]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the `k` highest scores, best first (ties by row number, so results are stable)."""
    if k <= 0 or scores.size == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    return candidates[np.lexsort((candidates, -scores[candidates]))]


@dataclass
class _Rows:
    """One section in memory: ids, the texts they were embedded from, their vectors."""

    ids: list[str]
    texts: list[str]
    vectors: np.ndarray
    aliases: list[list[str]] = field(default_factory=list)
    position: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.position = {rid: i for i, rid in enumerate(self.ids)}


def _empty_rows(dim: int) -> _Rows:
    return _Rows([], [], np.zeros((0, dim), dtype=np.float32))


@dataclass(frozen=True)
class UpdateStats:
    """What `SearchIndex.update` changed, per section."""

    added: dict[str, int]
    removed: dict[str, int]

    @property
    def changed(self) -> bool:
        return any(self.added.values()) or any(self.removed.values())


class SearchIndex:
    """Dense and BM25 search over one store's records. Open with `SearchIndex.open(path, embedder)`,
    bring up to date with `update(store)`."""

    def __init__(self, path: Path, embedder: Embedder, manifest: dict[str, Any], rows: dict[str, _Rows]):
        self.path = path
        self.embedder = embedder
        self._manifest = manifest
        self._rows = rows
        self._bm25: dict[str, BM25Okapi] = {}
        self._entity_keys: dict[str, list[str]] = {}
        self._refresh_derived()

    # --- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, embedder: Embedder) -> SearchIndex:
        """The index at `path` (empty if there is none yet). Raises IndexMismatchError when it was built
        with another embedding model than `embedder`."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise SearchIndexError(f"index path {path} is a file, not an index directory")
        manifest_path = path / MANIFEST_FILE
        if not manifest_path.is_file():
            return cls(path, embedder, _new_manifest(embedder), {})
        manifest, rows = _load(path, embedder)
        return cls(path, embedder, manifest, rows)

    @property
    def embedding_model(self) -> str:
        return str(self._manifest["embedding_model"])

    @property
    def dim(self) -> int | None:
        dim = self._manifest.get("dim")
        return None if dim is None else int(dim)

    def size(self, section: Section) -> int:
        return len(self._section(section).ids)

    def ids(self, section: Section) -> list[str]:
        return list(self._section(section).ids)

    def text(self, section: Section, row_id: str) -> str | None:
        rows = self._section(section)
        i = rows.position.get(row_id)
        return None if i is None else rows.texts[i]

    def vectors(self, section: Section) -> np.ndarray:
        """The section's unit vectors in row order (read-only)."""
        vectors = self._section(section).vectors.view()
        vectors.flags.writeable = False
        return vectors

    def state_token(self) -> str:
        """Changes whenever the index's content does (each saved section gets a new generation): what
        derived structures built from it are keyed on."""
        return json.dumps(self._manifest.get("sections", {}), sort_keys=True)

    def position(self, section: Section) -> dict[str, int]:
        """Row number of each id: the order of the arrays the score functions return."""
        return self._section(section).position

    # --- updating ------------------------------------------------------------------------------
    def update(self, store: GraphStore, *, progress: bool = False) -> UpdateStats:
        """Embed what the store holds and the index does not (new ids, or ids whose text changed), drop
        ids the store no longer has, and persist. Unchanged sections keep their files. `progress` shows
        a bar per section with much to embed (MiniLM takes minutes for ten thousand chunks on 2 cores)."""
        return self._update(store, reload=True, progress=progress)

    def _update(self, store: GraphStore, reload: bool, progress: bool = False) -> UpdateStats:
        current = _store_texts(store)
        added: dict[str, int] = {}
        removed: dict[str, int] = {}
        with self._locked():
            if reload and (self.path / MANIFEST_FILE).is_file():
                # Another process may have updated the index since we opened it: merge into its state.
                self._manifest, self._rows = _load(self.path, self.embedder)
            new_rows: dict[str, _Rows] = {}
            for name in SECTIONS:
                texts, aliases = current[name]
                old = self._rows.get(name) or _empty_rows(self.dim or 0)
                merged, n_added, n_removed = self._merge(old, texts, aliases, name if progress else None)
                added[name], removed[name] = n_added, n_removed
                new_rows[name] = merged
            stats = UpdateStats(added, removed)
            if stats.changed or not (self.path / MANIFEST_FILE).is_file():
                self._save(new_rows, changed={n for n in SECTIONS if added[n] or removed[n]})
        return stats

    @classmethod
    def rebuild(cls, path: str | Path, embedder: Embedder, store: GraphStore) -> SearchIndex:
        """Embed the whole store anew into the index at `path`, whatever model built what is there (what
        `synthkg reindex` runs after the embedding model changed). The old index stays readable until the
        new manifest replaces it."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise SearchIndexError(f"index path {path} is a file, not an index directory")
        index = cls(path, embedder, _new_manifest(embedder), {})
        index._update(store, reload=False)
        return index

    def _merge(
        self, old: _Rows, texts: dict[str, str], aliases: dict[str, list[str]], label: str | None = None
    ) -> tuple[_Rows, int, int]:
        keep = [
            i
            for i, rid in enumerate(old.ids)
            if texts.get(rid) == old.texts[i]
            and aliases.get(rid, []) == (old.aliases[i] if old.aliases else [])
        ]
        kept_ids = {old.ids[i] for i in keep}
        new_ids = [rid for rid in texts if rid not in kept_ids]
        new_vectors = self._embed([texts[rid] for rid in new_ids], label)
        ids = [old.ids[i] for i in keep] + new_ids
        vectors = (
            np.concatenate([old.vectors[keep].reshape(len(keep), -1), new_vectors]) if keep else new_vectors
        )
        rows = _Rows(
            ids=ids,
            texts=[texts[rid] for rid in ids],
            vectors=np.ascontiguousarray(vectors, dtype=np.float32),
            aliases=[aliases.get(rid, []) for rid in ids] if aliases else [],
        )
        return rows, len(new_ids), len(old.ids) - len(keep)

    def _embed(self, texts: list[str], label: str | None = None) -> np.ndarray:
        """Vectors of `texts`, embedded in blocks (bounded memory); with a `label`, a progress bar over
        the blocks when there are several."""
        dim = self.dim or self.embedder.dim
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        starts = range(0, len(texts), EMBED_BLOCK)
        bar = tqdm(total=len(texts), unit=" texts", desc=f"embedding {label}", leave=False,
                   disable=label is None or len(starts) < 2)
        parts = []
        for start in starts:
            block = texts[start : start + EMBED_BLOCK]
            parts.append(np.asarray(self.embedder.embed(block), dtype=np.float32))
            bar.update(len(block))
        bar.close()
        vectors = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if vectors.shape != (len(texts), dim):
            raise IndexMismatchError(
                f"embedder '{self.embedder.name}' returned vectors of shape {vectors.shape}, but the "
                f"index at {self.path} holds {dim}-d vectors; run `synthkg reindex` to rebuild it"
            )
        self._manifest["dim"] = dim
        return vectors

    def _save(self, rows: dict[str, _Rows], changed: set[str]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        sections = dict(self._manifest.get("sections", {}))
        for name in SECTIONS:
            if name not in changed and name in sections:
                continue
            gen = _next_generation(self.path, name)
            r = rows[name]
            buffer = io.BytesIO()
            np.save(buffer, r.vectors, allow_pickle=False)
            _atomic_write(self.path / f"{name}.{gen}.npy", buffer.getvalue())
            payload: dict[str, Any] = {"ids": r.ids, "texts": r.texts}
            if r.aliases:
                payload["aliases"] = r.aliases
            _atomic_write(self.path / f"{name}.{gen}.json", json.dumps(payload).encode())
            sections[name] = {"generation": gen, "count": len(r.ids)}
        manifest = {**self._manifest, "dim": self.dim or self.embedder.dim, "sections": sections}
        _atomic_write(self.path / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())
        self._manifest, self._rows = manifest, rows
        self._refresh_derived()
        _remove_stale_generations(self.path, sections)

    def _locked(self) -> FileLock:
        self.path.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path / LOCK_FILE))

    def _refresh_derived(self) -> None:
        self._bm25 = {}
        keys: dict[str, list[str]] = {}
        entities = self._rows.get("entities")
        if entities is not None:
            for i, rid in enumerate(entities.ids):
                names = [entities.texts[i], *(entities.aliases[i] if entities.aliases else [])]
                for key in {normalize_name(n) for n in names}:
                    keys.setdefault(key, []).append(rid)
        self._entity_keys = keys

    # --- searching -----------------------------------------------------------------------------
    def embed_query(self, texts: list[str]) -> np.ndarray:
        """Query vectors, checked against the index's dimension."""
        return self._embed(texts)

    def dense_scores(self, section: Section, query: np.ndarray) -> np.ndarray:
        """Cosine similarity of `query` (a unit vector) with every row of the section, in row order."""
        vectors = self._section(section).vectors
        if vectors.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        # numpy's own loop, not BLAS: a multithreaded BLAS gemv on a busy 2-core machine took 12-17 ms
        # for 10k rows instead of 0.3 ms.
        return np.einsum("ij,j->i", vectors, np.asarray(query, dtype=np.float32))

    def bm25_scores(self, section: Section, query: str) -> np.ndarray:
        """BM25 score of `query` against every row of the section, in row order."""
        if section not in BM25_SECTIONS:
            raise ValueError(f"BM25 covers {BM25_SECTIONS}, not {section!r}")
        rows = self._section(section)
        tokens = tokenize(query)
        if not rows.ids or not tokens:
            return np.zeros(len(rows.ids), dtype=np.float64)
        bm25 = self._bm25.get(section)
        if bm25 is None:
            # Built on first use from the stored texts; a text without tokens gets a placeholder one
            # because rank-bm25 divides by document length.
            bm25 = self._bm25[section] = BM25Okapi([tokenize(t) or ["\x00"] for t in rows.texts])
        return np.asarray(bm25.get_scores(tokens), dtype=np.float64)

    def dense_search(self, section: Section, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        return self._ranked(section, self.dense_scores(section, query), k)

    def bm25_search(self, section: Section, query: str, k: int) -> list[tuple[str, float]]:
        return self._ranked(section, self.bm25_scores(section, query), k)

    def entities_named_in(self, text: str, max_words: int = 6) -> dict[str, str]:
        """Entities whose name or alias appears verbatim (after `normalize_name`) as a run of up to
        `max_words` words of `text`: entity id -> the matched words. Longest match first, and a matched
        run's words are not matched again ("Xanadu Nights" does not also match "Xanadu")."""

        def entities(span: str) -> Sequence[str]:
            key = normalize_name(span)
            return self._entity_keys.get(key, ()) if key not in STOPWORDS else ()

        found: dict[str, str] = {}
        for span, ids in matched_runs(text, entities, max_words):
            for rid in ids:
                found.setdefault(rid, span)
        return found

    def _ranked(self, section: Section, scores: np.ndarray, k: int) -> list[tuple[str, float]]:
        ids = self._section(section).ids
        return [(ids[i], float(scores[i])) for i in top_k(scores, k)]

    def _section(self, section: Section) -> _Rows:
        if section not in SECTIONS:
            raise ValueError(f"unknown index section {section!r}; expected one of {SECTIONS}")
        return self._rows.get(section) or _empty_rows(self.dim or 0)


def matched_runs(
    text: str, lookup: Callable[[str], Sequence[str] | None], max_words: int
) -> Iterator[tuple[str, Sequence[str]]]:
    """The runs of up to `max_words` words of `text` that `lookup` finds ids for, with those ids: longest
    first, and a matched run's words are not matched again."""
    words = text.split()
    taken = [False] * len(words)
    for n in range(min(max_words, len(words)), 0, -1):
        for start in range(len(words) - n + 1):
            if any(taken[start : start + n]):
                continue
            span = " ".join(words[start : start + n])
            ids = lookup(span)
            if ids:
                taken[start : start + n] = [True] * n
                yield span, ids


# --- store -> texts --------------------------------------------------------------------------------
def _store_texts(store: GraphStore) -> dict[str, tuple[dict[str, str], dict[str, list[str]]]]:
    """Per section, id -> the text to embed (and, for entities, id -> aliases)."""
    entities = list(store.iter_entities())
    titles = {d.id: d.title for d in store.iter_documents()}
    return {
        "propositions": ({p.id: p.text for p in store.iter_propositions()}, {}),
        "entities": (
            {e.id: e.name for e in entities},
            {e.id: list(e.aliases) for e in entities if e.aliases},
        ),
        "chunks": (
            {c.id: chunk_search_text(titles.get(c.document_id, ""), c.text) for c in store.iter_chunks()},
            {},
        ),
    }


def chunk_search_text(title: str, text: str) -> str:
    """What chunk search sees: the document title (when the chunk does not start with it) and the text,
    so a passage about "X" is found by "X" even when its sentences only say "it"."""
    title = title.strip()
    if not title or text.lstrip().startswith(title):
        return text
    return f"{title}\n{text}"


# --- files -----------------------------------------------------------------------------------------
def _new_manifest(embedder: Embedder) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "embedding_model": embedder.name,
        "dim": None,
        "sections": {},
    }


def _next_generation(path: Path, name: str) -> int:
    """One past every generation on disk, so a new file never overwrites one a manifest may point at."""
    gens = [int(g) for f in path.glob(f"{name}.*.*") if (g := f.name.split(".")[1]).isdigit()]
    return max(gens, default=0) + 1


def _load(path: Path, embedder: Embedder) -> tuple[dict[str, Any], dict[str, _Rows]]:
    """Manifest and sections of the index at `path`. An update may remove the files of the generation we
    just read the manifest of: then the manifest has changed, and we read the new one."""
    manifest_path = path / MANIFEST_FILE
    for attempt in range(_LOAD_ATTEMPTS):
        manifest = _read_json(manifest_path)
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise SearchIndexError(
                f"{manifest_path} is not a synthkg index of format version {FORMAT_VERSION}; "
                "run `synthkg reindex` to rebuild it"
            )
        _check_model(manifest, embedder, path)
        try:
            rows = {name: _load_rows(path, name, meta) for name, meta in manifest.get("sections", {}).items()}
        except SearchIndexError:
            if attempt + 1 == _LOAD_ATTEMPTS or _read_json(manifest_path) == manifest:
                raise
            continue
        return manifest, rows
    raise AssertionError("unreachable")


def _check_model(manifest: dict[str, Any], embedder: Embedder, path: Path) -> None:
    built_with, dim = manifest.get("embedding_model"), manifest.get("dim")
    if built_with != embedder.name:
        raise IndexMismatchError(
            f"the search index at {path} was built with the embedding model '{built_with}', but the "
            f"configured model is '{embedder.name}'; run `synthkg reindex` to rebuild it"
        )
    if dim is not None and int(dim) != embedder.dim:
        raise IndexMismatchError(
            f"the search index at {path} holds {dim}-d vectors, but the embedding model '{embedder.name}' "
            f"makes {embedder.dim}-d vectors; run `synthkg reindex` to rebuild it"
        )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SearchIndexError(
            f"cannot read {path} ({exc}); run `synthkg reindex` to rebuild the index"
        ) from None
    if not isinstance(data, dict):
        raise SearchIndexError(f"{path} is not a JSON object; run `synthkg reindex` to rebuild the index")
    return data


def _load_rows(path: Path, name: str, meta: dict[str, Any]) -> _Rows:
    gen = int(meta["generation"])
    vectors_path, ids_path = path / f"{name}.{gen}.npy", path / f"{name}.{gen}.json"
    try:
        vectors = np.load(vectors_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SearchIndexError(f"cannot read {vectors_path} ({exc}); run `synthkg reindex`") from None
    data = _read_json(ids_path)
    ids, texts = data.get("ids", []), data.get("texts", [])
    if vectors.ndim != 2 or not (len(ids) == len(texts) == vectors.shape[0] == meta.get("count")):
        raise SearchIndexError(
            f"index section '{name}' at {path} is inconsistent ({len(ids)} ids, {vectors.shape[0]} vectors); "
            "run `synthkg reindex` to rebuild it"
        )
    return _Rows(ids, texts, np.ascontiguousarray(vectors, dtype=np.float32), data.get("aliases", []))


def _atomic_write(target: Path, data: bytes) -> None:
    """Write `data` to a temp file in the same directory, fsync, rename over `target`."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale_generations(path: Path, sections: dict[str, Any]) -> None:
    live = {
        f"{name}.{meta['generation']}.{ext}" for name, meta in sections.items() for ext in ("npy", "json")
    }
    for name in SECTIONS:
        for file in path.glob(f"{name}.*"):
            if file.name not in live:
                file.unlink(missing_ok=True)
