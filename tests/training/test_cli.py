"""`synthkg train` and `synthkg train build-set` through the command line (no model loaded)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from synthkg.prompts import load_prompt
from tests.training.samples import SYSTEM_PROMPT, teacher_records
from training.cli import app

runner = CliRunner()


def write_records(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_build_set_writes_the_split_and_stats(tmp_path: Path) -> None:
    records = write_records(tmp_path / "teacher.jsonl", teacher_records())
    prompt = tmp_path / "system.txt"
    prompt.write_text(SYSTEM_PROMPT + "\n")
    result = runner.invoke(
        app,
        [
            "build-set",
            "-r",
            str(records),
            "-o",
            str(tmp_path / "set"),
            "--system-prompt-file",
            str(prompt),
            "--user-template",
            "Text: $chunk",
            "--validation-ratio",
            "0.25",
            "--no-count-tokens",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "12 records -> 12 examples" in result.output
    stats = json.loads((tmp_path / "set" / "stats.json").read_text())
    assert stats["train"] + stats["validation"] == 12 and stats["validation"] >= 1
    assert stats["prompt"] == "custom" and stats["system_prompt"] == SYSTEM_PROMPT
    first = json.loads((tmp_path / "set" / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][1]["content"].startswith("Text: ")


def test_build_set_defaults_to_the_one_call_prompt(tmp_path: Path) -> None:
    records = write_records(tmp_path / "teacher.jsonl", teacher_records())
    result = runner.invoke(
        app, ["build-set", "-r", str(records), "-o", str(tmp_path / "set"), "--no-count-tokens"]
    )
    assert result.exit_code == 0, result.output
    prompt = load_prompt("one_call")
    stats = json.loads((tmp_path / "set" / "stats.json").read_text())
    assert stats["prompt"] == prompt.version_tag
    first = json.loads((tmp_path / "set" / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][0]["content"] == prompt.system
    text = next(r["text"] for r in teacher_records() if r["chunk_id"] == first["chunk_id"])
    assert first["messages"][1]["content"] == prompt.fill({"chunk": text})
    assert len(first["messages"]) == 3  # no worked examples: the student learns the format


def test_build_set_reports_bad_input_without_traceback(tmp_path: Path) -> None:
    records = tmp_path / "teacher.jsonl"
    records.write_text(json.dumps(teacher_records()[0]) + "\n{oops\n")
    result = runner.invoke(
        app, ["build-set", "-r", str(records), "-o", str(tmp_path / "set"), "--no-count-tokens"]
    )
    assert result.exit_code == 1
    assert f"error: {records}:2: malformed JSON" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["build-set", "-o", str(tmp_path / "set")])
    assert result.exit_code == 1 and "--records" in result.output


def test_train_reports_bad_input_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["--data", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "run")]
    )
    assert result.exit_code == 1 and "missing.jsonl: file not found" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["--output", str(tmp_path / "run"), "--max-steps", "5"])
    assert result.exit_code == 1 and "--data" in result.output
    records = write_records(tmp_path / "teacher.jsonl", teacher_records())
    runner.invoke(app, ["build-set", "-r", str(records), "-o", str(tmp_path / "set"), "--no-count-tokens"])
    result = runner.invoke(
        app,
        [
            "--data",
            str(tmp_path / "set" / "train.jsonl"),
            "-o",
            str(tmp_path / "run"),
            "--base-model",
            "nope.gguf",
        ],
    )
    assert result.exit_code == 1 and "base model file not found: nope.gguf" in result.output


def test_help_describes_the_options() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for option in ("--data", "--base-model", "--output", "--max-steps", "--resume", "--merge", "build-set"):
        assert option in result.output


def test_export_gguf_writes_a_llama_cpp_adapter_or_says_why_not(tmp_path: Path) -> None:
    from synthkg.llm.adapters import shipped_student_path

    result = runner.invoke(app, ["export-gguf", str(shipped_student_path()), "-o", str(tmp_path / "s.gguf")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.gguf").read_bytes()[:4] == b"GGUF"
    folder_base = tmp_path / "adapter"
    folder_base.mkdir()
    (folder_base / "adapter_config.json").write_text('{"base_model_name_or_path": "/models/some-hf-folder"}')
    result = runner.invoke(app, ["export-gguf", str(folder_base), "-o", str(tmp_path / "x.gguf")])
    assert result.exit_code != 0 and "need a GGUF base" in result.output
    assert not (tmp_path / "x.gguf").exists()
