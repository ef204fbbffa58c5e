"""Mode hippo's LLM fact filter (HippoRAG 2's recognition memory): the hook keeps only the facts it is
told to, the LLM version parses what small models write, and the facade wires it from the settings. The
scripted models check control flow; the slow test has the local model really filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.fact_filter import fact_filter_for, llm_fact_filter
from retrieval.retrievers import filter_facts, retrieve, top_facts
from synthkg.api import KnowledgeGraph
from synthkg.config import RetrievalParams
from synthkg.prompts import load_prompt
from tests.fakes import ScriptedChatModel
from tests.retrieval.conftest import Corpus
from tests.retrieval.corpus import QUESTION
from tests.retrieval.helpers import HashingEmbedder
from tests.retrieval.test_retrievers import hashed  # noqa: F401  (fixture)
from tests.test_api import build_graph_dir, make_settings

FACTS = ["Xanadu Nights was directed by Yorick Bellamy.", "The lighthouse stands in Maine.",
         "Yorick Bellamy was born in Lisbon."]


@pytest.mark.parametrize(
    ("reply", "kept"),
    [
        ('{"keep": [1, 3]}', [0, 2]),
        ('{"keep": ["3", "[1]"]}', [0, 2]),  # numbers however written, in fact order
        ('{"keep": [0, 4, 2, 2]}', [1]),  # out of range dropped, duplicates once
        ('{"keep": []}', []),  # nothing bears on it: no fact seeds the walk
        ("I think facts one and three", [0, 1, 2]),  # unparseable: every fact kept, as without a filter
        ('{"facts": [1]}', [0, 1, 2]),
    ],
)
def test_llm_filter_reads_the_kept_numbers(reply: str, kept: list[int]) -> None:
    model = ScriptedChatModel([reply])
    assert llm_fact_filter(model)(QUESTION, FACTS) == kept
    (call,) = model.calls
    assert call.messages[0]["content"] == load_prompt("fact_filter").system
    assert "[3] Yorick Bellamy was born in Lisbon." in call.last_user and QUESTION in call.last_user


def test_only_the_kept_facts_seed_the_walk(hashed: Corpus) -> None:  # noqa: F811
    params = RetrievalParams()
    asked: list[list[str]] = []

    def keep_first(question: str, facts: list[str]) -> list[int]:
        asked.append(facts)
        return [0]

    plain = retrieve(QUESTION, 3, "hippo", store=hashed.store, index=hashed.index, params=params)
    filtered = retrieve(QUESTION, 3, "hippo", store=hashed.store, index=hashed.index, params=params,
                        fact_filter=keep_first)
    (facts,) = asked
    assert len(facts) == params.hippo.top_facts and all(facts)
    assert "1b_fact_filter" in filtered.timings_ms and "1b_fact_filter" not in plain.timings_ms
    # The filter is mode hippo's: the other modes never call it.
    retrieve(QUESTION, 3, "graph", store=hashed.store, index=hashed.index, fact_filter=keep_first)
    assert len(asked) == 1

    hybrid = np.linspace(0, 1, hashed.index.size("propositions"))
    top = top_facts(hashed.index, hybrid, 4)
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    assert filter_facts(QUESTION, top, hashed.index, lambda q, f: [3, 1]) == [top[1], top[3]]
    assert filter_facts(QUESTION, [], hashed.index, keep_first) == []


def test_the_settings_turn_it_on_for_hippo_only(tmp_path: Path) -> None:
    def no_backend() -> ScriptedChatModel:
        raise AssertionError("no LLM without the filter")

    on = RetrievalParams(hippo={"fact_filter": True})
    assert fact_filter_for(RetrievalParams(), "hippo", no_backend) is None
    assert fact_filter_for(on, "graph", no_backend) is None
    assert fact_filter_for(on, "hippo", lambda: ScriptedChatModel([])) is not None

    path = tmp_path / "kg"
    build_graph_dir(path, HashingEmbedder())
    settings = make_settings(tmp_path)
    settings = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(
        update={"hippo": on.hippo, "mode": "hippo"})})
    model = ScriptedChatModel(['{"keep": [1]}'])
    with KnowledgeGraph.open(path, settings=settings, backend=model, embedder=HashingEmbedder()) as kg:
        result = kg.retrieve(QUESTION, k=3)
        assert result.mode == "hippo" and len(result.chunks) == 3
        assert len(model.calls) == 1 and kg.usage.total().calls == 1
        kg.retrieve(QUESTION, k=3, mode="graph")  # no filter outside hippo
        assert len(model.calls) == 1


@pytest.mark.slow  # the real local model filters (one call)
def test_the_local_model_keeps_a_subset_of_the_facts(tmp_path: Path) -> None:
    from synthkg.config import default_cache_dir
    from synthkg.llm.cache import CachedBackend
    from synthkg.llm.llamacpp import LlamaCppBackend

    backend = CachedBackend(LlamaCppBackend("qwen2.5-coder-0.5b", default_cache_dir()), tmp_path)
    try:
        kept = llm_fact_filter(backend)(QUESTION, FACTS)
    finally:
        backend.close()
    assert kept == sorted(set(kept)) and set(kept) <= {0, 1, 2}
    assert backend.usage.total().calls == 1
