"""LoRA fine-tuning of the single-call student on chat examples (see training.dataset), with the
Hugging Face `Trainer`.

`train(TrainConfig(...))` checks everything that can be checked cheaply before any long work (example
files, base model, output folder, resumable checkpoints and the base they were trained for), tokenizes
with the base model's chat template, drops examples over `max_length` tokens (with a warning; an error
when none are left), and trains with the loss on the answer tokens only (prompt tokens get label -100).
It logs progress, evaluates the validation loss every `eval_steps`, checkpoints every `save_steps` into
`<output_dir>/checkpoints/` (resume with `resume=True`), then writes into `output_dir` the final adapter,
`train_result.json`, a model card (README.md), and with `merge_adapter=True` a merged model in `merged/`.

`init_adapter` starts from an adapter's weights instead of a fresh LoRA (a warm start: e.g. the shipped
student retrained on a user's own corpus, or a run continued for more epochs with a new schedule); the
adapter must be for the same base, and its LoRA shape (rank, alpha, modules) replaces the configured one.

Scaling past one machine: the same entry point runs under `accelerate launch` or `torchrun`, e.g.

    accelerate launch --num_processes 8 -m training --data train.jsonl --base-model BASE --output DIR
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint HOST:29500 -m training --data ...

The `Trainer` detects the distributed environment and wraps the model in DDP (each process loads the
model, takes its shard of every batch, and gradients are averaged) with no code change here; the global
batch is batch_size x grad_accumulation x processes. Only rank 0 writes the adapter, the card and the
merged model. A GPU is used when present; on CPU-only machines `torchrun --nproc-per-node N` runs DDP over
gloo (checked here with 2 processes). `<output_dir>` must be a shared filesystem across machines so that
`resume` finds the checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from synthkg.config import default_cache_dir
from synthkg.extract.distilled import STUDENT_PROMPT_FILE, StudentPrompt
from training.dataset import Example, read_examples, split_examples
from training.errors import TrainingError
from training.student import (
    BaseModelRef,
    check_adapter,
    import_torch,
    load_model,
    load_tokenizer,
    resolve_base,
    save_merged,
)

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label the loss skips
CHECKPOINTS = "checkpoints"


@dataclass
class TrainConfig:
    train_files: list[Path]
    output_dir: Path
    base_model: str = "smollm2-135m"  # a local model name, a .gguf file or a transformers folder
    # Without validation files, this share of the training examples is held out (by hash, stable).
    validation_files: list[Path] = field(default_factory=list)
    validation_ratio: float = 0.1
    cache_dir: Path = field(default_factory=default_cache_dir)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    learning_rate: float = 2e-4
    epochs: float = 3.0
    max_steps: int | None = None  # when set, overrides epochs
    # Stop after this many optimizer steps with the schedule (learning rates, data order) still that of
    # the whole run: its first part, which `synthkg train reproduce --steps` compares with a record.
    stop_after_steps: int | None = None
    batch_size: int = 4
    # Examples per evaluation batch (default: batch_size). Evaluation holds a batch's logits (152k-token
    # vocabulary x positions): 1 keeps a 0.5B model's CPU run under 24 GB.
    eval_batch_size: int | None = None
    grad_accumulation: int = 1
    max_length: int = 1024  # tokens of prompt + answer; longer examples are dropped
    warmup_steps: int = 0
    weight_decay: float = 0.0
    logging_steps: int = 10
    eval_steps: int = 50
    save_steps: int = 50
    save_total_limit: int = 2
    seed: int = 0
    # Batches of similar lengths: random batches of the teacher's examples (383-1,613 tokens) are ~34%
    # padding, all of it computed.
    group_by_length: bool = True
    threads: int | None = None  # CPU threads (default: $OMP_NUM_THREADS, else all available cores)
    resume: bool = False  # continue from the last checkpoint in output_dir, if there is one
    merge_adapter: bool = False
    init_adapter: Path | None = None  # start from this adapter's weights (warm start), not a fresh LoRA

    def check(self) -> None:
        positive = {
            "lora_r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "batch_size": self.batch_size,
            "grad_accumulation": self.grad_accumulation,
            "max_length": self.max_length,
            "logging_steps": self.logging_steps,
            "eval_steps": self.eval_steps,
            "save_steps": self.save_steps,
        }
        bad = [f"{name}={value}" for name, value in positive.items() if value < 1]
        if self.max_steps is not None and self.max_steps < 1:
            bad.append(f"max_steps={self.max_steps}")
        if self.stop_after_steps is not None and self.stop_after_steps < 1:
            bad.append(f"stop_after_steps={self.stop_after_steps}")
        if self.max_steps is None and self.epochs <= 0:
            bad.append(f"epochs={self.epochs}")
        if not 0 <= self.lora_dropout < 1:
            bad.append(f"lora_dropout={self.lora_dropout}")
        if self.learning_rate <= 0:
            bad.append(f"learning_rate={self.learning_rate}")
        if not self.target_modules:
            bad.append("target_modules=[] (name at least one module, e.g. q_proj)")
        if not self.train_files:
            bad.append("train_files=[] (give at least one example file)")
        if bad:
            raise TrainingError("bad training settings: " + ", ".join(bad))


@dataclass
class TrainResult:
    output_dir: Path
    adapter_dir: Path
    merged_dir: Path | None
    base_model: str
    train_examples: int
    validation_examples: int
    dropped_too_long: int
    global_step: int
    resumed_from: Path | None
    first_loss: float | None
    last_loss: float | None
    eval_loss: float | None
    seconds_per_step: float | None
    train_seconds: float
    load_seconds: float
    device: str  # where the main process trained, e.g. "cpu" or "cuda:0"
    processes: int  # 1, or the number of distributed (DDP) processes
    rank: int  # this process's index among them; only rank 0 writes files
    log_history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def losses(self) -> list[tuple[int, float]]:
        """(step, training loss) of every logged step, this run and the runs it resumed."""
        return [(int(e["step"]), float(e["loss"])) for e in self.log_history if "loss" in e]


def encode_chat(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """(input ids, labels) of a conversation in the model's chat template: labels are -100 on every
    token up to the final assistant message, so the loss is taken on the answer only."""
    full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=True, add_generation_prompt=True, return_dict=True
    )["input_ids"]
    if full[: len(prompt)] != prompt:
        raise TrainingError(
            "the chat template renders the prompt differently once the answer is appended; "
            "cannot tell prompt tokens from answer tokens with this model"
        )
    return list(full), [IGNORE_INDEX] * len(prompt) + list(full[len(prompt) :])


def _last_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint: the Trainer writes trainer_state.json last, so a folder without
    it was cut off mid-save (a killed run) and cannot be resumed from."""
    complete = []
    for folder in checkpoints.glob("checkpoint-*") if checkpoints.is_dir() else ():
        step = folder.name.removeprefix("checkpoint-")
        if step.isdigit() and folder.is_dir():
            if (folder / "trainer_state.json").is_file():
                complete.append((int(step), folder))
            else:
                logger.warning("ignoring incomplete checkpoint %s (no trainer_state.json)", folder)
    return max(complete)[1] if complete else None


