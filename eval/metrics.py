"""Answer, retrieval and knowledge-graph coverage metrics.

Answers: SQuAD's normalization (lowercase, no punctuation, no articles a/an/the, single spaces), exact
match and token F1, each the best over the answer and its aliases. Retrieval: recall@k and hits@k of
the gold supporting passages in a ranked list, and answer@k (the answer string in the top k) where a
dataset has no supporting passages. KG coverage: the Distill-SynthKG measure of how many
gold triples an extracted graph states, by embedding similarity (plus token F1 as a lexical check)."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np
from pydantic import BaseModel

from synthkg.embeddings import Embedder

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalization, as in its official evaluation script."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _golds(golds: str | Iterable[str]) -> list[str]:
    result = [golds] if isinstance(golds, str) else list(golds)
    if not result:
        raise ValueError("no gold answers given")
    return result


def exact_match(prediction: str, golds: str | Iterable[str]) -> float:
    """1.0 when the normalized prediction equals any normalized gold, else 0.0."""
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(gold) for gold in _golds(golds)))


def _token_f1(predicted_tokens: Sequence[str], gold_tokens: Sequence[str]) -> float:
    # An empty side (e.g. a gold that is only "the") scores 1 only against another empty side.
    if not predicted_tokens or not gold_tokens:
        return float(predicted_tokens == gold_tokens)
    common = sum((Counter(predicted_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between two strings after normalization."""
    return _token_f1(normalize_answer(prediction).split(), normalize_answer(reference).split())


def f1_score(prediction: str, golds: str | Iterable[str]) -> float:
    """Best token F1 of the prediction against the answer and its aliases."""
    return max(token_f1(prediction, gold) for gold in _golds(golds))


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def recall_at_k(ranked_ids: Sequence[str], gold_ids: Iterable[str], k: int) -> float:
    """Share of the gold passages found among the first k ranked ids."""
    _check_k(k)
    gold = set(gold_ids)
    if not gold:
        raise ValueError("recall@k needs at least one gold passage id")
    return len(gold.intersection(ranked_ids[:k])) / len(gold)


# Answers that any passage could contain by chance, or that are not spans at all (comparison questions):
# answer@k says nothing about them.
UNSPANNABLE_ANSWERS = frozenset({"yes", "no", "unknown", "none"})


def answer_at_k(ranked_texts: Sequence[str], golds: str | Iterable[str], k: int) -> float | None:
    """1.0 when the answer or an alias occurs, as whole normalized tokens, in any of the first k passage
    texts (DPR's top-k accuracy: a proxy for recall where a dataset gives no supporting passages); None
    when no gold can be told apart from chance (a yes/no answer, or nothing left after normalization)."""
    _check_k(k)
    answers = [a for a in (normalize_answer(g) for g in _golds(golds)) if a and a not in UNSPANNABLE_ANSWERS]
    if not answers:
        return None
    texts = [f" {normalize_answer(t)} " for t in ranked_texts[:k]]
    return float(any(f" {a} " in text for a in answers for text in texts))


def hits_at_k(ranked_ids: Sequence[str], gold_ids: Iterable[str], k: int) -> float:
    """1.0 when any gold passage is among the first k ranked ids."""
    _check_k(k)
    gold = set(gold_ids)
    if not gold:
        raise ValueError("hits@k needs at least one gold passage id")
    return float(not gold.isdisjoint(ranked_ids[:k]))


class MeanScore(BaseModel):
    """A mean and the number of values behind it; `mean` is None when there were none."""

    mean: float | None
    n: int


def mean_score(values: Iterable[float]) -> MeanScore:
    items = [float(v) for v in values]
    if any(math.isnan(v) for v in items):
        raise ValueError("cannot average NaN scores")
    return MeanScore(mean=sum(items) / len(items) if items else None, n=len(items))


def aggregate(rows: Iterable[Mapping[str, float]]) -> dict[str, MeanScore]:
    """Per-metric means over rows of {metric: score}; a metric missing from a row (e.g. recall for a
    question without gold passages) is left out of that metric's mean, and its n says so."""
    columns: dict[str, list[float]] = {}
    for row in rows:
        for metric, value in row.items():
            columns.setdefault(metric, []).append(value)
    return {metric: mean_score(values) for metric, values in columns.items()}


class TripleLike(Protocol):
    @property
    def subject(self) -> str: ...
    @property
    def relation(self) -> str: ...
    @property
    def object(self) -> str: ...


Triple = tuple[str, str, str] | TripleLike


def triple_text(triple: Triple) -> str:
    """The "subject relation object" string that coverage embeds."""
    subject, relation, obj = (
        triple if isinstance(triple, tuple) else (triple.subject, triple.relation, triple.object)
    )
    return " ".join(part.strip() for part in (subject, relation, obj))


class TripleScore(BaseModel):
    gold: str
    best_match: str | None
    similarity: float
    token_f1: float
    covered: bool


class CoverageResult(BaseModel):
    threshold: float
    coverage: float | None
    mean_similarity: float | None
    mean_token_f1: float | None
    n_gold: int
    n_extracted: int
    triples: list[TripleScore]


def triple_coverage(
    gold_triples: Sequence[Triple],
    extracted_triples: Sequence[Triple],
    embedder: Embedder,
    threshold: float = 0.88,
) -> CoverageResult:
    """Distill-SynthKG's KG coverage: each gold triple's score is its highest cosine similarity to any
    extracted triple (both embedded as "subject relation object"); coverage is the share of gold
    triples scoring >= `threshold`. Each gold triple also gets the token F1 against that best match.
    With no gold triples every aggregate is None; with no extracted triples every score is 0."""
    golds = [triple_text(t) for t in gold_triples]
    extracted = [triple_text(t) for t in extracted_triples]
    if not golds or not extracted:
        scores = [
            TripleScore(gold=g, best_match=None, similarity=0.0, token_f1=0.0, covered=False) for g in golds
        ]
    else:
        vectors = embedder.embed(golds + extracted)
        similarity = vectors[: len(golds)] @ vectors[len(golds) :].T
        best = similarity.argmax(axis=1)
        scores = []
        for row, gold in enumerate(golds):
            value = float(np.clip(similarity[row, best[row]], -1.0, 1.0))
            match = extracted[best[row]]
            scores.append(
                TripleScore(
                    gold=gold,
                    best_match=match,
                    similarity=value,
                    token_f1=token_f1(match, gold),
                    covered=value >= threshold,
                )
            )
    return CoverageResult(
        threshold=threshold,
        coverage=mean_score(float(s.covered) for s in scores).mean,
        mean_similarity=mean_score(s.similarity for s in scores).mean,
        mean_token_f1=mean_score(s.token_f1 for s in scores).mean,
        n_gold=len(golds),
        n_extracted=len(extracted),
        triples=scores,
    )
