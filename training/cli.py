"""`synthkg train`: build a chat training set from teacher outputs, and train a LoRA student on it.

    synthkg train build-set --records teacher.jsonl --output data/distill
    synthkg train --data data/distill/train.jsonl --validation data/distill/validation.jsonl \\
        --base-model smollm2-135m --output runs/student --max-steps 200

Registered in synthkg/cli.py as a sub-app; also runs alone as `python -m training ...`, which is the
form `accelerate launch -m training ...` and `torchrun -m training ...` start on many GPUs or machines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from synthkg.cli_options import fail, root_settings
from synthkg.config import Settings
from synthkg.prompts import Prompt, PromptError, load_prompt
from training.dataset import (
    Example,
    TeacherRecord,
    build_dataset,
    read_teacher_records,
    records_from_store,
    write_dataset,
)
from training.errors import TrainingError
from training.trainer import TrainConfig, encode_chat, train

app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_DEFAULTS = TrainConfig(train_files=[], output_dir=Path())


def _settings(ctx: typer.Context) -> Settings:
    """The settings `synthkg` read, or (run as `python -m training`) the default search."""
    try:
        return root_settings(ctx)
    except (FileNotFoundError, ValueError) as exc:
        fail(f"bad settings: {exc}")


def _show_progress() -> None:
    # Progress lines are INFO; show them even when `synthkg` runs at its default WARNING level.
    logging.getLogger("training").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.callback()
def train_command(
    ctx: typer.Context,
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", "-d", help="Training examples (JSONL from `build-set`); repeat for several."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder for the adapter, checkpoints and model card."),
    ] = None,
    base_model: Annotated[
        str,
        typer.Option(
            help="Local model name (smollm2-135m, qwen2.5-coder-0.5b), .gguf file or HF model folder."
        ),
    ] = _DEFAULTS.base_model,
    validation: Annotated[
        list[Path] | None, typer.Option(help="Validation examples (JSONL); repeat for several.")
    ] = None,
    validation_ratio: Annotated[
        float, typer.Option(help="Without --validation: share of --data held out (by hash) for validation.")
    ] = _DEFAULTS.validation_ratio,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps; overrides --epochs.")] = None,
    epochs: Annotated[float, typer.Option(help="Passes over the training examples.")] = _DEFAULTS.epochs,
    batch_size: Annotated[int, typer.Option(help="Examples per device per step.")] = _DEFAULTS.batch_size,
    eval_batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Examples per evaluation batch (default: --batch-size); 1 bounds memory."),
    ] = None,
    grad_accumulation: Annotated[
        int, typer.Option(help="Batches summed per optimizer step.")
    ] = _DEFAULTS.grad_accumulation,
    lr: Annotated[float, typer.Option(help="Peak learning rate (linear decay).")] = _DEFAULTS.learning_rate,
    warmup_steps: Annotated[int, typer.Option(help="Linear warm-up steps.")] = _DEFAULTS.warmup_steps,
    max_length: Annotated[
        int, typer.Option(help="Max tokens of prompt + answer; longer examples are dropped.")
    ] = _DEFAULTS.max_length,
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = _DEFAULTS.lora_r,
    lora_alpha: Annotated[int, typer.Option(help="LoRA scaling (alpha / r multiplies the update).")] = (
        _DEFAULTS.lora_alpha
    ),
    lora_dropout: Annotated[float, typer.Option(help="Dropout on the LoRA input.")] = _DEFAULTS.lora_dropout,
    target_modules: Annotated[
        str, typer.Option(help="Comma-separated module names to adapt, e.g. q_proj,k_proj,v_proj,o_proj.")
    ] = ",".join(_DEFAULTS.target_modules),
    logging_steps: Annotated[int, typer.Option(help="Log the loss every N steps.")] = _DEFAULTS.logging_steps,
    eval_steps: Annotated[int, typer.Option(help="Validation loss every N steps.")] = _DEFAULTS.eval_steps,
    save_steps: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = _DEFAULTS.save_steps,
    save_total_limit: Annotated[
        int, typer.Option(help="Checkpoints kept (oldest deleted).")
    ] = _DEFAULTS.save_total_limit,
    seed: Annotated[
        int, typer.Option(help="Seed of the LoRA initialization and data order.")
    ] = _DEFAULTS.seed,
    group_by_length: Annotated[
        bool,
        typer.Option(help="Batch examples of similar length (less padding computed); off: random batches."),
    ] = _DEFAULTS.group_by_length,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (default: $OMP_NUM_THREADS, else all available cores).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint in --output.")
    ] = False,
    merge: Annotated[
        bool, typer.Option("--merge", help="Also save base + adapter merged into --output/merged.")
    ] = False,
    init_adapter: Annotated[
        Path | None,
        typer.Option(help="Start from this adapter's weights instead of a fresh LoRA (e.g. the shipped "
                     "student, retrained on your corpus); its rank, alpha and modules replace --lora-r, "
                     "--lora-alpha and --target-modules."),
    ] = None,
) -> None:
    """Distill the extractor: train a LoRA student on chat examples, or build them (build-set).

    Training takes the loss on the answers only; --output gets the adapter, checkpoints/, a model card.

    Interrupted? Run the same command with --resume to continue from the last checkpoint.

    Retraining the shipped student on your own corpus: --init-adapter training/adapters/<student> starts
    from its weights.

    On several GPUs or machines, run the same options under `accelerate launch -m training` or torchrun.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not data:
        fail("give --data FILE (training examples; make them with `synthkg train build-set`)")
    if output is None:
        fail("give --output DIR (where the adapter goes)")
    config = TrainConfig(
        train_files=list(data),
        output_dir=output,
        base_model=base_model,
        validation_files=list(validation or []),
        validation_ratio=validation_ratio,
        cache_dir=_settings(ctx).cache_dir,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=[m.strip() for m in target_modules.split(",") if m.strip()],
        learning_rate=lr,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        grad_accumulation=grad_accumulation,
        max_length=max_length,
        warmup_steps=warmup_steps,
        logging_steps=logging_steps,
        eval_steps=eval_steps,
        save_steps=save_steps,
        save_total_limit=save_total_limit,
        seed=seed,
        group_by_length=group_by_length,
        threads=threads,
        resume=resume,
        merge_adapter=merge,
        init_adapter=init_adapter,
    )
    _show_progress()
    try:
        result = train(config)
    except TrainingError as exc:
        fail(str(exc))
    if result.rank != 0:
        return  # one report per run, not one per distributed process
    typer.echo(
        f"adapter: {result.adapter_dir} (step {result.global_step}, training loss "
        f"{result.first_loss} -> {result.last_loss}, validation loss {result.eval_loss}, "
        f"{result.seconds_per_step or 0:.2f} s/step)"
    )
    if result.merged_dir is not None:
        typer.echo(f"merged model: {result.merged_dir}")


