from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval.datasets import DatasetError, load_dataset
from tests.eval.conftest import SAMPLE_DIR


def _write(path: Path, records: list[Any]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        path.write_text(json.dumps(records), encoding="utf-8")
    return path


CORPUS = [
    {"id": "p1", "title": "Paris", "text": "Paris is the capital of France."},
    {"id": "p2", "title": "France", "text": "France is a country in Europe."},
    {"id": "p3", "title": "Lyon", "text": "Lyon is a city in France."},
]


def _question(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "q1",
        "question": "What is the capital of France?",
        "answer": "Paris",
        "answer_aliases": ["City of Light"],
        "supporting_passage_ids": ["p1"],
    }
    record.update(fields)
    return record


def test_sample_loads_with_all_context_passages() -> None:
    dataset = load_dataset(SAMPLE_DIR)
    assert dataset.name == "sample"
    assert len(dataset.passages) == 40
    assert [q.type for q in dataset.questions] == [
        "hotpotqa/bridge",
        "hotpotqa/bridge",
        "2wikimultihopqa/inference",
        "2wikimultihopqa/comparison",
    ]
    for question in dataset.questions:
        assert len(question.supporting_passage_ids) == 2
        assert question.context_passage_ids is not None
        assert set(question.supporting_passage_ids) <= set(question.context_passage_ids)
    first = dataset.questions[0]
    assert first.golds == ["Major League Soccer"]
    assert dataset.passage("demo-00001").title == "Donnie Smith"
    assert first.model_extra == {
        "support_derivation": "gold (supporting_facts)",
        "source_file": "hotpot_example.jsonl",
        "split": "dev",
    }


def test_sample_subset_takes_exactly_the_context() -> None:
    dataset = load_dataset(SAMPLE_DIR)
    one = dataset.subset(1)
    assert [q.id for q in one.questions] == ["5ade063d5542995b365fabcd"]
    assert [p.id for p in one.passages] == [f"demo-{i:05d}" for i in range(10)]
    assert len(dataset.subset(2).passages) == 20
    assert len(dataset.subset(100).passages) == 40
    supporting = dataset.subset(2, supporting_only=True)
    assert {p.id for p in supporting.passages} == {
        pid for q in supporting.questions for pid in q.supporting_passage_ids
    }
    assert 0 < len(supporting.passages) < 20
    within = dataset.first_questions_within(3)  # whole questions only, up to 3 supporting passages
    needed = [pid for q in within.questions for pid in q.supporting_passage_ids]
    assert [p.id for p in within.passages] == list(dict.fromkeys(needed)) and len(within.passages) <= 3
    nxt = dataset.questions[len(within.questions)]
    assert len(set(needed) | set(nxt.supporting_passage_ids)) > 3  # the next question would not fit



def test_within_keeps_what_the_records_cover_and_the_questions_answerable_there() -> None:
    dataset = load_dataset(SAMPLE_DIR)
    first, second = dataset.questions[:2]
    covered = set(first.supporting_passage_ids) | {"demo-00005"}
    missing_one = list(second.supporting_passage_ids)[:1]
    ids = {dataset.document_id(dataset.passage(pid)) for pid in covered}
    within = dataset.within(ids)
    assert {p.id for p in within.passages} == covered
    assert [q.id for q in within.questions] == [first.id]  # the second lacks a supporting passage
    assert missing_one and missing_one[0] not in covered
    documents, _ = dataset.documents()  # the ids match those of the store built from the dataset
    assert {d.id for d in documents} >= ids
    assert dataset.within(set()).questions == []

def test_demo_files_load() -> None:
    demo = load_dataset(SAMPLE_DIR / "demo_question.json", SAMPLE_DIR / "demo_corpus.json")
    assert demo.name == "demo_question"
    assert len(demo.passages) == 10
    question, comparison = demo.questions
    assert comparison.answer == "Stands For Decibels"
    assert set(comparison.supporting_passage_ids) == {"demo-00330", "demo-00335"}
    assert question.question == "Who is Konrad V Kantner's paternal grandfather?"
    assert question.answer == "Konrad II the Gray"
    assert set(question.supporting_passage_ids) == {"demo-00383", "demo-00380"}
    assert len(demo.subset(1).passages) == 6  # the first question's context


def test_real_musique_dev(multihop_dir: Path) -> None:
    dataset = load_dataset(multihop_dir / "musique")
    assert (dataset.name, len(dataset.questions), len(dataset.passages)) == ("musique", 51, 1839)
    first = dataset.questions[0]
    assert first.id == "2hop__269766_43945"
    assert first.golds == [
        "crystallized the rebellious demand for independence from Great Britain",
        "Great Britain",
    ]
    assert first.supporting_passage_ids == ["musique-00021", "musique-00038"]
    assert first.question_decomposition is not None
    assert first.question_decomposition[0].question == "The Age of Reason >> author"
    assert first.question_decomposition[0].answer == "Thomas Paine"
    assert first.evidence is None
    subset = dataset.subset(2)
    expected = set(first.context_passage_ids or []) | set(dataset.questions[1].context_passage_ids or [])
    assert {p.id for p in subset.passages} == expected
    assert len(subset.passages) == 40


def test_real_2wiki_dev_and_distractor_sampling(multihop_dir: Path) -> None:
    dataset = load_dataset(multihop_dir / "2wikimultihopqa")
    assert (len(dataset.questions), len(dataset.passages)) == (496, 6119)
    first = dataset.questions[0]
    assert first.context_passage_ids is None
    assert first.evidence == [
        ("Lothair II", "mother", "Ermengarde of Tours"),
        ("Ermengarde of Tours", "date of death", "20 March 851"),
    ]
    subset = dataset.subset(3, distractors=5)
    supporting = {pid for q in dataset.questions[:3] for pid in q.supporting_passage_ids}
    ids = [p.id for p in subset.passages]
    assert supporting <= set(ids)
    assert len(ids) == len(set(ids)) == len(supporting) + 15  # 5 distinct distractors per question here
    assert ids == sorted(ids)  # corpus order
    assert [p.id for p in dataset.subset(3, distractors=5).passages] == ids  # deterministic
    assert [p.id for p in dataset.subset(3, distractors=5, seed=1).passages] != ids
    assert {p.id for p in dataset.subset(3, distractors=0).passages} == supporting


def test_hotpot_without_support_loads(multihop_dir: Path) -> None:
    dataset = load_dataset(multihop_dir / "hotpotqa_dev300")
    assert all(not q.supporting_passage_ids for q in dataset.questions)
    assert len(dataset.subset(1).passages) == 10
    # Recorded in part: only the questions whose context passages were all recorded are answerable.
    first_200 = {dataset.document_id(p) for p in dataset.passages[:200]}
    within = dataset.within(first_200)
    assert len(within.passages) == 200
    assert within.questions and len(within.questions) < len(dataset.questions)
    assert all(set(q.context_passage_ids or []) <= {p.id for p in within.passages} for q in within.questions)
    assert len(within.questions) == 8  # the first 200 passages hold 8 questions' 10 context passages


def test_user_jsonl_files(tmp_path: Path) -> None:
    questions = _write(tmp_path / "my_questions.jsonl", [_question(), _question(id=7, answer="Lyon")])
    corpus = _write(tmp_path / "passages.jsonl", CORPUS)
    dataset = load_dataset(questions, corpus)
    assert dataset.name == "my_questions"
    assert [q.id for q in dataset.questions] == ["q1", "7"]
    assert dataset.questions[1].golds == ["Lyon", "City of Light"]
    # Without context ids the subset is the support plus sampled distractors.
    assert {p.id for p in dataset.subset(1, distractors=1).passages} in ({"p1", "p2"}, {"p1", "p3"})


def test_evidences_spelling_is_accepted(tmp_path: Path) -> None:
    questions = _write(tmp_path / "q.json", [_question(evidences=[["Paris", "capital of", "France"]])])
    dataset = load_dataset(questions, _write(tmp_path / "c.json", CORPUS))
    assert dataset.questions[0].evidence == [("Paris", "capital of", "France")]


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (
            [_question(), {k: v for k, v in _question(id="q2").items() if k != "answer"}],
            r"q\.json: record 1 \(id 'q2'\): missing field 'answer'",
        ),
        ([_question(answer="  ")], r"record 0 \(id 'q1'\): field 'answer': .*blank"),
        (
            [_question(supporting_passage_ids=["p1", "p9"])],
            r"record 0 \(id 'q1'\): supporting passage ids \['p9'\] are not in the corpus .*c\.json",
        ),
        ([_question(context_passage_ids=["p2", "nope"])], r"context passage ids \['nope'\]"),
        ([_question(), _question()], r"record 1: duplicate question id 'q1'"),
        ([_question(evidence=[["Paris", "France"]])], r"field 'evidence\.0\.2'"),
        (
            [_question(question_decomposition=[{"question": "X >> y"}])],
            r"missing field 'question_decomposition\.0\.answer'",
        ),
        (["not an object"], r"record 0: expected an object, got str"),
    ],
)
def test_bad_questions(tmp_path: Path, records: list[Any], expected: str) -> None:
    corpus = _write(tmp_path / "c.json", CORPUS)
    with pytest.raises(DatasetError, match=expected):
        load_dataset(_write(tmp_path / "q.json", records), corpus)


