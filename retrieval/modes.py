"""The retrieval and reader modes and the question check, in a module of their own so that command lines
can use them without importing the retrievers (numpy, networkx, scipy) at start-up. See
retrieval/retrievers.py and retrieval/reader.py for what each mode does."""

from __future__ import annotations

from typing import Literal

Mode = Literal["bm25", "dense", "graph", "ppr", "hippo"]
MODES: tuple[Mode, ...] = ("bm25", "dense", "graph", "ppr", "hippo")
GRAPH_MODES: frozenset[Mode] = frozenset({"graph", "ppr", "hippo"})  # the modes that need a graph

# How the reader answers (retrieval/reader.py): one call; sub-queries until it can answer; or a plan of
# single-fact sub-questions answered in turn.
ReaderMode = Literal["iterative", "decompose", "single"]
READER_MODES: tuple[ReaderMode, ...] = ("iterative", "decompose", "single")
# Sub-query steps before the iterative reader's answer is forced. Measured with the 1.5B reader on both
# dev sets (README, "Iterative reader"): 3 steps beat 5 (2Wiki F1 0.605 vs 0.497, MuSiQue 0.214 vs 0.163)
# for 70-75% of the tokens; past 3 the reader drifts through templated and repeated follow-ups.
DEFAULT_MAX_ITERATIONS = 3


def require_question(question: object) -> str:
    """`question` if it is a non-empty string; else ValueError (the one check the facade, the retrievers
    and the reader share)."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty; give a non-empty question")
    return question
