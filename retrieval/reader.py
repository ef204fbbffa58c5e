"""Answering questions over retrieved chunks: single-shot, or iterative (IterDRAG).

Iterative: retrieve for the question, then at each step the model either asks a sub-query (which is
retrieved for, answered by the model from its own passages, and added to the context with that intermediate
answer) or gives the final answer with the numbers of the passages it used. After `max_iterations` steps
without an answer, one last call forces it. Whatever the model writes, `answer` returns an `Answer`: an
unparseable reply is recorded in the trace and the loop goes on.

A sub-query that copies a passage, repeats the question or does not shorten it (retrieval/subqueries.py)
is not retrieved for: the model is asked once more with the problem stated, and when it fails again the
graph's templated bridge query (the question about the entity the graph reached from the question's own)
takes its place, or, for a question naming several things (a comparison), an answered follow-up asked
about the next one; the trace says which happened. Each sub-query's retrieval starts from the entities of
the intermediate answers so far as well (the retriever's `seeds`), so the second hop is a short walk.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from retrieval.modes import require_question
from retrieval.retrievers import RetrievalResult, RetrievedChunk, name_spans
from retrieval.subqueries import bridge_query, rejection, sibling_query
from synthkg.extract.parse import parse_json_object, parse_numbers
from synthkg.llm.base import ChatBackend
from synthkg.prompts import load_prompt

log = logging.getLogger(__name__)

# retriever(query, k) or retriever(query, k, seeds): make_retriever's take the seeds (names to start from)
RetrieverFn = Callable[..., RetrievalResult]
ReaderMode = Literal["iterative", "single"]

CHARS_PER_TOKEN = 4  # rough, model-independent estimate; budgets only need the order of magnitude
MIN_PASSAGE_CHARS = 200
QUESTION_SHARE = 0.25  # of the prompt budget
PROMPT_SHARE = 0.75  # of the context window: the rest is left for instructions and the reply
NO_STEPS = "(none)"
MAX_PLAIN_ANSWER_CHARS = 300


class Citation(BaseModel):
    number: int = Field(description="the passage number the model cited")
    chunk_id: str
    document_id: str
    text: str


class TraceStep(BaseModel):
    sub_query: str | None = None
    intermediate_answer: str | None = None
    retrieved_chunk_ids: list[str] = Field(default_factory=list)
    note: str = ""
    kind: Literal["question", "model", "bridge", "rejected", "other"] = Field(
        "other",
        description="question: the first retrieval; model: a sub-query the model asked; bridge: the graph's "
        "templated one; rejected: a sub-query not retrieved for (the note says why)",
    )


class ReaderUsage(BaseModel):
    """One answer's LLM calls and tokens (synthkg.llm.cache.Usage counts a whole run, by stage)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Answer(BaseModel):
    question: str
    answer: str
    mode: ReaderMode
    citations: list[Citation] = Field(default_factory=list)
    trace: list[TraceStep] = Field(default_factory=list)
    usage: ReaderUsage = Field(default_factory=ReaderUsage)
    seconds: float = 0.0
    forced_final: bool = Field(False, description="the answer came from the forced last call")
    warnings: list[str] = Field(default_factory=list)
    prompt_versions: dict[str, str] = Field(default_factory=dict)

    @property
    def sub_queries(self) -> int:
        """Sub-queries retrieved for (the model's and templated ones)."""
        return sum(1 for s in self.trace if s.kind in ("model", "bridge"))


def answer(
    question: str,
    retriever_fn: RetrieverFn,
    backend: ChatBackend,
    *,
    mode: ReaderMode = "iterative",
    max_iterations: int = 5,
    k: int = 5,
    context_tokens: int = 4096,
    max_tokens: int = 256,
) -> Answer:
    """Answer `question` from the chunks `retriever_fn(query, k)` returns (see `make_retriever`).
    `context_tokens` is the model's context window: passages are cut to fit it."""
    require_question(question)
    if mode not in ("iterative", "single"):
        raise ValueError(f"unknown reader mode {mode!r}; expected 'iterative' or 'single'")
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    started = time.perf_counter()
    session = _Session(question.strip(), retriever_fn, backend, mode, k, context_tokens, max_tokens)
    session.run(max_iterations)
    session.result.seconds = round(time.perf_counter() - started, 3)
    return session.result


