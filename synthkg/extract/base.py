"""What every extractor (the multi-step teacher, the distilled student) shares: the `Extractor` protocol,
its `ExtractionResult`, and one way to ask a backend for a prompt's JSON with bounded repair."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from synthkg.extract import lines
from synthkg.extract.parse import ParseError, find_repetition, parse_output
from synthkg.extract.schema import ChunkGraph, ExtractedEntity
from synthkg.llm.base import ChatBackend, ChatResult, Message, accepts
from synthkg.model import normalize_name
from synthkg.prompts import Prompt, load_prompt


class ExtractionResult(BaseModel):
    """One chunk's extraction. `failure` is None on success, else "<stage>:<reason>" (reason: a
    ParseError reason); the graph then holds what the stages before the failure produced."""

    model_config = ConfigDict(frozen=True)

    original_text: str
    text: str = Field(description="the chunk text extraction read: the decontextualized rewrite if kept")
    decontextualized: bool = False
    rouge1_f1: float | None = Field(None, description="rewrite vs original; None when not attempted")
    graph: ChunkGraph = Field(default_factory=ChunkGraph)
    failure: str | None = None
    issues: tuple[str, ...] = Field((), description="every unusable answer, retried or not")

    @property
    def ok(self) -> bool:
        return self.failure is None


@runtime_checkable
class Extractor(Protocol):
    def extract(self, chunk_text: str, previous_chunk: str | None = None) -> ExtractionResult:
        """The graph of `chunk_text`; `previous_chunk` (the chunk before it in its document) resolves
        its references. Problems with LLM output end up in the result, never as exceptions; backend
        failures (LLMError) propagate."""
        ...


def with_quadruple_entities(graph: ChunkGraph) -> ChunkGraph:
    """`graph` plus an entity (type "OTHER") for every quadruple subject or object missing from its
    entity list. Small models often leave names out of the entity list that they then use in facts,
    and literal objects (dates, numbers) are not listed at all: dropping those facts would lose
    knowledge, while an extra node costs nothing."""
    known = {normalize_name(e.name) for e in graph.entities}
    added: list[ExtractedEntity] = []
    for quad in graph.quadruples:
        for name in (quad.subject, quad.object):
            key = normalize_name(name)
            if key not in known:
                known.add(key)
                added.append(ExtractedEntity(name=name, type="OTHER"))
    return graph.model_copy(update={"entities": [*graph.entities, *added]}) if added else graph


# --- calling a backend ------------------------------------------------------------------------------


def accepts_call_metadata(backend: ChatBackend) -> bool:
    """Whether `backend.chat` takes `prompt_version` and `stage` (CachedBackend does: it keys its
    cache and per-stage usage on them); a plain ChatBackend does not."""
    return accepts(backend, "prompt_version") and accepts(backend, "stage")


def json_loop_guard(text: str) -> bool:
    """For streaming backends: whether a JSON answer has started to loop (parse.find_repetition)."""
    return find_repetition(text) is not None


def call(
    backend: ChatBackend,
    prompt: Prompt,
    messages: list[Message],
    *,
    stage: str,
    constrained: bool,
    max_tokens: int | None,
) -> ChatResult:
    """One call for `prompt`'s answer. `constrained`: request the answer's form, as a JSON schema (the
    JSON prompts) or as a grammar (the line format; backends that cannot take one write freely and the
    parser copes). Streaming backends get the format's loop guard."""
    kwargs: dict[str, Any] = {"max_tokens": max_tokens}
    if prompt.output_format == "lines":
        kwargs["json_schema"] = None
        if constrained and accepts(backend, "grammar"):
            kwargs["grammar"] = lines.GRAMMAR
        guard: Any = lines.LoopGuard()
    else:
        kwargs["json_schema"] = prompt.schema if constrained else None
        guard = json_loop_guard
    if accepts(backend, "stop_when"):
        kwargs["stop_when"] = guard
    if accepts_call_metadata(backend):
        kwargs |= {"prompt_version": prompt.version_tag, "stage": stage}
    return backend.chat(messages, **kwargs)


def parse_answer(prompt: Prompt, result: ChatResult) -> tuple[BaseModel, list[str]]:
    """`result`'s answer to `prompt` and the problems parsing tolerated (lines it skipped, a loop or cut
    it stopped at). Raises ParseError when there is no usable answer."""
    if prompt.output_format == "lines":
        graph, report = lines.parse_lines(result.text, finish_reason=result.finish_reason)
        notes = [f"skipped line: {line[:80]}" for line in report.skipped[:3]]
        if report.loop_at is not None or result.finish_reason == "loop":
            notes.append("stopped where it started to loop; the facts before were kept")
        elif report.cut:
            notes.append("cut at the token budget; the facts before were kept")
        return graph, notes
    return parse_output(result.text, prompt.model, finish_reason=result.finish_reason), []


Constrain = Literal["always", "retry"]

# Reasons whose bad answer is worth showing back: a loop or a cut-off answer shown to a small model
# tends to be copied, so those are re-asked without it.
_ECHO_REASONS = frozenset({"no_json", "invalid_json", "schema"})
_ECHO_CHARS = 2000
# What the repair prompt asks to write again, by output format.
_REPLY_FORM = {"json": "one JSON object", "lines": "the entity, proposition and triple lines"}


@dataclass
class ParsedAnswer:
    value: BaseModel | None
    errors: list[ParseError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # problems a usable answer had (see parse_answer)


def ask(
    backend: ChatBackend,
    prompt: Prompt,
    variables: dict[str, str],
    *,
    stage: str,
    max_attempts: int = 2,
    constrain: Constrain = "always",
    max_tokens: int | None = None,
) -> ParsedAnswer:
    """Ask for `prompt`'s JSON answer, parse it strictly, and after an unusable answer re-ask (up to
    `max_attempts` calls in all) with the problem stated: a retry is always a different request, so a
    call cache never hands back the same bad answer. `constrain` "always" requests the JSON schema on
    every call; "retry" only on re-asks (free generation is faster where constrained decoding is slow).
    A truncated answer is re-asked with twice the token budget."""
    base = prompt.render(**variables)
    messages = base
    budget = max_tokens or prompt.max_tokens
    answer = ParsedAnswer(value=None)
    repair = load_prompt("repair")
    for attempt in range(max_attempts):
        constrained = constrain == "always" or attempt > 0
        result = call(backend, prompt, messages, stage=stage, constrained=constrained, max_tokens=budget)
        try:
            answer.value, answer.notes = parse_answer(prompt, result)
            return answer
        except ParseError as exc:
            error = exc
        answer.errors.append(error)
        follow_up = repair.fill({
            "problem": error.detail,
            "hint": repair.hints.get(error.reason, ""),
            "form": _REPLY_FORM[prompt.output_format],
        })
        if error.reason in _ECHO_REASONS:
            echoed: Message = {"role": "assistant", "content": result.text[:_ECHO_CHARS]}
            messages = [*base, echoed, {"role": "user", "content": follow_up}]
        else:
            last = base[-1]
            messages = [*base[:-1], {"role": last["role"], "content": last["content"] + "\n\n" + follow_up}]
        if error.reason == "truncated" and budget is not None:
            budget *= 2
    return answer
