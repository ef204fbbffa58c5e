"""Answering questions over retrieved chunks: single-shot, iterative (IterDRAG), or decomposing.

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

Decompose (the cheap way to iterate): one call that reads no passages splits the question into single-fact
sub-questions, later ones naming earlier answers as #1, #2; each is retrieved for in turn (with the
answers so far as seeds) and answered from its own `step_k` passages. A plain chain's last answer is the
answer; a comparison of two dates ("which came out first, A or B?") is settled in code from the steps'
dates (retrieval/comparison.py); otherwise (a yes/no, anything else) a last call composes the answer from
the answers alone. Citations are the passages the steps cited. Only the step calls read passages, a few
each. A step answered "unknown" is asked once more over twice as many passages (the fact is often just
below its first few). When a step still fails (its sub-query is rejected, its answer is "unknown", or it
names an answer that does not exist), the plan stops there and the forced last call reads the question's
passages, those the steps cited, and the steps so far; the trace says which happened.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from retrieval.comparison import PLACEHOLDER, settle_by_date
from retrieval.modes import READER_MODES, ReaderMode, require_question, steps_for
from retrieval.retrievers import RetrievalResult, RetrievedChunk, name_spans
from retrieval.subqueries import bridge_query, rejection, sibling_query
from synthkg.extract.parse import parse_json_object, parse_numbers
from synthkg.llm.base import ChatBackend
from synthkg.prompts import load_prompt

log = logging.getLogger(__name__)

# retriever(query, k) or retriever(query, k, seeds): make_retriever's take the seeds (names to start from)
RetrieverFn = Callable[..., RetrievalResult]

CHARS_PER_TOKEN = 4  # rough, model-independent estimate; budgets only need the order of magnitude
MIN_PASSAGE_CHARS = 200
QUESTION_SHARE = 0.25  # of the prompt budget
PROMPT_SHARE = 0.75  # of the context window: the rest is left for instructions and the reply
NO_STEPS = "(none)"
MAX_PLAIN_ANSWER_CHARS = 300
UNKNOWN = "unknown"


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
    kind: Literal["question", "model", "bridge", "retry", "rejected", "other"] = Field(
        "other",
        description="question: the first retrieval; model: a sub-query the model asked; bridge: the graph's "
        "templated one; retry: a planned step asked again over more passages; rejected: a sub-query not "
        "retrieved for (the note says why)",
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
    max_iterations: int | None = None,
    k: int = 5,
    context_tokens: int = 4096,
    max_tokens: int = 256,
    step_k: int | None = None,
) -> Answer:
    """Answer `question` from the chunks `retriever_fn(query, k)` returns (see `make_retriever`).
    `max_iterations` caps the sub-query steps (iterative, decompose; default: retrieval.modes.DEFAULT_STEPS
    for the mode); `step_k` is the number of passages retrieved for each sub-query (default: `k`).
    `context_tokens` is the model's context window: passages are cut to fit it."""
    require_question(question)
    if mode not in READER_MODES:
        raise ValueError(f"unknown reader mode {mode!r}; expected one of {', '.join(READER_MODES)}")
    if max_iterations is not None and max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if step_k is not None and step_k < 1:
        raise ValueError(f"step_k must be >= 1, got {step_k}")
    started = time.perf_counter()
    session = _Session(question.strip(), retriever_fn, backend, mode, k, context_tokens, max_tokens,
                       step_k or k)
    session.run(steps_for(mode, max_iterations))
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
        step_k: int,
    ) -> None:
        self.retriever_fn, self.backend, self.k, self.max_tokens = retriever_fn, backend, k, max_tokens
        self.step_k = step_k
        self.step_citations: list[int] = []  # what the intermediate answers cited, in order
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
        if self.result.mode == "decompose":
            self.run_decompose(max_iterations)
            return
        asked: list[str] = []
        note = ""
        rejected_in_a_row = 0
        for _ in range(max_iterations):
            reply, _ = self.call("reader_iterate", passages=self.all_passages(), steps=self.render_steps(),
                                 note=note)
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
        self.force_final()

    def run_decompose(self, max_iterations: int) -> None:
        """Plan, answer each step from its own passages, compose; when a step fails, the forced last call
        (and for a one-step plan that only restates the question, the single-shot call)."""
        reply, _ = self.call("reader_decompose")
        plan = [text for text in map(_text, reply.get("steps") or []) if text] if reply else []
        if len(plan) > max_iterations:
            self.result.trace.append(TraceStep(note=f"the plan's {len(plan)} steps cut to {max_iterations}"))
            plan = plan[:max_iterations]
        outcome = self.follow(plan)
        if outcome == "single":
            self.finish("reader_single", steps=None)
        elif outcome == "failed":
            self.force_final(self.first_and_cited())
        elif (winner := settle_by_date(self.question, plan, self.known_answers())) is not None:
            # Before the chain rule: a comparison's plan can end in a step naming #1 whose answer is a date.
            self.result.trace.append(TraceStep(note="a comparison of dates settled from the steps' dates"))
            self.settle(winner, self.step_citations)
        elif is_chain(plan):
            last = self.result.trace[-1].intermediate_answer or ""
            self.result.trace.append(TraceStep(note="a chain of steps: its last answer is the answer"))
            self.settle(last, self.step_citations)
        else:
            self.compose()

    def follow(self, plan: list[str]) -> Literal["answered", "failed", "single"]:
        """Retrieve for and answer each planned step in turn, its #n replaced by the earlier answers."""
        if not plan:
            self.result.trace.append(TraceStep(note="the plan was unparseable or empty"))
            return "failed"
        answers: list[str] = []
        asked: list[str] = []
        for step in plan:
            sub_query = fill_placeholders(step, answers)
            reason: str | None = "names an answer the plan lacks"
            if sub_query is not None:
                # The plan read no passages, so it cannot copy one; repeating the question is what to catch.
                reason = rejection(sub_query, self.question, (), asked)
                if reason is None:
                    asked.append(sub_query)
                    found = self.sub_step(sub_query, kind="model")
                    if found is None:
                        wider = 2 * self.step_k
                        found = self.sub_step(sub_query, kind="retry", k=wider,
                                              note=f"asked again over {wider} passages")
                    if found is None:
                        return "failed"
                    answers.append(found)
                    continue
            self.result.trace.append(TraceStep(sub_query=sub_query or step, kind="rejected",
                                               note=f"not retrieved: the sub-query {reason}"))
            return "single" if len(plan) == 1 else "failed"
        return "answered"

    def compose(self) -> None:
        """The answer from the steps' answers alone, citing what they cited; else the forced last call."""
        reply, _ = self.call("reader_compose", steps=self.render_steps())
        final = _text(reply.get("answer")) if reply else None
        if final is None or final.casefold() == UNKNOWN:
            self.result.trace.append(TraceStep(note="the composing call gave no answer"))
            self.force_final(self.first_and_cited())
            return
        self.settle(final, self.step_citations)

    def first_and_cited(self) -> list[RetrievedChunk]:
        """The question's own passages and those the steps cited, in passage-number order."""
        first = {c.chunk_id for c in self.results[0].chunks} if self.results else set()
        cited = set(self.step_citations)
        return [p for p in self.passages if p.chunk_id in first or self.numbers[p.chunk_id] in cited]

    def force_final(self, chunks: list[RetrievedChunk] | None = None) -> None:
        """The answer now, from `chunks` (default: every passage seen) and the steps so far."""
        self.result.forced_final = True
        self.finish("reader_final", steps=self.render_steps(), chunks=chunks)

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
        answered = [s.sub_query for s in self.answered_steps() if s.sub_query]
        # Never one already asked: it names something no earlier sub-query names.
        sibling = sibling_query(answered, names, asked)
        return (sibling, "sibling query") if sibling is not None else None

    def sub_step(self, sub_query: str, *, kind: Literal["model", "bridge", "retry"], note: str = "",
                 k: int | None = None) -> str | None:
        """Retrieve `k` (default: step_k) passages for `sub_query` and answer it from them; the answer, None
        when unknown."""
        # Start the walk from what the earlier steps found too: the second hop's entity is among them.
        seeds = self.known_answers()
        ids = self.retrieve(sub_query, seeds, k or self.step_k)
        own = [self.passages[self.numbers[cid] - 1] for cid in ids]
        reply, _ = self.call("reader_intermediate", passages=self.render(own), question=sub_query)
        intermediate = _text(reply.get("answer")) if reply else None
        if not reply:
            note = (note + "; " if note else "") + "unparseable model output for the intermediate answer"
        if intermediate is not None and intermediate.casefold() == UNKNOWN:
            intermediate = None
        if intermediate is not None and reply is not None:  # reply is set whenever intermediate is
            cited = parse_numbers(reply.get("citations"))  # None parses to no numbers
            own_numbers = {self.numbers[cid] for cid in ids}
            self.step_citations += [n for n in cited if n in own_numbers and n not in self.step_citations]
        self.result.trace.append(
            TraceStep(
                sub_query=sub_query,
                intermediate_answer=intermediate or UNKNOWN,
                retrieved_chunk_ids=ids,
                note=note,
                kind=kind,
            )
        )
        return intermediate

    def finish(self, prompt: str, steps: str | None, chunks: list[RetrievedChunk] | None = None) -> None:
        extra = {"steps": steps} if steps is not None else {}
        shown = self.render(chunks) if chunks is not None else self.all_passages()
        reply, raw = self.call(prompt, passages=shown, **extra)
        final = _text(reply.get("answer")) if reply else None
        if not final:
            self.result.warnings.append(f"the model gave no parseable answer to the '{prompt}' prompt")
            # A plain-text reply is most likely the answer itself (its first line); otherwise fall back
            # on the last intermediate answer, the best the trace holds.
            stripped = raw.strip().split("\n", 1)[0][:MAX_PLAIN_ANSWER_CHARS]
            known = self.known_answers()
            final = stripped if stripped and "{" not in stripped else (known[-1] if known else "")
        self.settle(final or "", reply.get("citations") if reply else None)

    def settle(self, text: str, citations: Any) -> None:
        self.result.answer = text
        for number in parse_numbers(citations):  # None parses to no numbers
            if 1 <= number <= len(self.passages):
                chunk = self.passages[number - 1]
                self.result.citations.append(
                    Citation(
                        number=number, chunk_id=chunk.chunk_id, document_id=chunk.document_id, text=chunk.text
                    )
                )

    # --- retrieval and the model --------------------------------------------------------------------
    def retrieve(self, query: str, seeds: list[str] | None = None, k: int | None = None) -> list[str]:
        """Retrieve the top `k` (default: the reader's k) for `query` (starting from `seeds` too, where the
        retriever takes them); new chunks get the next passage numbers. Returns the chunk ids."""
        k = k or self.k
        if seeds and self.takes_seeds:
            result = self.retriever_fn(query, k, seeds)
        else:
            result = self.retriever_fn(query, k)
        self.results.append(result)
        chunks = result.chunks
        for chunk in chunks:
            if chunk.chunk_id not in self.numbers:
                self.passages.append(chunk)
                self.numbers[chunk.chunk_id] = len(self.passages)
        return [c.chunk_id for c in chunks]

    def call(self, prompt: str, **values: str) -> tuple[dict[str, Any] | None, str]:
        """One model call with the template's `values` (the question defaults to this session's): the reply
        parsed as a JSON object (None if it is not one) and its raw text."""
        template = load_prompt(prompt)
        self.result.prompt_versions[template.name] = str(template.version)
        values.setdefault("question", self.question)
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

    def answered_steps(self) -> list[TraceStep]:
        """The sub-query steps that found an answer, in order."""
        return [s for s in self.result.trace if s.sub_query and s.intermediate_answer not in (None, UNKNOWN)]

    def known_answers(self) -> list[str]:
        """The answers those steps found, in order (for a followed plan: step n's answer is the n-th)."""
        return [s.intermediate_answer for s in self.answered_steps() if s.intermediate_answer]

    def render_steps(self) -> str:
        """The steps so far as "- sub-query -> answer" lines; a try that a retry superseded is left out."""
        trace = self.result.trace
        steps = [s for i, s in enumerate(trace) if s.sub_query and s.intermediate_answer
                 and not (i + 1 < len(trace) and trace[i + 1].kind == "retry")]
        if not steps:
            return NO_STEPS
        return "\n".join(f"- {s.sub_query} -> {s.intermediate_answer}" for s in steps)


def is_chain(plan: list[str]) -> bool:
    """Whether every planned step after the first names the answer of the step right before it (#n in
    step n + 1), a single step included: then the last answer answers the question."""
    return bool(plan) and all(str(i) in PLACEHOLDER.findall(step) for i, step in enumerate(plan[1:], 1))


def fill_placeholders(step: str, answers: list[str]) -> str | None:
    """A planned step with its #1, #2 ... replaced by those earlier answers; None when it names one that
    does not exist (a plan referring forward or to itself)."""
    missing = False

    def answer_of(match: re.Match[str]) -> str:
        nonlocal missing
        number = int(match.group(1))
        if 1 <= number <= len(answers):
            return answers[number - 1]
        missing = True
        return match.group(0)

    filled = PLACEHOLDER.sub(answer_of, step)
    return None if missing else filled


def _text(value: Any) -> str | None:
    """A non-empty string field of a model reply, else None."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None
