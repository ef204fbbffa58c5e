"""Multi-hop QA datasets: a passage corpus plus questions with gold answers and supporting passages.

The format is the one of /work/shared/data/multihop/*/ (and data/sample/):

- corpus: a list of `{"id", "title", "text"}` passages;
- questions: a list of `{"id", "question", "answer", "answer_aliases", "supporting_passage_ids",
  "supporting_titles", "type", "context_passage_ids"?, ...}`. MuSiQue records add
  `question_decomposition` (`[{"question", "answer"}]`), 2WikiMultihopQA records add `evidence`
  (`[[subject, relation, object]]`); other fields (`source_file`, `split`, `level`, ...) are kept as
  extras.

Either file may be JSON (a list of records) or JSONL (one record per line, by the `.jsonl` suffix), so
a user's own question set loads the same way as the benchmarks. `supporting_passage_ids` may be empty
(HotpotQA dev without supporting facts): such questions count for answer metrics only.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from synthkg.jsonl import describe_validation_error
from synthkg.model import Document

QUESTION_FILES = ("dev.json", "dev.jsonl")
CORPUS_FILES = ("corpus.json", "corpus.jsonl")


class DatasetError(ValueError):
    """A dataset file that cannot be used, with the file and record that are wrong."""


class Passage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", coerce_numbers_to_str=True)

    id: str = Field(min_length=1)
    title: str = ""
    text: str = Field(min_length=1)


class DecompositionStep(BaseModel):
    """One MuSiQue sub-question: either "Entity >> relation" (a Wikidata hop) or a plain question,
    where `#n` stands for the answer of step n."""

    model_config = ConfigDict(frozen=True, extra="allow")

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class Question(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", coerce_numbers_to_str=True)

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    answer_aliases: list[str] = Field(default_factory=list)
    supporting_passage_ids: list[str] = Field(default_factory=list)
    supporting_titles: list[str] = Field(default_factory=list)
    type: str | None = None
    context_passage_ids: list[str] | None = None
    question_decomposition: list[DecompositionStep] | None = None
    evidence: list[tuple[str, str, str]] | None = Field(
        None, validation_alias=AliasChoices("evidence", "evidences")
    )

    @field_validator("question", "answer")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @property
    def golds(self) -> list[str]:
        """The answer and its aliases: every string that counts as correct."""
        return [self.answer, *self.answer_aliases]


@dataclass
class Dataset:
    name: str
    passages: list[Passage]
    questions: list[Question]
    passage_index: dict[str, Passage] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.passage_index = {p.id: p for p in self.passages}

    def passage(self, passage_id: str) -> Passage:
        return self.passage_index[passage_id]

    def document_id(self, passage: Passage) -> str:
        """The id of `passage`'s document in a store built from this dataset."""
        return Document.create(passage.text, title=passage.title, source=self.name, key=passage.id).id

    def within(self, document_ids: Collection[str]) -> Dataset:
        """Only the passages whose documents are in `document_ids` (e.g. those extraction records cover)
        and the questions whose supporting passages are all among them, in their order: a corpus extracted
        in parts, evaluated as far as it goes. A question without supporting passages (HotpotQA dev) is
        kept when its context passages are all there, so that answer@k does not count questions whose
        evidence was never extracted; one with neither is kept. The kept passages are all distractors to
        every question."""
        passages = [p for p in self.passages if self.document_id(p) in document_ids]
        kept = {p.id for p in passages}
        questions = [
            q for q in self.questions if set(q.supporting_passage_ids or q.context_passage_ids or []) <= kept
        ]
        return Dataset(name=self.name, passages=passages, questions=questions)

    def documents(self) -> tuple[list[Document], list[str]]:
        """The passages as documents to ingest, keyed by passage id as the corpus-file loader keys them
        (so a store built from either has the same document ids), and a note for each passage skipped
        (blank text)."""
        documents, skipped = [], []
        for p in self.passages:
            if not p.text.strip():
                skipped.append(f"passage {p.id}: empty document, skipped")
                continue
            documents.append(Document.create(p.text, title=p.title, source=self.name, key=p.id))
        return documents, skipped

    def subset(
        self, limit: int, distractors: int = 8, seed: int = 0, supporting_only: bool = False
    ) -> Dataset:
        """The first `limit` questions and exactly the passages they need, in corpus order: each
        question's own context passages plus its supporting ones. A question without
        `context_passage_ids` gets its supporting passages plus `distractors` other passages sampled
        deterministically (from `seed` and the question id). `supporting_only`: the supporting passages
        alone (enough for KG coverage, which reads nothing else)."""
        if limit < 0 or distractors < 0:
            raise ValueError(f"limit and distractors must be >= 0, got {limit} and {distractors}")
        questions = self.questions[:limit]
        needed: set[str] = set()
        for question in questions:
            own = set(question.supporting_passage_ids)
            if supporting_only:
                needed |= own
                continue
            if question.context_passage_ids is not None:
                own.update(question.context_passage_ids)
            elif distractors:
                own.update(self._distractors(question, own, distractors, seed))
            needed |= own
        passages = [p for p in self.passages if p.id in needed]
        return Dataset(name=self.name, passages=passages, questions=questions)

    def first_questions_within(self, max_passages: int) -> Dataset:
        """The first questions, whole, whose supporting passages number at most `max_passages` together,
        with exactly those passages in question order (for benchmarks that extract only what coverage
        reads)."""
        chosen: list[str] = []
        questions = []
        for question in self.questions:
            new = [p for p in question.supporting_passage_ids if p not in chosen]
            if len(chosen) + len(new) > max_passages:
                break
            chosen += new
            questions.append(question)
        return Dataset(name=self.name, passages=[self.passage(p) for p in chosen], questions=questions)

    def _distractors(self, question: Question, exclude: set[str], count: int, seed: int) -> list[str]:
        digest = hashlib.sha256(f"{seed}\x1f{question.id}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        # len(exclude) extra draws leave `count` usable ids even if every excluded one is drawn.
        pool = self.passages
        draw = rng.sample(range(len(pool)), min(len(pool), count + len(exclude)))
        picked = [pool[i].id for i in draw if pool[i].id not in exclude]
        return picked[:count]


def load_dataset(source: str | Path, corpus: str | Path | None = None, name: str | None = None) -> Dataset:
    """A dataset from a folder holding `dev.json` and `corpus.json` (or `.jsonl`), or from a question
    file plus `corpus` (a corpus file). Every supporting and context id must name a corpus passage.

    Raises DatasetError naming the file and the record for anything malformed."""
    source = Path(source)
    if source.is_dir():
        questions_path = _find(source, QUESTION_FILES)
        corpus_path = Path(corpus) if corpus is not None else _find(source, CORPUS_FILES)
        default_name = source.name
    elif source.is_file():
        if corpus is None:
            raise DatasetError(f"{source}: a question file needs a corpus file too (corpus=...)")
        questions_path, corpus_path = source, Path(corpus)
        default_name = source.stem
    else:
        raise DatasetError(f"{source}: no such file or folder")
    if not corpus_path.is_file():
        raise DatasetError(f"{corpus_path}: corpus file not found")

    passages = _parse_records(corpus_path, Passage)
    _check_unique(corpus_path, "passage", passages)
    questions = _parse_records(questions_path, Question)
    _check_unique(questions_path, "question", questions)
    ids = {p.id for p in passages}
    for index, question in enumerate(questions):
        for kind, refs in (
            ("supporting", question.supporting_passage_ids),
            ("context", question.context_passage_ids or []),
        ):
            missing = [ref for ref in refs if ref not in ids]
            if missing:
                raise DatasetError(
                    f"{questions_path}: record {index} (id {question.id!r}): {kind} passage ids "
                    f"{missing} are not in the corpus {corpus_path}"
                )
    return Dataset(name=name or default_name, passages=passages, questions=questions)


def _find(folder: Path, names: Sequence[str]) -> Path:
    for candidate in names:
        if (folder / candidate).is_file():
            return folder / candidate
    raise DatasetError(f"{folder}: expected one of {', '.join(names)}")


Model = TypeVar("Model", Passage, Question)


def _parse_records(path: Path, model: type[Model]) -> list[Model]:
    records: list[Model] = []
    for where, raw in _read_raw(path):
        if not isinstance(raw, dict):
            raise DatasetError(f"{path}: {where}: expected an object, got {type(raw).__name__}")
        try:
            records.append(model.model_validate(raw))
        except ValidationError as exc:
            label = f"{where} (id {raw['id']!r})" if isinstance(raw.get("id"), str | int) else where
            raise DatasetError(f"{path}: {label}: {describe_validation_error(exc)}") from None
    return records


def _read_raw(path: Path) -> Iterable[tuple[str, Any]]:
    """(position for messages, raw record) for each record of a JSON or JSONL file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from None
    if path.suffix == ".jsonl":
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}: line {line_number}: invalid JSON: {exc.msg}") from None
            yield f"line {line_number}", raw
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    for index, raw in enumerate(data):
        yield f"record {index}", raw


def _check_unique(path: Path, kind: str, records: Sequence[Passage] | Sequence[Question]) -> None:
    seen: set[str] = set()
    for index, record in enumerate(records):
        if record.id in seen:
            raise DatasetError(f"{path}: record {index}: duplicate {kind} id {record.id!r}")
        seen.add(record.id)
