"""What makes a follow-up question worth retrieving for, and the templated bridge query used when a
reader cannot write one.

Small readers (0.5B-1.5B) often "ask" a sentence copied from a retrieved passage, repeat the question,
or ask something longer than the question; retrieving for such a sub-query finds what was already found.
`rejection` says why a sub-query is no real question (or None when it is one); `bridge_query` builds one
from the graph instead: the question with its linked entity replaced by the entity the graph reached
from it (the bridge of a 2-hop question), so the next retrieval starts from the second hop; and for a
question about several named things, `sibling_query` asks an answered follow-up about the next one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"\w+", re.UNICODE)
_QUESTION_START = frozenset(
    {"who", "whom", "whose", "what", "which", "when", "where", "why", "how", "is", "are", "was", "were",
     "did", "does", "do", "in", "at", "on", "for", "from", "to", "by", "of", "can", "has", "have", "had"}
)
MIN_COPY_WORDS = 6  # a shared run of this many words is a copy, whatever the sub-query's length
COPY_SHARE = 0.7  # ... or a shared run of this share of the sub-query's words
REPEAT_JACCARD = 0.8


def words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def longest_shared_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest run of words that `a` and `b` have in common, in order."""
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def rejection(
    sub_query: str, question: str, passages: Iterable[str], asked: Iterable[str] = ()
) -> str | None:
    """Why `sub_query` is no follow-up question worth retrieving for, or None when it is one: it copies
    a passage, repeats the question or an earlier sub-query, does not shorten the question, or is no
    question at all."""
    sub = words(sub_query)
    if not sub:
        return "is empty"
    asked_words = [words(q) for q in (question, *asked)]
    for earlier in asked_words:
        union = set(sub) | set(earlier)
        if union and len(set(sub) & set(earlier)) / len(union) >= REPEAT_JACCARD:
            return "repeats the question" if earlier is asked_words[0] else "repeats an earlier sub-query"
    if len(sub) >= len(asked_words[0]):
        return "is not shorter than the question"
    for text in passages:
        run = longest_shared_run(sub, words(text))
        if run >= MIN_COPY_WORDS or (len(sub) >= 3 and run >= COPY_SHARE * len(sub)):
            return "copies a retrieved passage"
    if not sub_query.rstrip().endswith("?") and sub[0] not in _QUESTION_START:
        return "is not a question"
    return None


def bridge_query(question: str, linked: Sequence[str], reached: Sequence[str]) -> str | None:
    """The question asked about the bridge entity instead: the first linked entity name found in the
    question replaced by the first reached entity that the question does not name. None when the graph
    gave nothing to bridge with."""
    named = question.casefold()
    bridge = next((r for r in reached if r and r.casefold() not in named), None)
    if bridge is None:
        return None
    for name in sorted(linked, key=len, reverse=True):
        at = named.find(name.casefold()) if name else -1
        if at >= 0:
            return question[:at] + bridge + question[at + len(name) :]
    return f"{bridge}: {question}"


def sibling_query(answered: Sequence[str], names: Sequence[str], asked: Sequence[str]) -> str | None:
    """For a question about several named things (a comparison, "X or Y"), the follow-up already answered
    for one of them asked about the next one no sub-query has named: the first answered sub-query naming
    one of `names`, with that name replaced. None when no answered sub-query names one, or every name was
    asked about."""
    asked_text = [a.casefold() for a in asked]
    missing = [n for n in names if n and not any(n.casefold() in a for a in asked_text)]
    if not missing:
        return None
    for query in answered:
        for name in sorted((n for n in names if n), key=len, reverse=True):
            at = query.casefold().find(name.casefold())
            if at >= 0:
                return query[:at] + missing[0] + query[at + len(name) :]
    return None