def _one_call_prompt(name: str = "one_call") -> Prompt:
    """The single-call extraction prompt `name` (one_call: JSON; one_call_lines: the line format)."""
    try:
        prompt = load_prompt(name)
    except PromptError as exc:
        fail(str(exc))
    if prompt.output_model != "synthkg.extract.schema:ChunkGraph" or prompt.variables != {"chunk"}:
        fail(f"prompt {name!r} is no single-call extraction prompt (a ChunkGraph answer from $chunk)")
    return prompt


@app.command("build-set")
def build_set(
    ctx: typer.Context,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for train.jsonl, validation.jsonl and stats.json.")
    ],
    records: Annotated[
        list[Path] | None,
        typer.Option(
            "--records", "-r", help="Teacher records (JSONL, one chunk per line); repeat for several."
        ),
    ] = None,
    from_store: Annotated[
        Path | None, typer.Option(help="Also take every chunk's graph from this embedded store folder.")
    ] = None,
    teacher_model: Annotated[
        str, typer.Option(help="With --from-store: the model that extracted the store's graph (recorded).")
    ] = "",
    system_prompt_file: Annotated[
        Path | None, typer.Option(help="System prompt text file (default: the one_call prompt's).")
    ] = None,
    user_template: Annotated[
        str | None,
        typer.Option(help="User message with $chunk for the text (default: the one_call prompt's)."),
    ] = None,
    validation_ratio: Annotated[float, typer.Option(help="Share held out for validation (by hash).")] = 0.1,
    keep_empty: Annotated[
        bool, typer.Option("--keep-empty", help="Keep chunks whose graph has no quadruple.")
    ] = False,
    base_model: Annotated[
        str, typer.Option(help="Model whose tokenizer counts tokens (the base you will train).")
    ] = _DEFAULTS.base_model,
    max_length: Annotated[
        int, typer.Option(help="Drop examples longer than this many tokens.")
    ] = _DEFAULTS.max_length,
    count_tokens: Annotated[
        bool, typer.Option(help="Count tokens (loads the tokenizer); --no-count-tokens skips length checks.")
    ] = True,
    prompt_name: Annotated[
        str,
        typer.Option(
            "--prompt",
            help="The single-call prompt whose system text, user template and output format the examples "
            "use: one_call (JSON) or one_call_lines (the line format: ~0.6x the answer tokens).",
        ),
    ] = "one_call",
) -> None:
    """Turn teacher outputs (JSONL records and/or an ingested store) into chat examples: empty graphs
    and duplicate chunks dropped, a stable train/validation split, token-length stats."""
    if not records and from_store is None:
        fail("give --records FILE and/or --from-store DIR")
    prompt = _one_call_prompt(prompt_name)
    system_prompt, default_user, prompt_tag = prompt.system, prompt.user, prompt.version_tag
    if system_prompt_file is not None:
        try:
            system_prompt = system_prompt_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            fail(f"cannot read the system prompt {system_prompt_file}: {exc}")
    if system_prompt_file is not None or user_template is not None:
        prompt_tag = "custom"
    try:
        loaded = read_teacher_records(records or [])
        if from_store is not None:
            loaded += _store_records(from_store, teacher_model)
        counter = _token_counter(ctx, base_model) if count_tokens else None
        build = build_dataset(
            loaded,
            system_prompt,
            default_user if user_template is None else user_template,
            drop_empty=not keep_empty,
            validation_ratio=validation_ratio,
            max_length=max_length if count_tokens else None,
            count_tokens=counter,
            output_format=prompt.output_format,
        )
    except TrainingError as exc:
        fail(str(exc))
    build.stats["prompt"] = prompt_tag
    paths = write_dataset(build, output)
    stats = build.stats
    typer.echo(
        f"{stats['records']} records -> {stats['examples']} examples "
        f"({stats['train']} train, {stats['validation']} validation); dropped "
        f"{stats['empty_dropped']} empty, {stats['duplicates_dropped']} duplicate, "
        f"{stats['too_long_dropped']} over {max_length} tokens"
    )
    if stats["tokens"]:
        typer.echo("tokens: " + ", ".join(f"{k} {v}" for k, v in stats["tokens"].items()))
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


