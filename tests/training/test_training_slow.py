"""A real LoRA run on SmolLM2-135M (CPU, one thread): the loss falls, the adapter loads back and answers
with a chunk graph, merging keeps its outputs, and a resumed run continues the step count.

30 optimizer steps of 2 examples (<= 200 tokens each), about 2.2 s/step on one thread of this machine."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from synthkg.extract.schema import ChunkGraph
from tests.training.samples import HELD_OUT_TEXT, SYSTEM_PROMPT, teacher_records
from training.cli import app
from training.dataset import TeacherRecord, build_dataset, read_examples, write_dataset
from training.errors import TrainingError
from training.student import (
    generate_graph,
    load_student,
    load_tokenizer,
    merge_adapter,
    model_folder,
    resolve_base,
)
from training.trainer import IGNORE_INDEX, TrainConfig, TrainResult, encode_chat, train

pytestmark = pytest.mark.slow

STEPS = 30


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    records = [TeacherRecord.model_validate(r) for r in teacher_records()]
    build = build_dataset(records, SYSTEM_PROMPT, validation_ratio=0.15)
    return write_dataset(build, tmp_path_factory.mktemp("set"))


def tiny_config(data: dict[str, Path], output: Path, cache_dir: Path, **overrides: object) -> TrainConfig:
    settings: dict = {
        "train_files": [data["train"]],
        "validation_files": [data["validation"]],
        "output_dir": output,
        "base_model": "smollm2-135m",
        "cache_dir": cache_dir,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "learning_rate": 1e-3,  # high, so that a few steps teach the format
        "max_steps": STEPS,
        "batch_size": 2,
        "max_length": 256,
        "logging_steps": 5,
        "eval_steps": 15,
        "save_steps": STEPS,
        # One thread, as the suite runs (scripts/test.sh): on a busy 2-core machine two threads of
        # one process wait on each other and train 3x slower; on an idle one they gain about 1.5x.
        "threads": 1,
    }
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def trained(data: dict[str, Path], cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(tiny_config(data, tmp_path_factory.mktemp("run"), cache_dir))


@pytest.fixture(scope="module")
def student(trained: TrainResult, cache_dir: Path) -> tuple[object, object]:
    return load_student("smollm2-135m", trained.adapter_dir, cache_dir=cache_dir, threads=1)


def test_training_lowers_the_loss_and_writes_the_run(trained: TrainResult) -> None:
    assert trained.global_step == STEPS
    steps = [step for step, _ in trained.losses]
    assert steps[0] == 1 and steps[-1] == STEPS
    assert trained.last_loss < trained.first_loss / 2, trained.losses
    assert trained.eval_loss is not None and math.isfinite(trained.eval_loss)
    out = trained.output_dir
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "smollm2-135m"
    assert (out / "adapter_model.safetensors").stat().st_size < 5_000_000  # r=8 on q_proj, v_proj
    assert (out / "checkpoints" / f"checkpoint-{STEPS}" / "trainer_state.json").is_file()
    recorded = json.loads((out / "train_result.json").read_text())
    assert recorded["global_step"] == STEPS and recorded["config"]["lora_r"] == 8
    card = (out / "README.md").read_text()
    facts = (
        "smollm2-135m",
        f"training examples: {trained.train_examples}",
        "s/step",
        "q_proj, v_proj",
        "| batches | grouped by length |",
        "student_prompt.json",
        "as compact JSON",  # the examples' rendering (the line format says so instead)
    )
    assert json.loads((out / "student_prompt.json").read_text())["system_prompt"] == SYSTEM_PROMPT
    for fact in facts:
        assert fact in card


def test_reproduce_retrains_the_recorded_config_to_the_same_losses(
    trained: TrainResult, cache_dir: Path, tmp_path: Path
) -> None:
    from training.reproduce import reproduce

    report = reproduce(trained.output_dir, tmp_path / "again", cache_dir)
    assert report.data_checked and report.reproduced_within_tolerance, report
    assert report.reproduced["eval_loss"] is not None
    assert json.loads((tmp_path / "again" / "reproduction.json").read_text())["reproduced_within_tolerance"]


def test_a_partial_reproduction_stops_early_and_compares_each_logged_loss(
    trained: TrainResult, cache_dir: Path, tmp_path: Path
) -> None:
    from training.reproduce import reproduce

    report = reproduce(trained.output_dir, tmp_path / "part", cache_dir, steps=15)
    assert report.reproduced_within_tolerance, report
    # logging_steps 5 and eval_steps 15: the losses at steps 1, 5, 10, 15 and the validation loss at 15.
    assert list(report.reproduced) == ["loss@1", "loss@5", "loss@10", "loss@15", "eval_loss@15"]
    assert report.recorded["loss@15"] == next(e["loss"] for e in trained.log_history if e.get("step") == 15)
    saved = json.loads((tmp_path / "part" / "train_result.json").read_text())
    assert saved["global_step"] == 15 and saved["config"]["stop_after_steps"] == 15


def test_loss_is_taken_on_the_answer_only(data: dict[str, Path], cache_dir: Path) -> None:
    tokenizer = load_tokenizer(resolve_base("smollm2-135m", cache_dir), cache_dir)
    example = read_examples([data["train"]])[0]
    input_ids, labels = encode_chat(tokenizer, example.chat())
    answer = [token for token, label in zip(input_ids, labels, strict=True) if label != IGNORE_INDEX]
    prompt = input_ids[: labels.count(IGNORE_INDEX)]
    assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    assert tokenizer.decode(answer).startswith(example.messages[-1].content)
    assert example.messages[1].content in tokenizer.decode(prompt)


def test_student_answers_with_a_chunk_graph(student: tuple[object, object]) -> None:
    model, tokenizer = student
    text = generate_graph(model, tokenizer, HELD_OUT_TEXT, SYSTEM_PROMPT, max_new_tokens=128)
    assert set(json.loads(text)) == {"entities", "quadruples"}, text
    graph = ChunkGraph.model_validate_json(text)
    assert graph.quadruples, text


def test_merged_model_gives_the_same_outputs(
    student: tuple[object, object], trained: TrainResult, cache_dir: Path, tmp_path: Path
) -> None:
    import torch

    merged_dir = merge_adapter("smollm2-135m", trained.adapter_dir, tmp_path / "merged", cache_dir=cache_dir)
    merged, _ = load_student(merged_dir, None, cache_dir=cache_dir)
    model, tokenizer = student
    inputs = tokenizer(HELD_OUT_TEXT, return_tensors="pt")
    with torch.inference_mode():
        torch.testing.assert_close(merged(**inputs).logits, model(**inputs).logits, atol=1e-4, rtol=1e-4)


def test_build_set_counts_tokens_with_the_base_tokenizer(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTHKG_CACHE_DIR", str(cache_dir))  # the conversion made for this module
    records = tmp_path / "teacher.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in teacher_records()))
    # The default one_call system prompt alone is a few hundred tokens.
    args = ["build-set", "-r", str(records), "-o", str(tmp_path / "set"), "--max-length", "2000"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lengths = json.loads((tmp_path / "set" / "stats.json").read_text())["tokens"]
    assert 100 < lengths["min"] < lengths["max"] <= 2000
    args[-1] = str((lengths["min"] + lengths["max"]) // 2)
    result = CliRunner().invoke(app, args)
    stats = json.loads((tmp_path / "set" / "stats.json").read_text())
    assert result.exit_code == 0 and 0 < stats["too_long_dropped"] < stats["records"], result.output
    assert f"{stats['too_long_dropped']} over {args[-1]} tokens" in result.output


def test_too_long_examples_leave_nothing_to_train(
    data: dict[str, Path], cache_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(TrainingError, match=r"no training examples left: all \d+ are longer than 64 tokens"):
        train(tiny_config(data, tmp_path / "run", cache_dir, max_length=64))


def test_adapter_is_refused_on_another_base(trained: TrainResult, cache_dir: Path) -> None:
    other = model_folder(resolve_base("smollm2-135m", cache_dir), cache_dir)  # a folder: another identity
    with pytest.raises(TrainingError, match="trained for base model 'smollm2-135m'"):
        load_student(other, trained.adapter_dir, cache_dir=cache_dir)


def test_resume_continues_the_step_count(
    trained: TrainResult, data: dict[str, Path], cache_dir: Path, tmp_path: Path
) -> None:
    run = shutil.copytree(trained.output_dir, tmp_path / "run")
    resumed = train(tiny_config(data, run, cache_dir, max_steps=STEPS + 2, resume=True))
    assert resumed.resumed_from == run / "checkpoints" / f"checkpoint-{STEPS}"
    assert resumed.global_step == STEPS + 2 and resumed.seconds_per_step is not None
    assert resumed.losses == trained.losses  # the first run's history is kept (nothing new to log at 5 steps)
    summary = resumed.log_history[-1]  # the Trainer's account of this session: steps 31 and 32 only
    assert summary["step"] == STEPS + 2 and math.isfinite(summary["train_loss"])
    state = json.loads((run / "checkpoints" / f"checkpoint-{STEPS + 2}" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS + 2


def test_a_warm_start_begins_from_the_adapters_weights(
    trained: TrainResult, data: dict[str, Path], cache_dir: Path, tmp_path: Path
) -> None:
    # One step at a learning rate too small to move anything: what is saved is where training started.
    still = {"max_steps": 1, "learning_rate": 1e-12, "eval_steps": 1000, "save_steps": 1000}
    warm = train(tiny_config(data, tmp_path / "warm", cache_dir, init_adapter=trained.adapter_dir, **still))
    cold = train(tiny_config(data, tmp_path / "cold", cache_dir, **still))
    trained_b, warm_b, cold_b = (_lora_b(run.adapter_dir) for run in (trained, warm, cold))
    assert trained_b.keys() == warm_b.keys() and trained_b
    assert all(torch.allclose(warm_b[k], trained_b[k], atol=1e-6) for k in trained_b)
    # A fresh LoRA's B starts at zero (one Adam step of 1e-12 moves it by about that much); trained ones not.
    assert all(float(t.abs().max()) < 1e-9 for t in cold_b.values())
    assert max(float(t.abs().max()) for t in trained_b.values()) > 1e-3
    assert warm.first_loss is not None and cold.first_loss is not None and warm.first_loss < cold.first_loss
    assert json.loads((warm.adapter_dir / "train_result.json").read_text())["config"]["init_adapter"] == str(
        trained.adapter_dir
    )


def _lora_b(adapter: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(adapter / "adapter_model.safetensors")).items() if "lora_B" in k}
