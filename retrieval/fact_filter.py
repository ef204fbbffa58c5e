"""The LLM recognition memory of mode hippo (HippoRAG 2): which of the top facts bear on the question.

Off unless `[retrieval.hippo] fact_filter = true` (or a `fact_filter=` passed to the retriever): it costs one
LLM call per query, which plain retrieval otherwise never makes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from retrieval.retrievers import FactFilter
from synthkg.config import RetrievalParams
from synthkg.extract.parse import parse_json_object, parse_numbers
from synthkg.llm.base import ChatBackend
from synthkg.prompts import load_prompt


def llm_fact_filter(backend: ChatBackend) -> FactFilter:
    """A fact filter that asks `backend`. An unparseable reply keeps every fact (the walk is then seeded as
    without a filter); numbers outside the list are ignored."""
    prompt = load_prompt("fact_filter")

    def keep(question: str, facts: list[str]) -> list[int]:
        listed = "\n".join(f"[{i}] {' '.join(fact.split())}" for i, fact in enumerate(facts, 1))
        reply = backend.chat(prompt.render(question=question, facts=listed), json_schema=prompt.schema,
                             max_tokens=prompt.max_tokens or 48)
        parsed = parse_json_object(reply.text)
        if parsed is None or "keep" not in parsed:
            return list(range(len(facts)))
        return sorted({n - 1 for n in parse_numbers(parsed["keep"]) if 1 <= n <= len(facts)})

    return keep


def wants_fact_filter(params: RetrievalParams, modes: Iterable[str]) -> bool:
    """Whether retrieval in `modes` with `params` asks the LLM: `hippo.fact_filter` on and mode hippo run."""
    return params.hippo.fact_filter and "hippo" in modes


def fact_filter_for(params: RetrievalParams, mode: str, backend: Callable[[], ChatBackend]
                    ) -> FactFilter | None:
    """The LLM fact filter the settings ask for (see `wants_fact_filter`; `backend()` is called only
    then), else None."""
    return llm_fact_filter(backend()) if wants_fact_filter(params, [mode]) else None
