"""Comparison questions settled from the steps' dates: "Which film came out first, A or B?", "Who was born
later, A or B?", "Which film has the director who died first, A or B?".

The decomposing reader's plan for such a question finds one date per candidate (directly, or through a
bridge: "Who directed A?" -> "When was #1 born?"). Comparing two dates is where the 1.5B reader's composing
call goes wrong most often (2Wiki, 37 questions: 5 date comparisons answered wrong, 2 of them right when
settled here), and it is exact in code. `settle_by_date` answers only when everything is unambiguous: the
question names exactly two candidates and one direction, each candidate's chain of steps ends in a date
that parses, and those steps ask for the event the question compares (a birth, a death) where both say.
Otherwise it returns None and the composing call answers as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from dateutil import parser as date_parser

PLACEHOLDER = re.compile(r"#(\d+)")  # a planned step's reference to an earlier answer
# The two candidates: after the last comma (or "out of", "between") before the question mark, joined by
# "or" / "and".
_PAIR = re.compile(
    r"(?:,|\bout of\b|\bbetween\b)\s*(?P<a>[^,?]+?)\s+(?:or|and)\s+(?P<b>[^,?]+?)\s*\?*\s*$", re.IGNORECASE
)
_EARLIER = re.compile(r"\b(first|earlier|earliest|older|oldest|sooner)\b", re.IGNORECASE)
_LATER = re.compile(r"\b(later|latest|last|younger|youngest|more recent(?:ly)?)\b", re.IGNORECASE)
# Which date a question or a step is about, where it says: a plan that copies its example's "When was #1
# born?" into a question about who died first compares the wrong dates.
_EVENTS = {
    "birth": re.compile(r"\b(born|birth|older|oldest|younger|youngest)\b", re.IGNORECASE),
    "death": re.compile(r"\b(die|died|dies|death|dead)\b", re.IGNORECASE),
}
_YEAR = re.compile(r"\b\d{3,4}\b")
_BEFORE_COMMON_ERA = re.compile(r"\b(BC|BCE|B\.C\.)", re.IGNORECASE)
_MONTHS = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
    "dec",
}
# Words a date answer may hold besides the date itself ("c. 1890", "on 12 June 1967", "around 1200").
_DATE_WORDS = {"c", "ca", "circa", "about", "around", "on", "in", "the", "of", "st", "nd", "rd", "th"}
_EPOCH = datetime(1, 1, 1)


@dataclass(frozen=True)
class Comparison:
    """Two candidates named by the question, and whether the one with the earlier date is the answer."""

    candidates: tuple[str, str]
    earlier_wins: bool
    events: frozenset[str] = frozenset()  # "birth", "death": the dates it compares, where it says


def comparison_of(question: str) -> Comparison | None:
    """The question's two candidates and direction; None unless it names exactly one direction
    ("first" / "older" ... or "later" / "younger" ...) outside the candidates' own names."""
    match = _PAIR.search(question.strip())
    if match is None:
        return None
    a, b = match.group("a").strip(), match.group("b").strip()
    if not a or not b or a.casefold() == b.casefold():
        return None
    rest = question[: match.start()]  # a title such as "The Last Coupon" must not set the direction
    earlier, later = bool(_EARLIER.search(rest)), bool(_LATER.search(rest))
    if earlier == later:
        return None
    return Comparison(candidates=(a, b), earlier_wins=earlier, events=_events(rest))


def _events(text: str) -> frozenset[str]:
    return frozenset(name for name, pattern in _EVENTS.items() if pattern.search(text))


def parse_date(text: str) -> datetime | None:
    """`text` as a date when it is one ("20 March 851", "November 22, 1944", "c. 1890", "1971"), missing
    month and day read as January 1; None for anything else (a name, a title with a year in it, a BC
    date, which datetime cannot hold)."""
    if not _YEAR.search(text) or _BEFORE_COMMON_ERA.search(text):
        return None
    words = re.findall(r"[^\W\d_]+", text)
    if any(w.casefold() not in _MONTHS and w.casefold() not in _DATE_WORDS for w in words):
        return None
    try:
        return date_parser.parse(text, fuzzy=True, default=_EPOCH)
    except (ValueError, OverflowError):
        return None


def settle_by_date(question: str, plan: list[str], answers: list[str]) -> str | None:
    """The candidate (as the question writes it) whose date comes first or last, from the steps of `plan`
    and their `answers` (step n's answer is answers[n - 1]); None when it is not that clear."""
    comparison = comparison_of(question)
    if comparison is None or len(answers) != len(plan):
        return None
    dates: dict[str, list[datetime]] = {c: [] for c in comparison.candidates}
    for index, answer in enumerate(answers):
        date = parse_date(answer)
        if date is None:
            continue
        origin = _origin(index, plan, comparison.candidates, set())
        if origin is None:
            continue
        step_events = _events(plan[index])
        if comparison.events and step_events and not step_events & comparison.events:
            return None  # the step found another event's date than the question compares
        dates[origin].append(date)
    if any(len(found) != 1 for found in dates.values()):
        return None
    (a, (date_a,)), (b, (date_b,)) = dates.items()
    if date_a == date_b:
        return None
    first, last = (a, b) if date_a < date_b else (b, a)
    return first if comparison.earlier_wins else last


def _origin(index: int, plan: list[str], candidates: tuple[str, str], seen: set[int]) -> str | None:
    """The candidate step `index` is about: the one it names, else the one of the step its #n refers to."""
    step = plan[index].casefold()
    named = [c for c in candidates if c.casefold() in step]
    if len(named) == 1:
        return named[0]
    if named:
        return None
    seen.add(index)
    origins = {
        _origin(int(n) - 1, plan, candidates, seen)
        for n in PLACEHOLDER.findall(plan[index])
        if 0 <= int(n) - 1 < len(plan) and int(n) - 1 not in seen
    }
    return origins.pop() if len(origins) == 1 else None