@app.command("reproduce")
def reproduce_command(
    ctx: typer.Context,
    adapter: Annotated[Path, typer.Argument(help="An adapter folder with its train_result.json.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the retrained adapter.")],
    tolerance: Annotated[
        float, typer.Option(help="Largest relative difference of each loss that counts as reproduced.")
    ] = 0.02,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: as recorded).")] = None,
    base_model: Annotated[
        str | None,
        typer.Option(
            help="A .gguf file of the recorded base, where its local-model package is not installed."
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(min=1, help="Retrain only the first N steps (same schedule) and compare every loss "
                     "logged in them with the record: a partial check of a long run."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted reproduction in OUTPUT from its last checkpoint.")
    ] = False,
) -> None:
    """Retrain an adapter from the configuration it recorded (same data, checked by hash) and compare
    the first / last training loss and the validation loss (with --steps N: every loss logged in the
    first N steps). Exit status 1 when they differ by more than --tolerance; the comparison is written
    to OUTPUT/reproduction.json."""
    from training.reproduce import reproduce

    _show_progress()
    try:
        report = reproduce(
            adapter,
            output,
            _settings(ctx).cache_dir,
            tolerance=tolerance,
            threads=threads,
            base_model=base_model,
            steps=steps,
            resume=resume,
        )
    except TrainingError as exc:
        fail(str(exc))
    differences = report.relative_difference
    for key, recorded in report.recorded.items():
        difference = differences[key]
        shown = "n/a" if difference is None else f"{difference:.2%}"
        if steps is None or key.startswith("eval_loss"):  # a partial run logs many; the summary follows
            typer.echo(f"{key}: recorded {recorded}, now {report.reproduced[key]} (difference {shown})")
    compared = {key: d for key, d in differences.items() if d is not None}
    if steps is not None and compared:
        worst = max(compared, key=compared.__getitem__)
        typer.echo(f"{len(compared)} logged losses compared; largest difference {compared[worst]:.2%} "
                   f"({worst})")
    if not report.data_checked:
        typer.echo("note: the adapter recorded no data hashes; the data files were taken as they are")
    verdict = "reproduced" if report.reproduced_within_tolerance else "NOT reproduced"
    written = output / "reproduction.json"
    typer.echo(f"{verdict} within {report.tolerance:.0%} ({report.seconds:.0f} s); {written}")
    if not report.reproduced_within_tolerance:
        raise typer.Exit(1)


@app.command("export-gguf")
def export_gguf(
    ctx: typer.Context,
    adapter: Annotated[Path, typer.Argument(help="A LoRA adapter folder written by `synthkg train`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The llama.cpp adapter file (.gguf).")],
) -> None:
    """Export a LoRA adapter over a GGUF base for llama.cpp (e.g. `llama-server -m BASE.gguf --lora
    OUT.gguf`). `synthkg ingest --extractor distilled` does this by itself on the llamacpp backend."""
    from synthkg.llm.adapters import adapter_config, export_lora_gguf
    from synthkg.llm.base import LLMError
    from synthkg.llm.local_models import resolve_model_path

    try:
        base = adapter_config(adapter).get("base_model_name_or_path") or ""
        base_gguf = resolve_model_path(base, _settings(ctx).cache_dir)
        path = export_lora_gguf(adapter, base_gguf, output)
    except (TrainingError, LLMError) as exc:
        fail(f"{exc} (llama.cpp adapters need a GGUF base: a local model name or a .gguf file)")
    typer.echo(f"{path} (base: {base_gguf})")


def _token_counter(ctx: typer.Context, base_model: str) -> Callable[[Example], int]:
    from training.student import load_tokenizer, resolve_base

    cache_dir = _settings(ctx).cache_dir
    tokenizer = load_tokenizer(resolve_base(base_model, cache_dir), cache_dir)
    return lambda example: len(encode_chat(tokenizer, example.chat())[0])


def _store_records(path: Path, teacher_model: str) -> list[TeacherRecord]:
    from synthkg.store import StoreError
    from synthkg.store.embedded import EmbeddedStore

    try:
        with EmbeddedStore(path, read_only=True) as store:
            return records_from_store(store, teacher_model=teacher_model, source=f"store:{path}")
    except StoreError as exc:
        fail(str(exc))
