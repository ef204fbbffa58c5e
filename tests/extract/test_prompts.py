from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest

from synthkg.extract.lines import parse_lines, render_lines
from synthkg.extract.parse import parse_output
from synthkg.prompts import Prompt, PromptError, load_prompt, prompt_names

EXTRACTION_PROMPTS = ["decontextualize", "entities", "quadruples", "one_call"]  # JSON answers
LINE_PROMPTS = ["one_call_lines"]
READER_PROMPTS = ["reader_single", "reader_iterate", "reader_intermediate", "reader_final",
                  "reader_decompose", "reader_compose", "rerank", "fact_filter"]
VERSION_LOCK = Path(__file__).with_name("prompt_versions.json")


def test_every_prompt_file_is_listed() -> None:
    listed = set(EXTRACTION_PROMPTS) | set(LINE_PROMPTS) | set(READER_PROMPTS) | {"repair"}
    assert listed == set(prompt_names())


@pytest.mark.parametrize("name", READER_PROMPTS)
def test_reader_prompt_renders_with_its_inline_schema(name: str) -> None:
    prompt = load_prompt(name)
    assert prompt.output_model is None and prompt.schema["type"] == "object"
    values = {v: f"<{v}>" for v in prompt.variables}
    messages = prompt.render(**values)
    assert messages[0]["role"] == "system" and all(f"<{v}>" in messages[-1]["content"] for v in values)


def test_a_prompt_declares_one_output() -> None:
    with pytest.raises(ValueError, match="not both"):
        Prompt(name="x", version=1, user="$a", output_model="m:C", output_schema='{"type": "object"}')


@pytest.mark.parametrize("name", LINE_PROMPTS)
def test_line_prompt_renders_and_its_example_is_canonical(name: str) -> None:
    prompt = load_prompt(name)
    assert prompt.output_format == "lines" and prompt.max_tokens
    messages = prompt.render(chunk="<chunk value>")
    assert "subject | relation | object" in messages[0]["content"]
    assert messages[-1]["content"].endswith("<chunk value>")
    (example,) = prompt.examples
    graph, report = parse_lines(example.output)
    assert not report.skipped and report.loop_at is None
    # The example is written exactly as training renders a graph: the student sees that form.
    assert render_lines(graph) == example.output
    assert len(graph.quadruples) == 6 and len({q.proposition for q in graph.quadruples}) == 3


@pytest.mark.parametrize("name", EXTRACTION_PROMPTS)
def test_extraction_prompt_loads_renders_and_has_schema(name: str) -> None:
    prompt = load_prompt(name)
    assert prompt.name == name
    assert prompt.version >= 1 and prompt.version_tag == f"{name}@v{prompt.version}"
    assert prompt.max_tokens
    assert prompt.schema["type"] == "object" and prompt.schema["properties"]
    assert len(prompt.examples) == 1  # one worked example: what small models need

    variables = {var: f"<{var} value>" for var in prompt.variables}
    messages = prompt.render(**variables)
    assert messages[0]["role"] == "system" and "JSON only" in messages[0]["content"]
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user"]
    assert all(f"<{var} value>" in messages[-1]["content"] for var in prompt.variables)
    assert "$" not in messages[-1]["content"]


@pytest.mark.parametrize("name", EXTRACTION_PROMPTS)
def test_worked_example_is_a_valid_answer(name: str) -> None:
    prompt = load_prompt(name)
    for example in prompt.examples:
        parsed = parse_output(example.output, prompt.model)
        # The example shows no duplicates and no empty values: parsing it changes nothing.
        assert parsed.model_dump() == json.loads(example.output)


def test_example_quadruples_use_listed_entities() -> None:
    prompt = load_prompt("quadruples")
    (example,) = prompt.examples
    listed = {line.removeprefix("- ") for line in example.vars["entities"].splitlines()}
    for quad in json.loads(example.output)["quadruples"]:
        assert quad["subject"] in listed and quad["object"] in listed


def test_render_rejects_missing_and_unexpected_variables() -> None:
    prompt = load_prompt("quadruples")
    with pytest.raises(PromptError, match="missing \\['entities'\\]"):
        prompt.render(chunk="text")
    with pytest.raises(PromptError, match="unexpected \\['extra'\\]"):
        prompt.render(chunk="text", entities="- A", extra="x")


def test_placeholders_in_values_are_not_expanded() -> None:
    messages = load_prompt("entities").render(chunk="costs $5 or ${chunk}")
    assert messages[-1]["content"].endswith("costs $5 or ${chunk}")


def test_unknown_prompt() -> None:
    with pytest.raises(PromptError, match="no prompt named 'nope' \\(available: decontextualize"):
        load_prompt("nope")


def test_malformed_prompt_data_is_rejected() -> None:
    with pytest.raises(ValueError, match="example 0 gives"):
        Prompt.model_validate(
            {"name": "x", "version": 1, "user": "$a", "examples": [{"vars": {}, "output": "{}"}]}
        )
    with pytest.raises(ValueError, match="placeholder"):
        Prompt.model_validate({"name": "x", "version": 1, "user": "costs $ 5"})
    with pytest.raises(ValueError, match="version"):
        Prompt.model_validate({"name": "x", "version": 0, "user": "a"})
    with pytest.raises(PromptError, match="cannot import output_model"):
        _ = Prompt.model_validate(
            {"name": "x", "version": 1, "user": "a", "output_model": "nowhere:X"}
        ).schema


def test_repair_prompt_has_a_hint_for_every_parse_reason() -> None:
    repair = load_prompt("repair")
    assert set(repair.hints) == {"empty", "no_json", "invalid_json", "truncated", "repetition", "schema"}
    assert repair.variables == {"problem", "hint", "form"}


def test_changed_prompts_have_bumped_versions() -> None:
    """A prompt's text and its version change together (the version keys the LLM call cache). After
    editing a prompt, bump its version and record the new line below in prompt_versions.json."""
    lock = json.loads(VERSION_LOCK.read_text(encoding="utf-8"))
    current = {}
    for name in prompt_names():
        data = (resources.files("synthkg.prompts") / f"{name}.toml").read_bytes()
        current[name] = {"version": load_prompt(name).version, "sha256": hashlib.sha256(data).hexdigest()}
    for name, now in current.items():
        was = lock.get(name)
        if was is not None and was["sha256"] != now["sha256"]:
            assert now["version"] > was["version"], f"{name}.toml changed: bump its version"
    assert current == lock, f"update {VERSION_LOCK.name} to:\n{json.dumps(current, indent=2)}"
