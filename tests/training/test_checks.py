"""What training refuses before any long work: bad settings, missing base models, adapters trained for
another base, output folders holding another run. No model is loaded here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthkg.config import default_cache_dir
from synthkg.llm.local_models import resolve_model_path
from tests.training.samples import SYSTEM_PROMPT, teacher_records
from training.dataset import DatasetError, TeacherRecord, build_dataset, write_dataset
from training.errors import TrainingError
from training.student import load_student, resolve_base
from training.trainer import TrainConfig, _last_checkpoint, train, warm_start_shape


@pytest.fixture
def example_files(tmp_path: Path) -> dict[str, Path]:
    build = build_dataset([TeacherRecord.model_validate(r) for r in teacher_records()], SYSTEM_PROMPT)
    return write_dataset(build, tmp_path / "set")


def write_adapter(folder: Path, base: str, *, state: bool = False, **lora: object) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, **lora}))
    if state:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    return folder


def config(example_files: dict[str, Path], tmp_path: Path, **overrides: object) -> TrainConfig:
    settings: dict = {"train_files": [example_files["train"]], "output_dir": tmp_path / "run"}
    settings.update(overrides)
    return TrainConfig(**settings)


def test_bad_settings_are_listed(example_files: dict[str, Path], tmp_path: Path) -> None:
    bad = config(example_files, tmp_path, lora_r=0, max_steps=0, lora_dropout=1.5, target_modules=[])
    with pytest.raises(TrainingError, match=r"lora_r=0.*max_steps=0.*lora_dropout=1\.5.*target_modules"):
        train(bad)
    with pytest.raises(TrainingError, match="train_files"):
        train(config(example_files, tmp_path, train_files=[]))


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("/nowhere/model.gguf", r"base model file not found: /nowhere/model\.gguf"),
        ("gpt-17", r"base model not found: 'gpt-17' is not a local model name \(.*smollm2-135m"),
        ("/nowhere/folder", "a transformers model folder"),
    ],
)
def test_missing_base_model(example_files: dict[str, Path], tmp_path: Path, base: str, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        train(config(example_files, tmp_path, base_model=base))
    with pytest.raises(TrainingError, match=message):
        load_student(base, None)


def test_the_same_gguf_by_path_is_the_same_base() -> None:
    path = resolve_model_path("smollm2-135m", default_cache_dir())
    assert resolve_base(str(path)).identity == "smollm2-135m" == resolve_base("smollm2-135m").identity


def test_bad_example_file_is_reported_before_the_model(
    example_files: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(example_files["train"].read_text() + '{"messages": [\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl:\d+: malformed JSON"):
        train(config(example_files, tmp_path, train_files=[bad], base_model="/nowhere/model.gguf"))


def test_adapter_for_another_base_is_refused(tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "adapter", "qwen2.5-coder-0.5b")
    with pytest.raises(
        TrainingError, match=r"trained for base model 'qwen2\.5-coder-0\.5b', not 'smollm2-135m'"
    ):
        load_student("smollm2-135m", adapter)
    with pytest.raises(TrainingError, match="not a LoRA adapter folder"):
        load_student("smollm2-135m", tmp_path)


def test_output_folder_with_a_run_needs_resume(example_files: dict[str, Path], tmp_path: Path) -> None:
    write_adapter(tmp_path / "run" / "checkpoints" / "checkpoint-4", "smollm2-135m", state=True)
    with pytest.raises(TrainingError, match=r"already holds a training run.*--resume"):
        train(config(example_files, tmp_path))


def test_resuming_a_run_of_another_base_is_refused(example_files: dict[str, Path], tmp_path: Path) -> None:
    write_adapter(tmp_path / "run" / "checkpoints" / "checkpoint-4", "qwen2.5-coder-0.5b", state=True)
    with pytest.raises(
        TrainingError, match=r"checkpoint-4 was trained for base model 'qwen2\.5-coder-0\.5b'"
    ):
        train(config(example_files, tmp_path, resume=True))


def test_resuming_with_other_lora_settings_is_refused(example_files: dict[str, Path], tmp_path: Path) -> None:
    lora = {"r": 16, "lora_alpha": 16, "target_modules": ["v_proj", "q_proj"]}
    write_adapter(tmp_path / "run" / "checkpoints" / "checkpoint-4", "smollm2-135m", state=True, **lora)
    with pytest.raises(TrainingError, match=r"cannot resume from .*checkpoint-4: .*with r 16 \(asked: 8\);"):
        train(config(example_files, tmp_path, resume=True))


def test_a_warm_start_takes_the_adapters_lora_shape(example_files: dict[str, Path], tmp_path: Path) -> None:
    lora = {"r": 16, "lora_alpha": 32, "target_modules": ["v_proj", "q_proj", "o_proj"]}
    adapter = write_adapter(tmp_path / "student", "smollm2-135m", **lora)
    ref = resolve_base("smollm2-135m")
    warm = warm_start_shape(config(example_files, tmp_path, init_adapter=adapter), ref)
    assert (warm.lora_r, warm.lora_alpha, warm.target_modules) == (16, 32, ["o_proj", "q_proj", "v_proj"])
    cold = config(example_files, tmp_path)
    assert warm_start_shape(cold, ref) is cold


def test_a_warm_start_from_another_base_or_no_adapter_is_refused(
    example_files: dict[str, Path], tmp_path: Path
) -> None:
    adapter = write_adapter(tmp_path / "student", "qwen2.5-coder-0.5b")
    with pytest.raises(TrainingError, match=r"for base model 'qwen2\.5-coder-0\.5b', not 'smollm2-135m'"):
        train(config(example_files, tmp_path, init_adapter=adapter))
    with pytest.raises(TrainingError, match="not a LoRA adapter folder"):
        train(config(example_files, tmp_path, init_adapter=tmp_path / "set"))


def test_incomplete_checkpoints_are_not_resumed_from(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    write_adapter(checkpoints / "checkpoint-4", "smollm2-135m", state=True)
    write_adapter(checkpoints / "checkpoint-10", "smollm2-135m", state=True)
    write_adapter(checkpoints / "checkpoint-12", "smollm2-135m")  # cut off mid-save
    assert _last_checkpoint(checkpoints) == checkpoints / "checkpoint-10"
    assert _last_checkpoint(tmp_path / "nothing") is None


def test_the_training_prompt_comes_from_the_build_set_stats_beside_the_examples(
    example_files: dict[str, Path],
) -> None:
    from training.dataset import read_examples
    from training.trainer import training_prompt

    train_file = example_files["train"]
    example = read_examples([train_file])[0]
    prompt = training_prompt(train_file, example)
    assert prompt is not None and prompt.system_prompt == SYSTEM_PROMPT and "$chunk" in prompt.user_template
    stats = json.loads(example_files["stats"].read_text())
    example_files["stats"].write_text(json.dumps(stats | {"system_prompt": "another prompt"}))
    assert training_prompt(train_file, example) is None  # not the prompt these examples carry
    example_files["stats"].unlink()
    assert training_prompt(train_file, example) is None
