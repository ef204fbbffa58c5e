"""Prompts as data (retrieval/prompts.toml) and the lenient JSON parsing of what models answer."""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from synthkg.llm.base import Message

PROMPTS_FILE = "prompts.toml"


class PromptError(RuntimeError):
    """The prompt file is missing a prompt or a prompt is malformed."""


class Prompt(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    system: str
    user: str
    output_schema: dict[str, Any]

    @field_validator("output_schema", mode="before")
    @classmethod
    def _parse_schema(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def messages(self, **values: str) -> list[Message]:
        """System and user messages with the $placeholders filled in."""
        try:
            return [
                {"role": "system", "content": Template(self.system).substitute(values)},
                {"role": "user", "content": Template(self.user).substitute(values)},
            ]
        except KeyError as exc:
            raise PromptError(f"prompt '{self.name}' needs the value {exc}") from None


@cache
def load_prompt(name: str) -> Prompt:
    """The prompt `name` from retrieval/prompts.toml."""
    text = resources.files("retrieval").joinpath(PROMPTS_FILE).read_text(encoding="utf-8")
    table = tomllib.loads(text).get(name)
    if not isinstance(table, dict):
        raise PromptError(f"no prompt named '{name}' in retrieval/{PROMPTS_FILE}")
    try:
        return Prompt(name=name, **table)
    except ValueError as exc:
        raise PromptError(f"prompt '{name}' in retrieval/{PROMPTS_FILE} is malformed: {exc}") from None


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a model's reply: the whole reply, inside a ``` fence, or embedded in
    prose. None when there is none."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        candidate = candidate.strip()
        start = candidate.find("{")
        while start != -1:
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except ValueError:
                start = candidate.find("{", start + 1)
                continue
            if isinstance(value, dict):
                return value
            start = candidate.find("{", start + 1)
    return None


def parse_numbers(value: Any) -> list[int]:
    """Integers from a model's list of numbers, however written: [1, 2], ["1", "[2]"], "1, 3"."""
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
