"""The retrieval and reader modes and the question check, in a module of their own so that command lines
can use them without importing the retrievers (numpy, networkx, scipy) at start-up. See
retrieval/retrievers/ (one module per mode) and retrieval/reader.py for what each mode does."""

from __future__ import annotations

from synthkg.config import ReaderMode
from synthkg.config import RetrievalMode as Mode

MODES: tuple[Mode, ...] = ("bm25", "dense", "graph", "ppr", "hippo")
GRAPH_MODES: frozenset[Mode] = frozenset({"graph", "ppr", "hippo"})  # the modes that need a graph

# How the reader answers (retrieval/reader.py): one call; sub-queries until it can answer; or a plan of
# single-fact sub-questions answered in turn.
READER_MODES: tuple[ReaderMode, ...] = ("iterative", "decompose", "single")
# Sub-query steps before the answer is forced, per reader. Iterative: measured with the 1.5B reader on
# both dev sets (README, "Iterative reader"), 3 steps beat 5 (2Wiki F1 0.605 vs 0.497, MuSiQue 0.214 vs
# 0.163) for 70-75% of the tokens; past 3 it drifts through templated and repeated follow-ups. Decompose:
# its plans have up to 4 steps (a comparison of two bridged facts), and cutting one loses the answer.
DEFAULT_STEPS: dict[ReaderMode, int] = {"iterative": 3, "decompose": 4, "single": 1}


def steps_for(mode: ReaderMode, max_iterations: int | None) -> int:
    """The step budget: `max_iterations` where given, else the reader's default."""
    return DEFAULT_STEPS[mode] if max_iterations is None else max_iterations


def require_question(question: object) -> str:
    """`question` if it is a non-empty string; else ValueError (the one check the facade, the retrievers
    and the reader share)."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty; give a non-empty question")
    return question