def test_bad_corpus(tmp_path: Path) -> None:
    questions = _write(tmp_path / "q.json", [_question()])
    duplicate = _write(tmp_path / "dup.json", [*CORPUS, CORPUS[0]])
    with pytest.raises(DatasetError, match=r"dup\.json: record 3: duplicate passage id 'p1'"):
        load_dataset(questions, duplicate)
    no_text = _write(tmp_path / "no_text.json", [{"id": "p1", "title": "Paris"}])
    with pytest.raises(DatasetError, match=r"no_text\.json: record 0 \(id 'p1'\): missing field 'text'"):
        load_dataset(questions, no_text)


def test_bad_jsonl_line(tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps(_question()) + '\n\n{"id": "q2", "question": \n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"q\.jsonl: line 3: invalid JSON"):
        load_dataset(questions, _write(tmp_path / "c.json", CORPUS))
    missing = _write(tmp_path / "m.jsonl", [_question(), {"id": "q2", "answer": "x"}])
    with pytest.raises(DatasetError, match=r"m\.jsonl: line 2 \(id 'q2'\): missing field 'question'"):
        load_dataset(missing, _write(tmp_path / "c.json", CORPUS))


def test_bad_json_and_paths(tmp_path: Path) -> None:
    corpus = _write(tmp_path / "c.json", CORPUS)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n {"id": "q1",\n  "question" "x"}\n]', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"broken\.json: invalid JSON at line 3 column"):
        load_dataset(broken, corpus)
    not_list = tmp_path / "obj.json"
    not_list.write_text('{"data": []}', encoding="utf-8")
    with pytest.raises(DatasetError, match="expected a JSON list of records, got dict"):
        load_dataset(not_list, corpus)
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(DatasetError, match="needs a corpus file"):
        load_dataset(corpus)
    with pytest.raises(DatasetError, match="corpus file not found"):
        load_dataset(corpus, tmp_path / "nothing.json")
    with pytest.raises(DatasetError, match=r"expected one of dev\.json, dev\.jsonl"):
        load_dataset(tmp_path)
