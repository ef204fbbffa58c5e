"""The retrieval modes, in a module of their own so that command lines can list them without importing
the retrievers (numpy, networkx, scipy) at start-up. See retrieval/retrievers.py for what each does."""

from __future__ import annotations

from typing import Literal

Mode = Literal["bm25", "dense", "graph", "ppr", "hippo"]
MODES: tuple[Mode, ...] = ("bm25", "dense", "graph", "ppr", "hippo")
GRAPH_MODES: frozenset[Mode] = frozenset({"graph", "ppr", "hippo"})  # the modes that need a graph
