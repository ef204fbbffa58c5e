"""`synthkg train reproduce`: what it checks before retraining (no model loaded here; the retraining
itself is in test_training_slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.errors import TrainingError
from training.reproduce import check_partial, logged_losses, recorded_config
from training.trainer import file_sha256


def adapter_with_record(tmp_path: Path, *, hashes: bool = True, **config: object) -> tuple[Path, Path]:
    tmp_path.mkdir(exist_ok=True)
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": []}\n', encoding="utf-8")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    settings = {"train_files": [str(data)], "output_dir": "old", "lora_r": 4, "no_longer_an_option": 1}
    record: dict[str, object] = {"config": settings | config, "eval_loss": 0.5}
    if hashes:
        record["data_sha256"] = {str(data): file_sha256(data)}
    (adapter / "train_result.json").write_text(json.dumps(record), encoding="utf-8")
    return adapter, data


def test_the_recorded_config_is_retrained_into_the_new_folder(tmp_path: Path) -> None:
    adapter, data = adapter_with_record(tmp_path)
    config, record, checked = recorded_config(adapter, tmp_path / "new", tmp_path / "cache")
    assert (config.train_files, config.output_dir, config.lora_r) == ([data], tmp_path / "new", 4)
    assert config.group_by_length is False  # recorded before the option existed: random batches
    assert checked and record["eval_loss"] == 0.5
    adapter, _ = adapter_with_record(tmp_path / "grouped", group_by_length=True)
    assert recorded_config(adapter, tmp_path / "new", tmp_path / "cache")[0].group_by_length is True


def test_changed_or_missing_data_and_missing_records_stop_it_before_training(tmp_path: Path) -> None:
    adapter, data = adapter_with_record(tmp_path)
    data.write_text('{"messages": ["changed"]}\n', encoding="utf-8")
    with pytest.raises(TrainingError, match="data changed since"):
        recorded_config(adapter, tmp_path / "new", tmp_path / "cache")
    data.unlink()
    with pytest.raises(TrainingError, match="not found"):
        recorded_config(adapter, tmp_path / "new", tmp_path / "cache")
    with pytest.raises(TrainingError, match="no training record"):
        recorded_config(tmp_path, tmp_path / "new", tmp_path / "cache")


def test_a_record_without_hashes_is_taken_as_it_is(tmp_path: Path) -> None:
    adapter, _ = adapter_with_record(tmp_path, hashes=False)
    assert recorded_config(adapter, tmp_path / "new", tmp_path / "cache")[2] is False


def test_the_recorded_base_is_used_or_a_file_of_the_same_model(tmp_path: Path) -> None:
    # Trained on a GPU machine from a carried file: the record names the local model it is.
    adapter, _ = adapter_with_record(tmp_path, base_model="/tmp/SmolLM2-135M-Instruct.Q4_1.gguf")
    record = json.loads((adapter / "train_result.json").read_text(encoding="utf-8"))
    (adapter / "train_result.json").write_text(json.dumps(record | {"base_model": "smollm2-135m"}), "utf-8")
    assert recorded_config(adapter, tmp_path / "new", tmp_path / "cache")[0].base_model == "smollm2-135m"
    same = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    same.write_bytes(b"GGUF")
    config = recorded_config(adapter, tmp_path / "new", tmp_path / "cache", base_model=str(same))[0]
    assert config.base_model == str(same)
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF")
    with pytest.raises(TrainingError, match="was trained on 'smollm2-135m', not on"):
        recorded_config(adapter, tmp_path / "new", tmp_path / "cache", base_model=str(other))


HISTORY = [
    {"step": 1, "loss": 0.6},
    {"step": 2, "loss": 0.5},
    {"step": 2, "eval_loss": 0.55},
    {"step": 4, "loss": 0.4},
    {"train_runtime": 9.0},  # the Trainer's summary entry carries no step
]


def test_a_partial_run_compares_every_loss_logged_up_to_its_last_step() -> None:
    assert logged_losses(HISTORY, 2) == {"loss@1": 0.6, "loss@2": 0.5, "eval_loss@2": 0.55}
    assert list(logged_losses(HISTORY, 10)) == ["loss@1", "loss@2", "eval_loss@2", "loss@4"]


def test_a_partial_run_must_stop_inside_a_logged_record(tmp_path: Path) -> None:
    record = {"global_step": 4, "log_history": HISTORY}
    check_partial(record, 2, tmp_path)
    for steps in (0, 4, 9):
        with pytest.raises(TrainingError, match="steps must be between 1 and 3"):
            check_partial(record, steps, tmp_path)
    with pytest.raises(TrainingError, match="recorded no losses in its first 3 steps"):
        check_partial({"global_step": 4, "log_history": [{"step": 4, "loss": 0.4}]}, 3, tmp_path)
