"""Retrain an adapter from the configuration it recorded and compare the metrics: does `synthkg train`
on this machine give the shipped (or any earlier) adapter again?

The run reads `train_result.json` of the adapter (the whole TrainConfig, the data files' sha256 and the
losses), trains the same configuration into a fresh folder, and compares the first and last logged
training loss and the final validation loss. Training is seeded (LoRA initialization, dropout, data
order), so on the same software the losses agree closely; float reductions that depend on thread count
or CPU kind leave differences of a fraction of a percent, hence the relative tolerance.

With `steps`, only the first part of the run is retrained (the schedule still that of the whole run), and
every training and validation loss it logs is compared with the record's at the same step: a check in
a fraction of the time the whole run takes, and one that shows where two runs part."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from training.errors import TrainingError
from training.student import resolve_base
from training.trainer import TrainConfig, TrainResult, file_sha256, train

RESULT_FILE = "train_result.json"
COMPARED = ("first_loss", "last_loss", "eval_loss")
# Options of TrainConfig added after an adapter was trained, with the value it was trained with.
_BEFORE_THE_OPTION = {"group_by_length": False}


@dataclass
class Reproduction:
    adapter_dir: Path
    output_dir: Path
    recorded: dict[str, float | None]
    reproduced: dict[str, float | None]
    relative_difference: dict[str, float | None]
    tolerance: float
    reproduced_within_tolerance: bool
    data_checked: bool  # the data files' hashes were recorded and match
    seconds: float
    steps: int | None = None  # the optimizer steps retrained, when not the whole run

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), Path) else v) for f in fields(self)}


def recorded_config(
    adapter_dir: Path, output_dir: Path, cache_dir: Path, base_model: str | None = None
) -> tuple[TrainConfig, dict, bool]:
    """(the config to retrain with, the recorded result, whether data hashes were checked). Fails before
    any training when the record is missing, the data files are missing or changed, or `base_model`
    (a file standing in for a base not installed here) is not the recorded base."""
    path = adapter_dir / RESULT_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        settings = dict(record["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainingError(f"{path}: no training record to reproduce ({exc})") from None
    known = {f.name for f in fields(TrainConfig)}
    settings = {**_BEFORE_THE_OPTION, **{k: v for k, v in settings.items() if k in known}}
    files = [Path(p) for p in [*settings["train_files"], *settings.get("validation_files", [])]]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise TrainingError(f"data of {adapter_dir} not found: {', '.join(missing)} (run from the repo root)")
    hashes = record.get("data_sha256") or {}
    changed = [str(p) for p in files if str(p) in hashes and hashes[str(p)] != file_sha256(p)]
    if changed:
        raise TrainingError(f"data changed since {adapter_dir} was trained: {', '.join(changed)}")
    # The base as the adapter records it (a local model name), not the path it was given where it was
    # trained: a GPU machine without the model's packages trains from a carried file.
    recorded_base = record.get("base_model") or settings.get("base_model")
    if base_model is not None:
        identity = resolve_base(base_model, cache_dir).identity
        if identity != recorded_base:
            raise TrainingError(f"{adapter_dir} was trained on {recorded_base!r}, not on {identity!r}")
    if base_model or recorded_base:
        settings["base_model"] = base_model or recorded_base
    settings.update(
        train_files=[Path(p) for p in settings["train_files"]],
        validation_files=[Path(p) for p in settings.get("validation_files", [])],
        output_dir=output_dir,
        cache_dir=cache_dir,
        resume=False,
        merge_adapter=False,
        init_adapter=Path(settings["init_adapter"]) if settings.get("init_adapter") else None,
    )
    return TrainConfig(**settings), record, bool(hashes) and all(str(p) in hashes for p in files)


def logged_losses(log_history: list[dict[str, Any]], steps: int) -> dict[str, float]:
    """{"loss@STEP" / "eval_loss@STEP": value} of a Trainer log history, up to step `steps`."""
    return {
        f"{key}@{entry['step']}": float(entry[key])
        for entry in log_history
        if entry.get("step", steps + 1) <= steps
        for key in ("loss", "eval_loss")
        if key in entry
    }


def check_partial(record: dict[str, Any], steps: int, adapter_dir: Path) -> None:
    """A partial rerun needs a record that ran past `steps` and logged losses within them."""
    recorded_steps = int(record.get("global_step") or 0)
    if not 1 <= steps < recorded_steps:
        raise TrainingError(
            f"steps must be between 1 and {recorded_steps - 1}, fewer than the recorded run's "
            f"{recorded_steps} (got {steps}); leave it out to retrain the whole run"
        )
    if not logged_losses(record.get("log_history") or [], steps):
        raise TrainingError(f"{adapter_dir} recorded no losses in its first {steps} steps to compare with")


def reproduce(
    adapter_dir: str | Path,
    output_dir: str | Path,
    cache_dir: Path,
    *,
    tolerance: float = 0.02,
    threads: int | None = None,
    base_model: str | None = None,
    steps: int | None = None,
    resume: bool = False,
) -> Reproduction:
    """Retrain `adapter_dir`'s recorded configuration into `output_dir` and compare its losses (relative
    difference <= `tolerance` for each): the first / last training loss and the validation loss, or with
    `steps` every loss logged in the first `steps` steps. `resume` continues an interrupted reproduction
    in `output_dir` from its last checkpoint. Writes `reproduction.json` into `output_dir`."""
    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    config, record, data_checked = recorded_config(adapter_dir, output_dir, cache_dir, base_model)
    if threads is not None:
        config.threads = threads
    config.resume = resume
    if steps is not None:
        check_partial(record, steps, adapter_dir)
        config.stop_after_steps = steps
    started = time.perf_counter()
    result: TrainResult = train(config)
    reproduced: dict[str, float | None]
    if steps is None:
        recorded = {key: record.get(key) for key in COMPARED}
        reproduced = {key: getattr(result, key) for key in COMPARED}
    else:
        reproduced = dict(logged_losses(result.log_history, steps))
        earlier = logged_losses(record["log_history"], steps)
        recorded = {key: earlier.get(key) for key in reproduced}
    difference = {
        key: abs(reproduced[key] - value) / abs(value) if value and reproduced[key] is not None else None
        for key, value in recorded.items()
    }
    report = Reproduction(
        adapter_dir=adapter_dir,
        output_dir=output_dir,
        recorded=recorded,
        reproduced=reproduced,
        relative_difference=difference,
        tolerance=tolerance,
        reproduced_within_tolerance=any(v is not None for v in recorded.values())
        and all(d is not None and d <= tolerance for k, d in difference.items() if recorded[k] is not None),
        data_checked=data_checked,
        seconds=round(time.perf_counter() - started, 1),
        steps=steps,
    )
    (output_dir / "reproduction.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", "utf-8")
    return report
