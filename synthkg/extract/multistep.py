"""The SynthKG multi-step extractor (the teacher): per chunk,
1. decontextualize: rewrite the chunk with the previous chunk as context so that every entity mention
   is complete; the rewrite is kept only if its ROUGE-1 F1 against the original reaches the threshold
   (a rewrite that drifted from the text is worse than unresolved pronouns);
2. entities: the chunk's entities with types;
3. quadruples: (subject, relation, object, proposition) over those entities.
Every call goes through the backend with the prompt's version and the stage name (where the backend
takes them) and is retried once with the problem stated when its answer does not parse."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from rouge_score import rouge_scorer

from synthkg.extract.base import Constrain, ExtractionResult, ParsedAnswer, ask, with_quadruple_entities
from synthkg.extract.entity_types import normalize_type
from synthkg.extract.parse import DecontextualizedText, EntityList, QuadrupleList
from synthkg.extract.schema import ChunkGraph, ExtractedEntity, Quadruple
from synthkg.llm.base import ChatBackend
from synthkg.model import normalize_name
from synthkg.prompts import load_prompt

STAGES = ("decontextualize", "entities", "quadruples")
_SCORER = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False)


def rouge1_f1(reference: str, candidate: str) -> float:
    return _SCORER.score(reference, candidate)["rouge1"].fmeasure


def _usable(quad: Quadruple, known: set[str], text: str) -> bool:
    """Drops small-model junk that would only add noise to the graph: a subject or object that is
    the whole proposition (the sentence copied instead of naming the thing), a subject related to
    itself ("University of Minnesota | is the organization | University of Minnesota"), and a subject
    or object that is neither a listed entity nor in the chunk (e.g. copied from the worked example)."""
    subject, obj = normalize_name(quad.subject), normalize_name(quad.object)
    if subject == obj or normalize_name(quad.proposition) in (subject, obj):
        return False
    return all(name in known or name in text for name in (subject, obj))


def _text_key(text: str) -> str:
    # The same folding as normalize_name, so that names can be looked up in the text.
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


class MultiStepExtractor:
    name = "multistep"

    def __init__(
        self,
        backend: ChatBackend,
        *,
        rouge_threshold: float = 0.70,
        max_attempts: int = 2,
        constrain: Constrain = "always",
        max_tokens: Mapping[str, int] | None = None,
    ) -> None:
        """`max_attempts`: calls per stage before the chunk is marked failed; `constrain`: request the
        JSON schema on every call ("always") or only on re-asks ("retry"); `max_tokens`: per-stage
        answer budgets overriding the prompts' own."""
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        unknown = set(max_tokens or {}) - set(STAGES)
        if unknown:
            raise ValueError(f"max_tokens for unknown stage(s) {sorted(unknown)}; stages are {STAGES}")
        self.backend = backend
        self.rouge_threshold = rouge_threshold
        self.max_attempts = max_attempts
        self.constrain: Constrain = constrain
        self.max_tokens = dict(max_tokens or {})
        self.prompts = {stage: load_prompt(stage) for stage in STAGES}

    @property
    def prompt_versions(self) -> dict[str, str]:
        """The prompt of each stage, for records."""
        return {stage: prompt.version_tag for stage, prompt in self.prompts.items()}

    def _ask(self, stage: str, **variables: str) -> ParsedAnswer:
        return ask(
            self.backend,
            self.prompts[stage],
            variables,
            stage=stage,
            max_attempts=self.max_attempts,
            constrain=self.constrain,
            max_tokens=self.max_tokens.get(stage),
        )

    def extract(self, chunk_text: str, previous_chunk: str | None = None) -> ExtractionResult:
        issues: list[str] = []

        def note(stage: str, answer: ParsedAnswer) -> None:
            issues.extend(f"{stage}:{e.reason}: {e.detail}" for e in answer.errors)

        text, kept, score = chunk_text, False, None
        if previous_chunk and previous_chunk.strip():
            answer = self._ask("decontextualize", previous=previous_chunk, chunk=chunk_text)
            note("decontextualize", answer)
            # An unusable rewrite only costs the rewrite: extraction goes on with the original text.
            if isinstance(answer.value, DecontextualizedText):
                rewrite = answer.value.text
                score = rouge1_f1(chunk_text, rewrite)
                if score >= self.rouge_threshold and rewrite != chunk_text:
                    text, kept = rewrite, True

        def result(graph: ChunkGraph, failure: str | None = None) -> ExtractionResult:
            return ExtractionResult(
                original_text=chunk_text,
                text=text,
                decontextualized=kept,
                rouge1_f1=score,
                graph=graph,
                failure=failure,
                issues=tuple(issues),
            )

        answer = self._ask("entities", chunk=text)
        note("entities", answer)
        if not isinstance(answer.value, EntityList):
            return result(ChunkGraph(), f"entities:{answer.errors[-1].reason}")
        entities = [ExtractedEntity(name=e.name, type=normalize_type(e.type)) for e in answer.value.entities]
        if not entities:  # nothing to relate: no quadruples call
            return result(ChunkGraph())

        # Names only: small models copied a "(TYPE)" suffix from the listing into their subjects.
        listing = "\n".join(f"- {e.name}" for e in entities)
        answer = self._ask("quadruples", chunk=text, entities=listing)
        note("quadruples", answer)
        if not isinstance(answer.value, QuadrupleList):
            return result(ChunkGraph(entities=entities), f"quadruples:{answer.errors[-1].reason}")
        known, folded = {normalize_name(e.name) for e in entities}, _text_key(text)
        quadruples = [q for q in answer.value.quadruples if _usable(q, known, folded)]
        graph = ChunkGraph(entities=entities, quadruples=quadruples)
        return result(with_quadruple_entities(graph))
