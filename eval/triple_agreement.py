"""How far one extractor's triples agree with another's (a student's with its teacher's), chunk by chunk,
and whether two students' agreement differs by more than the chunks' noise.

A triple matches when "subject relation object" embeds within cosine `threshold` of a triple of the other
graph's same chunk (eval.metrics.triple_coverage). Precision is the share of the student's triples that
match one of the teacher's, recall the share of the teacher's that match one of the student's; both are
micro-averaged over chunks.

On 50 passages a few chunks move F1 by 0.01 (greedy answers change with batching), so two students'
F1s are compared with a paired bootstrap over chunks: the same resampled chunks score both."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from eval.metrics import Triple, triple_coverage
from synthkg.embeddings import Embedder


class ChunkedTriples(Protocol):
    """A graph's triples by chunk id (eval.kg_eval.GraphTriples)."""

    by_chunk: Mapping[str, list[Triple]]


@dataclass(frozen=True)
class ChunkCounts:
    """One chunk's triples on each side and how many of them match the other side's."""

    student: int = 0
    student_matched: int = 0
    teacher: int = 0
    teacher_matched: int = 0


def chunk_counts(student: ChunkedTriples, teacher: ChunkedTriples, embedder: Embedder,
                 threshold: float) -> dict[str, ChunkCounts]:
    """Each chunk's counts (every chunk either side has triples for)."""
    counts: dict[str, ChunkCounts] = {}
    for chunk in sorted(set(student.by_chunk) | set(teacher.by_chunk)):
        ours, theirs = student.by_chunk.get(chunk, []), teacher.by_chunk.get(chunk, [])
        matched_ours = matched_theirs = 0
        if ours and theirs:
            matched_ours = _matched(ours, theirs, embedder, threshold)
            matched_theirs = _matched(theirs, ours, embedder, threshold)
        counts[chunk] = ChunkCounts(len(ours), matched_ours, len(theirs), matched_theirs)
    return counts


def _matched(these: list[Triple], others: list[Triple], embedder: Embedder, threshold: float) -> int:
    """How many of `these` match one of `others`."""
    return sum(t.covered for t in triple_coverage(these, others, embedder, threshold).triples)


def _prf(counts: Iterable[ChunkCounts]) -> tuple[float | None, float | None, float]:
    student = matched_student = teacher = matched_teacher = 0
    for c in counts:
        student, matched_student = student + c.student, matched_student + c.student_matched
        teacher, matched_teacher = teacher + c.teacher, matched_teacher + c.teacher_matched
    precision = matched_student / student if student else None
    recall = matched_teacher / teacher if teacher else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    return precision, recall, f1


def agreement_of(counts: Iterable[ChunkCounts], threshold: float) -> dict[str, float | None]:
    """Micro precision / recall / F1 over the chunks' counts."""
    precision, recall, f1 = _prf(counts)
    return {"precision": precision, "recall": recall, "f1": round(f1, 4), "threshold": threshold}


def agreement(student: ChunkedTriples, teacher: ChunkedTriples, embedder: Embedder,
              threshold: float) -> dict[str, float | None]:
    """Micro precision / recall / F1 of the student's triples against the teacher's, chunk by chunk."""
    return agreement_of(chunk_counts(student, teacher, embedder, threshold).values(), threshold)


def f1_difference(these: Mapping[str, ChunkCounts], baseline: Mapping[str, ChunkCounts], *,
                  samples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """F1 of `these` minus F1 of `baseline` (both against the same teacher) with its 95% paired-bootstrap
    interval over chunks, and the share of resamples where it is below 0. A chunk one side has no
    triples for counts as zeros on that side. Deterministic for a given `seed`."""
    chunks = sorted(set(these) | set(baseline))
    if not chunks:
        raise ValueError("no chunk to compare")
    pairs = [(these.get(c, ChunkCounts()), baseline.get(c, ChunkCounts())) for c in chunks]
    rng = random.Random(seed)
    differences = []
    for _ in range(samples):
        drawn = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        differences.append(_prf(a for a, _ in drawn)[2] - _prf(b for _, b in drawn)[2])
    differences.sort()
    observed = _prf(a for a, _ in pairs)[2] - _prf(b for _, b in pairs)[2]
    return {
        "difference": round(observed, 4),
        "ci95": [round(differences[int(0.025 * samples)], 4),
                 round(differences[int(0.975 * samples) - 1], 4)],
        "below_zero": round(sum(d < 0 for d in differences) / samples, 3),
        "chunks": len(chunks),
        "samples": samples,
    }
