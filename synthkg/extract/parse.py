"""Strict parsing of LLM output into pydantic models.

Tolerated: code fences and prose around the JSON, a bare JSON array where the model has exactly one list
field, whitespace around values, duplicate items (removed) and list items with an empty required field
(dropped). Everything else that does not validate is a `ParseError` whose `reason` tells the caller how
to retry: "empty", "no_json", "invalid_json", "truncated", "repetition" or "schema". The reader's replies,
whose shape its code checks, use the same search for JSON through `parse_json_object`: one lenient parser
for every LLM answer."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable, Hashable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from synthkg.extract.schema import ChunkGraph, ExtractedEntity, Quadruple
from synthkg.model import normalize_name

ParseReason = Literal["empty", "no_json", "invalid_json", "truncated", "repetition", "schema"]
M = TypeVar("M", bound=BaseModel)


class ParseError(ValueError):
    def __init__(self, reason: ParseReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: ParseReason = reason
        self.detail = detail


class DecontextualizedText(BaseModel):
    text: str = Field(min_length=1, description="the rewritten passage")


class EntityList(BaseModel):
    entities: list[ExtractedEntity]


class QuadrupleList(BaseModel):
    quadruples: list[Quadruple]


def parse_output(text: str, model: type[M], *, finish_reason: str = "stop") -> M:
    """The one instance of `model` in `text`, cleaned and deduplicated (see the module docstring).
    `finish_reason` is the backend's: "length" turns a JSON parse failure into reason "truncated"."""
    if not text.strip():
        raise ParseError("empty", "the answer is empty")
    loop = find_repetition(text)
    if loop is not None:
        raise ParseError("repetition", f"the answer repeats {loop!r} over and over")
    list_field = _single_list_field(model)
    candidates, unclosed = _json_candidates(
        text, arrays=list_field is not None, finished=finish_reason != "length"
    )
    first_error: ParseError | None = None
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except (json.JSONDecodeError, RecursionError) as exc:
            error = ParseError("invalid_json", _json_error(exc))
        else:
            if isinstance(data, list) and list_field is not None:
                data = {list_field: data}
            try:
                return build(model, data)
            except ParseError as exc:
                error = exc
        # A schema error says more than a syntax error elsewhere in the prose.
        if first_error is None or (error.reason == "schema" and first_error.reason != "schema"):
            first_error = error
    if finish_reason == "length":
        raise ParseError("truncated", _CUT_OFF)
    if unclosed is not None and (first_error is None or first_error.reason != "schema"):
        raise unclosed
    if first_error is not None:
        raise first_error
    raise ParseError("no_json", "the answer contains no JSON object")


def build(model: type[M], data: Any) -> M:
    """Validate decoded JSON against `model` after cleaning: strip strings, drop list items with an
    empty required field, dedupe list items. Raises ParseError("schema")."""
    if not isinstance(data, dict):
        raise ParseError("schema", f"expected a JSON object, got {_json_type(data)}")
    fields = model.model_fields
    if fields and not fields.keys() & data.keys():
        # Also keeps a stray "{}" in prose from passing as a model whose fields all have defaults.
        raise ParseError("schema", f"expected an object with {_quoted(fields)}, got keys {_quoted(data)}")
    cleaned = {key: _clean_field(model, key, value) for key, value in data.items()}
    try:
        instance = model.model_validate(cleaned)
    except ValidationError as exc:
        raise ParseError("schema", _validation_summary(exc)) from None
    return _dedupe(instance)


def normalize(instance: M) -> M:
    """What parsing `instance`'s JSON would return: the same cleaning and dedupe as `build`."""
    return build(type(instance), instance.model_dump())


# --- repetition -------------------------------------------------------------------------------------

_UNIT_END = re.compile(r"(?<=[.!?;}\]\n])\s*")
_WORD = re.compile(r"\w+")


