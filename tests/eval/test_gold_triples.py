from __future__ import annotations

from pathlib import Path

import pytest

from eval.datasets import Dataset, DatasetError, Question, load_dataset
from eval.gold_triples import GoldTriple, gold_triples
from tests.eval.conftest import SAMPLE_DIR


def _triples(dataset: Dataset, question_id: str) -> list[tuple[str, str, str]]:
    (question,) = [q for q in dataset.questions if q.id == question_id]
    return [t.as_tuple() for t in gold_triples(question)]


@pytest.fixture(scope="module")
def musique(multihop_dir: Path) -> Dataset:
    return load_dataset(multihop_dir / "musique")


@pytest.fixture(scope="module")
def two_wiki(multihop_dir: Path) -> Dataset:
    return load_dataset(multihop_dir / "2wikimultihopqa")


def test_musique_chain_resolves_references(musique: Dataset) -> None:
    # Steps: "Kentucky Tavern >> manufacturer" -> Sazerac Company; "#1 >> headquarters location" ->
    # New Orleans; "When did #2 elect it's first black Mayor?" -> 1970s (a question: no triple).
    assert _triples(musique, "3hop1__390673_228453_10972") == [
        ("Kentucky Tavern", "manufacturer", "Sazerac Company"),
        ("Sazerac Company", "headquarters location", "New Orleans"),
    ]


def test_musique_reference_inside_subject(musique: Dataset) -> None:
    # "Mianos >> located in the administrative territorial entity" -> Aragon;
    # "Martin of #1 >> place of death" -> Barcelona.
    assert _triples(musique, "3hop1__395211_503371_21711") == [
        ("Mianos", "located in the administrative territorial entity", "Aragon"),
        ("Martin of Aragon", "place of death", "Barcelona"),
    ]


def test_musique_reference_to_a_question_step(musique: Dataset) -> None:
    # Step 2 "someone who went to #1 during the gold rush" is a question; step 3 "#2 >> work location"
    # takes its answer.
    assert _triples(musique, "4hop1__130480_53706_795904_580996") == [
        ("Samuel Brannan", "work location", "Sacramento"),
        ("Sacramento", "shares border with", "Rio Linda"),
    ]


def test_musique_parallel_hops_and_question_only(musique: Dataset) -> None:
    assert _triples(musique, "3hop2__802066_223623_162182") == [
        ("Châu Đức", "country", "Vietnam"),
        ("John Phan", "place of birth", "Da Nang"),
    ]
    assert _triples(musique, "2hop__131275_72870") == []  # both steps are plain questions
    (question,) = [q for q in musique.questions if q.id == "2hop__269766_43945"]
    assert gold_triples(question) == [
        GoldTriple(
            subject="The Age of Reason",
            relation="author",
            object="Thomas Paine",
            source="musique-decomposition",
        )
    ]


def test_musique_totals(musique: Dataset) -> None:
    per_question = [gold_triples(q) for q in musique.questions]
    assert sum(map(len, per_question)) == 52
    assert sum(1 for triples in per_question if not triples) == 16


def test_2wiki_evidence(two_wiki: Dataset) -> None:
    (question,) = [q for q in two_wiki.questions if q.id == "83bf3b5a0bd911eba7f7acde48001122"]
    assert gold_triples(question) == [
        GoldTriple(
            subject="Lothair II", relation="mother", object="Ermengarde of Tours", source="2wiki-evidence"
        ),
        GoldTriple(
            subject="Ermengarde of Tours",
            relation="date of death",
            object="20 March 851",
            source="2wiki-evidence",
        ),
    ]
    assert _triples(two_wiki, "a1cdb240085811ebbd5bac1f6bf848b6") == [
        ("God's Gift to Women", "director", "Michael Curtiz"),
        ("Aldri annet enn bråk", "director", "Edith Carlmar"),
        ("Michael Curtiz", "date of birth", "December 24, 1886"),
        ("Edith Carlmar", "date of birth", "15 November 1911"),
    ]
    assert sum(len(gold_triples(q)) for q in two_wiki.questions) == 1262


def test_datasets_without_gold_triples() -> None:
    assert all(gold_triples(q) == [] for q in load_dataset(SAMPLE_DIR).questions)


def _decomposed(*steps: tuple[str, str]) -> Question:
    return Question(
        id="q",
        question="?",
        answer=steps[-1][1],
        question_decomposition=[{"question": q, "answer": a} for q, a in steps],
    )


def test_bad_decompositions() -> None:
    with pytest.raises(DatasetError, match=r"question 'q': decomposition step 1 refers to #1"):
        gold_triples(_decomposed(("#1 >> father", "B")))
    with pytest.raises(DatasetError, match=r"step 2 refers to #3"):
        gold_triples(_decomposed(("A >> father", "B"), ("#3 >> father", "C")))
    with pytest.raises(DatasetError, match=r"step 1 ' >> father' is not of the form"):
        gold_triples(_decomposed((" >> father", "B")))


def test_duplicate_evidence_is_dropped() -> None:
    question = Question(
        id="q",
        question="?",
        answer="C",
        evidence=[("A", "father", "B"), ("A", "father", "B"), ("B", "father", "C")],
    )
    assert [t.as_tuple() for t in gold_triples(question)] == [("A", "father", "B"), ("B", "father", "C")]
