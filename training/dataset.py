"""Teacher outputs -> a chat training set for the single-call student.

A teacher record is one JSON line per chunk:

    {"chunk_id": ..., "document_id": ..., "text": <the chunk text the teacher read>,
     "graph": <ChunkGraph JSON>, "teacher": {"model": ..., "prompt_versions": {...}}, "source": ...}

Records come from JSONL files (`read_teacher_records`) or from any ingested store
(`records_from_store`). `build_dataset` turns them into examples in chat format
(`{"messages": [system, user(chunk text), assistant(the ChunkGraph as compact JSON, or in the line format
of `synthkg.extract.lines`)]}`): empty graphs dropped,
duplicates (same chunk text) dropped, a train/validation split that depends only on each example's text
(so adding data never moves an existing example across the split), and, given a token counter, token
length stats with over-long examples dropped. Nothing here imports torch.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthkg.extract.lines import render_lines
from synthkg.extract.schema import ChunkGraph, ExtractedEntity, Quadruple
from synthkg.jsonl import read_jsonl
from synthkg.model import Entity, content_hash
from synthkg.store.base import GraphStore
from training.errors import DatasetError

# The user message is a string.Template with one variable, like the prompts in synthkg/prompts.
CHUNK_VARIABLE = "chunk"
DEFAULT_USER_TEMPLATE = "$chunk"
# How the answer (the teacher's ChunkGraph) is written: JSON (the one_call prompt) or lines (one_call_lines).
OutputFormat = Literal["json", "lines"]


def render_answer(graph: ChunkGraph, output_format: OutputFormat) -> str:
    """The assistant message a student learns to write for `graph`."""
    return render_lines(graph) if output_format == "lines" else graph.model_dump_json()


class TeacherInfo(BaseModel):
    model: str
    prompt_versions: dict[str, str] = Field(default_factory=dict)


class TeacherRecord(BaseModel):
    """What the teacher produced for one chunk. Unknown extra keys are ignored (newer writers)."""

    model_config = ConfigDict(extra="ignore")

    chunk_id: str
    document_id: str
    text: str = Field(min_length=1)
    graph: ChunkGraph
    teacher: TeacherInfo
    source: str = ""
    failure: str | None = Field(None, description="set when the teacher failed on this chunk: not trained on")


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Example(BaseModel):
    """One training conversation; the loss is taken on the last (assistant) message only."""

    model_config = ConfigDict(extra="ignore")

    id: str = ""
    chunk_id: str = ""
    document_id: str = ""
    messages: list[ChatMessage]

    @field_validator("messages")
    @classmethod
    def _ends_with_answer(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if len(messages) < 2 or messages[-1].role != "assistant" or messages[-2].role == "assistant":
            raise ValueError("needs at least a user message followed by a final assistant message")
        return messages

    def chat(self) -> list[dict[str, str]]:
        """The messages as plain dicts, the form chat templates take."""
        return [m.model_dump() for m in self.messages]


@dataclass
class DatasetBuild:
    train: list[Example]
    validation: list[Example]
    stats: dict[str, Any] = field(default_factory=dict)


# --- reading --------------------------------------------------------------------------------------
def read_teacher_records(paths: Iterable[str | Path]) -> list[TeacherRecord]:
    return read_jsonl(paths, TeacherRecord, "teacher record", DatasetError)


def read_examples(paths: Iterable[str | Path]) -> list[Example]:
    return read_jsonl(paths, Example, "example", DatasetError)


def write_jsonl(rows: Iterable[BaseModel], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(row.model_dump_json() + "\n")
    return path


# --- records from a store -------------------------------------------------------------------------
def _surface_name(entity: Entity, text: str) -> str:
    """The entity's name as this chunk writes it: resolution may have given it a canonical name from
    another document, while one of its aliases is what the chunk says."""
    folded = text.casefold()
    if entity.name.casefold() in folded:
        return entity.name
    return next((alias for alias in entity.aliases if alias.casefold() in folded), entity.name)


def records_from_store(
    store: GraphStore, *, teacher_model: str = "", source: str = ""
) -> list[TeacherRecord]:
    """One record per chunk, its ChunkGraph rebuilt from the chunk's propositions, their relations and
    the entities these mention. Propositions that carry no relation are left out (a quadruple needs
    one). `teacher_model` names the extractor that filled the store (the store does not record it)."""
    entities = {e.id: e for e in store.iter_entities()}
    propositions = defaultdict(list)
    for proposition in store.iter_propositions():
        propositions[proposition.chunk_id].append(proposition)
    relations = defaultdict(list)
    for relation in store.iter_relations():
        relations[relation.proposition_id].append(relation)

    records = []
    for chunk in sorted(store.iter_chunks(), key=lambda c: (c.document_id, c.index)):
        mentioned: dict[str, None] = {}  # entity ids in order of first mention
        quadruples = []
        for proposition in sorted(propositions[chunk.id], key=lambda p: p.id):
            mentioned.update(dict.fromkeys(proposition.entity_ids))
            for relation in sorted(relations[proposition.id], key=lambda r: r.id):
                subject, obj = entities.get(relation.subject_id), entities.get(relation.object_id)
                if subject is None or obj is None:
                    continue  # a dangling edge: nothing to name it by
                mentioned.update(dict.fromkeys((subject.id, obj.id)))
                quadruples.append(
                    Quadruple(
                        subject=_surface_name(subject, chunk.text),
                        relation=relation.predicate,
                        object=_surface_name(obj, chunk.text),
                        proposition=proposition.text,
                    )
                )
        graph = ChunkGraph(
            entities=[
                ExtractedEntity(name=_surface_name(entities[i], chunk.text), type=entities[i].type)
                for i in mentioned
                if i in entities
            ],
            quadruples=quadruples,
        )
        records.append(
            TeacherRecord(
                chunk_id=chunk.id,
                document_id=chunk.document_id,
                text=chunk.text,
                graph=graph,
                teacher=TeacherInfo(model=teacher_model or "unknown"),
                source=source,
            )
        )
    return records


# --- building -------------------------------------------------------------------------------------
def chat_messages(system_prompt: str, user_template: str, text: str) -> list[dict[str, str]]:
    """The prompt the student sees, identical at training and at inference: the system prompt and the
    user template (a string.Template with the one variable $chunk) filled with the chunk text. Unlike
    `Prompt.render`, no worked examples: the student learns the format instead of reading it."""
    template = Template(user_template)
    if not template.is_valid() or template.get_identifiers() != [CHUNK_VARIABLE]:
        raise DatasetError(
            f"the user template must use exactly one variable, ${CHUNK_VARIABLE} "
            f"(a literal dollar sign is $$): {user_template!r}"
        )
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": template.substitute({CHUNK_VARIABLE: text})},
    ]


def text_key(text: str) -> str:
    """Identity of a chunk text for deduplication and the split: whitespace runs do not count."""
    return content_hash(" ".join(text.split()))


def is_empty(graph: ChunkGraph) -> bool:
    """A graph without a single fact; entities alone teach nothing about relations."""
    return not graph.quadruples


def build_examples(
    records: Iterable[TeacherRecord],
    system_prompt: str,
    user_template: str = DEFAULT_USER_TEMPLATE,
    *,
    drop_empty: bool = True,
    output_format: OutputFormat = "json",
) -> list[Example]:
    """Chat examples in record order; the first record of each chunk text wins. Chunks the teacher failed
    on are skipped: what it produced before failing (entities without facts, say) is no target."""
    examples: dict[str, Example] = {}
    for record in records:
        if record.failure or (drop_empty and is_empty(record.graph)):
            continue
        key = text_key(record.text)
        if key in examples:
            continue
        messages = chat_messages(system_prompt, user_template, record.text)
        messages.append({"role": "assistant", "content": render_answer(record.graph, output_format)})
        examples[key] = Example.model_validate(
            {
                "id": key[:16],
                "chunk_id": record.chunk_id,
                "document_id": record.document_id,
                "messages": messages,
            }
        )
    return list(examples.values())


def _split_score(example: Example) -> float:
    key = example.id or text_key(json.dumps(example.chat()))
    return int(content_hash("split\x1f" + key)[:12], 16) / 16**12


def split_examples(
    examples: Sequence[Example], validation_ratio: float
) -> tuple[list[Example], list[Example]]:
    """(train, validation) by a hash of each example: the same example always lands on the same side.
    With a ratio above 0 and at least two examples, validation gets at least one (the lowest score)."""
    if not 0.0 <= validation_ratio < 1.0:
        raise DatasetError(f"validation ratio must be in [0, 1), got {validation_ratio}")
    scores = [_split_score(e) for e in examples]
    held_out = {i for i, s in enumerate(scores) if s < validation_ratio}
    if validation_ratio > 0 and not held_out and len(examples) >= 2:
        held_out = {min(range(len(examples)), key=scores.__getitem__)}
    train = [e for i, e in enumerate(examples) if i not in held_out]
    validation = [e for i, e in enumerate(examples) if i in held_out]
    return train, validation


def length_stats(lengths: Sequence[int]) -> dict[str, float] | None:
    if not lengths:
        return None
    ordered = sorted(lengths)
    return {
        "min": ordered[0],
        "mean": round(statistics.fmean(ordered), 1),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max": ordered[-1],
    }


def filter_by_length(
    examples: Sequence[Example], count_tokens: Callable[[Example], int], max_length: int
) -> tuple[list[Example], list[int], int]:
    """(examples of at most `max_length` tokens, the token length of every input example, how many were
    dropped). Long examples are dropped, not truncated: a cut answer would teach broken JSON."""
    lengths = [count_tokens(e) for e in examples]
    kept = [e for e, n in zip(examples, lengths, strict=True) if n <= max_length]
    return kept, lengths, len(examples) - len(kept)


def build_dataset(
    records: Sequence[TeacherRecord],
    system_prompt: str,
    user_template: str = DEFAULT_USER_TEMPLATE,
    *,
    drop_empty: bool = True,
    validation_ratio: float = 0.1,
    max_length: int | None = None,
    count_tokens: Callable[[Example], int] | None = None,
    output_format: OutputFormat = "json",
) -> DatasetBuild:
    """Examples, split, with stats: counts of every drop, and token lengths when `count_tokens` is
    given (then examples over `max_length` tokens are dropped)."""
    examples = build_examples(
        records, system_prompt, user_template, drop_empty=drop_empty, output_format=output_format
    )
    failed = sum(1 for r in records if r.failure)
    empty = sum(1 for r in records if not r.failure and is_empty(r.graph)) if drop_empty else 0
    stats: dict[str, Any] = {
        "records": len(records),
        "failed_dropped": failed,
        "empty_dropped": empty,
        "duplicates_dropped": len(records) - failed - empty - len(examples),
        "too_long_dropped": 0,
        "max_length": max_length,
        "tokens": None,
        "answer_chars": length_stats([len(e.messages[-1].content) for e in examples]),
        "teachers": sorted({r.teacher.model for r in records}),
        # The student must be prompted exactly like this at inference.
        "system_prompt": system_prompt,
        "user_template": user_template,
        "output_format": output_format,
    }
    if count_tokens is not None and max_length is not None:
        examples, lengths, stats["too_long_dropped"] = filter_by_length(examples, count_tokens, max_length)
        stats["tokens"] = length_stats(lengths)
    if not examples:
        raise DatasetError(
            f"no examples left from {len(records)} records ({failed} failed, {empty} with empty graphs, "
            f"{stats['duplicates_dropped']} duplicates, {stats['too_long_dropped']} over {max_length} tokens)"
        )
    train, validation = split_examples(examples, validation_ratio)
    stats.update(examples=len(examples), train=len(train), validation=len(validation))
    return DatasetBuild(train=train, validation=validation, stats=stats)


def write_dataset(build: DatasetBuild, output_dir: str | Path) -> dict[str, Path]:
    """train.jsonl, validation.jsonl (only when the split holds some out) and stats.json."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"train": write_jsonl(build.train, output_dir / "train.jsonl")}
    validation = output_dir / "validation.jsonl"
    if build.validation:
        paths["validation"] = write_jsonl(build.validation, validation)
    else:
        validation.unlink(missing_ok=True)  # a stale one from an earlier build would mislead training
    paths["stats"] = output_dir / "stats.json"
    paths["stats"].write_text(json.dumps(build.stats, indent=2) + "\n", encoding="utf-8")
    return paths
