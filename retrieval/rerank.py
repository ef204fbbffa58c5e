"""The optional LLM re-ranking hook of `retrieve` (off unless a re-ranker is passed)."""

from __future__ import annotations

from retrieval.retrievers import Reranker, RetrievedChunk
from synthkg.extract.parse import parse_json_object, parse_numbers
from synthkg.llm.base import ChatBackend
from synthkg.prompts import load_prompt

PASSAGE_CHARS = 600


def llm_reranker(backend: ChatBackend, max_tokens: int = 128) -> Reranker:
    """A re-ranker that asks `backend` to order the candidates. Passages the model leaves out keep their
    retrieval order after the ones it ranked; an unparseable reply leaves the order unchanged."""
    prompt = load_prompt("rerank")

    def rerank(question: str, chunks: list[RetrievedChunk]) -> list[RetrievedChunk]:
        passages = "\n".join(
            f"[{i}] {' '.join(c.text.split())[:PASSAGE_CHARS]}" for i, c in enumerate(chunks, 1)
        )
        reply = backend.chat(
            prompt.render(passages=passages, question=question),
            json_schema=prompt.schema,
            max_tokens=max_tokens,
        )
        parsed = parse_json_object(reply.text) or {}
        ranked = [n - 1 for n in parse_numbers(parsed.get("ranking", [])) if 1 <= n <= len(chunks)]
        rest = [i for i in range(len(chunks)) if i not in set(ranked)]
        return [chunks[i] for i in ranked + rest]

    return rerank
