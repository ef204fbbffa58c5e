"""The distilled extractor (Distill-SynthKG): a small fine-tuned model writes a chunk's whole graph in ONE
call. It is prompted exactly as it was trained (`training.dataset.chat_messages`: the system text and
user template the student recorded in student_prompt.json, else the one_call prompt's; no worked
examples), and its output goes through the same parser, repair policy and failure reporting as the
multi-step teacher.

A student writes the graph as JSON (one_call) or in the line format (one_call_lines, ~0.6x the tokens;
see synthkg.extract.lines); its student_prompt.json says which. Line-format answers get a token budget
sized to the chunk (`budget`): a loop then costs at most a few hundred tokens, and what came before
it is kept."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from synthkg.chunking import approx_token_count
from synthkg.extract.base import Constrain, ExtractionResult, ask, with_quadruple_entities
from synthkg.extract.schema import ChunkGraph
from synthkg.llm.base import GRAMMAR_BACKENDS, ChatBackend
from synthkg.prompts import load_prompt

STAGE = "one_call"
PROMPTS = {"json": "one_call", "lines": "one_call_lines"}
# Written by `synthkg train` beside the adapter: the prompt its examples were built with.
STUDENT_PROMPT_FILE = "student_prompt.json"

log = logging.getLogger(__name__)


class StudentPrompt(BaseModel):
    """What a student was trained on: the system prompt and the user template ($chunk)."""

    system_prompt: str
    user_template: str
    prompt: str = "custom"  # the versioned prompt it came from, e.g. "one_call@v1"
    output_format: Literal["json", "lines"] = "json"  # how it writes the graph (students before lines: JSON)


def load_student_prompt(student_dir: Path) -> StudentPrompt | None:
    """The prompt recorded beside a trained student, or None when it recorded none (trained before
    the record existed, or on examples without a build-set stats.json: the one_call prompt is used)."""
    path = student_dir / STUDENT_PROMPT_FILE
    if not path.is_file():
        return None
    try:
        return StudentPrompt.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:
        raise ValueError(f"{path}: unreadable student prompt ({exc})") from None


class DistilledExtractor:
    name = "distilled"

    def __init__(
        self,
        backend: ChatBackend,
        *,
        max_attempts: int = 2,
        constrain: Constrain | None = None,
        max_tokens: int | None = None,
        prompt: StudentPrompt | None = None,
    ) -> None:
        """`constrain` defaults by backend. On llama.cpp, "always": the schema becomes a grammar and the
        prompt stays the one the student learned (shipped student, 7 validation chunks: 5 parsed
        answers instead of 2 from free generation). Elsewhere "retry": the first call is free
        generation, as in training (a schema instruction would change the prompt); re-asks request
        the schema."""
        self.backend = backend
        self.max_attempts = max_attempts
        self.constrain: Constrain = constrain or ("always" if backend.name in GRAMMAR_BACKENDS else "retry")
        self.max_tokens = max_tokens
        output_format = prompt.output_format if prompt is not None else "json"
        self.prompt = load_prompt(PROMPTS[output_format]).model_copy(update={"examples": []})
        self.prompt_name = prompt.prompt if prompt is not None else self.prompt.version_tag
        if prompt is not None and (prompt.system_prompt, prompt.user_template) != (
            self.prompt.system,
            self.prompt.user,
        ):
            # A student trained on another prompt is asked exactly as it was trained.
            self.prompt = self.prompt.model_copy(
                update={"system": prompt.system_prompt, "user": prompt.user_template}
            )
            log.info("distilled extractor: the student's own prompt (%s)", prompt.prompt)

    @property
    def prompt_versions(self) -> dict[str, str]:
        """The prompt of each stage, for records: the student's own where it recorded one."""
        return {STAGE: self.prompt_name}

    def budget(self, chunk_text: str) -> int | None:
        """The answer's token budget: `max_tokens` when set; for the line format 4 tokens per chunk token
        plus 256, within the prompt's ceiling (the teacher set's answers, rendered as lines, are at most
        5.8x their chunk and 759 tokens; all fit); for JSON the prompt's."""
        if self.max_tokens is not None:
            return self.max_tokens
        if self.prompt.output_format == "lines":
            sized = 4 * approx_token_count(chunk_text) + 256
            return min(sized, self.prompt.max_tokens) if self.prompt.max_tokens else sized
        return self.prompt.max_tokens

    def extract(self, chunk_text: str, previous_chunk: str | None = None) -> ExtractionResult:
        answer = ask(
            self.backend,
            self.prompt,
            {"chunk": chunk_text},
            stage=STAGE,
            max_attempts=self.max_attempts,
            constrain=self.constrain,
            max_tokens=self.budget(chunk_text),
        )
        issues = tuple(f"{STAGE}:{e.reason}: {e.detail}" for e in answer.errors)
        issues += tuple(f"{STAGE}:kept: {note}" for note in answer.notes)
        if not isinstance(answer.value, ChunkGraph):
            reason = answer.errors[-1].reason if answer.errors else "no_answer"
            return ExtractionResult(
                original_text=chunk_text, text=chunk_text, failure=f"{STAGE}:{reason}", issues=issues
            )
        return ExtractionResult(
            original_text=chunk_text,
            text=chunk_text,
            graph=with_quadruple_entities(answer.value),
            issues=issues,
        )