def find_repetition(text: str) -> str | None:
    """The repeated piece when `text` loops: a block of sentences / JSON items repeated 4 times in a
    row, or a block of words repeated 6 times in a row over at least 30 words. Greedy decoding of
    small models falls into such loops and runs until max_tokens."""
    units = [" ".join(u.split()) for u in _UNIT_END.split(text)]
    units = [u for u in units if u]
    loop = _periodic_run(units, max_period=6, min_repeats=4, min_chars=12, min_items=4)
    if loop is None:
        loop = _periodic_run(_WORD.findall(text), max_period=12, min_repeats=6, min_chars=6, min_items=30)
    return loop


def _periodic_run(
    items: list[str], *, max_period: int, min_repeats: int, min_chars: int, min_items: int
) -> str | None:
    for period in range(1, max_period + 1):
        needed = max(period * (min_repeats - 1), min_items - period)
        run = 0
        for i in range(len(items) - period):
            run = run + 1 if items[i] == items[i + period] else 0
            if run >= needed:
                block = items[i + 1 : i + 1 + period]
                if sum(map(len, block)) >= min_chars:
                    return " ".join(block)[:80]
    return None


# --- finding the JSON -------------------------------------------------------------------------------

def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a reply whose shape the caller checks itself (the reader's steps): found
    as parse_output finds one (fenced blocks first, then in prose; a missing last bracket restored), or
    None when there is none."""
    candidates, _ = _json_candidates(text, arrays=False, finished=True)
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def parse_numbers(value: Any) -> list[int]:
    """Integers from a model's list of numbers, however written: [1, 2], ["1", "[2]"], "1, 3"; each once,
    in order."""
    items = value if isinstance(value, list) else [value]
    numbers: list[int] = []
    for item in items:
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            numbers.append(item)
        elif isinstance(item, float) and item.is_integer():
            numbers.append(int(item))
        elif isinstance(item, str):
            numbers.extend(int(n) for n in re.findall(r"\d+", item))
    return list(dict.fromkeys(numbers))


_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|"|[{}\[\]]', re.DOTALL)
_CLOSER = {"{": "}", "[": "]"}
_CUT_OFF = "the answer was cut off before its JSON was complete"


def _json_candidates(text: str, *, arrays: bool, finished: bool) -> tuple[list[str], ParseError | None]:
    """Top-level bracketed spans, fenced blocks first; and what is wrong with a span that never closes
    ("truncated", or "invalid_json" for a string that never ends in an answer that looks complete).
    `finished`: the backend stopped on its own, not at max_tokens."""
    openers = "{[" if arrays else "{"
    candidates: list[str] = []
    unclosed: ParseError | None = None
    for source in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        pos = 0
        while (start := _next_opener(source, pos, openers)) >= 0:
            end, missing, open_string = _scan(source, start)
            if end is not None:
                if source[start:end] not in candidates:
                    candidates.append(source[start:end])
                pos = end
                continue
            tail = source.rstrip()
            if finished and not _looks_like_json(source[start:]):
                # Prose with a stray "{" in an answer the backend finished on its own: no JSON at all,
                # not an answer cut off by the token budget.
                break
            if not finished or not tail.endswith(("}", "]")):
                unclosed = ParseError("truncated", _CUT_OFF)
            elif open_string:
                detail = "a string never ends: escape double quotes inside strings"
                unclosed = ParseError("invalid_json", detail)
            else:
                # Small models sometimes stop right before the last closing bracket(s).
                candidates.append(tail[start:] + "".join(reversed(missing)))
            break
    return candidates, unclosed


_JSON_START = re.compile(r'[{\[]\s*(?:["{\[\]}]|$)')


def _looks_like_json(span: str) -> bool:
    """Whether a span that never closes starts like JSON: a bracket followed by a key, a nested
    bracket, a closer or nothing ("{ the cat" in prose does not)."""
    return _JSON_START.match(span) is not None


def _next_opener(text: str, pos: int, openers: str) -> int:
    found = [i for i in (text.find(o, pos) for o in openers) if i >= 0]
    return min(found, default=-1)


def _scan(text: str, start: int) -> tuple[int | None, list[str], bool]:
    """(end, closers still missing, inside a string) for the bracketed span opened at `start`,
    skipping brackets inside JSON strings. `end` is None when the span never closes; a mismatched
    closer ends the span, so that json.loads reports it."""
    stack: list[str] = []
    for match in _JSON_TOKEN.finditer(text, start):
        token = match.group()
        if token == '"':  # a string that never ends
            return None, stack, True
        if token[0] == '"':
            continue
        if token in _CLOSER:
            stack.append(_CLOSER[token])
        elif token != stack.pop():
            return match.end(), [], False
        if not stack:
            return match.end(), [], False
    return None, stack, False


# --- cleaning ---------------------------------------------------------------------------------------


def _single_list_field(model: type[BaseModel]) -> str | None:
    names = [name for name, f in model.model_fields.items() if typing.get_origin(f.annotation) is list]
    return names[0] if len(names) == 1 and len(model.model_fields) == 1 else None


def _item_model(model: type[BaseModel], field: str) -> type[BaseModel] | None:
    info = model.model_fields.get(field)
    if info is None or typing.get_origin(info.annotation) is not list:
        return None
    (arg,) = typing.get_args(info.annotation)
    return arg if isinstance(arg, type) and issubclass(arg, BaseModel) else None


def _clean_field(model: type[BaseModel], field: str, value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    item_model = _item_model(model, field)
    if item_model is None or not isinstance(value, list):
        return value
    required = [name for name, f in item_model.model_fields.items() if f.is_required()]
    cleaned = []
    for item in value:
        if isinstance(item, dict):
            item = {k: v.strip() if isinstance(v, str) else v for k, v in item.items()}
            if any(item.get(name) is None or item.get(name) == "" for name in required):
                continue  # an item with an empty required field carries no fact
        cleaned.append(item)
    return cleaned


def _entity_key(entity: ExtractedEntity) -> Hashable:
    return normalize_name(entity.name)


def _quadruple_key(quad: Quadruple) -> Hashable:
    relation = " ".join(quad.relation.split()).casefold()
    return normalize_name(quad.subject), relation, normalize_name(quad.object)


_DEDUPE_KEYS: dict[type[BaseModel], Callable[[Any], Hashable]] = {
    ExtractedEntity: _entity_key,
    Quadruple: _quadruple_key,
}


def _dedupe(instance: M) -> M:
    updates = {}
    for field in type(instance).model_fields:
        item_model = _item_model(type(instance), field)
        if item_model is None:
            continue
        key_of = _DEDUPE_KEYS.get(item_model, lambda item: json.dumps(item.model_dump(), sort_keys=True))
        kept: dict[Hashable, BaseModel] = {}
        for item in getattr(instance, field):
            key = key_of(item)
            first = kept.get(key)
            if first is None:
                kept[key] = item
            elif isinstance(first, ExtractedEntity) and not first.type and item.type:
                kept[key] = first.model_copy(update={"type": item.type})  # the first name, a known type
        updates[field] = list(kept.values())
    return instance.model_copy(update=updates)


# --- messages ---------------------------------------------------------------------------------------


def _json_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    return "JSON nested too deeply"


def _json_type(data: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(data), "a number" if isinstance(data, int | float) else "null"
    )


def _quoted(keys: Any) -> str:
    return ", ".join(f'"{k}"' for k in keys) or "none"


def _validation_summary(exc: ValidationError, limit: int = 3) -> str:
    errors = exc.errors(include_url=False)
    parts = [f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in errors[:limit]]
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(parts) + more


__all__ = [
    "ChunkGraph",
    "DecontextualizedText",
    "EntityList",
    "ParseError",
    "ParseReason",
    "QuadrupleList",
    "build",
    "find_repetition",
    "normalize",
    "parse_output",
]