def _check_output_dir(config: TrainConfig, ref: BaseModelRef) -> Path | None:
    """The checkpoint to resume from, after checking that the output folder holds no other run."""
    output = Path(config.output_dir)
    if output.exists() and not output.is_dir():
        raise TrainingError(f"output path {output} is a file, not a folder")
    checkpoint = _last_checkpoint(output / CHECKPOINTS)
    finished = (output / "adapter_config.json").is_file()
    if not config.resume and (checkpoint or finished):
        raise TrainingError(
            f"{output} already holds a training run ({'checkpoints' if checkpoint else 'an adapter'}): "
            "pass --resume to continue it, or choose another output folder"
        )
    if finished:
        check_adapter(output, ref)
    if checkpoint is not None:
        _check_same_lora(config, check_adapter(checkpoint, ref), checkpoint)
    if config.resume and checkpoint is None:
        logger.warning("no checkpoint in %s to resume from: training from the start", output / CHECKPOINTS)
    return checkpoint


def _configured_lora_shape(config: TrainConfig) -> dict[str, Any]:
    """The LoRA shape `config` asks for, in peft's keys (target modules sorted)."""
    return {"r": config.lora_r, "lora_alpha": config.lora_alpha,
            "target_modules": sorted(config.target_modules)}


def _saved_lora_shape(saved: dict[str, Any]) -> dict[str, Any]:
    """The LoRA shape an adapter config records (None where it records none); target modules sorted, as
    peft may save them as a set or as one name."""
    modules = saved.get("target_modules") or []
    return {"r": saved.get("r"), "lora_alpha": saved.get("lora_alpha"),
            "target_modules": [modules] if isinstance(modules, str) else sorted(modules)}


