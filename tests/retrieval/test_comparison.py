"""Comparison questions settled from the steps' dates (retrieval/comparison.py)."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrieval.comparison import Comparison, comparison_of, parse_date, settle_by_date

BRIDGED = ["Who directed Red Lake?", "Who directed Iron Hill?", "When was #1 born?", "When was #2 born?"]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Which film came out first, Red Lake or Iron Hill?", Comparison(("Red Lake", "Iron Hill"), True)),
        ("Who was born first out of Aivar Kuusmaa and Andy Summers?",
         Comparison(("Aivar Kuusmaa", "Andy Summers"), True, frozenset({"birth"}))),
        ("Which film has the director born later, Red Lake or Iron Hill (1982 Film)?",
         Comparison(("Red Lake", "Iron Hill (1982 Film)"), False, frozenset({"birth"}))),
        ("Which film whose director is younger, Phalitamsha or Gladiators Seven?",
         Comparison(("Phalitamsha", "Gladiators Seven"), False, frozenset({"birth"}))),
        ("Who died earlier, Werner Mensching or Karel Zich?",
         Comparison(("Werner Mensching", "Karel Zich"), True, frozenset({"death"}))),
        # A title's "Last" does not set the direction; the question's own word does.
        ("Which film came out first, The Last Coupon or Red Lake?",
         Comparison(("The Last Coupon", "Red Lake"), True)),
        # No direction, both directions, no pair: not a date comparison.
        ("Are Red Lake and Iron Hill from the same country?", None),
        ("Which came first and which later, Red Lake or Iron Hill?", None),
        ("Who directed Red Lake?", None),
        ("Which film came out first, Red Lake or red lake?", None),
    ],
)
def test_comparison_of(question: str, expected: Comparison | None) -> None:
    assert comparison_of(question) == expected


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("20 March 851", datetime(851, 3, 20)),
        ("November 22, 1944", datetime(1944, 11, 22)),
        ("1971", datetime(1971, 1, 1)),
        ("c. 1890", datetime(1890, 1, 1)),
        ("on 12 June 1967", datetime(1967, 6, 12)),
        ("Anna Kowal", None),
        ("Agni (2004 Film)", None),  # a title with a year in it is not a date
        ("unknown", None),
        ("44 BC", None),
        ("", None),
    ],
)
def test_parse_date(text: str, date: datetime | None) -> None:
    assert parse_date(text) == date


@given(st.text(max_size=60))
def test_parse_date_never_raises(text: str) -> None:
    parsed = parse_date(text)
    assert parsed is None or isinstance(parsed, datetime)


@given(st.text(max_size=120))
def test_comparison_of_never_raises(text: str) -> None:
    found = comparison_of(text)
    assert found is None or len(found.candidates) == 2


@pytest.mark.parametrize(
    ("question", "plan", "answers", "winner"),
    [
        # Through a bridge: the dates are the directors', traced back through #1 / #2 to the films.
        ("Which film has the director born later, Red Lake or Iron Hill?", BRIDGED,
         ["Anna Kowal", "Yorick Bellamy", "3 May 1941", "1939"], "Red Lake"),
        ("Which film has the director who is older, Red Lake or Iron Hill?", BRIDGED,
         ["Anna Kowal", "Yorick Bellamy", "3 May 1941", "1939"], "Iron Hill"),
        # The order of the steps does not matter, only what each is about.
        ("Which film came out first, Red Lake or Iron Hill?",
         ["When was Iron Hill released?", "When was Red Lake released?"], ["1965", "1971"], "Iron Hill"),
        # Same day, a missing date, two dates for one film, a step about neither: left to the composing call.
        ("Which film came out first, Red Lake or Iron Hill?",
         ["When was Iron Hill released?", "When was Red Lake released?"], ["1965", "1965"], None),
        ("Which film came out first, Red Lake or Iron Hill?",
         ["When was Iron Hill released?", "When was Red Lake released?"], ["1965", "Anna Kowal"], None),
        ("Which film came out first, Red Lake or Iron Hill?",
         ["When was Iron Hill released?", "When was Iron Hill re-released?", "When was Red Lake released?"],
         ["1965", "1980", "1971"], None),
        ("Which film came out first, Red Lake or Iron Hill?",
         ["When was Blue Harbor released?", "When was Red Lake released?"], ["1965", "1971"], None),
        ("Are Red Lake and Iron Hill from the same country?",
         ["When was Iron Hill released?", "When was Red Lake released?"], ["1965", "1971"], None),
        # Birth dates do not answer who died first; a death date does.
        ("Which film has the director who died first, Red Lake or Iron Hill?", BRIDGED,
         ["Anna Kowal", "Yorick Bellamy", "3 May 1941", "1939"], None),
        ("Which film has the director who died first, Red Lake or Iron Hill?",
         [*BRIDGED[:2], "When did #1 die?", "When did #2 die?"],
         ["Anna Kowal", "Yorick Bellamy", "3 May 1991", "1999"], "Red Lake"),
        # A plan that refers to itself does not loop.
        ("Which film came out first, Red Lake or Iron Hill?",
         ["When was #2 released?", "When was #1 released?"], ["1965", "1971"], None),
    ],
)
def test_settle_by_date(question: str, plan: list[str], answers: list[str], winner: str | None) -> None:
    assert settle_by_date(question, plan, answers) == winner
