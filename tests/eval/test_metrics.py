from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eval.metrics import (
    aggregate,
    answer_at_k,
    exact_match,
    f1_score,
    hits_at_k,
    mean_score,
    normalize_answer,
    recall_at_k,
    token_f1,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Eiffel Tower.", "eiffel tower"),
        ("an apple, a pear & the plum!", "apple pear plum"),
        ("Theater Anthem", "theater anthem"),  # articles only as whole words
        ("  U.S.A. ", "usa"),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match_uses_normalization_and_aliases() -> None:
    assert exact_match("the Eiffel Tower.", "Eiffel Tower") == 1.0
    assert exact_match("Cambridge", ["University of Cambridge", "Cambridge"]) == 1.0
    assert exact_match("Oxford", ["University of Cambridge", "Cambridge"]) == 0.0
    assert exact_match("", "Paris") == 0.0


def test_f1_hand_computed() -> None:
    # prediction {konrad, ii} against {konrad, ii, gray}: P = 1, R = 2/3, F1 = 0.8
    assert f1_score("Konrad II", "Konrad II the Gray") == pytest.approx(0.8)
    # repeated tokens count once per occurrence: {a1, a1, b} vs {a1, c}: common 1, P = 1/3, R = 1/2
    assert token_f1("x x y", "x z") == pytest.approx(0.4)
    assert f1_score("Paris, France", "Lyon") == 0.0


def test_f1_takes_best_alias() -> None:
    golds = ["University of Cambridge", "Cambridge"]
    assert f1_score("Cambridge", golds) == 1.0
    # {university} vs {university, of, cambridge}: P = 1, R = 1/3
    assert f1_score("the University", golds) == pytest.approx(0.5)


def test_empty_prediction_and_empty_gold() -> None:
    assert f1_score("", "Paris") == 0.0
    assert f1_score("...", "Paris") == 0.0
    # A gold that normalizes to nothing matches only an equally empty prediction.
    assert f1_score("", "The") == 1.0
    assert f1_score("Paris", "The") == 0.0


def test_no_gold_is_an_error() -> None:
    with pytest.raises(ValueError, match="no gold"):
        f1_score("Paris", [])
    with pytest.raises(ValueError, match="no gold"):
        exact_match("Paris", [])


def test_recall_at_k() -> None:
    ranked = ["a", "b", "c"]
    assert recall_at_k(ranked, {"a", "d"}, 1) == 0.5
    assert recall_at_k(ranked, {"a", "d"}, 10) == 0.5  # k past the end of the list
    assert recall_at_k(ranked, ["a", "c"], 2) == 0.5
    assert recall_at_k(ranked, ["a", "c"], 3) == 1.0
    assert recall_at_k([], ["a"], 5) == 0.0
    assert recall_at_k(["a", "a", "b"], ["a", "b"], 2) == 0.5  # a duplicate does not count twice


def test_hits_at_k() -> None:
    ranked = ["x", "y", "a"]
    assert hits_at_k(ranked, ["a", "b"], 2) == 0.0
    assert hits_at_k(ranked, ["a", "b"], 3) == 1.0
    assert hits_at_k(ranked, ["a"], 100) == 1.0


def test_answer_at_k_matches_whole_normalized_tokens_in_the_top_k() -> None:
    texts = ["Kiss and Tell is a 1945 film.", "Shirley Temple served as Chief of Protocol of the U.S."]
    assert answer_at_k(texts, ["chief of protocol"], 2) == 1.0
    assert answer_at_k(texts, ["Chief of Protocol"], 1) == 0.0  # only in the second passage
    assert answer_at_k(texts, ["Protocol Officer", "the Chief of Protocol"], 2) == 1.0  # an alias, articles
    assert answer_at_k(texts, ["194"], 2) == 0.0  # a token's prefix is not the answer
    assert answer_at_k(texts, ["1945"], 1) == 1.0
    # Yes/no answers are in most passages by chance: not scored.
    assert answer_at_k(["yes, no"], ["yes"], 1) is None and answer_at_k(texts, ["The"], 2) is None
    with pytest.raises(ValueError, match="k must be"):
        answer_at_k(texts, ["x"], 0)


@given(st.lists(st.text(max_size=40), max_size=5), st.lists(st.text(max_size=20), min_size=1, max_size=3),
       st.integers(1, 6))
def test_answer_at_k_never_raises_and_grows_with_k(texts: list[str], golds: list[str], k: int) -> None:
    found = answer_at_k(texts, golds, k)
    assert found in (None, 0.0, 1.0)
    if found == 1.0:
        assert answer_at_k(texts, golds, k + 1) == 1.0


@pytest.mark.parametrize("metric", [recall_at_k, hits_at_k])
def test_retrieval_metric_errors(metric) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="k must be"):
        metric(["a"], ["a"], 0)
    with pytest.raises(ValueError, match="gold passage"):
        metric(["a"], [], 1)


def test_mean_score_and_aggregate() -> None:
    assert mean_score([1.0, 0.0, 1.0]).mean == pytest.approx(2 / 3)
    assert mean_score([1.0, 0.0, 1.0]).n == 3
    assert mean_score([]).mean is None
    assert mean_score([]).n == 0
    with pytest.raises(ValueError, match="NaN"):
        mean_score([float("nan")])
    result = aggregate([{"em": 1.0, "recall@2": 0.5}, {"em": 0.0}, {"em": 1.0, "recall@2": 1.0}])
    assert result["em"].mean == pytest.approx(2 / 3)
    assert result["em"].n == 3
    assert result["recall@2"].mean == pytest.approx(0.75)
    assert result["recall@2"].n == 2


answers = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
wordy = st.lists(
    st.sampled_from(["the", "a", "Paris", "paris", "France", "of", "x", ",", "!", " "]), max_size=8
)


@given(answers, answers)
def test_f1_is_bounded_and_em_implies_full_f1(prediction: str, gold: str) -> None:
    f1 = f1_score(prediction, gold)
    assert 0.0 <= f1 <= 1.0
    if exact_match(prediction, gold):
        assert f1 == 1.0


@given(wordy.map(" ".join), wordy.map(" ".join))
def test_f1_symmetric_and_em_consistent_on_word_soup(prediction: str, gold: str) -> None:
    assert token_f1(prediction, gold) == pytest.approx(token_f1(gold, prediction))
    assert (token_f1(prediction, gold) == 1.0) == (
        sorted(normalize_answer(prediction).split()) == sorted(normalize_answer(gold).split())
    )


@given(answers)
def test_normalization_is_idempotent_and_self_match(text: str) -> None:
    assert normalize_answer(normalize_answer(text)) == normalize_answer(text)
    assert exact_match(text, text) == 1.0
    assert f1_score(text, text) == 1.0


@given(answers, st.lists(answers, min_size=1, max_size=4))
def test_alias_scores_are_max_over_golds(prediction: str, golds: list[str]) -> None:
    assert f1_score(prediction, golds) == max(f1_score(prediction, g) for g in golds)
    assert exact_match(prediction, golds) == max(exact_match(prediction, g) for g in golds)
