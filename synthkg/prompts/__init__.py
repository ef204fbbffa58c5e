"""Prompts are data: one TOML file per prompt in this package.

A prompt file holds `name`, `version` (an integer: bump it on any change, since it keys the LLM call
cache and run records), `description`, `system`, a `user` template with `$placeholders`
(string.Template: a literal dollar sign is `$$`), optional `[[examples]]` (each `output` plus the
`[examples.vars]` that fill the user template; rendered as earlier chat turns), `output_model` (the
pydantic model the answer must validate against, as "module:Class"; its JSON schema is the prompt's
schema) or `output_schema` (a JSON schema as text, for answers the calling code checks itself, e.g. the
reader's either-or step), optional `output_format` ("json", the default, or "lines": the line format of a
ChunkGraph in `synthkg.extract.lines`), optional `max_tokens` for the answer and optional `[hints]` (named
snippets for the code). The extractor's, reader's and re-ranker's prompts all live here."""

from __future__ import annotations

import importlib
import json
import tomllib
from functools import cache, cached_property
from importlib import resources
from string import Template
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synthkg.llm.base import Message


class PromptError(ValueError):
    """A prompt file is missing or malformed, or was rendered with the wrong variables."""


class Example(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    vars: dict[str, str]
    output: str


class Prompt(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ignored_types=(cached_property,))

    name: str
    version: int = Field(ge=1)
    description: str = ""
    system: str = ""
    user: str
    examples: tuple[Example, ...] = ()
    output_model: str | None = None
    output_schema: dict[str, Any] | None = None
    output_format: Literal["json", "lines"] = "json"
    max_tokens: int | None = Field(None, ge=1)
    hints: dict[str, str] = Field(default_factory=dict)

    @field_validator("output_schema", mode="before")
    @classmethod
    def _schema_from_text(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("user")
    @classmethod
    def _valid_template(cls, user: str) -> str:
        if not Template(user).is_valid():
            raise ValueError("invalid $placeholder (write a literal dollar sign as $$)")
        return user

    @model_validator(mode="after")
    def _one_output_declaration(self) -> Prompt:
        if self.output_model is not None and self.output_schema is not None:
            raise ValueError("give output_model or output_schema, not both")
        return self

    @model_validator(mode="after")
    def _examples_fill_template(self) -> Prompt:
        for i, example in enumerate(self.examples):
            if set(example.vars) != self.variables:
                raise ValueError(
                    f"example {i} gives {sorted(example.vars)}, the template needs {sorted(self.variables)}"
                )
        return self

    @property
    def variables(self) -> set[str]:
        return set(Template(self.user).get_identifiers())

    @property
    def version_tag(self) -> str:
        """What identifies this prompt's wording in caches and run records, e.g. "entities@v2"."""
        return f"{self.name}@v{self.version}"

    @cached_property
    def model(self) -> type[BaseModel]:
        """The pydantic model an answer must validate against."""
        if self.output_model is None:
            raise PromptError(f"prompt {self.name!r} declares no output_model")
        module, _, attr = self.output_model.partition(":")
        try:
            model = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise PromptError(
                f"prompt {self.name!r}: cannot import output_model {self.output_model!r}"
            ) from exc
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise PromptError(f"prompt {self.name!r}: {self.output_model!r} is not a pydantic model")
        return model

    @cached_property
    def schema(self) -> dict[str, Any]:
        """The JSON schema of the answer (to request or constrain JSON output)."""
        if self.output_schema is not None:
            return self.output_schema
        return self.model.model_json_schema()

    def render(self, **variables: str) -> list[Message]:
        """System message, the worked examples as earlier turns, then the filled user template."""
        missing = self.variables - variables.keys()
        unexpected = variables.keys() - self.variables
        if missing or unexpected:
            raise PromptError(
                f"prompt {self.name!r} takes {sorted(self.variables)}; missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}"
            )
        messages: list[Message] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        for example in self.examples:
            messages.append({"role": "user", "content": self.fill(example.vars)})
            messages.append({"role": "assistant", "content": example.output})
        messages.append({"role": "user", "content": self.fill(variables)})
        return messages

    def fill(self, variables: dict[str, str]) -> str:
        return Template(self.user).substitute(variables)


def prompt_names() -> list[str]:
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".toml")
    )


@cache
def load_prompt(name: str) -> Prompt:
    """The prompt `name` from this package's `<name>.toml`."""
    resource = resources.files(__name__) / f"{name}.toml"
    if not resource.is_file():
        raise PromptError(f"no prompt named {name!r} (available: {', '.join(prompt_names())})")
    try:
        data = tomllib.loads(resource.read_text(encoding="utf-8"))
        prompt = Prompt.model_validate(data)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise PromptError(f"prompt file {name}.toml is invalid: {exc}") from exc
    if prompt.name != name:
        raise PromptError(f"prompt file {name}.toml declares name {prompt.name!r}")
    return prompt


__all__ = ["Example", "Prompt", "PromptError", "load_prompt", "prompt_names"]