class _Session:
    """One question's state: the numbered passages seen so far, the steps, the usage."""

    def __init__(
        self,
        question: str,
        retriever_fn: RetrieverFn,
        backend: ChatBackend,
        mode: ReaderMode,
        k: int,
        context_tokens: int,
        max_tokens: int,
    ) -> None:
        self.retriever_fn, self.backend, self.k, self.max_tokens = retriever_fn, backend, k, max_tokens
        self.budget_chars = int(context_tokens * CHARS_PER_TOKEN * PROMPT_SHARE)
        self.passages: list[RetrievedChunk] = []
        self.numbers: dict[str, int] = {}
        self.results: list[RetrievalResult] = []
        try:
            self.takes_seeds = "seeds" in inspect.signature(retriever_fn).parameters
        except (TypeError, ValueError):
            self.takes_seeds = False
        self.result = Answer(question=question, answer="", mode=mode)
        limit = int(self.budget_chars * QUESTION_SHARE)
        if len(question) > limit:
            message = (
                f"the question is {len(question)} characters long, more than the {limit} the context "
                f"budget allows ({context_tokens} tokens); it was truncated"
            )
            log.warning(message)
            self.result.warnings.append(message)
            question = question[:limit]
        self.question = question

    # --- the two control flows --------------------------------------------------------------------
    def run(self, max_iterations: int) -> None:
        first = self.retrieve(self.question)
        self.result.trace.append(
            TraceStep(retrieved_chunk_ids=first, note="retrieval for the question", kind="question")
        )
        if self.result.mode == "single":
            self.finish("reader_single", steps=None)
            return
        asked: list[str] = []
        note = ""
        rejected_in_a_row = 0
        for _ in range(max_iterations):
            reply, _ = self.call("reader_iterate", self.all_passages(), self.render_steps(), note=note)
            note = ""
            if reply is None:
                self.result.trace.append(TraceStep(note="unparseable model output"))
                continue
            final = _text(reply.get("answer"))
            if final:
                self.settle(final, reply.get("citations"))
                return
            sub_query = _text(reply.get("sub_query"))
            if not sub_query:
                self.result.trace.append(TraceStep(note="model output had neither an answer nor a sub-query"))
                continue
            reason = rejection(sub_query, self.question, (p.text for p in self.passages), asked)
            if reason is None:
                rejected_in_a_row = 0
                asked.append(sub_query)
                self.sub_step(sub_query, kind="model")
                continue
            rejected_in_a_row += 1
            self.result.trace.append(
                TraceStep(sub_query=sub_query, kind="rejected", note=f"not retrieved: the sub-query {reason}")
            )
            if rejected_in_a_row == 1:
                note = (f"Note: your follow-up question {sub_query!r} {reason}. Ask a short question about "
                        "the one missing fact, or answer.\n")
                continue
            templated = self.templated_query(asked)
            if templated is not None:
                query, what = templated
                rejected_in_a_row = 0
                asked.append(query)
                self.sub_step(query, kind="bridge", note=f"templated {what}: the model's follow-ups were "
                              "rejected twice")
        self.result.forced_final = True
        self.finish("reader_final", steps=self.render_steps())

    def templated_query(self, asked: list[str]) -> tuple[str, str] | None:
        """A follow-up not yet asked, and what it is: the graph's bridge query (the question about the
        entity reached from its own, from the first retrieval's top chunks; see
        retrieval.subqueries.bridge_query), else, for a question naming several things, an answered
        follow-up asked about the next one (retrieval.subqueries.sibling_query)."""
        first = self.results[0] if self.results else None
        if first is None:
            return None
        reached = [name for chunk in first.chunks for name in chunk.reached]
        bridge = bridge_query(self.question, first.question_entities, reached)
        if bridge is not None and bridge not in asked:
            return bridge, "bridge query"
        names = list(dict.fromkeys([*first.question_entities, *name_spans(self.question)]))
        answered = [s.sub_query for s in self.result.trace
                    if s.sub_query and s.kind in ("model", "bridge")
                    and s.intermediate_answer not in (None, "unknown")]
        # Never one already asked: it names something no earlier sub-query names.
        sibling = sibling_query(answered, names, asked)
        return (sibling, "sibling query") if sibling is not None else None

    def sub_step(self, sub_query: str, *, kind: Literal["model", "bridge"], note: str = "") -> None:
        # Start the walk from what the earlier steps found too: the second hop's entity is among them.
        seeds = [s.intermediate_answer for s in self.result.trace
                 if s.intermediate_answer not in (None, "unknown")]
        ids = self.retrieve(sub_query, seeds)
        own = [self.passages[self.numbers[cid] - 1] for cid in ids]
        reply, _ = self.call("reader_intermediate", self.render(own), None, question=sub_query)
        intermediate = _text(reply.get("answer")) if reply else None
        if not reply:
            note = (note + "; " if note else "") + "unparseable model output for the intermediate answer"
        self.result.trace.append(
            TraceStep(
                sub_query=sub_query,
                intermediate_answer=intermediate or "unknown",
                retrieved_chunk_ids=ids,
                note=note,
                kind=kind,
            )
        )

    def finish(self, prompt: str, steps: str | None) -> None:
        reply, raw = self.call(prompt, self.all_passages(), steps)
        final = _text(reply.get("answer")) if reply else None
        if not final:
            self.result.warnings.append(f"the model gave no parseable answer to the '{prompt}' prompt")
            # A plain-text reply is most likely the answer itself (its first line); otherwise fall back
            # on the last intermediate answer, the best the trace holds.
            stripped = raw.strip().split("\n", 1)[0][:MAX_PLAIN_ANSWER_CHARS]
            known = [
                s.intermediate_answer
                for s in self.result.trace
                if s.intermediate_answer not in (None, "unknown")
            ]
            final = stripped if stripped and "{" not in stripped else (known[-1] if known else "")
        self.settle(final or "", reply.get("citations") if reply else None)

    def settle(self, text: str, citations: Any) -> None:
        self.result.answer = text
        for number in parse_numbers(citations) if citations is not None else []:
            if 1 <= number <= len(self.passages):
                chunk = self.passages[number - 1]
                self.result.citations.append(
                    Citation(
                        number=number, chunk_id=chunk.chunk_id, document_id=chunk.document_id, text=chunk.text
                    )
                )

    # --- retrieval and the model --------------------------------------------------------------------
    def retrieve(self, query: str, seeds: list[str] | None = None) -> list[str]:
        """Retrieve for `query` (starting from `seeds` too, where the retriever takes them); new chunks get
        the next passage numbers. Returns the chunk ids."""
        if seeds and self.takes_seeds:
            result = self.retriever_fn(query, self.k, seeds)
        else:
            result = self.retriever_fn(query, self.k)
        self.results.append(result)
        chunks = result.chunks
        for chunk in chunks:
            if chunk.chunk_id not in self.numbers:
                self.passages.append(chunk)
                self.numbers[chunk.chunk_id] = len(self.passages)
        return [c.chunk_id for c in chunks]

    def call(
        self, prompt: str, passages: str, steps: str | None, question: str | None = None, note: str = ""
    ) -> tuple[dict[str, Any] | None, str]:
        """One model call: the reply parsed as a JSON object (None if it is not one) and its raw text."""
        template = load_prompt(prompt)
        self.result.prompt_versions[template.name] = str(template.version)
        values = {"passages": passages, "question": question or self.question}
        if steps is not None:
            values["steps"] = steps
        if "$note" in template.user:
            values["note"] = note
        reply = self.backend.chat(
            template.render(**values), json_schema=template.schema, max_tokens=self.max_tokens
        )
        usage = self.result.usage
        usage.calls += 1
        usage.prompt_tokens += reply.prompt_tokens
        usage.completion_tokens += reply.completion_tokens
        return parse_json_object(reply.text), reply.text

    # --- rendering ---------------------------------------------------------------------------------
    def all_passages(self) -> str:
        return self.render(self.passages)

    def render(self, chunks: list[RetrievedChunk]) -> str:
        """Numbered passages within the budget left after the question and the steps: each cut to an equal
        share, and when even MIN_PASSAGE_CHARS each would not fit, the lowest-numbered ones only."""
        budget = self.budget_chars - len(self.question) - len(self.render_steps())
        fit = max(1, budget // MIN_PASSAGE_CHARS)
        shown = chunks[:fit]
        share = max(MIN_PASSAGE_CHARS, budget // max(1, len(shown)))
        lines = []
        for chunk in shown:
            text = " ".join(chunk.text.split())
            if len(text) > share:
                text = text[: share - 3].rstrip() + "..."
            lines.append(f"[{self.numbers[chunk.chunk_id]}] {text}")
        return "\n".join(lines) if lines else "(no passages found)"

    def render_steps(self) -> str:
        steps = [s for s in self.result.trace if s.sub_query and s.intermediate_answer]
        if not steps:
            return NO_STEPS
        return "\n".join(f"- {s.sub_query} -> {s.intermediate_answer}" for s in steps)


def _text(value: Any) -> str | None:
    """A non-empty string field of a model reply, else None."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None