def warm_start_shape(config: TrainConfig, ref: BaseModelRef) -> TrainConfig:
    """`config`, or with `init_adapter` the same config with that adapter's LoRA shape (rank, alpha, target
    modules), after checking that the adapter exists and was trained for `ref`."""
    if config.init_adapter is None:
        return config
    configured = _configured_lora_shape(config)
    saved = _saved_lora_shape(check_adapter(config.init_adapter, ref))
    shape = {key: configured[key] if value is None else value for key, value in saved.items()}
    changed = [f"{key} {configured[key]} -> {shape[key]}" for key in shape if configured[key] != shape[key]]
    if changed:
        logger.info("warm start from %s: its LoRA shape replaces the configured one (%s)",
                    config.init_adapter, "; ".join(changed))
    return replace(config, lora_r=int(shape["r"]), lora_alpha=int(shape["lora_alpha"]),
                   target_modules=shape["target_modules"])


def _check_same_lora(config: TrainConfig, saved: dict[str, Any], checkpoint: Path) -> None:
    """Resuming needs the checkpoint's LoRA shape; a mismatch would fail deep inside weight loading."""
    wanted, found = _configured_lora_shape(config), _saved_lora_shape(saved)
    differ = [f"{key} {found[key]} (asked: {wanted[key]})" for key in wanted if found[key] != wanted[key]]
    if differ:
        raise TrainingError(
            f"cannot resume from {checkpoint}: it was trained with "
            + ", ".join(differ)
            + "; resume with its LoRA settings, or train into another output folder"
        )


