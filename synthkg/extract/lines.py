"""The line format of a ChunkGraph: the fast student's output, ~0.6x the tokens of the same graph as JSON.

    PERSON: Ada Lovelace; Charles Babbage
    WORK: Analytical Engine; Scientific Memoirs
    > Charles Babbage designed the Analytical Engine in London.
    Charles Babbage | designed | Analytical Engine
    Analytical Engine | was designed in | London
    > In 1843 Ada Lovelace published notes on the Analytical Engine.
    Ada Lovelace | published notes on | Analytical Engine

Entities come first, one line per type; then each proposition (`> ` and one self-contained sentence)
followed by its triples (`subject | relation | object`). JSON repeats four keys per fact and the
proposition of every triple; here each appears once. The rendering is lossless for what ingestion
keeps (entity names and types, quadruples with their propositions; entity order within a type and
proposition order aside).

Parsing is line by line and keeps every well-formed fact before a problem: an answer cut at its token
budget, or stopped because it started to loop, still yields the facts it wrote before that point
(JSON cut anywhere yields nothing); one stopped before its first fact is an error, and re-asked.
`LoopGuard` tells a streaming backend when to stop generating."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from synthkg.extract.entity_types import ENTITY_TYPES, normalize_type
from synthkg.extract.parse import ParseError, build
from synthkg.extract.schema import ChunkGraph, Quadruple

PROPOSITION_MARK = "> "
FIELD_SEPARATOR = " | "
NAME_SEPARATOR = "; "

# llama.cpp GBNF. Field characters exclude the separators, so a line always splits one way; lengths are
# left open (bounded repetitions expand into many grammar rules) and bounded by the LoopGuard and the
# token budget instead.
GRAMMAR = r"""root ::= typeline* fact*
typeline ::= etype ": " name ("; " name)* "\n"
etype ::= "PERSON" | "ORGANIZATION" | "LOCATION" | "DATE" | "WORK" | "EVENT" | "OTHER"
name ::= [^\n;|] [^\n;|]*
fact ::= "> " [^\n] [^\n]* "\n" triple triple*
triple ::= field " | " field " | " field "\n"
field ::= [^\n|] [^\n|]*
"""


def render_lines(graph: ChunkGraph) -> str:
    """`graph` in the line format (each line ends with a newline). Names and sentences have their
    separator characters replaced, so that the rendering always parses back to the same graph."""
    by_type: dict[str, list[str]] = {}
    for entity in graph.entities:
        name = _clean(entity.name, ";|")
        if name:
            by_type.setdefault(normalize_type(entity.type), []).append(name)
    lines = [f"{kind}: {NAME_SEPARATOR.join(by_type[kind])}" for kind in ENTITY_TYPES if kind in by_type]
    by_proposition: dict[str, list[Quadruple]] = {}
    for quad in graph.quadruples:
        by_proposition.setdefault(_clean(quad.proposition, ""), []).append(quad)
    for proposition, quads in by_proposition.items():
        # A subject starting with ">" would read back as a proposition line.
        fields = [
            [_clean(q.subject, "|").lstrip("> ").strip(), _clean(q.relation, "|"), _clean(q.object, "|")]
            for q in quads
        ]
        triples = [FIELD_SEPARATOR.join(parts) for parts in fields if all(parts)]
        if proposition and triples:
            lines.append(PROPOSITION_MARK + proposition)
            lines += triples
    return "".join(line + "\n" for line in lines)


def _clean(text: str, forbidden: str) -> str:
    """One line of text without the characters that would split it otherwise."""
    for char in forbidden:
        text = text.replace(char, ",")
    return " ".join(text.split())


@dataclass
class LineReport:
    """What parsing found besides the graph: lines it could not read, and whether the answer ended
    early (cut at the token budget, or looping) so that its last facts may be missing."""

    skipped: list[str] = field(default_factory=list)
    loop_at: int | None = None  # the line where a loop started; nothing from there on was kept
    cut: bool = False


def parse_lines(text: str, *, finish_reason: str = "stop") -> tuple[ChunkGraph, LineReport]:
    """The graph in `text` and a report. Raises ParseError: "empty" (nothing written), "schema" (no
    line in the format), "repetition" (a loop before the first fact), "truncated" (cut at the budget
    before the first fact). An answer that ends normally after its entity lines is a graph without
    facts. A triple before any proposition, or a line in no known form, is skipped and reported. With
    `finish_reason` "length" or "loop" the last line, perhaps cut in the middle, is dropped."""
    if not text.strip():
        raise ParseError("empty", "the answer is empty")
    report = LineReport(cut=finish_reason in ("length", "loop"))
    lines = text.split("\n")
    if report.cut and not text.endswith("\n"):
        lines = lines[:-1]
    report.loop_at = loop_start(lines)
    if report.loop_at is not None:
        lines = lines[: report.loop_at]
    entities: list[dict[str, str]] = []
    quadruples: list[dict[str, str]] = []
    proposition: str | None = None
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line.startswith(">"):
            proposition = line[1:].strip() or None
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and all(parts):
            if proposition is None:
                report.skipped.append(line)
                continue
            subject, relation, obj = parts
            quadruples.append({"subject": subject, "relation": relation, "object": obj,
                               "proposition": proposition})
            continue
        kind, colon, names = line.partition(":")
        if colon and kind.strip().upper() in ENTITY_TYPES and "|" not in line:
            entities += [{"name": n.strip(), "type": kind.strip().upper()}
                         for n in names.split(";") if n.strip()]
            continue
        report.skipped.append(line)
    if not quadruples:
        # An answer stopped before its first fact (a loop in the entity lines, most often one entity
        # line running on) is broken, not a chunk without facts: its entities alone would hide that.
        if report.loop_at is not None or finish_reason == "loop":
            where = f" from line {report.loop_at + 1}" if report.loop_at is not None else ""
            raise ParseError("repetition", f"the answer loops{where} before its first fact")
        if report.cut:
            raise ParseError("truncated", "the answer was cut at its token budget before its first fact")
    if not entities and not quadruples:
        raise ParseError(
            "schema",
            "no line in the expected form: 'TYPE: name; name', '> sentence' or 'subject | relation | object'",
        )
    graph = build(ChunkGraph, {"entities": entities, "quadruples": quadruples})
    return graph, report


def loop_start(lines: Iterable[str]) -> int | None:
    """The index of the line where the answer starts to loop, or None. A loop is a proposition written
    a second time, or three lines in a row that were all written before: greedy decoding of a small
    model that falls into a cycle repeats whole facts. (A fact may legitimately repeat one triple.)"""
    seen: set[str] = set()
    propositions: set[str] = set()
    run_start: int | None = None
    run = 0
    for i, raw in enumerate(lines):
        line = " ".join(raw.split())
        if not line:
            continue
        if line.startswith(">"):
            if line in propositions:
                return i
            propositions.add(line)
        if line in seen:
            run_start = i if run == 0 else run_start
            run += 1
            if run >= 3:
                return run_start
        else:
            run = 0
        seen.add(line)
    return None


class LoopGuard:
    """For streaming backends: fed the answer as it grows, says when to stop generating because the
    answer loops (see `loop_start`) or one line runs past `max_line_chars` (a loop inside a line)."""

    def __init__(self, max_line_chars: int = 1200) -> None:
        self.max_line_chars = max_line_chars
        self._checked_lines = 0

    def __call__(self, text: str) -> bool:
        lines = text.split("\n")
        if len(lines[-1]) > self.max_line_chars:
            return True
        complete = lines[:-1]
        if len(complete) == self._checked_lines:
            return False
        self._checked_lines = len(complete)
        return loop_start(complete) is not None


__all__ = [
    "GRAMMAR",
    "LineReport",
    "LoopGuard",
    "loop_start",
    "parse_lines",
    "render_lines",
]
