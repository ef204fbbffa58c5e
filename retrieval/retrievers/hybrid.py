"""Stage 1 of the graph modes: hybrid scores, dense cosine (min-max scaled) mixed with BM25 (scaled to its
best), over the propositions (the facts a graph walk starts from) or the chunks."""

from __future__ import annotations

import math

import numpy as np

from synthkg.indexes import SearchIndex


def hybrid_proposition_scores(
    question: str, qvec: np.ndarray, index: SearchIndex, dense_weight: float
) -> np.ndarray:
    """Stage 1: per proposition (index row order), dense_weight * min-max(cosine) + the rest * BM25/max."""
    dense = minmax(index.dense_scores("propositions", qvec))
    return hybrid_scores(dense, index.bm25_scores("propositions", question), dense_weight)


def hybrid_scores(dense: np.ndarray, bm25: np.ndarray, dense_weight: float) -> np.ndarray:
    """dense_weight * `dense` (already min-max scaled) + the rest * BM25/max, row by row."""
    top = float(bm25.max()) if bm25.size else 0.0
    lexical = np.clip(bm25 / top, 0.0, None) if top > 0 else np.zeros_like(dense)
    return dense_weight * dense + (1.0 - dense_weight) * lexical


def minmax(scores: np.ndarray) -> np.ndarray:
    """Scores rescaled to [0, 1]; all-equal scores become 0 (they rank nothing)."""
    if scores.size == 0:
        return np.zeros(0, dtype=np.float64)
    low, high = float(scores.min()), float(scores.max())
    if not math.isfinite(high - low) or high - low <= 0:
        return np.zeros(scores.shape, dtype=np.float64)
    return (scores.astype(np.float64) - low) / (high - low)