def _encode_all(
    tokenizer: Any, examples: list[Example], max_length: int, what: str
) -> tuple[list[dict[str, list[int]]], int]:
    encoded, dropped = [], 0
    for example in examples:
        input_ids, labels = encode_chat(tokenizer, example.chat())
        if len(input_ids) > max_length:
            dropped += 1
            continue
        encoded.append({"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels})
    if dropped:
        logger.warning(
            "dropped %d of %d %s examples longer than %d tokens", dropped, len(examples), what, max_length
        )
    return encoded, dropped


def _progress_callback(total_steps: int) -> Any:
    from transformers import TrainerCallback

    class ProgressLog(TrainerCallback):  # type: ignore[misc]
        """One log line per logging step, with the time per optimizer step, for batch jobs' logs."""

        def __init__(self) -> None:
            self.last: tuple[int, float] | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.last = (state.global_step, time.perf_counter())

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
        ) -> None:
            if not state.is_world_process_zero or not logs or self.last is None:
                return
            step, now = state.global_step, time.perf_counter()
            if "loss" in logs:
                pace = (now - self.last[1]) / max(1, step - self.last[0])
                self.last = (step, now)
                logger.info(
                    "step %d/%d  loss %.4f  lr %.2e  %.2f s/step",
                    step,
                    total_steps,
                    logs["loss"],
                    logs.get("learning_rate", 0.0),
                    pace,
                )
            if "eval_loss" in logs:
                logger.info("step %d/%d  validation loss %.4f", step, total_steps, logs["eval_loss"])

    return ProgressLog()


def _stop_callback(steps: int) -> Any:
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):  # type: ignore[misc]
        """Ends training after `steps` optimizer steps; the step's own logging and evaluation still run."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step >= steps:
                control.should_training_stop = True

    return StopAfter()


def train(config: TrainConfig) -> TrainResult:
    """Train (or, with `config.resume`, continue training) a LoRA adapter; see the module docstring."""
    config.check()
    train_examples = read_examples(config.train_files)
    if config.validation_files:
        validation_examples = read_examples(config.validation_files)
    else:
        train_examples, validation_examples = split_examples(train_examples, config.validation_ratio)
    ref = resolve_base(config.base_model, config.cache_dir)
    config = warm_start_shape(config, ref)
    resume_from = _check_output_dir(config, ref)
    prompt = training_prompt(config.train_files[0], train_examples[0])

    torch = import_torch(config.threads)
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments, set_seed

    started = time.perf_counter()
    tokenizer = load_tokenizer(ref, config.cache_dir, config.threads)
    train_set, dropped = _encode_all(tokenizer, train_examples, config.max_length, "training")
    if not train_set:
        raise TrainingError(
            f"no training examples left: all {len(train_examples)} are longer than {config.max_length} "
            "tokens; raise --max-length"
        )
    eval_set, dropped_eval = _encode_all(tokenizer, validation_examples, config.max_length, "validation")
    if not eval_set:
        logger.warning("no validation examples: the validation loss is not measured")

    model = load_model(ref, config.cache_dir, config.threads)
    set_seed(config.seed)  # the LoRA initialization and the data order
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
    )
    try:
        if config.init_adapter is None:
            model = get_peft_model(model, lora)
        else:  # the adapter's weights, trainable, with this run's dropout
            model = PeftModel.from_pretrained(model, str(config.init_adapter), is_trainable=True, config=lora)
    except ValueError as exc:  # e.g. a target module the architecture does not have
        raise TrainingError(f"cannot put LoRA on {ref.identity}: {exc}") from None
    load_seconds = time.perf_counter() - started

    output = Path(config.output_dir)
    tokenizer.padding_side = "right"
    args = TrainingArguments(
        output_dir=str(output / CHECKPOINTS),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size or config.batch_size,
        gradient_accumulation_steps=config.grad_accumulation,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if eval_set else "no",
        eval_steps=config.eval_steps,
        # Only the loss: otherwise evaluation keeps every example's logits (152k-token vocabulary x
        # positions x examples: 15+ GB for 24 validation examples), which got a CPU run OOM-killed.
        prediction_loss_only=True,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        report_to="none",
        disable_tqdm=True,  # ProgressLog writes one line per logging step instead
        remove_unused_columns=False,
        # Without an accelerator, say so: then `torchrun` on CPUs gives one DDP group (gloo) instead of
        # N copies each training alone.
        use_cpu=not torch.accelerator.is_available(),
        dataloader_pin_memory=torch.accelerator.is_available(),
    )
    steps_per_epoch = math.ceil(len(train_set) / (config.batch_size * config.grad_accumulation))
    total_steps = config.max_steps or math.ceil(config.epochs * steps_per_epoch)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set or None,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX),
        processing_class=tokenizer,
        callbacks=[_progress_callback(total_steps)],
    )
    if config.stop_after_steps is not None:
        trainer.add_callback(_stop_callback(config.stop_after_steps))
    if args.process_index == 0:
        logger.info(
            "training %s + LoRA r=%d on %d examples (%d validation), %d steps%s%s",
            ref.identity,
            config.lora_r,
            len(train_set),
            len(eval_set),
            total_steps,
            f", stopping after {config.stop_after_steps}" if config.stop_after_steps else "",
            f", resuming from {resume_from}" if resume_from else "",
        )
    # Its dict printouts would duplicate ProgressLog's lines.
    trainer.remove_callback(PrinterCallback)
    start_step = 0
    if resume_from is not None:
        start_step = json.loads((resume_from / "trainer_state.json").read_text())["global_step"]
    with warnings.catch_warnings():
        # peft looks for the base's config.json under the adapter's recorded base name, which is a
        # local model name here, and warns on every save that it assumes an unchanged vocabulary.
        warnings.filterwarnings("ignore", message="Could not find a config file in", category=UserWarning)
        started = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        train_seconds = time.perf_counter() - started
        state = trainer.state  # the Trainer measured the validation loss at the last step too
        steps_run = state.global_step - start_step
        result = TrainResult(
            output_dir=output,
            adapter_dir=output,
            merged_dir=output / "merged" if config.merge_adapter else None,
            base_model=ref.identity,
            train_examples=len(train_set),
            validation_examples=len(eval_set),
            dropped_too_long=dropped + dropped_eval,
            global_step=state.global_step,
            resumed_from=resume_from,
            first_loss=next((e["loss"] for e in state.log_history if "loss" in e), None),
            last_loss=_last(state.log_history, "loss"),
            eval_loss=_last(state.log_history, "eval_loss"),
            seconds_per_step=train_seconds / steps_run if steps_run > 0 else None,
            train_seconds=train_seconds,
            load_seconds=load_seconds,
            device=str(args.device),
            processes=args.world_size,
            rank=args.process_index,
            log_history=list(state.log_history),
        )
        if result.rank == 0:
            model.save_pretrained(output)
            _write_records(config, result, prompt)
            if result.merged_dir is not None:
                save_merged(model, tokenizer, result.merged_dir)
            elif (output / "merged").is_dir():
                # Merged from an earlier adapter of this run: it no longer matches the adapter.
                shutil.rmtree(output / "merged")
                logger.warning("removed %s: it held the merge of an earlier adapter", output / "merged")
            logger.info(
                "adapter written to %s (step %d, last loss %s)", output, state.global_step, result.last_loss
            )
    return result


def _last(log_history: list[dict[str, Any]], key: str) -> Any:
    return next((e[key] for e in reversed(log_history) if key in e), None)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def training_prompt(train_file: Path, example: Example) -> StudentPrompt | None:
    """The prompt the examples were built with, from the build-set stats.json beside them, when its
    system prompt is the one the examples carry; None otherwise (the user template is not recoverable
    from rendered examples)."""
    try:
        stats = json.loads((train_file.parent / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    first = example.messages[0]
    if not isinstance(stats, dict) or first.role != "system" or stats.get("system_prompt") != first.content:
        return None
    if not isinstance(stats.get("user_template"), str):
        return None
    return StudentPrompt(
        system_prompt=first.content,
        user_template=stats["user_template"],
        prompt=stats.get("prompt", "custom"),
        output_format=stats.get("output_format", "json"),
    )


def _write_records(config: TrainConfig, result: TrainResult, prompt: StudentPrompt | None) -> None:
    """train_result.json (everything, machine-readable), student_prompt.json (how to prompt the
    student) and README.md (the model card)."""
    if prompt is not None:
        prompt_file = result.output_dir / STUDENT_PROMPT_FILE
        prompt_file.write_text(prompt.model_dump_json(indent=2) + "\n", encoding="utf-8")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    settings["train_files"] = [str(p) for p in config.train_files]
    settings["validation_files"] = [str(p) for p in config.validation_files]
    record = {
        key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(result).items()
    }
    record["config"] = settings
    # So that `synthkg train reproduce` can tell whether the data is still what this adapter learned.
    record["data_sha256"] = {str(p): file_sha256(p) for p in [*config.train_files, *config.validation_files]}
    (result.output_dir / "train_result.json").write_text(
        json.dumps(record, indent=2) + "\n", encoding="utf-8"
    )

    data = "\n".join(f"- `{p}`" for p in [*config.train_files, *config.validation_files])
    held_out = "" if config.validation_files else f" (held out by hash, ratio {config.validation_ratio})"
    steps = f"max_steps {config.max_steps}" if config.max_steps else f"{config.epochs} epochs"
    if config.stop_after_steps:
        steps += f", stopped after step {config.stop_after_steps}"
    resumed = f" (resumed from {result.resumed_from.name})" if result.resumed_from else ""
    start = f"the weights of adapter `{config.init_adapter}`" if config.init_adapter else "a fresh LoRA"
    hyper = {
        "LoRA r / alpha / dropout": f"{config.lora_r} / {config.lora_alpha} / {config.lora_dropout}",
        "target modules": ", ".join(config.target_modules),
        "learning rate": config.learning_rate,
        "length": steps,
        "batch size x grad accumulation": f"{config.batch_size} x {config.grad_accumulation}",
        "max length (tokens)": config.max_length,
        "warmup steps / weight decay": f"{config.warmup_steps} / {config.weight_decay}",
        "seed": config.seed,
        "start": start,
        "batches": "grouped by length" if config.group_by_length else "random",
    }
    threads = config.threads or "torch default"
    table = "\n".join(f"| {k} | {v} |" for k, v in hyper.items())
    rendering = (
        "in the line format (`TYPE: name; name`, `> proposition`, `subject | relation | object`)"
        if prompt is not None and prompt.output_format == "lines"
        else "as compact JSON (`entities`, `quadruples`)"
    )
    prompt_note = (
        f"{STUDENT_PROMPT_FILE} ({prompt.prompt}), which the distilled extractor reads"
        if prompt is not None
        else "see the examples' messages (no build-set stats.json beside them to record it from)"
    )
    card = f"""---
