"""Gold (subject, relation, object) triples per question, read from the benchmark data itself, for
measuring how much of the needed knowledge an extracted graph holds (`eval.metrics.triple_coverage`).

What the data holds (checked on /work/shared/data/multihop/):

- 2WikiMultihopQA (`2wikimultihopqa/dev.json`): every question has `evidence`, a list of 2-6
  `[subject, relation, object]` string triples (Wikidata-style relations such as "mother",
  "date of birth", "director"). They are used verbatim (duplicates dropped), source "2wiki-evidence":
  1,262 triples over the 496 dev questions.
  Subjects are entity names and can differ from passage titles ("Johann Ernst of Saxe-Eisenach" for
  the passage "John Ernest, Duke of Saxe-Eisenach").
- MuSiQue (`musique/dev.json`): every question has `question_decomposition`, a list of
  `{"question", "answer"}` steps. A step is either a Wikidata hop written "Entity >> relation"
  ("Kentucky Tavern >> manufacturer" -> "Sazerac Company") or a natural-language sub-question
  ("When did #2 elect it's first black Mayor?" -> "1970s"). `#n` stands for the answer of step n and
  occurs in both kinds, also inside a subject ("Martin of #1 >> place of death"). Each "X >> relation"
  step becomes (X with every `#n` replaced by step n's answer, relation, the step's answer), source
  "musique-decomposition". Natural-language steps state no relation that could be compared to a
  triple, so they give none, but their answers still resolve later `#n`. In the 51 dev questions this
  gives 52 triples; 16 questions (all of whose steps are questions) get none.
- Every other set here (HotpotQA, the MuSiQue train sample, the HopRAG demo, the HippoRAG case
  studies) has neither field: `gold_triples` returns an empty list for their questions. Gold triples
  for those need an LLM to write them, which is not done here.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from eval.datasets import DatasetError, Question

TripleSource = Literal["2wiki-evidence", "musique-decomposition"]

_REFERENCE = re.compile(r"#(\d+)")
_HOP = ">>"


class GoldTriple(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    relation: str
    object: str
    source: TripleSource

    def as_tuple(self) -> tuple[str, str, str]:
        return (self.subject, self.relation, self.object)


def gold_triples(question: Question) -> list[GoldTriple]:
    """The question's gold triples from 2Wiki `evidence` and MuSiQue `question_decomposition`; an
    empty list when the question has neither."""
    triples: list[GoldTriple] = []
    for subject, relation, obj in question.evidence or []:
        triples.append(GoldTriple(subject=subject, relation=relation, object=obj, source="2wiki-evidence"))
    triples.extend(_decomposition_triples(question))
    return list(dict.fromkeys(triples))


def _decomposition_triples(question: Question) -> list[GoldTriple]:
    answers: list[str] = []
    triples: list[GoldTriple] = []
    for step_number, step in enumerate(question.question_decomposition or [], start=1):

        def resolve(match: re.Match[str], step_number: int = step_number) -> str:
            ref = int(match.group(1))
            if not 1 <= ref < step_number:
                raise DatasetError(
                    f"question {question.id!r}: decomposition step {step_number} refers to #{ref}, "
                    f"which is not an earlier step"
                )
            return answers[ref - 1]

        text = _REFERENCE.sub(resolve, step.question)
        answer = step.answer.strip()
        if _HOP in text:
            subject, _, relation = (part.strip() for part in text.partition(_HOP))
            if not subject or not relation:
                raise DatasetError(
                    f"question {question.id!r}: decomposition step {step_number} {step.question!r} is "
                    f"not of the form 'entity >> relation'"
                )
            triples.append(
                GoldTriple(subject=subject, relation=relation, object=answer, source="musique-decomposition")
            )
        answers.append(answer)
    return triples