library_name: peft
base_model: {result.base_model}
tags: [synthkg, distill-synthkg, lora, knowledge-graph-extraction]
---

# Distill-SynthKG student adapter

A LoRA adapter that turns `{result.base_model}` into a single-call knowledge-graph extractor: given a
chunk of text it answers with the chunk's graph {rendering}, trained on
the outputs of the multi-step SynthKG teacher.

## Base model
`{result.base_model}` (recorded in adapter_config.json; loading the adapter on another base is refused)

## Data
{data}

- training examples: {result.train_examples}
- validation examples: {result.validation_examples}{held_out}
- dropped as longer than {config.max_length} tokens: {result.dropped_too_long}

## Hyper-parameters
| setting | value |
|---|---|
{table}

## Results
- optimizer steps: {result.global_step}{resumed}
- training loss, first / last logged step: {_fmt(result.first_loss)} / {_fmt(result.last_loss)}
- validation loss (end): {_fmt(result.eval_loss)}

## Timings
- model load and tokenization: {result.load_seconds:.1f} s
- training: {result.train_seconds:.1f} s, {_fmt(result.seconds_per_step, 2)} s/step
  (device {result.device} x {result.processes} process(es); CPU threads per process: {threads})

## Use
```python
from training.student import generate_graph, load_student
model, tokenizer = load_student("{result.base_model}", "{result.output_dir}")
print(generate_graph(model, tokenizer, chunk_text, system_prompt))
```
or `synthkg ingest --extractor distilled --model {result.output_dir}`: over a GGUF base it runs on
llama.cpp (the adapter is exported once; `synthkg train export-gguf` writes it for llama-server),
with `--backend hf` on transformers. Prompt the student with the system prompt and user template it
was trained with: {prompt_note}.
"""
    (result.output_dir / "README.md").write_text(card, encoding="utf-8")
